package gorgonia

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// addOp is the residual Add, a + b for same-shaped tensors, split across
// cores and, in a training graph, written into storage kept between
// steps. gorgonia's Add clones its first operand and adds on one core:
// on 2 cores the other one waited for it. Its gradient is the incoming
// one for both inputs, as gorgonia's.
type addOp struct {
	onHost
	dims int
	out  *outBuf // the output's storage, kept between runs (nil: allocated per run)
}

func (op addOp) Arity() int { return 2 }
func (op addOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := G.TensorType{Dims: op.dims, Of: a}
	return hm.NewFnType(t, t, t)
}

func (op addOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	a, b := ds[0].(tensor.Shape), ds[1].(tensor.Shape)
	if !a.Eq(b) {
		return nil, fmt.Errorf("adding shapes %v and %v", a, b)
	}
	return a.Clone(), nil
}

func (op addOp) Do(vs ...G.Value) (G.Value, error) {
	a, err := dense(vs[0])
	if err != nil {
		return nil, err
	}
	b, err := dense(vs[1])
	if err != nil {
		return nil, err
	}
	if !vs[0].Shape().Eq(vs[1].Shape()) {
		return nil, fmt.Errorf("gorgonia: adding shapes %v and %v", vs[0].Shape(), vs[1].Shape())
	}
	out := op.out.get(len(a)) // every value is written
	const chunk = 1 << 14
	parallelFor((len(a)+chunk-1)/chunk, func(j int) {
		lo, hi := j*chunk, min((j+1)*chunk, len(a))
		as := a[lo:hi]
		bs, o := b[lo:hi][:len(as)], out[lo:hi][:len(as)]
		for i, v := range as {
			o[i] = v + bs[i]
		}
	})
	return tensor.New(tensor.WithShape(vs[0].Shape().Clone()...), tensor.WithBacking(out)), nil
}

func (op addOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s", op) }
func (op addOp) Hashcode() uint32      { return hashOf(op) }
func (op addOp) String() string        { return fmt.Sprintf("DistillAdd%d", op.dims) }

func (op addOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op addOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad, grad}, nil
}
