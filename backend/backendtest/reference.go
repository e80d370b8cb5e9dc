package backendtest

import (
	"fmt"
	"math"

	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

// ReferenceOptions say what Reference computes besides the logits.
type ReferenceOptions struct {
	// Masks (one per dropout layer, as in backend.Batch) multiply the
	// dropout layers' outputs; nil leaves dropout the identity.
	Masks [][]float32
	// Layers are the layers whose outputs Reference returns.
	Layers []string
	// Train normalises batchnorms with the batch's statistics (mean and
	// biased variance over N, H and W), as a backend's Trainer.Step does,
	// and returns the running statistics that step leaves; otherwise
	// batchnorms use the running statistics in w (inference).
	Train bool
}

// ReferenceResult is what Reference computes.
type ReferenceResult struct {
	// Logits are n × Classes values, row-major.
	Logits []float64
	// Features[i] holds n × layer Layers[i]'s per-example size values,
	// row-major, as backend.FeatureModel's ForwardFeatures writes them.
	Features [][]float64
	// Running holds, in training, every buffer of the spec after the
	// batch (each batchnorm's running_mean and running_var updated with
	// PyTorch's momentum rule, the variance unbiased); nil at inference.
	Running map[string][]float64
}

// ReferenceForward computes logits for n examples in float64 with plain
// loops, straight from the layer definitions, in inference mode
// (batchnorms use their running statistics). masks (one per dropout
// layer, as in backend.Batch) may be nil.
func ReferenceForward(spec model.Spec, w model.Weights, x []float32, n int, masks [][]float32) ([]float64, error) {
	r, err := Reference(spec, w, x, n, ReferenceOptions{Masks: masks})
	return r.Logits, err
}

// ReferenceLayers is ReferenceForward that also returns the outputs of
// the named layers: feats[i] holds n × layer i's per-example size values,
// row-major, as backend.FeatureModel's ForwardFeatures writes them. A
// dropout layer's output is masked when masks are given.
func ReferenceLayers(spec model.Spec, w model.Weights, x []float32, n int, masks [][]float32, layers []string) (logits []float64, feats [][]float64, err error) {
	r, err := Reference(spec, w, x, n, ReferenceOptions{Masks: masks, Layers: layers})
	return r.Logits, r.Features, err
}

// ReferenceTrainLayers is ReferenceLayers in training mode: batchnorms
// use the batch's statistics, and running holds every buffer of the spec
// as one Trainer.Step on this batch must leave it in Model.Weights().
func ReferenceTrainLayers(spec model.Spec, w model.Weights, x []float32, n int, masks [][]float32, layers []string) (logits []float64, feats [][]float64, running map[string][]float64, err error) {
	r, err := Reference(spec, w, x, n, ReferenceOptions{Masks: masks, Layers: layers, Train: true})
	return r.Logits, r.Features, r.Running, err
}

// Reference runs spec on n examples in float64, one layer at a time over
// the whole batch (a batchnorm in training needs every example), walking
// the graph by spec.InputIndices.
func Reference(spec model.Spec, w model.Weights, x []float32, n int, opts ReferenceOptions) (ReferenceResult, error) {
	if err := spec.Check(w); err != nil {
		return ReferenceResult{}, fmt.Errorf("backendtest: weights do not fit spec %q: %w", spec.Name, err)
	}
	w64 := make(map[string][]float64, len(w))
	for name, t := range w {
		w64[name] = to64(t.Data)
	}
	return reference64(spec, w64, x, n, opts)
}

// reference64 is Reference with float64 weights (checked by the caller),
// so that numeric derivatives can take steps that float32 cannot hold.
func reference64(spec model.Spec, w map[string][]float64, x []float32, n int, opts ReferenceOptions) (ReferenceResult, error) {
	var res ReferenceResult
	shapes, err := spec.Shapes()
	if err != nil {
		return res, err
	}
	ins, err := spec.InputIndices()
	if err != nil {
		return res, err
	}
	in := model.Numel(spec.Input)
	if n <= 0 || len(x) != n*in {
		return res, fmt.Errorf("backendtest: %d inputs for %d examples of shape %v", len(x), n, spec.Input)
	}
	idx := make([]int, len(opts.Layers))
	for i, name := range opts.Layers {
		_, li, ok := spec.Layer(name)
		if !ok {
			return res, fmt.Errorf("backendtest: spec %q has no layer %q", spec.Name, name)
		}
		idx[i] = li
	}
	drops, dshapes, err := spec.DropoutLayers()
	if err != nil {
		return res, err
	}
	if opts.Masks != nil && len(opts.Masks) != len(drops) {
		return res, fmt.Errorf("backendtest: %d dropout masks for the %d dropout layers of %q", len(opts.Masks), len(drops), spec.Name)
	}
	maskOf := map[string][]float32{} // dropout layer -> its mask, when given
	for i, d := range drops {
		if opts.Masks != nil {
			if len(opts.Masks[i]) != n*model.Numel(dshapes[i]) {
				return res, fmt.Errorf("backendtest: dropout mask %d has %d values, want %d", i, len(opts.Masks[i]), n*model.Numel(dshapes[i]))
			}
			maskOf[d.Name] = opts.Masks[i]
		}
	}
	if opts.Train {
		res.Running = map[string][]float64{}
		bs, err := spec.Buffers()
		if err != nil {
			return res, err
		}
		for _, b := range bs {
			res.Running[b.Name] = append([]float64(nil), w[b.Name]...)
		}
	}
	x64 := to64(x)
	outs := make([][]float64, len(spec.Layers))
	for li, l := range spec.Layers {
		impl, err := refKinds.Lookup(l.Kind)
		if err != nil {
			return res, fmt.Errorf("backendtest: layer %q: %w", l.Name, err)
		}
		s := refStep{l: l, n: n, out: shapes[li], w: w, mask: maskOf[l.Name], train: opts.Train, running: res.Running}
		xs := make([][]float64, len(ins[li]))
		for k, j := range ins[li] {
			if j < 0 {
				s.in, xs[k] = append(s.in, spec.Input), x64
			} else {
				s.in, xs[k] = append(s.in, shapes[j]), outs[j]
			}
		}
		if outs[li], err = impl(s, xs); err != nil {
			return res, fmt.Errorf("backendtest: layer %q: %w", l.Name, err)
		}
	}
	res.Logits = outs[len(outs)-1]
	res.Features = make([][]float64, len(idx))
	for i, li := range idx {
		res.Features[i] = append([]float64(nil), outs[li]...)
	}
	return res, nil
}

func to64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, f := range v {
		o[i] = float64(f)
	}
	return o
}

