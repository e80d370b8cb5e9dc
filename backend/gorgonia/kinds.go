package gorgonia

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

// step is what a layer's graph builder works from.
type step struct {
	l      model.Layer
	out    []int // per-example output shape
	gr     *graph
	params map[string]*G.Node // parameter nodes by name
	train  bool               // a training graph: dropout masks are bound
}

// layerImpl is gorgonia's implementation of a layer kind.
type layerImpl struct {
	// build adds the layer to the graph after h, a [batch, …] node.
	build func(s step, h *G.Node) (*G.Node, error)
	// transposed stores the 2-D weight as [in, out], so the forward pass
	// is a plain x·W, and the bias as [1, out]; otherwise the weight keeps
	// PyTorch's layout and the bias is [1, out, 1, 1].
	transposed bool
}

// layers is gorgonia's implementation of each layer kind.
var layers = kindreg.New[layerImpl]("backend/gorgonia", nil)

func init() {
	layers.Register(model.KindLinear, layerImpl{build: buildLinear, transposed: true})
	layers.Register(model.KindConv2D, layerImpl{build: buildConv2D})
	layers.Register(model.KindMaxPool, layerImpl{build: func(s step, h *G.Node) (*G.Node, error) {
		st := s.l.PoolStride()
		return G.MaxPool2D(h, tensor.Shape{s.l.Kernel, s.l.Kernel}, []int{0, 0}, []int{st, st})
	}})
	layers.Register(model.KindFlatten, layerImpl{build: func(s step, h *G.Node) (*G.Node, error) {
		return G.Reshape(h, tensor.Shape{s.gr.batch, model.Numel(s.out)})
	}})
	layers.Register(model.KindReLU, layerImpl{build: func(_ step, h *G.Node) (*G.Node, error) { return G.Rectify(h) }})
	layers.Register(model.KindTanh, layerImpl{build: func(_ step, h *G.Node) (*G.Node, error) { return G.Tanh(h) }})
	layers.Register(model.KindSigmoid, layerImpl{build: func(_ step, h *G.Node) (*G.Node, error) { return G.Sigmoid(h) }})
	layers.Register(model.KindDropout, layerImpl{build: buildDropout})
}

func buildLinear(s step, h *G.Node) (*G.Node, error) {
	h, err := G.Mul(h, s.params[s.l.Name+".weight"])
	if err != nil {
		return nil, err
	}
	return G.BroadcastAdd(h, s.params[s.l.Name+".bias"], nil, []byte{0})
}

func buildConv2D(s step, h *G.Node) (*G.Node, error) {
	l := s.l
	st := max(l.Stride, 1)
	h, err := G.Conv2d(h, s.params[l.Name+".weight"], tensor.Shape{l.Kernel, l.Kernel},
		[]int{l.Padding, l.Padding}, []int{st, st}, []int{1, 1})
	if err != nil {
		return nil, err
	}
	return G.BroadcastAdd(h, s.params[l.Name+".bias"], nil, []byte{0, 2, 3})
}

// buildDropout multiplies by a host-made mask in training and is the
// identity at inference (and at rate 0).
func buildDropout(s step, h *G.Node) (*G.Node, error) {
	if !s.train || s.l.Rate == 0 {
		return h, nil
	}
	m := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(h.Shape().Clone()...))
	s.gr.masks = append(s.gr.masks, m)
	return G.HadamardProd(h, G.NodeFromAny(s.gr.g, m, G.WithName("mask."+s.l.Name)))
}
