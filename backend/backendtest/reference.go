package backendtest

import (
	"fmt"
	"math"

	"github.com/distill-dev/distill/internal/kindreg"
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
	drops, _, err := spec.DropoutLayers()
	if err != nil {
		return nil, nil, err
	}
	maskOf := map[string][]float32{} // dropout layer -> its mask, when given
	for i, d := range drops {
		if masks != nil {
			maskOf[d.Name] = masks[i]
		}
	}
	impls := make([]refLayer, len(spec.Layers))
	for li, l := range spec.Layers {
		if impls[li], err = refKinds.Lookup(l.Kind); err != nil {
			return nil, nil, fmt.Errorf("backendtest: layer %q: %w", l.Name, err)
		}
	}
	in := model.Numel(spec.Input)
	out := make([]float64, 0, n*spec.Classes)
	for e := 0; e < n; e++ {
		cur := make([]float64, in)
		for i := range cur {
			cur[i] = float64(x[e*in+i])
		}
		shape := spec.Input
		for li, l := range spec.Layers {
			next := shapes[li]
			var mask []float32
			if m, ok := maskOf[l.Name]; ok {
				per := model.Numel(next)
				mask = m[e*per : (e+1)*per]
			}
			cur = impls[li](refStep{l: l, in: shape, out: next, w: w, mask: mask}, cur)
			shape = next
			for _, i := range want[l.Name] {
				feats[i] = append(feats[i], cur...)
			}
		}
		out = append(out, cur...)
	}
	return out, feats, nil
}

// refStep is what a reference layer computes from: the layer, its
// per-example input and output shapes, the weights, and for a dropout
// layer in training this example's mask.
type refStep struct {
	l       model.Layer
	in, out []int
	w       model.Weights
	mask    []float32
}

// refLayer computes one example's output of a layer from its input x
// (which it may overwrite).
type refLayer func(s refStep, x []float64) []float64

// refKinds is the float64 reference's implementation of each layer kind.
var refKinds = kindreg.New[refLayer]("backend/backendtest (float64 reference)", nil)

func init() {
	refKinds.Register(model.KindLinear, refLinear)
	refKinds.Register(model.KindConv2D, refConv2D)
	refKinds.Register(model.KindMaxPool, refMaxPool)
	refKinds.Register(model.KindFlatten, func(_ refStep, x []float64) []float64 { return x })
	refKinds.Register(model.KindReLU, refMap(func(v float64) float64 { return math.Max(v, 0) }))
	refKinds.Register(model.KindTanh, refMap(math.Tanh))
	refKinds.Register(model.KindSigmoid, refMap(func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }))
	refKinds.Register(model.KindDropout, refDropout)
}

func refMap(f func(float64) float64) refLayer {
	return func(_ refStep, x []float64) []float64 {
		for i, v := range x {
			x[i] = f(v)
		}
		return x
	}
}

func refLinear(s refStep, cur []float64) []float64 {
	l := s.l
	W, b := s.w[l.Name+".weight"], s.w[l.Name+".bias"]
	o := make([]float64, l.Out)
	for r := 0; r < l.Out; r++ {
		v := float64(b.Data[r])
		for c := range cur {
			v += float64(W.Data[r*len(cur)+c]) * cur[c]
		}
		o[r] = v
	}
	return o
}

func refConv2D(s refStep, cur []float64) []float64 {
	l := s.l
	W, b := s.w[l.Name+".weight"], s.w[l.Name+".bias"]
	C, H, Wd := s.in[0], s.in[1], s.in[2]
	OH, OW := s.out[1], s.out[2]
	st := max(l.Stride, 1)
	k := l.Kernel
	o := make([]float64, l.Out*OH*OW)
	for oc := 0; oc < l.Out; oc++ {
		for oy := 0; oy < OH; oy++ {
			for ox := 0; ox < OW; ox++ {
				v := float64(b.Data[oc])
				for ic := 0; ic < C; ic++ {
					for ky := 0; ky < k; ky++ {
						for kx := 0; kx < k; kx++ {
							iy, ix := oy*st+ky-l.Padding, ox*st+kx-l.Padding
							if iy < 0 || ix < 0 || iy >= H || ix >= Wd {
								continue
							}
							v += float64(W.Data[((oc*C+ic)*k+ky)*k+kx]) * cur[(ic*H+iy)*Wd+ix]
						}
					}
				}
				o[(oc*OH+oy)*OW+ox] = v
			}
		}
	}
	return o
}

func refMaxPool(s refStep, cur []float64) []float64 {
	l := s.l
	C, H, Wd := s.in[0], s.in[1], s.in[2]
	OH, OW := s.out[1], s.out[2]
	st := l.PoolStride()
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
	return o
}

// refDropout multiplies by the mask (inverted-dropout scaling included)
// in training and is the identity at inference.
func refDropout(s refStep, cur []float64) []float64 {
	for i := range s.mask {
		cur[i] *= float64(s.mask[i])
	}
	return cur
}