// refStep is what a reference layer computes from: the layer, the batch
// size, its per-example input shapes (one per input) and output shape,
// the weights, for a dropout layer its mask over the batch (nil:
// identity), and whether it trains. A training batchnorm writes its new
// running statistics into running.
type refStep struct {
	l       model.Layer
	n       int
	in      [][]int
	out     []int
	w       map[string][]float64
	mask    []float32
	train   bool
	running map[string][]float64
}

// refLayer computes a layer's output over the batch from its inputs
// (each n × per-example size values, row-major), which it must not
// modify: other layers may read them too.
type refLayer func(s refStep, xs [][]float64) ([]float64, error)

// refKinds is the float64 reference's implementation of each layer kind.
var refKinds = kindreg.New[refLayer]("backend/backendtest (float64 reference)", nil)

func init() {
	refKinds.Register(model.KindLinear, perExample(refLinear))
	refKinds.Register(model.KindConv2D, perExample(refConv2D))
	refKinds.Register(model.KindMaxPool, perExample(refMaxPool))
	refKinds.Register(model.KindFlatten, perExample(func(_ refStep, x, o []float64) { copy(o, x) }))
	refKinds.Register(model.KindReLU, refMap(func(v float64) float64 { return math.Max(v, 0) }))
	refKinds.Register(model.KindTanh, refMap(math.Tanh))
	refKinds.Register(model.KindSigmoid, refMap(sigmoid))
	refKinds.Register(model.KindReLU6, refMap(func(v float64) float64 { return math.Min(math.Max(v, 0), 6) }))
	refKinds.Register(model.KindSiLU, refMap(func(v float64) float64 { return v * sigmoid(v) }))
	refKinds.Register(model.KindDropout, refDropout)
	refKinds.Register(model.KindBatchNorm, refBatchNorm)
	refKinds.Register(model.KindAdd, refAdd)
	refKinds.Register(model.KindAvgPool, perExample(refAvgPool))
	refKinds.Register(model.KindGlobalAvgPool, perExample(refGlobalAvgPool))
}

