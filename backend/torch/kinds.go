//go:build torch

package torch

import (
	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

// layerImpl records layer i of m on s, applied to x; masks are the
// batch's dropout masks, nil at inference.
type layerImpl func(m *Model, s *scope, i int, x ctensor, masks []ctensor) ctensor

// layers is the torch backend's implementation of each layer kind.
var layers = kindreg.New[layerImpl]("backend/torch", nil)

func init() {
	layers.Register(model.KindLinear, func(m *Model, s *scope, i int, x ctensor, _ []ctensor) ctensor {
		w, b := m.layerParams(i)
		return s.linear(x, w, b)
	})
	layers.Register(model.KindConv2D, func(m *Model, s *scope, i int, x ctensor, _ []ctensor) ctensor {
		l := m.spec.Layers[i]
		w, b := m.layerParams(i)
		return s.conv2d(x, w, b, max(l.Stride, 1), l.Padding)
	})
	layers.Register(model.KindMaxPool, func(m *Model, s *scope, i int, x ctensor, _ []ctensor) ctensor {
		l := m.spec.Layers[i]
		return s.maxPool2d(x, l.Kernel, l.PoolStride())
	})
	layers.Register(model.KindFlatten, func(_ *Model, s *scope, _ int, x ctensor, _ []ctensor) ctensor { return s.flatten(x) })
	layers.Register(model.KindReLU, func(_ *Model, s *scope, _ int, x ctensor, _ []ctensor) ctensor { return s.relu(x) })
	layers.Register(model.KindTanh, func(_ *Model, s *scope, _ int, x ctensor, _ []ctensor) ctensor { return s.tanh(x) })
	layers.Register(model.KindSigmoid, func(_ *Model, s *scope, _ int, x ctensor, _ []ctensor) ctensor { return s.sigmoid(x) })
	// Dropout multiplies by the host-drawn mask in training and is the
	// identity at inference and at rate 0 (no mask).
	layers.Register(model.KindDropout, func(m *Model, s *scope, i int, x ctensor, masks []ctensor) ctensor {
		if j := m.drop[i]; j >= 0 && masks != nil {
			return s.mul(x, masks[j])
		}
		return x
	})
}

// layerParams returns the weight and bias tensors of layer i.
func (m *Model) layerParams(i int) (w, b ctensor) {
	name := m.spec.Layers[i].Name
	return m.tensors[m.index[name+".weight"]], m.tensors[m.index[name+".bias"]]
}
