package gorgonia

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/internal/gemm/gemmblas"
)

// linearOp is a linear layer, y = x·W (+ b) with W stored [in, out] and b
// [1, out], and its gradients, as gorgonia ops. gorgonia's Mul and
// BroadcastAdd allocate every output and gradient afresh on every step
// (their BLAS call makes the tape machine allocate; its Reset drops the
// values), which for Hinton's teacher was 13 MB a step, cleared by the
// allocator, paged in by the kernel and copied once more into the
// optimizer's buffer. Here every output lives in storage kept between
// steps, the bias is added in the product's epilogue, its gradient is one
// pass over dy, and the weight and bias gradients are read by the
// optimizer where they are written (gradBuf). The products are the ones
// gorgonia's Mul runs (gemmblas, the same sums in the same order), so the
// values are its bits.
type linearOp struct {
	onHost
	in, out int
	part    linearPart
	bias    bool // forward: b is the third input
	noDx    bool // the input is the graph's: no gradient is built for it
	ob      *outBuf
	// pack holds the forward pass's packed weights between steps (nil
	// outside training graphs: packed into fresh storage).
	pack *packedWeights
}

type packedWeights struct{ p *gemm.PackedF32 }

// linearPart says which of the layer's functions an op computes.
type linearPart int

const (
	linearForward linearPart = iota // (x, W[, b]) -> y [n, out]
	linearDx                        // (W, dy) -> dx [n, in]
	linearDw                        // (x, dy) -> dW [in, out]
	linearDb                        // (dy) -> db [1, out]
)

// buildLinear applies layer s.l to h, a [batch, in] node.
func buildLinear(s step, h *G.Node) (*G.Node, error) {
	w := s.params[s.l.Name+".weight"]
	shape := w.Shape()
	op := linearOp{in: shape[0], out: shape[1], bias: !s.l.NoBias, noDx: h.Op() == nil, ob: s.outBuf()}
	if op.ob != nil {
		op.pack = new(packedWeights)
	}
	if !op.bias {
		return G.ApplyOp(op, h, w)
	}
	return G.ApplyOp(op, h, w, s.params[s.l.Name+".bias"])
}

func (op linearOp) Arity() int {
	switch {
	case op.part == linearDb:
		return 1
	case op.part == linearForward && op.bias:
		return 3
	}
	return 2
}

func (op linearOp) Type() hm.Type {
	t := G.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	ts := make([]hm.Type, op.Arity()+1)
	for i := range ts {
		ts[i] = t
	}
	return hm.NewFnType(ts...)
}

func (op linearOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	switch op.part {
	case linearForward:
		return tensor.Shape{ds[0].(tensor.Shape)[0], op.out}, nil
	case linearDx:
		return tensor.Shape{ds[1].(tensor.Shape)[0], op.in}, nil
	case linearDw:
		return tensor.Shape{op.in, op.out}, nil
	default:
		return tensor.Shape{1, op.out}, nil
	}
}

func (op linearOp) Do(vs ...G.Value) (G.Value, error) {
	if len(vs) != op.Arity() {
		return nil, fmt.Errorf("gorgonia: %v takes %d inputs, got %d", op, op.Arity(), len(vs))
	}
	in := make([][]float32, len(vs))
	for i, v := range vs {
		d, err := dense(v)
		if err != nil {
			return nil, err
		}
		in[i] = d
	}
	// The batch is the rows of x (forward, dW) or of dy (dx, db).
	batchIn, width := in[0], op.in
	switch op.part {
	case linearDx:
		batchIn, width = in[1], op.out
	case linearDb:
		width = op.out
	}
	if len(batchIn)%width != 0 {
		return nil, fmt.Errorf("gorgonia: %v: an input of %d values is not rows of %d", op, len(batchIn), width)
	}
	n := len(batchIn) / width
	var out []float32
	switch op.part {
	case linearForward:
		x, w := in[0], in[1]
		var b []float32
		if op.bias {
			b = in[2]
		}
		out = op.ob.get(n * op.out)
		var dst *gemm.PackedF32
		if op.pack != nil {
			dst = op.pack.p
		}
		// gemm wants B [out, in]; W [in, out] is its transpose.
		p := gemm.RepackF32(dst, w, op.out, op.out, op.in, true)
		if op.pack != nil {
			op.pack.p = p
		}
		p.Gemm(n, x, op.in, out, op.out, b, false)
	case linearDx: // dy·Wᵀ
		w, dy := in[0], in[1]
		out = op.ob.get(n * op.in)
		gemmblas.Sgemm(blas.NoTrans, blas.Trans, n, op.in, op.out, 1, dy, op.out, w, op.out, 0, out, op.in)
	case linearDw: // xᵀ·dy
		x, dy := in[0], in[1]
		out = op.ob.get(op.in * op.out)
		gemmblas.Sgemm(blas.Trans, blas.NoTrans, op.in, op.out, n, 1, x, op.in, dy, op.out, 0, out, op.out)
	default: // column sums of dy, row by row as gorgonia's Sum
		dy := in[0]
		out = op.ob.get(op.out)
		copy(out, dy[:op.out])
		for i := 1; i < n; i++ {
			row := dy[i*op.out : (i+1)*op.out]
			for j, v := range row {
				out[j] += v
			}
		}
	}
	shape, _ := op.InferShape(vs[0].Shape(), vs[len(vs)-1].Shape())
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(out)), nil
}

func (op linearOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s", op) }
func (op linearOp) Hashcode() uint32      { return hashOf(op) }
func (op linearOp) String() string {
	return fmt.Sprintf("DistillLinear%d(%d→%d,%v,%v)", op.part, op.in, op.out, op.bias, op.noDx)
}

func (op linearOp) DiffWRT(int) []bool {
	if op.part != linearForward {
		return make([]bool, op.Arity())
	}
	d := []bool{!op.noDx, true}
	if op.bias {
		d = append(d, true)
	}
	return d
}

func (op linearOp) SymDiff(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	grads := make(G.Nodes, len(inputs))
	derived := func(part linearPart, in ...*G.Node) (*G.Node, error) {
		return G.ApplyOp(linearOp{in: op.in, out: op.out, part: part, ob: op.ob.another()}, in...)
	}
	var err error
	if !op.noDx {
		if grads[0], err = derived(linearDx, inputs[1], grad); err != nil {
			return nil, err
		}
	}
	if grads[1], err = derived(linearDw, inputs[0], grad); err != nil {
		return nil, err
	}
	if op.bias {
		if grads[2], err = derived(linearDb, grad); err != nil {
			return nil, err
		}
	}
	return grads, nil
}

// gradBuf is the storage a gradient op writes a parameter's whole
// gradient into, kept between steps, or nil: the trainer reads the
// gradient there instead of copying it out (gradSink).
func (op linearOp) gradBuf() *outBuf {
	if op.part == linearDw || op.part == linearDb {
		return op.ob
	}
	return nil
}
