package gorgonia

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// actOp is an element-wise activation with its derivative, one pass each
// way, split across cores. relu too: gorgonia's Rectify takes a mask
// pass and a multiply on one core for its derivative. relu6 and silu are not gorgonia ops: built from its primitives
// (relu(x)−relu(x−6); x·sigmoid(x)) they take four to eight passes, each
// cloning the tensor, which in inverted residual blocks, whose widest
// tensors they act on, cost more than the convolutions. Writing the
// derivative also gives PyTorch's value at relu6's kinks (0 at x = 0 and
// x = 6, as hardtanh_backward).
type actOp struct {
	onHost
	fn   act
	dims int
	grad bool    // (x, dy) -> dy·f'(x) instead of x -> f(x)
	out  *outBuf // the output's storage, kept between runs (nil: allocated per run)
}

// act is an activation function and its derivative.
type act struct {
	name  string
	f, df func(x float32) float32
}

var (
	// actReLU's derivative is PyTorch's: 0 at x = 0 (threshold_backward).
	actReLU = act{name: "relu",
		f: func(x float32) float32 { return max(x, 0) },
		df: func(x float32) float32 {
			if x > 0 {
				return 1
			}
			return 0
		}}
	actReLU6 = act{name: "relu6",
		f: func(x float32) float32 { return min(max(x, 0), 6) },
		df: func(x float32) float32 {
			if x > 0 && x < 6 {
				return 1
			}
			return 0
		}}
	actSiLU = act{name: "silu",
		f: func(x float32) float32 { return x * sigmoid(x) },
		df: func(x float32) float32 {
			s := sigmoid(x)
			return s * (1 + x*(1-s))
		}}
)

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// applyAct applies a to h.
func applyAct(s step, a act, h *G.Node) (*G.Node, error) {
	return G.ApplyOp(actOp{fn: a, dims: h.Dims(), out: s.outBuf()}, h)
}

func (op actOp) Arity() int {
	if op.grad {
		return 2
	}
	return 1
}

func (op actOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := G.TensorType{Dims: op.dims, Of: a}
	if op.grad {
		return hm.NewFnType(t, t, t)
	}
	return hm.NewFnType(t, t)
}

func (op actOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return ds[0].(tensor.Shape).Clone(), nil
}

func (op actOp) Do(vs ...G.Value) (G.Value, error) {
	x, err := dense(vs[0])
	if err != nil {
		return nil, err
	}
	var dy []float32
	if op.grad {
		if dy, err = dense(vs[1]); err != nil {
			return nil, err
		}
	}
	out := op.out.get(len(x)) // every value is written
	const chunk = 1 << 14
	parallelFor((len(x)+chunk-1)/chunk, func(j int) {
		lo, hi := j*chunk, min((j+1)*chunk, len(x))
		// relu and relu6, by far the most used, are written out: a call
		// per element would cost as much as the arithmetic.
		switch {
		case op.fn.name == actReLU.name && op.grad:
			// A mask rather than a branch: the sign of x is random, and
			// mispredicted branches cost more than the arithmetic.
			xs := x[lo:hi]
			dy, o := dy[lo:hi][:len(xs)], out[lo:hi][:len(xs)]
			for i, v := range xs {
				var m uint32
				if v > 0 {
					m = ^uint32(0)
				}
				o[i] = math.Float32frombits(math.Float32bits(dy[i]) & m)
			}
		case op.fn.name == actReLU.name:
			xs := x[lo:hi]
			o := out[lo:hi][:len(xs)]
			for i, v := range xs {
				o[i] = max(v, 0)
			}
		case op.fn.name == actReLU6.name && op.grad:
			for i := lo; i < hi; i++ {
				var d float32
				if v := x[i]; v > 0 && v < 6 {
					d = dy[i]
				}
				out[i] = d
			}
		case op.fn.name == actReLU6.name:
			for i := lo; i < hi; i++ {
				out[i] = min(max(x[i], 0), 6)
			}
		case op.grad:
			for i := lo; i < hi; i++ {
				out[i] = dy[i] * op.fn.df(x[i])
			}
		default:
			for i := lo; i < hi; i++ {
				out[i] = op.fn.f(x[i])
			}
		}
	})
	return tensor.New(tensor.WithShape(vs[0].Shape().Clone()...), tensor.WithBacking(out)), nil
}

func (op actOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s", op) }
func (op actOp) Hashcode() uint32      { return hashOf(op) }
func (op actOp) String() string {
	if op.grad {
		return "Distill" + op.fn.name + "Grad"
	}
	return "Distill" + op.fn.name
}

func (op actOp) DiffWRT(n int) []bool {
	if op.grad {
		return make([]bool, n)
	}
	return []bool{true}
}

func (op actOp) SymDiff(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(actOp{fn: op.fn, dims: op.dims, grad: true, out: op.out.another()}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}
