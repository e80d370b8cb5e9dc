//go:build torch

package torch

import (
	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

// layerImpl records layer i of m on s, applied to its inputs (as many as
// the kind reads, in Layer.Inputs order) in the mode p.
type layerImpl func(m *Model, s *scope, i int, in []ctensor, p *pass) ctensor

// layers is the torch backend's implementation of each layer kind.
var layers = kindreg.New[layerImpl]("backend/torch", nil)

// unary adapts a parameter-free single-input op.
func unary(f func(s *scope, x ctensor) ctensor) layerImpl {
	return func(_ *Model, s *scope, _ int, in []ctensor, _ *pass) ctensor { return f(s, in[0]) }
}

func init() {
	layers.Register(model.KindLinear, func(m *Model, s *scope, i int, in []ctensor, _ *pass) ctensor {
		w, b := m.layerParams(i)
		return s.linear(in[0], w, b)
	})
	layers.Register(model.KindConv2D, func(m *Model, s *scope, i int, in []ctensor, _ *pass) ctensor {
		l := m.spec.Layers[i]
		w, b := m.layerParams(i)
		return s.conv2d(in[0], w, b, max(l.Stride, 1), l.Padding, l.ConvGroups())
	})
	layers.Register(model.KindMaxPool, func(m *Model, s *scope, i int, in []ctensor, _ *pass) ctensor {
		l := m.spec.Layers[i]
		return s.maxPool2d(in[0], l.Kernel, l.PoolStride())
	})
	layers.Register(model.KindAvgPool, func(m *Model, s *scope, i int, in []ctensor, _ *pass) ctensor {
		l := m.spec.Layers[i]
		return s.avgPool2d(in[0], l.Kernel, l.PoolStride(), l.Padding)
	})
	layers.Register(model.KindGlobalAvgPool, unary((*scope).globalAvgPool))
	layers.Register(model.KindFlatten, unary((*scope).flatten))
	layers.Register(model.KindReLU, unary((*scope).relu))
	layers.Register(model.KindReLU6, unary((*scope).relu6))
	layers.Register(model.KindSiLU, unary((*scope).silu))
	layers.Register(model.KindTanh, unary((*scope).tanh))
	layers.Register(model.KindSigmoid, unary((*scope).sigmoid))
	layers.Register(model.KindAdd, func(_ *Model, s *scope, _ int, in []ctensor, _ *pass) ctensor { return s.add(in[0], in[1]) })
	// Dropout multiplies by the host-drawn mask in training; at inference
	// and at rate 0 (no mask) its output is its input, the same tensor.
	layers.Register(model.KindDropout, func(m *Model, s *scope, i int, in []ctensor, p *pass) ctensor {
		if j := m.drop[i]; j >= 0 && p.masks != nil {
			return s.mul(in[0], p.masks[j])
		}
		return in[0]
	})
	layers.Register(model.KindBatchNorm, batchNorm)
}

// batchNorm is torch.nn.BatchNorm1d/2d through at::batch_norm, the op
// F.batch_norm calls. At inference it normalises with the running
// statistics. In training it normalises with the batch's mean and biased
// variance and updates copies of the running statistics in place, as
// PyTorch updates its buffers (running = (1−m)·running + m·batch, with the
// unbiased variance); the step swaps the copies in once it succeeds, so
// that a failed step leaves the model as it was.
func batchNorm(m *Model, s *scope, i int, in []ctensor, p *pass) ctensor {
	l := m.spec.Layers[i]
	w, b := m.layerParams(i)
	km, kv := m.bufIdx[l.Name+".running_mean"], m.bufIdx[l.Name+".running_var"]
	mean, variance := m.bufs[km], m.bufs[kv]
	if p.train {
		mean, variance = s.clone(mean), s.clone(variance)
		p.stats[km], p.stats[kv] = mean, variance
	}
	return s.batchNorm(in[0], w, b, mean, variance, p.train, l.BNMomentum(), l.BNEps())
}

// layerParams returns the weight and bias tensors of layer i; the bias is
// nil for a layer without one (NoBias), which libtorch's ops take as none.
func (m *Model) layerParams(i int) (w, b ctensor) {
	name := m.spec.Layers[i].Name
	w = m.tensors[m.index[name+".weight"]]
	if j, ok := m.index[name+".bias"]; ok {
		b = m.tensors[j]
	}
	return w, b
}
