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

// forward computes the objective of logits [batch, k] and its gradient.
func (st *lossState) forward(logits []float32) (float64, error) {
	clear(st.grad)
	st.value, st.err = st.obj.Compute(logits, st.teacher, st.labels, st.n, st.k, st.grad)
	return st.value.Total, st.err
}

// hostLoss is the state of a fused loss term: forward computes the term's
// loss of the op's input on the host and leaves the gradient, shaped like
// the input, for storedGradOp.
type hostLoss interface {
	gradSource
	forward(in []float32) (float64, error)
}

// lossOp maps its input (dims axes, batch first) to the scalar loss that
// st computes: the objective on the logits and each feature term are one.
type lossOp struct {
	onHost
	st   hostLoss // a pointer, so the op stays comparable and hashes by identity
	dims int
	name string // the op's name in gorgonia's messages
}

func (op lossOp) Arity() int { return 1 }
func (op lossOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: op.dims, Of: a}, a)
}
func (op lossOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}
func (op lossOp) Do(vs ...G.Value) (G.Value, error) {
	v, err := op.st.forward(vs[0].Data().([]float32))
	if err != nil {
		return nil, err
	}
	return G.NewF32(float32(v)), nil
}
func (op lossOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s(%p)", op.name, op.st)
}
func (op lossOp) Hashcode() uint32 { return hashOf(op) }
func (op lossOp) String() string   { return op.name }

func (op lossOp) DiffWRT(int) []bool { return []bool{true} }
func (op lossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(storedGradOp{src: op.st, dims: op.dims}, inputs[0], grad)
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
	onHost
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
func (op storedGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "distill.storedgrad(%p)", op.src)
}
func (op storedGradOp) Hashcode() uint32 { return hashOf(op) }
func (op storedGradOp) String() string   { return "DistillStoredGrad" }

// onHost is the part of gorgonia.Op that every op here answers alike: it
// computes on the host into a new value and never writes its inputs.
type onHost struct{}

func (onHost) ReturnsPtr() bool     { return false }
func (onHost) CallsExtern() bool    { return false }
func (onHost) OverwritesInput() int { return -1 }

// hashOf is gorgonia's op hash from an op's WriteHash. Every op here
// hashes the address of its per-graph state, so two ops never merge.
func hashOf(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
