package gorgonia

import (
	"errors"
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// params holds a model's trainable tensors in gorgonia's layout: linear
// weights are stored [in, out] so the forward pass is a plain x·W; conv
// weights keep PyTorch's [out, in, kh, kw]; biases are [1, out] (linear)
// or [1, out, 1, 1] (conv) so they broadcast without reshapes; a
// batchnorm's tensors stay [C]. It also holds the model's buffers (the
// batchnorms' running statistics), which no optimizer sees.
type params struct {
	spec   model.Spec
	list   []model.Param // spec order
	values []*tensor.Dense
	bufs   []model.Param // spec order
	bufVal []*tensor.Dense
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
	bufs, err := spec.Buffers()
	if err != nil {
		return nil, err
	}
	p := &params{spec: spec, list: list, values: make([]*tensor.Dense, len(list)), bufs: bufs, bufVal: make([]*tensor.Dense, len(bufs))}
	for i, pr := range list {
		p.values[i] = toInternal(spec, pr, w[pr.Name])
	}
	for i, b := range bufs {
		p.bufVal[i] = toInternal(spec, b, w[b.Name])
	}
	return p, nil
}

// buffer returns the index in bufs of the buffer named name, or -1.
func (p *params) buffer(name string) int {
	for i, b := range p.bufs {
		if b.Name == name {
			return i
		}
	}
	return -1
}

// transposed reports whether the parameters of layer are stored
// transposed: a 2-D weight as [in, out] and the bias as [1, out].
func transposed(spec model.Spec, layer string) bool {
	l, _, _ := spec.Layer(layer)
	impl, err := layers.Lookup(l.Kind)
	return err == nil && impl.transposed
}

// flat reports whether the tensors of layer keep PyTorch's layout.
func flat(spec model.Spec, layer string) bool {
	l, _, _ := spec.Layer(layer)
	impl, err := layers.Lookup(l.Kind)
	return err == nil && impl.flat
}

// toInternal converts a PyTorch-layout tensor to gorgonia's layout.
func toInternal(spec model.Spec, p model.Param, t model.Tensor) *tensor.Dense {
	data := make([]float32, len(t.Data))
	tr := transposed(spec, p.Layer)
	var shape tensor.Shape
	switch {
	case tr && len(p.Shape) == 2: // [out,in] -> [in,out]
		out, in := p.Shape[0], p.Shape[1]
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				data[i*out+o] = t.Data[o*in+i]
			}
		}
		shape = tensor.Shape{in, out}
	case tr: // bias
		copy(data, t.Data)
		shape = tensor.Shape{1, p.Shape[0]}
	case len(p.Shape) == 4 || flat(spec, p.Layer):
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
	if transposed(p.spec, pr.Layer) && len(pr.Shape) == 2 {
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
	g     *G.ExprGraph
	batch int
	// rows is the number of real rows of the batch being run (training
	// graphs): batch statistics are over them only.
	rows  int
	x     *tensor.Dense   // bound input
	masks []*tensor.Dense // bound dropout masks, one per spec.DropoutLayers (training only)
	bns   []bnRun         // the batchnorms (training only), in layer order
	// pnodes holds the parameter nodes in params order; nil for the
	// parameters that do not affect the objective (a training graph with
	// only feature terms computes the layers after its deepest student
	// layer, whose batchnorms update their running statistics as in
	// PyTorch, but has no gradient for their parameters).
	pnodes G.Nodes
	anodes G.Nodes // adapter parameter nodes, in adapter params order
	// grads holds a training graph's gradients after a run, in the order
	// of pnodes then anodes (nil where the node is).
	grads  []*tensor.Dense
	logits *G.Node
	out    G.Value   // logits read out (G.Read), safe from buffer reuse
	feats  []G.Value // layers read out for ForwardFeatures, in request order
	cost   *G.Node
	vm     G.VM
}

// bnRun is a training graph's batchnorm: its state after a run and the
// layer whose running statistics it updates.
type bnRun struct {
	st    *bnState
	layer model.Layer
}

// trainSpec is what turns a forward pass into a training graph.
type trainSpec struct {
	obj   *lossState      // nil when the objective has no logit terms
	feats []*featureState // one per feature term
	ad    *params         // the feature terms' adapters (may have no tensors)
}

// build constructs the graph, walking the spec's layer graph: each
// layer's output node is kept by index and fed to the layers that read
// it. With tr == nil it is an inference graph (dropout is the identity,
// batchnorm uses the running statistics) that also reads out the outputs
// of the layers named in read; otherwise dropout multiplies by host-made
// masks, batchnorm uses the batch's statistics, and the objective and
// feature ops close the graph.
func build(p *params, batch int, read []string, tr *trainSpec) (*graph, error) {
	spec := p.spec
	gr := &graph{g: G.NewGraph(), batch: batch, rows: batch}
	g := gr.g
	inShape := append(tensor.Shape{batch}, spec.Input...)
	gr.x = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(inShape...))
	x := G.NodeFromAny(g, gr.x, G.WithName("x"))

	ins, err := spec.InputIndices()
	if err != nil {
		return nil, err
	}
	shapes, err := spec.Shapes()
	if err != nil {
		return nil, err
	}
	// The layers the objective depends on: all of them with logit terms
	// (every layer feeds the output), else the feature layers' ancestors.
	// Only their parameters are differentiated: gorgonia cannot
	// differentiate with respect to a node the cost does not depend on.
	needed := make([]bool, len(spec.Layers))
	if tr == nil || tr.obj != nil {
		for i := range needed {
			needed[i] = true
		}
	} else {
		for _, fs := range tr.feats {
			if _, li, ok := spec.Layer(fs.plan.Student); ok {
				needed[li] = true
			}
		}
		for i := len(spec.Layers) - 1; i >= 0; i-- {
			if needed[i] {
				for _, j := range ins[i] {
					if j >= 0 {
						needed[j] = true
					}
				}
			}
		}
	}
	byName := map[string]*G.Node{}
	gr.pnodes = make(G.Nodes, len(p.list))
	for i, pr := range p.list {
		n := G.NodeFromAny(g, p.values[i], G.WithName(pr.Name))
		byName[pr.Name] = n
		if _, li, _ := spec.Layer(pr.Layer); needed[li] {
			gr.pnodes[i] = n
		}
	}
	bufs := map[string]*G.Node{}
	if tr == nil {
		for i, b := range p.bufs {
			bufs[b.Name] = G.NodeFromAny(g, p.bufVal[i], G.WithName(b.Name))
		}
	}
	outs := make([]*G.Node, len(spec.Layers)) // each layer's output
	for li, l := range spec.Layers {
		in := make([]*G.Node, len(ins[li]))
		inShapes := make([][]int, len(ins[li]))
		for k, j := range ins[li] {
			if j < 0 {
				in[k], inShapes[k] = x, spec.Input
			} else {
				in[k], inShapes[k] = outs[j], shapes[j]
			}
		}
		impl, err := layers.Lookup(l.Kind)
		if err == nil {
			outs[li], err = impl.build(step{l: l, in: inShapes, out: shapes[li], gr: gr, params: byName, bufs: bufs, train: tr != nil}, in)
		}
		if err != nil {
			return nil, fmt.Errorf("gorgonia: building layer %q (%s): %w", l.Name, l.Kind, err)
		}
	}
	gr.logits = outs[len(outs)-1]
	node := func(name string) (*G.Node, error) {
		_, li, ok := spec.Layer(name)
		if !ok {
			return nil, fmt.Errorf("gorgonia: model %q has no layer %q", spec.Name, name)
		}
		return outs[li], nil
	}
	if tr == nil {
		G.Read(gr.logits, &gr.out)
		gr.feats = make([]G.Value, len(read))
		for i, name := range read {
			n, err := node(name)
			if err != nil {
				return nil, err
			}
			G.Read(n, &gr.feats[i])
		}
		gr.vm = G.NewTapeMachine(g)
		return gr, nil
	}
	return gr, gr.closeTraining(tr, node)
}

