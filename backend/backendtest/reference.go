package backendtest

import (
	"fmt"
	"math"

	"github.com/distill-dev/distill/model"
)

// ReferenceForward computes logits for n examples in float64 with plain
// loops, straight from the layer definitions. masks (one per dropout
// layer, as in backend.Batch) may be nil for inference.
func ReferenceForward(spec model.Spec, w model.Weights, x []float32, n int, masks [][]float32) ([]float64, error) {
	logits, _, err := ReferenceLayers(spec, w, x, n, masks, nil)
	return logits, err
}

// ReferenceLayers is ReferenceForward that also returns the outputs of
// the named layers: feats[i] holds n × layer i's per-example size values,
// row-major, as backend.FeatureModel's ForwardFeatures writes them. A
// dropout layer's output is masked when masks are given.
func ReferenceLayers(spec model.Spec, w model.Weights, x []float32, n int, masks [][]float32, layers []string) (logits []float64, feats [][]float64, err error) {
	shapes, err := spec.Shapes()
	if err != nil {
		return nil, nil, err
	}
	feats = make([][]float64, len(layers))
	want := map[string][]int{} // layer name -> indices into layers
	for i, name := range layers {
		if _, _, ok := spec.Layer(name); !ok {
			return nil, nil, fmt.Errorf("backendtest: spec %q has no layer %q", spec.Name, name)
		}
		want[name] = append(want[name], i)
	}
	in := model.Numel(spec.Input)
	out := make([]float64, 0, n*spec.Classes)
	for e := 0; e < n; e++ {
		cur := make([]float64, in)
		for i := range cur {
			cur[i] = float64(x[e*in+i])
		}
		shape := spec.Input
		di := 0
		for li, l := range spec.Layers {
			next := shapes[li]
			switch l.Kind {
			case model.KindLinear:
				W, b := w[l.Name+".weight"], w[l.Name+".bias"]
				o := make([]float64, l.Out)
				for r := 0; r < l.Out; r++ {
					s := float64(b.Data[r])
					for c := range cur {
						s += float64(W.Data[r*len(cur)+c]) * cur[c]
					}
					o[r] = s
				}
				cur = o
			case model.KindConv2D:
				W, b := w[l.Name+".weight"], w[l.Name+".bias"]
				C, H, Wd := shape[0], shape[1], shape[2]
				OH, OW := next[1], next[2]
				st := max(l.Stride, 1)
				k := l.Kernel
				o := make([]float64, l.Out*OH*OW)
				for oc := 0; oc < l.Out; oc++ {
					for oy := 0; oy < OH; oy++ {
						for ox := 0; ox < OW; ox++ {
							s := float64(b.Data[oc])
							for ic := 0; ic < C; ic++ {
								for ky := 0; ky < k; ky++ {
									for kx := 0; kx < k; kx++ {
										iy, ix := oy*st+ky-l.Padding, ox*st+kx-l.Padding
										if iy < 0 || ix < 0 || iy >= H || ix >= Wd {
											continue
										}
										s += float64(W.Data[((oc*C+ic)*k+ky)*k+kx]) * cur[(ic*H+iy)*Wd+ix]
									}
								}
							}
							o[(oc*OH+oy)*OW+ox] = s
						}
					}
				}
				cur = o
			case model.KindMaxPool:
				C, H, Wd := shape[0], shape[1], shape[2]
				OH, OW := next[1], next[2]
				st := l.Stride
				if st <= 0 {
					st = l.Kernel
				}
				o := make([]float64, C*OH*OW)
				for c := 0; c < C; c++ {
					for oy := 0; oy < OH; oy++ {
						for ox := 0; ox < OW; ox++ {
							m := math.Inf(-1)
							for ky := 0; ky < l.Kernel; ky++ {
								for kx := 0; kx < l.Kernel; kx++ {
									m = math.Max(m, cur[(c*H+oy*st+ky)*Wd+ox*st+kx])
								}
							}
							o[(c*OH+oy)*OW+ox] = m
						}
					}
				}
				cur = o
			case model.KindFlatten:
			case model.KindReLU:
				for i, v := range cur {
					cur[i] = math.Max(v, 0)
				}
			case model.KindTanh:
				for i, v := range cur {
					cur[i] = math.Tanh(v)
				}
			case model.KindSigmoid:
				for i, v := range cur {
					cur[i] = 1 / (1 + math.Exp(-v))
				}
			case model.KindDropout:
				if l.Rate == 0 {
					break
				}
				if masks != nil {
					m := masks[di]
					per := len(cur)
					for i := range cur {
						cur[i] *= float64(m[e*per+i])
					}
				}
				di++
			}
			shape = next
			for _, i := range want[l.Name] {
				feats[i] = append(feats[i], cur...)
			}
		}
		out = append(out, cur...)
	}
	return out, feats, nil
}
