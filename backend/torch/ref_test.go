//go:build torch

package torch

// Plain-Go float64 references for the tests: a forward pass for every
// layer kind, and the optimisers as PyTorch defines them.

import (
	"math"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/model"
)

// weights64 converts weights to float64.
func weights64(w model.Weights) map[string][]float64 {
	r := make(map[string][]float64, len(w))
	for k, t := range w {
		r[k] = make([]float64, len(t.Data))
		for i, v := range t.Data {
			r[k][i] = float64(v)
		}
	}
	return r
}

// refForward computes the logits of n examples in float64. masks, when
// not nil, holds one mask per dropout layer (model.Spec.DropoutLayers).
func refForward(spec model.Spec, w map[string][]float64, x []float32, n int, masks [][]float32) []float64 {
	outs := refLayers(spec, w, x, n, masks)
	return outs[len(outs)-1]
}

// refLayers returns every layer's output for n examples, row-major.
func refLayers(spec model.Spec, w map[string][]float64, x []float32, n int, masks [][]float32) [][]float64 {
	var outs [][]float64
	shape := append([]int(nil), spec.Input...)
	size := model.Numel(shape)
	cur := make([]float64, n*size)
	for i := range cur {
		cur[i] = float64(x[i])
	}
	dl, _, _ := spec.DropoutLayers()
	for _, l := range spec.Layers {
		var next []float64
		switch l.Kind {
		case model.KindLinear:
			W, b := w[l.Name+".weight"], w[l.Name+".bias"]
			in := shape[0]
			next = make([]float64, n*l.Out)
			for r := 0; r < n; r++ {
				for o := 0; o < l.Out; o++ {
					s := b[o]
					for j := 0; j < in; j++ {
						s += W[o*in+j] * cur[r*in+j]
					}
					next[r*l.Out+o] = s
				}
			}
			shape = []int{l.Out}
		case model.KindConv2D:
			W, b := w[l.Name+".weight"], w[l.Name+".bias"]
			c, h, wd := shape[0], shape[1], shape[2]
			st, p, k := max(l.Stride, 1), l.Padding, l.Kernel
			oh, ow := (h+2*p-k)/st+1, (wd+2*p-k)/st+1
			next = make([]float64, n*l.Out*oh*ow)
			for r := 0; r < n; r++ {
				for o := 0; o < l.Out; o++ {
					for y := 0; y < oh; y++ {
						for xx := 0; xx < ow; xx++ {
							s := b[o]
							for ci := 0; ci < c; ci++ {
								for ky := 0; ky < k; ky++ {
									for kx := 0; kx < k; kx++ {
										iy, ix := y*st-p+ky, xx*st-p+kx
										if iy < 0 || iy >= h || ix < 0 || ix >= wd {
											continue
										}
										s += W[((o*c+ci)*k+ky)*k+kx] * cur[((r*c+ci)*h+iy)*wd+ix]
									}
								}
							}
							next[((r*l.Out+o)*oh+y)*ow+xx] = s
						}
					}
				}
			}
			shape = []int{l.Out, oh, ow}
		case model.KindMaxPool:
			c, h, wd := shape[0], shape[1], shape[2]
			k, st := l.Kernel, l.Stride
			if st <= 0 {
				st = k
			}
			oh, ow := (h-k)/st+1, (wd-k)/st+1
			next = make([]float64, n*c*oh*ow)
			for r := 0; r < n*c; r++ {
				for y := 0; y < oh; y++ {
					for xx := 0; xx < ow; xx++ {
						m := math.Inf(-1)
						for ky := 0; ky < k; ky++ {
							for kx := 0; kx < k; kx++ {
								m = math.Max(m, cur[(r*h+y*st+ky)*wd+xx*st+kx])
							}
						}
						next[(r*oh+y)*ow+xx] = m
					}
				}
			}
			shape = []int{c, oh, ow}
		case model.KindFlatten:
			next, shape = cur, []int{model.Numel(shape)}
		case model.KindReLU, model.KindTanh, model.KindSigmoid:
			next = make([]float64, len(cur))
			for i, v := range cur {
				switch l.Kind {
				case model.KindReLU:
					next[i] = math.Max(v, 0)
				case model.KindTanh:
					next[i] = math.Tanh(v)
				default:
					next[i] = 1 / (1 + math.Exp(-v))
				}
			}
		case model.KindDropout:
			next = cur
			if masks != nil {
				for j, d := range dl {
					if d.Name == l.Name {
						next = make([]float64, len(cur))
						for i, v := range cur {
							next[i] = v * float64(masks[j][i])
						}
					}
				}
			}
		}
		cur = next
		outs = append(outs, cur)
	}
	return outs
}