// closeTraining adds the loss terms to a training graph and its
// gradients with respect to every parameter in it, adapters included.
func (gr *graph) closeTraining(tr *trainSpec, node func(name string) (*G.Node, error)) error {
	var terms G.Nodes
	if tr.obj != nil {
		c, err := G.ApplyOp(lossOp{st: tr.obj, dims: 2, name: "DistillObjective"}, gr.logits)
		if err != nil {
			return fmt.Errorf("gorgonia: building the objective: %w", err)
		}
		terms = append(terms, c)
	}
	ad := map[string]*G.Node{}
	for i, pr := range tr.ad.list {
		n := G.NodeFromAny(gr.g, tr.ad.values[i], G.WithName(pr.Name))
		gr.anodes = append(gr.anodes, n)
		ad[pr.Name] = n
	}
	for _, fs := range tr.feats {
		s, err := node(fs.plan.Student)
		if err != nil {
			return err
		}
		c, err := featureTerm(gr.batch, s, fs, ad)
		if err != nil {
			return fmt.Errorf("gorgonia: building feature term %d (%s): %w", fs.plan.Index, fs.plan.Feature, err)
		}
		terms = append(terms, c)
	}
	if len(terms) == 0 {
		return errors.New("gorgonia: the objective has no term to train")
	}
	gr.cost = terms[0]
	for _, c := range terms[1:] {
		var err error
		if gr.cost, err = G.Add(gr.cost, c); err != nil {
			return fmt.Errorf("gorgonia: summing the loss terms: %w", err)
		}
	}
	var wrt G.Nodes
	for _, n := range gr.pnodes {
		if n != nil {
			wrt = append(wrt, n)
		}
	}
	wrt = append(wrt, gr.anodes...)
	gnodes, err := G.Grad(gr.cost, wrt...)
	if err != nil {
		return fmt.Errorf("gorgonia: differentiating: %w", err)
	}
	// A gradient that one of our ops writes into kept storage is read
	// there; any other (gorgonia's ops, or a sum of several uses of the
	// parameter) is copied out as the tape computes it (gradSink).
	all := append(append(G.Nodes(nil), gr.pnodes...), gr.anodes...)
	gr.grads = make([]*tensor.Dense, len(all))
	k := 0
	for i, n := range all {
		if n == nil {
			continue
		}
		if op, ok := gnodes[k].Op().(interface{ gradBuf() *outBuf }); ok {
			if ob := op.gradBuf(); ob != nil {
				size := n.Shape().TotalSize()
				gr.grads[i] = tensor.New(tensor.WithShape(n.Shape().Clone()...), tensor.WithBacking(ob.get(size)))
				k++
				continue
			}
		}
		buf := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(n.Shape().Clone()...))
		if _, err := G.ApplyOp(gradSink{dst: buf, dims: n.Dims()}, gnodes[k]); err != nil {
			return fmt.Errorf("gorgonia: reading the gradient of %s: %w", n.Name(), err)
		}
		gr.grads[i] = buf
		k++
	}
	gr.vm = G.NewTapeMachine(gr.g)
	return nil
}