func sigmoid(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

// perExample lifts f, which writes one example's output o from its
// single input x, to the batch.
func perExample(f func(s refStep, x, o []float64)) refLayer {
	return func(s refStep, xs [][]float64) ([]float64, error) {
		in, per := model.Numel(s.in[0]), model.Numel(s.out)
		out := make([]float64, s.n*per)
		for e := 0; e < s.n; e++ {
			f(s, xs[0][e*in:(e+1)*in], out[e*per:(e+1)*per])
		}
		return out, nil
	}
}

func refMap(f func(float64) float64) refLayer {
	return func(_ refStep, xs [][]float64) ([]float64, error) {
		o := make([]float64, len(xs[0]))
		for i, v := range xs[0] {
			o[i] = f(v)
		}
		return o, nil
	}
}

// bias returns element i of layer l's bias, 0 when l has none (NoBias).
func bias(s refStep, i int) float64 {
	if s.l.NoBias {
		return 0
	}
	return s.w[s.l.Name+".bias"][i]
}

func refLinear(s refStep, x, o []float64) {
	W := s.w[s.l.Name+".weight"]
	for r := range o {
		v := bias(s, r)
		for c := range x {
			v += W[r*len(x)+c] * x[c]
		}
		o[r] = v
	}
}

// refConv2D is PyTorch's conv2d with groups: output channel oc sees
// only the cin input channels of its group, and the weight is
// [out, cin, k, k].
func refConv2D(s refStep, x, o []float64) {
	l := s.l
	W := s.w[l.Name+".weight"]
	C, H, Wd := s.in[0][0], s.in[0][1], s.in[0][2]
	OH, OW := s.out[1], s.out[2]
	st := max(l.Stride, 1)
	k, g := l.Kernel, l.ConvGroups()
	cin, cout := C/g, l.Out/g
	for oc := 0; oc < l.Out; oc++ {
		first := oc / cout * cin // the group's first input channel
		for oy := 0; oy < OH; oy++ {
			for ox := 0; ox < OW; ox++ {
				v := bias(s, oc)
				for ic := 0; ic < cin; ic++ {
					for ky := 0; ky < k; ky++ {
						for kx := 0; kx < k; kx++ {
							iy, ix := oy*st+ky-l.Padding, ox*st+kx-l.Padding
							if iy < 0 || ix < 0 || iy >= H || ix >= Wd {
								continue
							}
							v += W[((oc*cin+ic)*k+ky)*k+kx] * x[((first+ic)*H+iy)*Wd+ix]
						}
					}
				}
				o[(oc*OH+oy)*OW+ox] = v
			}
		}
	}
}

func refMaxPool(s refStep, x, o []float64) {
	l := s.l
	C, H, Wd := s.in[0][0], s.in[0][1], s.in[0][2]
	OH, OW := s.out[1], s.out[2]
	st := l.PoolStride()
	for c := 0; c < C; c++ {
		for oy := 0; oy < OH; oy++ {
			for ox := 0; ox < OW; ox++ {
				m := math.Inf(-1)
				for ky := 0; ky < l.Kernel; ky++ {
					for kx := 0; kx < l.Kernel; kx++ {
						m = math.Max(m, x[(c*H+oy*st+ky)*Wd+ox*st+kx])
					}
				}
				o[(c*OH+oy)*OW+ox] = m
			}
		}
	}
}

// refAvgPool averages each window over kernel² cells, the zero padding
// included (PyTorch's count_include_pad=True; with padding ≤ kernel/2
// and floor mode no window reaches past the padding).
func refAvgPool(s refStep, x, o []float64) {
	l := s.l
	C, H, Wd := s.in[0][0], s.in[0][1], s.in[0][2]
	OH, OW := s.out[1], s.out[2]
	st, k := l.PoolStride(), l.Kernel
	for c := 0; c < C; c++ {
		for oy := 0; oy < OH; oy++ {
			for ox := 0; ox < OW; ox++ {
				var sum float64
				for ky := 0; ky < k; ky++ {
					for kx := 0; kx < k; kx++ {
						iy, ix := oy*st+ky-l.Padding, ox*st+kx-l.Padding
						if iy < 0 || ix < 0 || iy >= H || ix >= Wd {
							continue
						}
						sum += x[(c*H+iy)*Wd+ix]
					}
				}
				o[(c*OH+oy)*OW+ox] = sum / float64(k*k)
			}
		}
	}
}

func refGlobalAvgPool(s refStep, x, o []float64) {
	C := s.in[0][0]
	hw := len(x) / C
	for c := 0; c < C; c++ {
		var sum float64
		for _, v := range x[c*hw : (c+1)*hw] {
			sum += v
		}
		o[c] = sum / float64(hw)
	}
}

func refAdd(_ refStep, xs [][]float64) ([]float64, error) {
	o := make([]float64, len(xs[0]))
	for i := range o {
		o[i] = xs[0][i] + xs[1][i]
	}
	return o, nil
}

// refBatchNorm normalises each channel (dim 0 of the per-example shape)
// as PyTorch's BatchNorm1d/2d: in training with the batch's mean and
// biased variance over the n examples and the spatial positions, and
// updates the running statistics (the variance unbiased); at inference
// with the running statistics.
func refBatchNorm(s refStep, xs [][]float64) ([]float64, error) {
	l, x := s.l, xs[0]
	C := s.in[0][0]
	hw := model.Numel(s.in[0]) / C
	gamma, beta := s.w[l.Name+".weight"], s.w[l.Name+".bias"]
	rm, rv := s.w[l.Name+".running_mean"], s.w[l.Name+".running_var"]
	eps, m := l.BNEps(), l.BNMomentum()
	cnt := s.n * hw
	if s.train && cnt < 2 {
		return nil, fmt.Errorf("batchnorm in training needs more than one value per channel, got %d example(s) of shape %v", s.n, s.in[0])
	}
	o := make([]float64, len(x))
	for c := 0; c < C; c++ {
		at := func(e, i int) int { return (e*C+c)*hw + i }
		mean, variance := rm[c], rv[c]
		if s.train {
			mean = 0
			for e := 0; e < s.n; e++ {
				for i := 0; i < hw; i++ {
					mean += x[at(e, i)]
				}
			}
			mean /= float64(cnt)
			variance = 0
			for e := 0; e < s.n; e++ {
				for i := 0; i < hw; i++ {
					d := x[at(e, i)] - mean
					variance += d * d
				}
			}
			variance /= float64(cnt) // biased, for normalising
			s.running[l.Name+".running_mean"][c] = (1-m)*rm[c] + m*mean
			s.running[l.Name+".running_var"][c] = (1-m)*rv[c] + m*variance*float64(cnt)/float64(cnt-1)
		}
		scale := gamma[c] / math.Sqrt(variance+eps)
		for e := 0; e < s.n; e++ {
			for i := 0; i < hw; i++ {
				o[at(e, i)] = (x[at(e, i)]-mean)*scale + beta[c]
			}
		}
	}
	return o, nil
}

// refDropout multiplies by the mask (inverted-dropout scaling included)
// when one is given, and is the identity otherwise (inference).
func refDropout(s refStep, xs [][]float64) ([]float64, error) {
	o := append([]float64(nil), xs[0]...)
	for i := range s.mask {
		o[i] *= float64(s.mask[i])
	}
	return o, nil
}