func f32(v []float64) []float32 {
	r := make([]float32, len(v))
	for i, x := range v {
		r[i] = float32(x)
	}
	return r
}

// refOptimizer is PyTorch's torch.optim.Adam / SGD (dampening 0) in
// float64 over flat parameter vectors.
type refOptimizer struct {
	opt   backend.Optimizer
	step  int
	state map[string][][]float64 // slot -> param index -> values
}

func newRefOptimizer(o backend.Optimizer, sizes []int) *refOptimizer {
	r := &refOptimizer{opt: o.WithDefaults(), state: map[string][][]float64{}}
	for _, slot := range []string{"m", "v", "momentum"} {
		for _, n := range sizes {
			r.state[slot] = append(r.state[slot], make([]float64, n))
		}
	}
	return r
}

// update applies one step to params given their gradients.
func (r *refOptimizer) update(params, grads [][]float64, lr float64) {
	o := r.opt
	r.step++
	for i, p := range params {
		for j := range p {
			g := grads[i][j] + o.WeightDecay*p[j]
			switch o.Kind {
			case backend.Adam:
				m, v := &r.state["m"][i][j], &r.state["v"][i][j]
				*m = o.Beta1**m + (1-o.Beta1)*g
				*v = o.Beta2**v + (1-o.Beta2)*g*g
				bc1 := 1 - math.Pow(o.Beta1, float64(r.step))
				bc2 := 1 - math.Pow(o.Beta2, float64(r.step))
				denom := math.Sqrt(*v)/math.Sqrt(bc2) + o.Eps
				p[j] -= lr / bc1 * *m / denom
			case backend.SGD:
				d := g
				if o.Momentum != 0 {
					b := &r.state["momentum"][i][j]
					*b = o.Momentum**b + g
					if o.Nesterov {
						d = g + o.Momentum**b
					} else {
						d = *b
					}
				}
				p[j] -= lr * d
			}
		}
	}
}

func f64(v []float32) []float64 {
	r := make([]float64, len(v))
	for i, x := range v {
		r[i] = float64(x)
	}
	return r
}

// refKinkMargin is how far the reference forward pass is from a point where
// the loss is not differentiable: the smallest |input| of a ReLU and the
// smallest gap between the two largest positive values of a max-pool
// window. float32 rounding can put the backend on the other side of a
// kink closer than ~1e-5, where its gradient differs from the float64
// reference's.
func refKinkMargin(spec model.Spec, w map[string][]float64, x []float32, n int, masks [][]float32) float64 {
	outs := refLayers(spec, w, x, n, masks)
	in := f64(x)
	shape := spec.Input
	shapes, _ := spec.Shapes()
	margin := math.Inf(1)
	for i, l := range spec.Layers {
		switch l.Kind {
		case model.KindReLU:
			for _, v := range in {
				margin = math.Min(margin, math.Abs(v))
			}
		case model.KindMaxPool:
			c, h, wd := shape[0], shape[1], shape[2]
			k, st := l.Kernel, l.Stride
			if st <= 0 {
				st = k
			}
			oh, ow := shapes[i][1], shapes[i][2]
			for r := 0; r < n*c; r++ {
				for y := 0; y < oh; y++ {
					for xx := 0; xx < ow; xx++ {
						a, b := math.Inf(-1), math.Inf(-1)
						for ky := 0; ky < k; ky++ {
							for kx := 0; kx < k; kx++ {
								v := in[(r*h+y*st+ky)*wd+xx*st+kx]
								if v > a {
									a, b = v, a
								} else if v > b {
									b = v
								}
							}
						}
						if a > 0 {
							margin = math.Min(margin, a-b)
						}
					}
				}
			}
		}
		in, shape = outs[i], shapes[i]
	}
	return margin
}
