package gorgonia

import (
	"errors"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

// step is what a layer's graph builder works from.
type step struct {
	l      model.Layer
	in     [][]int // per-example input shapes
	out    []int   // per-example output shape
	gr     *graph
	params map[string]*G.Node // parameter nodes by name
	bufs   map[string]*G.Node // buffer nodes by name (inference graphs)
	train  bool               // a training graph: dropout masks are bound, batchnorm uses batch statistics
}

// layerImpl is gorgonia's implementation of a layer kind.
type layerImpl struct {
	// build adds the layer to the graph; in are its input nodes, each
	// [batch, …].
	build func(s step, in []*G.Node) (*G.Node, error)
	// transposed stores the 2-D weight as [in, out], so the forward pass
	// is a plain x·W, and the bias as [1, out]; otherwise a 4-D weight
	// keeps PyTorch's layout and the bias is [1, out, 1, 1].
	transposed bool
	// flat keeps every tensor of the layer in PyTorch's layout ([C] for a
	// batchnorm's), read by the layer's own ops.
	flat bool
}

// layers is gorgonia's implementation of each layer kind.
var layers = kindreg.New[layerImpl]("backend/gorgonia", nil)

// outBuf returns output storage kept between runs for an op of a
// training graph (see outBuf), nil in an inference graph: those are
// cached per batch size, and keeping every activation of each would
// hold memory for little gain.
func (s step) outBuf() *outBuf {
	if !s.train {
		return nil
	}
	return new(outBuf)
}

// unary adapts a one-input builder.
func unary(f func(s step, h *G.Node) (*G.Node, error)) func(step, []*G.Node) (*G.Node, error) {
	return func(s step, in []*G.Node) (*G.Node, error) { return f(s, in[0]) }
}

func init() {
	layers.Register(model.KindLinear, layerImpl{build: unary(buildLinear), transposed: true})
	layers.Register(model.KindConv2D, layerImpl{build: unary(buildConv2D)})
	layers.Register(model.KindMaxPool, layerImpl{build: unary(func(s step, h *G.Node) (*G.Node, error) {
		st := s.l.PoolStride()
		return G.MaxPool2D(h, tensor.Shape{s.l.Kernel, s.l.Kernel}, []int{0, 0}, []int{st, st})
	})})
	layers.Register(model.KindFlatten, layerImpl{build: unary(func(s step, h *G.Node) (*G.Node, error) {
		return G.Reshape(h, tensor.Shape{s.gr.batch, model.Numel(s.out)})
	})})
	layers.Register(model.KindReLU, layerImpl{build: unary(func(s step, h *G.Node) (*G.Node, error) { return applyAct(s, actReLU, h) })})
	layers.Register(model.KindTanh, layerImpl{build: unary(func(_ step, h *G.Node) (*G.Node, error) { return G.Tanh(h) })})
	layers.Register(model.KindSigmoid, layerImpl{build: unary(func(_ step, h *G.Node) (*G.Node, error) { return G.Sigmoid(h) })})
	layers.Register(model.KindDropout, layerImpl{build: unary(buildDropout)})
	layers.Register(model.KindBatchNorm, layerImpl{build: unary(buildBatchNorm), flat: true})
	layers.Register(model.KindAdd, layerImpl{build: func(s step, in []*G.Node) (*G.Node, error) {
		return G.ApplyOp(addOp{dims: in[0].Dims(), out: s.outBuf()}, in[0], in[1])
	}})
	layers.Register(model.KindAvgPool, layerImpl{build: unary(buildAvgPool)})
	layers.Register(model.KindGlobalAvgPool, layerImpl{build: unary(buildGlobalAvgPool)})
	layers.Register(model.KindReLU6, layerImpl{build: unary(func(s step, h *G.Node) (*G.Node, error) { return applyAct(s, actReLU6, h) })})
	layers.Register(model.KindSiLU, layerImpl{build: unary(func(s step, h *G.Node) (*G.Node, error) { return applyAct(s, actSiLU, h) })})
}

func buildConv2D(s step, h *G.Node) (*G.Node, error) {
	l := s.l
	st := max(l.Stride, 1)
	w := s.params[l.Name+".weight"]
	// A leaf input is the graph's input x: no gradient is taken for it.
	noDx := h.Op() == nil
	h, err := G.ApplyOp(convOp{c: newGroupConv(s.in[0], l.Out, l.ConvGroups(), l.Kernel, st, l.Padding), noDx: noDx, out: s.outBuf()}, h, w)
	if err != nil || l.NoBias {
		return h, err
	}
	return G.BroadcastAdd(h, s.params[l.Name+".bias"], nil, []byte{0, 2, 3})
}

// buildAvgPool is a depthwise convolution with a constant 1/k² kernel:
// zero padding counts in the divisor, as PyTorch's count_include_pad.
func buildAvgPool(s step, h *G.Node) (*G.Node, error) {
	l, c := s.l, s.in[0][0]
	k := l.Kernel
	w := make([]float32, c*k*k)
	for i := range w {
		w[i] = 1 / float32(k*k)
	}
	wn := G.NodeFromAny(s.gr.g, tensor.New(tensor.WithShape(c, 1, k, k), tensor.WithBacking(w)), G.WithName("avgpool."+l.Name))
	return G.ApplyOp(convOp{c: newGroupConv(s.in[0], c, c, k, l.PoolStride(), l.Padding), constW: true, out: s.outBuf()}, h, wn)
}

// buildGlobalAvgPool averages each [H·W] plane.
func buildGlobalAvgPool(s step, h *G.Node) (*G.Node, error) {
	in := s.in[0]
	h, err := G.Reshape(h, tensor.Shape{s.gr.batch, in[0], in[1] * in[2]})
	if err != nil {
		return nil, err
	}
	return G.Mean(h, 2)
}

// buildBatchNorm normalises with the batch's statistics in a training
// graph (bnTrainOp, which the trainer reads back to update the running
// statistics) and with the running ones at inference (bnEvalOp).
func buildBatchNorm(s step, h *G.Node) (*G.Node, error) {
	l, in := s.l, s.in[0]
	per := 1
	if len(in) == 3 {
		per = in[1] * in[2]
	}
	gamma, beta := s.params[l.Name+".weight"], s.params[l.Name+".bias"]
	if !s.train {
		mean, variance := s.bufs[l.Name+".running_mean"], s.bufs[l.Name+".running_var"]
		if mean == nil || variance == nil {
			return nil, errors.New("running statistics missing")
		}
		return G.ApplyOp(bnEvalOp{c: in[0], per: per, eps: l.BNEps(), dims: h.Dims()}, h, gamma, beta, mean, variance)
	}
	st := &bnState{gr: s.gr, c: in[0], per: per, eps: l.BNEps(),
		mean: make([]float64, in[0]), variance: make([]float64, in[0]), invStd: make([]float64, in[0]),
		xhat: make([]float32, s.gr.batch*in[0]*per)}
	s.gr.bns = append(s.gr.bns, bnRun{st: st, layer: l})
	return G.ApplyOp(bnTrainOp{st: st, dims: h.Dims()}, h, gamma, beta)
}

// buildDropout multiplies by a host-made mask in training and is the
// identity at inference (and at rate 0): its output node is its input's.
func buildDropout(s step, h *G.Node) (*G.Node, error) {
	if !s.train || s.l.Rate == 0 {
		return h, nil
	}
	m := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(h.Shape().Clone()...))
	s.gr.masks = append(s.gr.masks, m)
	return G.HadamardProd(h, G.NodeFromAny(s.gr.g, m, G.WithName("mask."+s.l.Name)))
}
