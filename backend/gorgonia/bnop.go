package gorgonia

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Batch normalisation in a training graph is one fused op (forward) and
// three gradient ops, written here rather than composed from gorgonia
// primitives: a composition would make about ten passes over a
// [N, C, H, W] tensor forward and more backward, each allocating, and
// gorgonia's multi-axis reductions would be needed for 2-D; it could not
// leave out the padding rows of a partly filled batch either. The fused
// op computes the statistics in float64 over the real rows only, keeps
// x̂ for the backward pass, and its gradients (the standard ones, below)
// are checked against finite differences in the tests. G.BatchNorm is not
// used: it keeps its own running statistics with another update rule.

// bnState is one batchnorm layer's per-graph state: what the forward pass
// leaves for the gradients and for the running-statistics update.
type bnState struct {
	gr       *graph // its rows field is the number of real rows
	c, per   int    // channels, values per channel per example (H·W, or 1)
	eps      float64
	mean     []float64 // the batch's mean per channel
	variance []float64 // the batch's biased variance per channel
	invStd   []float64 // 1/sqrt(variance+eps)
	xhat     []float32 // (x-mean)·invStd, batch × c × per
	y, dxOut outBuf    // the outputs of forward and dx, kept between runs
	dbeta    []float32 // Σdy per channel, from sums
}

// count is how many values each channel's statistics are over.
func (st *bnState) count() int { return st.gr.rows * st.per }

// The statistics sum each example's plane in float32 with four
// accumulators (a plane is at most a few thousand values) and the
// planes' sums in float64: a single float64 accumulator per channel made
// every addition wait for the previous one.
func (st *bnState) forward(x, gamma, beta []float32) []float32 {
	n := st.gr.rows
	y := st.y.get(len(x)) // every value is written
	cnt := float64(st.count())
	parallelFor(st.c, func(c int) {
		var s float64
		for b := 0; b < n; b++ {
			s += float64(sum32(x[(b*st.c+c)*st.per:][:st.per]))
		}
		mean := s / cnt
		m32 := float32(mean)
		var ss float64
		for b := 0; b < n; b++ {
			ss += float64(sqDev32(x[(b*st.c+c)*st.per:][:st.per], m32))
		}
		// The deviations are from m32, whose square error (mean−m32)²
		// is far below float32's resolution of the variance.
		variance := ss / cnt
		inv := 1 / math.Sqrt(variance+st.eps)
		st.mean[c], st.variance[c], st.invStd[c] = mean, variance, inv
		g, bt := gamma[c], beta[c]
		inv32 := float32(inv)
		// Padding rows are normalised too (their outputs are never read
		// into a loss) so that they stay finite.
		for b := 0; b < len(x)/(st.c*st.per); b++ {
			off := (b*st.c + c) * st.per
			xv := x[off : off+st.per]
			xh, out := st.xhat[off:][:len(xv)], y[off:][:len(xv)]
			for i, v := range xv {
				h := (v - m32) * inv32
				xh[i] = h
				out[i] = h*g + bt
			}
		}
	})
	return y
}

