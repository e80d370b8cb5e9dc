package gorgonia

import (
	"fmt"
	"hash"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// groupConv is a grouped 2-D convolution (PyTorch's groups): x [N, Cin,
// H, W] and w [Cout, Cin/groups, k, k] give [N, Cout, Ho, Wo], output
// channel o reading only the input channels of its group o/(Cout/groups).
//
// gorgonia's Conv2d has no groups. Splitting the channels into groups,
// convolving each with Conv2d and concatenating would be exact but, for
// the depthwise convolutions grouped convs mostly are (one channel per
// group), turns one layer into C im2col+GEMM calls on a single channel
// each plus C slices and a concat, forward and backward. A direct
// convolution does the same multiply-adds with no im2col buffer and runs
// the (batch, channel) planes in parallel; its gradients are written here
// (convDx, convDw) and checked against finite differences in the tests.
// groups == 1 runs as GEMMs instead (convgemm.go), which are faster for
// dense convs. The same op with a constant 1/k² depthwise weight is the
// average pool (zero padding counted in the divisor, as PyTorch's default).
type groupConv struct {
	cin, cout, groups int
	k, stride, pad    int
	h, w, ho, wo      int // input and output spatial sizes
}

func newGroupConv(in []int, cout, groups, k, stride, pad int) groupConv {
	c := groupConv{cin: in[0], cout: cout, groups: groups, k: k, stride: max(stride, 1), pad: pad, h: in[1], w: in[2]}
	c.ho = (c.h+2*pad-k)/c.stride + 1
	c.wo = (c.w+2*pad-k)/c.stride + 1
	return c
}

// span returns the output columns (or rows) o in [lo, hi) whose input
// index o·stride − pad + kk lies in [0, n).
func (c groupConv) span(kk, n, no int) (lo, hi int) {
	// o·s ≥ pad − kk  and  o·s ≤ n − 1 + pad − kk
	lo = 0
	if d := c.pad - kk; d > 0 {
		lo = min((d+c.stride-1)/c.stride, no)
	}
	hi = no
	if d := n - 1 + c.pad - kk; d < 0 {
		hi = 0
	} else {
		hi = min(hi, d/c.stride+1)
	}
	return lo, max(lo, hi)
}

// forward computes y = conv(x, w) for a batch of n.
func (c groupConv) forward(x, w []float32, n int, ob *outBuf) []float32 {
	cpg, opg := c.cin/c.groups, c.cout/c.groups
	hw, ohw, kk := c.h*c.w, c.ho*c.wo, c.k*c.k
	y := ob.getZero(n * c.cout * ohw)
	parallelFor(n*c.cout, func(job int) {
		b, o := job/c.cout, job%c.cout
		out := y[job*ohw : (job+1)*ohw]
		g := o / opg
		for ic := 0; ic < cpg; ic++ {
			in := x[(b*c.cin+g*cpg+ic)*hw:][:hw]
			wk := w[(o*cpg+ic)*kk:][:kk]
			for kh := 0; kh < c.k; kh++ {
				ohLo, ohHi := c.span(kh, c.h, c.ho)
				for kw := 0; kw < c.k; kw++ {
					wv := wk[kh*c.k+kw]
					owLo, owHi := c.span(kw, c.w, c.wo)
					for oh := ohLo; oh < ohHi; oh++ {
						row := in[(oh*c.stride-c.pad+kh)*c.w:]
						orow := out[oh*c.wo:]
						iw := owLo*c.stride - c.pad + kw
						for ow := owLo; ow < owHi; ow++ {
							orow[ow] += wv * row[iw]
							iw += c.stride
						}
					}
				}
			}
		}
	})
	return y
}

// dx is the gradient with respect to x of Σ dy·conv(x, w).
func (c groupConv) dx(w, dy []float32, n int, ob *outBuf) []float32 {
	cpg, opg := c.cin/c.groups, c.cout/c.groups
	hw, ohw, kk := c.h*c.w, c.ho*c.wo, c.k*c.k
	dx := ob.getZero(n * c.cin * hw)
	parallelFor(n*c.cin, func(job int) {
		b, ci := job/c.cin, job%c.cin
		g, ic := ci/cpg, ci%cpg
		d := dx[job*hw : (job+1)*hw]
		for o := g * opg; o < (g+1)*opg; o++ {
			up := dy[(b*c.cout+o)*ohw:][:ohw]
			wk := w[(o*cpg+ic)*kk:][:kk]
			for kh := 0; kh < c.k; kh++ {
				ohLo, ohHi := c.span(kh, c.h, c.ho)
				for kw := 0; kw < c.k; kw++ {
					wv := wk[kh*c.k+kw]
					owLo, owHi := c.span(kw, c.w, c.wo)
					for oh := ohLo; oh < ohHi; oh++ {
						row := d[(oh*c.stride-c.pad+kh)*c.w:]
						urow := up[oh*c.wo:]
						iw := owLo*c.stride - c.pad + kw
						for ow := owLo; ow < owHi; ow++ {
							row[iw] += wv * urow[ow]
							iw += c.stride
						}
					}
				}
			}
		}
	})
	return dx
}

// dw is the gradient with respect to w of Σ dy·conv(x, w). Each weight
// sums over the batch and the output plane; the per-plane sums are
// float32, their total float64.
func (c groupConv) dw(x, dy []float32, n int, ob *outBuf) []float32 {
	cpg, opg := c.cin/c.groups, c.cout/c.groups
	hw, ohw, kk := c.h*c.w, c.ho*c.wo, c.k*c.k
	dw := ob.get(c.cout * cpg * kk) // every value is written
	parallelFor(c.cout*cpg, func(job int) {
		o, ic := job/cpg, job%cpg
		g := o / opg
		acc := make([]float64, kk)
		for b := 0; b < n; b++ {
			in := x[(b*c.cin+g*cpg+ic)*hw:][:hw]
			up := dy[(b*c.cout+o)*ohw:][:ohw]
			for kh := 0; kh < c.k; kh++ {
				ohLo, ohHi := c.span(kh, c.h, c.ho)
				for kw := 0; kw < c.k; kw++ {
					owLo, owHi := c.span(kw, c.w, c.wo)
					var s float32
					for oh := ohLo; oh < ohHi; oh++ {
						row := in[(oh*c.stride-c.pad+kh)*c.w:]
						urow := up[oh*c.wo:]
						iw := owLo*c.stride - c.pad + kw
						for ow := owLo; ow < owHi; ow++ {
							s += urow[ow] * row[iw]
							iw += c.stride
						}
					}
					acc[kh*c.k+kw] += float64(s)
				}
			}
		}
		for i, v := range acc {
			dw[job*kk+i] = float32(v)
		}
	})
	return dw
}

// parallelFor runs f(0..n-1) on all cores.
func parallelFor(n int, f func(i int)) {
	parallelForWorker(n, func(_, i int) { f(i) })
}

// workers is how many goroutines parallelForWorker starts for n jobs.
func workers(n int) int { return max(1, min(runtime.GOMAXPROCS(0), n)) }

// parallelForWorker runs f(w, 0..n-1) on all cores, w < workers(n)
// naming the goroutine that runs the job (for its own buffers); jobs are
// handed out one at a time, so a worker whose core is busy with other
// work takes fewer.
func parallelForWorker(n int, f func(w, i int)) {
	nw := workers(n)
	if nw <= 1 {
		for i := 0; i < n; i++ {
			f(0, i)
		}
		return
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < nw; w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(w, i)
			}
		})
	}
	wg.Wait()
}

