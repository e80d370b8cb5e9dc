package gorgonia

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gradSink copies a parameter's gradient, as the tape computes it, into
// the trainer's buffer for the optimizer. It replaces gorgonia's dual
// values (BindDualValues), which add every gradient into an accumulator
// on one core, so that the accumulator had to be cleared every step: a
// copy over both cores costs a fraction of that, and nothing needs
// clearing. Its output is its input; nothing reads it.
type gradSink struct {
	onHost
	dst  *tensor.Dense
	dims int
}

func (op gradSink) Arity() int { return 1 }

func (op gradSink) Type() hm.Type {
	t := G.TensorType{Dims: op.dims, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}

func (op gradSink) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return ds[0].(tensor.Shape).Clone(), nil
}

func (op gradSink) Do(vs ...G.Value) (G.Value, error) {
	src, err := dense(vs[0])
	if err != nil {
		return nil, err
	}
	dst := op.dst.Data().([]float32)
	if len(src) != len(dst) {
		return nil, fmt.Errorf("gorgonia: gradient of %d values for a parameter of %d", len(src), len(dst))
	}
	const chunk = 1 << 15
	parallelFor((len(src)+chunk-1)/chunk, func(j int) {
		lo, hi := j*chunk, min((j+1)*chunk, len(src))
		copy(dst[lo:hi], src[lo:hi])
	})
	return vs[0], nil
}

// The hash names the destination, so that two sinks never merge.
func (op gradSink) WriteHash(h hash.Hash) { fmt.Fprintf(h, "DistillGradSink%p", op.dst) }
func (op gradSink) Hashcode() uint32      { return hashOf(op) }
func (op gradSink) String() string        { return "DistillGradSink" }