// featureTerm applies the term's adapter to the student layer's output s
// and closes it with the fused loss op.
func featureTerm(batch int, s *G.Node, fs *featureState, ad map[string]*G.Node) (*G.Node, error) {
	p := fs.plan
	a := s
	var err error
	if ps := p.AdapterParams(); ps != nil {
		w, b := ad[ps[0].Name], ad[ps[1].Name]
		switch p.Adapter {
		case loss.AdapterLinear:
			if a.Dims() != 2 {
				a, err = G.Reshape(a, tensor.Shape{batch, model.Numel(p.StudentShape)})
			}
			if err == nil {
				a, err = G.Mul(a, w)
			}
			if err == nil {
				a, err = G.BroadcastAdd(a, b, nil, []byte{0})
			}
		case loss.AdapterConv1x1:
			if a, err = G.Conv2d(a, w, tensor.Shape{1, 1}, []int{0, 0}, []int{1, 1}, []int{1, 1}); err == nil {
				a, err = G.BroadcastAdd(a, b, nil, []byte{0, 2, 3})
			}
		default:
			err = fmt.Errorf("unknown adapter %q", p.Adapter)
		}
		if err != nil {
			return nil, fmt.Errorf("adapter %s: %w", p.AdapterName(), err)
		}
	}
	return G.ApplyOp(lossOp{st: fs, dims: a.Dims(), name: "DistillFeature"}, a)
}

// run executes the graph once.
func (gr *graph) run() error {
	defer gr.vm.Reset()
	return gr.vm.RunAll()
}

func (gr *graph) Close() error { return gr.vm.Close() }