// sum32 is Σv in four interleaved float32 sums.
func sum32(v []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(v); i += 4 {
		s0 += v[i]
		s1 += v[i+1]
		s2 += v[i+2]
		s3 += v[i+3]
	}
	for ; i < len(v); i++ {
		s0 += v[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// sqDev32 is Σ(v−m)² in four interleaved float32 sums.
func sqDev32(v []float32, m float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(v); i += 4 {
		d0, d1, d2, d3 := v[i]-m, v[i+1]-m, v[i+2]-m, v[i+3]-m
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(v); i++ {
		d := v[i] - m
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

// dot32 is Σa·b in four interleaved float32 sums; b is at least as long
// as a.
func dot32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// sums returns Σdy·x̂ (γ's gradient) per channel, over the real rows,
// per plane in float32 as forward's, and keeps Σdy (β's) in dbeta for
// the op that returns it: one pass over dy for both, each plane read
// twice while it is in the cache.
func (st *bnState) sums(dy []float32) []float32 {
	dgamma := make([]float32, st.c)
	if len(st.dbeta) != st.c {
		st.dbeta = make([]float32, st.c)
	}
	parallelFor(st.c, func(c int) {
		var sg, sb float64
		for b := 0; b < st.gr.rows; b++ {
			off := (b*st.c + c) * st.per
			d := dy[off : off+st.per]
			sg += float64(dot32(d, st.xhat[off:]))
			sb += float64(sum32(d))
		}
		dgamma[c], st.dbeta[c] = float32(sg), float32(sb)
	})
	return dgamma
}

// dx is the gradient with respect to the input:
// γ·invStd·(dy − Σdy/m − x̂·Σdy·x̂/m) on the real rows, zero on padding.
func (st *bnState) dx(dy, gamma, dgamma, dbeta []float32) []float32 {
	dx := st.dxOut.get(len(dy))
	clear(dx[st.gr.rows*st.c*st.per:])
	m := float64(st.count())
	parallelFor(st.c, func(c int) {
		k := float32(float64(gamma[c]) * st.invStd[c])
		mb, mg := float32(float64(dbeta[c])/m), float32(float64(dgamma[c])/m)
		for b := 0; b < st.gr.rows; b++ {
			off := (b*st.c + c) * st.per
			d := dy[off : off+st.per]
			xh, out := st.xhat[off:][:len(d)], dx[off:][:len(d)]
			for i, v := range d {
				out[i] = k * (v - mb - xh[i]*mg)
			}
		}
	})
	return dx
}

// bnPart says which function of a training batchnorm an op computes.
type bnPart int

const (
	bnForward bnPart = iota // (x, γ, β) -> y
	bnDBeta                 // (dγ) -> Σdy, which the dγ op computed
	bnDGamma                // (y, dy) -> Σdy·x̂
	bnDx                    // (y, dy, γ, dγ, dβ) -> dx
)

// bnTrainOp is a batchnorm with batch statistics. The gradient ops take
// the forward output y as their first input only to run after the
// forward pass, whose x̂ they read.
type bnTrainOp struct {
	onHost
	st   *bnState // a pointer, so the op hashes by identity
	dims int      // of x: 2 or 4
	part bnPart
}

func (op bnTrainOp) Arity() int {
	switch op.part {
	case bnForward:
		return 3
	case bnDx:
		return 5
	case bnDBeta:
		return 1
	default:
		return 2
	}
}

func (op bnTrainOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	x := G.TensorType{Dims: op.dims, Of: a}
	v := G.TensorType{Dims: 1, Of: a}
	switch op.part {
	case bnForward:
		return hm.NewFnType(x, v, v, x)
	case bnDx:
		return hm.NewFnType(x, x, v, v, v, x)
	case bnDBeta:
		return hm.NewFnType(v, v)
	default:
		return hm.NewFnType(x, x, v)
	}
}

func (op bnTrainOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if op.part == bnDBeta || op.part == bnDGamma {
		return tensor.Shape{op.st.c}, nil
	}
	return ds[0].(tensor.Shape).Clone(), nil
}

func (op bnTrainOp) Do(vs ...G.Value) (G.Value, error) {
	in := make([][]float32, len(vs))
	for i, v := range vs {
		var err error
		if in[i], err = dense(v); err != nil {
			return nil, err
		}
	}
	shape := vs[0].Shape().Clone()
	var out []float32
	switch op.part {
	case bnForward:
		out = op.st.forward(in[0], in[1], in[2])
	case bnDBeta:
		out, shape = append([]float32(nil), op.st.dbeta...), tensor.Shape{op.st.c}
	case bnDGamma:
		out, shape = op.st.sums(in[1]), tensor.Shape{op.st.c}
	default:
		out = op.st.dx(in[1], in[2], in[3], in[4])
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(out)), nil
}

func (op bnTrainOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "distill.bn%d(%p)", op.part, op.st) }
func (op bnTrainOp) Hashcode() uint32      { return hashOf(op) }
func (op bnTrainOp) String() string        { return fmt.Sprintf("DistillBatchNorm%d", op.part) }

func (op bnTrainOp) DiffWRT(n int) []bool {
	if op.part != bnForward {
		return make([]bool, n)
	}
	return []bool{true, true, true}
}

func (op bnTrainOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	part := func(p bnPart, in ...*G.Node) (*G.Node, error) {
		return G.ApplyOp(bnTrainOp{st: op.st, dims: op.dims, part: p}, in...)
	}
	dgamma, err := part(bnDGamma, output, grad)
	if err != nil {
		return nil, err
	}
	// dβ reads what the dγ op left: its input orders it after that op.
	dbeta, err := part(bnDBeta, dgamma)
	if err != nil {
		return nil, err
	}
	dx, err := part(bnDx, output, grad, inputs[1], dgamma, dbeta)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dgamma, dbeta}, nil
}

// bnEvalOp is a batchnorm with running statistics (inference):
// (x, γ, β, running_mean, running_var) -> y, read at every run so that
// the graph follows the training that updates them.
type bnEvalOp struct {
	onHost
	c, per int
	eps    float64
	dims   int
}

func (op bnEvalOp) Arity() int { return 5 }
func (op bnEvalOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	x := G.TensorType{Dims: op.dims, Of: a}
	v := G.TensorType{Dims: 1, Of: a}
	return hm.NewFnType(x, v, v, v, v, x)
}
func (op bnEvalOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return ds[0].(tensor.Shape).Clone(), nil
}

func (op bnEvalOp) Do(vs ...G.Value) (G.Value, error) {
	in := make([][]float32, len(vs))
	for i, v := range vs {
		var err error
		if in[i], err = dense(v); err != nil {
			return nil, err
		}
	}
	x, gamma, beta, mean, variance := in[0], in[1], in[2], in[3], in[4]
	y := make([]float32, len(x))
	rows := len(x) / (op.c * op.per)
	parallelFor(op.c, func(c int) {
		scale := float64(gamma[c]) / math.Sqrt(float64(variance[c])+op.eps)
		shift := float32(float64(beta[c]) - float64(mean[c])*scale)
		s := float32(scale)
		for b := 0; b < rows; b++ {
			off := (b*op.c + c) * op.per
			for i, v := range x[off : off+op.per] {
				y[off+i] = v*s + shift
			}
		}
	})
	return tensor.New(tensor.WithShape(vs[0].Shape().Clone()...), tensor.WithBacking(y)), nil
}

func (op bnEvalOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s", op) }
func (op bnEvalOp) Hashcode() uint32      { return hashOf(op) }
func (op bnEvalOp) String() string {
	return fmt.Sprintf("DistillBatchNormEval(%d,%d,%g)", op.c, op.per, op.eps)
}
