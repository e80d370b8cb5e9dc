package gorgonia

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/distill-dev/distill/model"
)

// params holds a model's trainable tensors in gorgonia's layout: linear
// weights are stored [in, out] so the forward pass is a plain x·W; conv
// weights keep PyTorch's [out, in, kh, kw]; biases are [1, out] (linear)
// or [1, out, 1, 1] (conv) so they broadcast without reshapes.
type params struct {
	spec   model.Spec
	list   []model.Param // spec order
	values []*tensor.Dense
}

func newParams(spec model.Spec, w model.Weights) (*params, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := spec.Check(w); err != nil {
		return nil, fmt.Errorf("gorgonia: weights do not fit model %q: %w", spec.Name, err)
	}
	list, err := spec.Params()
	if err != nil {
		return nil, err
	}
	p := &params{spec: spec, list: list, values: make([]*tensor.Dense, len(list))}
	for i, pr := range list {
		p.values[i] = toInternal(spec, pr, w[pr.Name])
	}
	return p, nil
}

func layerKind(spec model.Spec, layer string) string {
	l, _, _ := spec.Layer(layer)
	return l.Kind
}

// toInternal converts a PyTorch-layout tensor to gorgonia's layout.
func toInternal(spec model.Spec, p model.Param, t model.Tensor) *tensor.Dense {
	data := make([]float32, len(t.Data))
	kind := layerKind(spec, p.Layer)
	var shape tensor.Shape
	switch {
	case kind == model.KindLinear && len(p.Shape) == 2: // [out,in] -> [in,out]
		out, in := p.Shape[0], p.Shape[1]
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				data[i*out+o] = t.Data[o*in+i]
			}
		}
		shape = tensor.Shape{in, out}
	case kind == model.KindLinear: // bias
		copy(data, t.Data)
		shape = tensor.Shape{1, p.Shape[0]}
	case len(p.Shape) == 4:
		copy(data, t.Data)
		shape = tensor.Shape(append([]int(nil), p.Shape...))
	default: // conv bias
		copy(data, t.Data)
		shape = tensor.Shape{1, p.Shape[0], 1, 1}
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

// canonical converts src, a buffer in parameter i's internal layout (its
// value, or optimiser state shaped like it), to PyTorch's layout.
func (p *params) canonical(i int, src []float32) model.Tensor {
	pr := p.list[i]
	t := model.NewTensor(pr.Shape...)
	if layerKind(p.spec, pr.Layer) == model.KindLinear && len(pr.Shape) == 2 {
		out, in := pr.Shape[0], pr.Shape[1]
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				t.Data[o*in+i] = src[i*out+o]
			}
		}
	} else {
		copy(t.Data, src)
	}
	return t
}

// graph is one compiled computation for a fixed batch size: the forward
// pass, and for training also the objective and its gradients.
type graph struct {
	g      *G.ExprGraph
	batch  int
	x      *tensor.Dense   // bound input
	masks  []*tensor.Dense // bound dropout masks (training only)
	pnodes G.Nodes         // parameter nodes, in params order
	logits *G.Node
	out    G.Value // logits read out (G.Read), safe from buffer reuse
	cost   *G.Node
	vm     G.VM
}

// build constructs the graph. With st == nil it is an inference graph
// (dropout is the identity); otherwise dropout multiplies by host-made
// masks and the objective op closes the graph.
func build(p *params, batch int, st *lossState) (*graph, error) {
	spec := p.spec
	gr := &graph{g: G.NewGraph(), batch: batch}
	g := gr.g
	inShape := append(tensor.Shape{batch}, spec.Input...)
	gr.x = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(inShape...))
	x := G.NodeFromAny(g, gr.x, G.WithName("x"))

	byName := map[string]*G.Node{}
	for i, pr := range p.list {
		v := p.values[i]
		n := G.NodeFromAny(g, v, G.WithName(pr.Name))
		gr.pnodes = append(gr.pnodes, n)
		byName[pr.Name] = n
	}
	shapes, err := spec.Shapes()
	if err != nil {
		return nil, err
	}
	h := x
	for li, l := range spec.Layers {
		switch l.Kind {
		case model.KindLinear:
			if h, err = G.Mul(h, byName[l.Name+".weight"]); err == nil {
				h, err = G.BroadcastAdd(h, byName[l.Name+".bias"], nil, []byte{0})
			}
		case model.KindConv2D:
			st := max(l.Stride, 1)
			if h, err = G.Conv2d(h, byName[l.Name+".weight"], tensor.Shape{l.Kernel, l.Kernel},
				[]int{l.Padding, l.Padding}, []int{st, st}, []int{1, 1}); err == nil {
				h, err = G.BroadcastAdd(h, byName[l.Name+".bias"], nil, []byte{0, 2, 3})
			}
		case model.KindMaxPool:
			st := l.Stride
			if st <= 0 {
				st = l.Kernel
			}
			h, err = G.MaxPool2D(h, tensor.Shape{l.Kernel, l.Kernel}, []int{0, 0}, []int{st, st})
		case model.KindFlatten:
			h, err = G.Reshape(h, tensor.Shape{batch, model.Numel(shapes[li])})
		case model.KindReLU:
			h, err = G.Rectify(h)
		case model.KindTanh:
			h, err = G.Tanh(h)
		case model.KindSigmoid:
			h, err = G.Sigmoid(h)
		case model.KindDropout:
			if st == nil || l.Rate == 0 {
				continue
			}
			m := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(h.Shape().Clone()...))
			gr.masks = append(gr.masks, m)
			h, err = G.HadamardProd(h, G.NodeFromAny(g, m, G.WithName("mask."+l.Name)))
		default:
			err = fmt.Errorf("unsupported layer kind %q", l.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("gorgonia: building layer %q (%s): %w", l.Name, l.Kind, err)
		}
	}
	gr.logits = h
	if st == nil {
		G.Read(h, &gr.out)
		gr.vm = G.NewTapeMachine(g)
		return gr, nil
	}
	if gr.cost, err = G.ApplyOp(objectiveOp{st}, h); err != nil {
		return nil, fmt.Errorf("gorgonia: building the objective: %w", err)
	}
	if _, err = G.Grad(gr.cost, gr.pnodes...); err != nil {
		return nil, fmt.Errorf("gorgonia: differentiating: %w", err)
	}
	gr.vm = G.NewTapeMachine(g, G.BindDualValues(gr.pnodes...))
	return gr, nil
}

// run executes the graph once.
func (gr *graph) run() error {
	defer gr.vm.Reset()
	return gr.vm.RunAll()
}

func (gr *graph) Close() error { return gr.vm.Close() }