// dense returns v's values in row-major order.
func dense(v G.Value) ([]float32, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("gorgonia: want a dense tensor, got %T", v)
	}
	if d.IsMaterializable() {
		d = d.Materialize().(*tensor.Dense)
	}
	data, ok := d.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("gorgonia: want float32 values, got %T", d.Data())
	}
	return data, nil
}

// convPart says which of the convolution's functions an op computes.
type convPart int

const (
	convForward convPart = iota // (x, w) -> y
	convDx                      // (w, dy) -> dx
	convDw                      // (x, dy) -> dw
)

// convOp is one of groupConv's functions as a gorgonia op. constW marks a
// constant weight (the average pool's), noDx an input that needs no
// gradient (the graph's input): no gradient is built for them. gorgonia
// would otherwise compute one (SymDiff builds every input's) and throw
// it away.
type convOp struct {
	onHost
	c      groupConv
	part   convPart
	constW bool
	noDx   bool
	out    *outBuf // the output's storage, kept between runs (nil: allocated per run)
}

func (op convOp) Arity() int { return 2 }
func (op convOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := G.TensorType{Dims: 4, Of: a}
	return hm.NewFnType(t, t, t)
}

func (op convOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	c := op.c
	switch op.part {
	case convForward:
		n := ds[0].(tensor.Shape)[0]
		return tensor.Shape{n, c.cout, c.ho, c.wo}, nil
	case convDx:
		n := ds[1].(tensor.Shape)[0]
		return tensor.Shape{n, c.cin, c.h, c.w}, nil
	default:
		return tensor.Shape{c.cout, c.cin / c.groups, c.k, c.k}, nil
	}
}

func (op convOp) Do(vs ...G.Value) (G.Value, error) {
	a, err := dense(vs[0])
	if err != nil {
		return nil, err
	}
	b, err := dense(vs[1])
	if err != nil {
		return nil, err
	}
	var out []float32
	var n int
	switch op.part {
	case convForward:
		n = vs[0].Shape()[0]
		if op.c.groups == 1 {
			out = op.c.gemmForward(a, b, n, op.out)
		} else {
			out = op.c.forward(a, b, n, op.out)
		}
	case convDx:
		n = vs[1].Shape()[0]
		if op.c.groups == 1 {
			out = op.c.gemmDx(a, b, n, op.out)
		} else {
			out = op.c.dx(a, b, n, op.out)
		}
	default:
		n = vs[0].Shape()[0]
		if op.c.groups == 1 {
			out = op.c.gemmDw(a, b, n, op.out)
		} else {
			out = op.c.dw(a, b, n, op.out)
		}
	}
	shape, _ := op.InferShape(vs[0].Shape(), vs[1].Shape())
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(out)), nil
}

func (op convOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s", op) }
func (op convOp) Hashcode() uint32      { return hashOf(op) }
func (op convOp) String() string {
	return fmt.Sprintf("DistillGroupConv%d(%+v,%v,%v)", op.part, op.c, op.constW, op.noDx)
}

func (op convOp) DiffWRT(int) []bool {
	if op.part != convForward {
		return []bool{false, false}
	}
	return []bool{!op.noDx, !op.constW}
}

func (op convOp) SymDiff(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	var dx, dw *G.Node
	var err error
	if !op.noDx {
		if dx, err = G.ApplyOp(convOp{c: op.c, part: convDx, out: op.out.another()}, inputs[1], grad); err != nil {
			return nil, err
		}
	}
	if !op.constW {
		if dw, err = G.ApplyOp(convOp{c: op.c, part: convDw, out: op.out.another()}, inputs[0], grad); err != nil {
			return nil, err
		}
	}
	return G.Nodes{dx, dw}, nil
}

// gradBuf: see linearOp.gradBuf.
func (op convOp) gradBuf() *outBuf {
	if op.part == convDw {
		return op.out
	}
	return nil
}
