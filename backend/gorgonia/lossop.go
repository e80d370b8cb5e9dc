package gorgonia

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/distill-dev/distill/loss"
)

// lossState carries one step's non-differentiable inputs (labels, teacher
// logits, the number of real rows in a padded batch) into the graph, and
// the gradient the forward pass computed out of it.
//
// The objective is one fused op instead of gorgonia primitives on purpose:
// gorgonia v0.9.18 merges SoftMax(z) and LogSoftMax(z) of the same node
// (its hash ignores the log flag), which silently corrupts a KL loss, and
// a log-sum-exp built from primitives overflows float32 for large logits.
// loss.Objective computes in float64 and is the reference every backend
// is tested against, so using it here also makes this backend exact.
type lossState struct {
	obj     loss.Objective
	n       int // real rows; rows n..batch-1 are padding
	k       int
	labels  []int32
	teacher []float32
	grad    []float32 // batch × k, rows ≥ n zero
	value   loss.Value
	err     error
}

// objectiveOp maps logits [batch, k] to the scalar loss.
type objectiveOp struct{ st *lossState }

func (op objectiveOp) Arity() int { return 1 }
func (op objectiveOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 2, Of: a}, a)
}
func (op objectiveOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}
func (op objectiveOp) Do(vs ...G.Value) (G.Value, error) {
	st := op.st
	logits := vs[0].Data().([]float32)
	clear(st.grad)
	st.value, st.err = st.obj.Compute(logits, st.teacher, st.labels, st.n, st.k, st.grad)
	if st.err != nil {
		return nil, st.err
	}
	return G.NewF32(float32(st.value.Total)), nil
}
func (op objectiveOp) ReturnsPtr() bool     { return false }
func (op objectiveOp) CallsExtern() bool    { return false }
func (op objectiveOp) OverwritesInput() int { return -1 }
func (op objectiveOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "distill.objective(%p)", op.st)
}
func (op objectiveOp) Hashcode() uint32 { return hashOf(op) }
func (op objectiveOp) String() string   { return "DistillObjective" }

func (op objectiveOp) DiffWRT(int) []bool { return []bool{true} }
func (op objectiveOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(storedGradOp{op.st, 2}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}

func (st *lossState) gradient() []float32 { return st.grad }

// gradSource is a fused loss op's state: its forward pass leaves the
// gradient of the loss with respect to the op's input there, shaped like
// the input (batch rows, padding rows zero).
type gradSource interface{ gradient() []float32 }

// storedGradOp returns the gradient that a fused loss op's forward pass
// stored, scaled by the upstream gradient (1 for the loss itself). src
// is a pointer, so the op stays comparable and hashes by identity.
type storedGradOp struct {
	src  gradSource
	dims int // of the input, and so of the gradient
}

func (op storedGradOp) Arity() int { return 2 }
func (op storedGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := G.TensorType{Dims: op.dims, Of: a}
	return hm.NewFnType(t, a, t)
}
func (op storedGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return ds[0].(tensor.Shape).Clone(), nil
}
func (op storedGradOp) Do(vs ...G.Value) (G.Value, error) {
	up := float32(1)
	switch v := vs[1].(type) {
	case *G.F32:
		up = float32(*v)
	case tensor.Tensor:
		up = v.Data().(float32)
	}
	grad := op.src.gradient()
	out := make([]float32, len(grad))
	for i, g := range grad {
		out[i] = g * up
	}
	shape := vs[0].Shape().Clone()
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(out)), nil
}
func (op storedGradOp) ReturnsPtr() bool     { return false }
func (op storedGradOp) CallsExtern() bool    { return false }
func (op storedGradOp) OverwritesInput() int { return -1 }
func (op storedGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "distill.storedgrad(%p)", op.src)
}
func (op storedGradOp) Hashcode() uint32 { return hashOf(op) }
func (op storedGradOp) String() string   { return "DistillStoredGrad" }

// hashOf is gorgonia's op hash from an op's WriteHash. Every op here
// hashes the address of its per-graph state, so two ops never merge.
func hashOf(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
