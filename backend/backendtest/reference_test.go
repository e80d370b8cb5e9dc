package backendtest

import (
	"math"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
)

// set returns spec's initial weights with the given tensors' values
// replaced.
func set(t *testing.T, spec model.Spec, vals map[string][]float32) model.Weights {
	t.Helper()
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range vals {
		if len(w[name].Data) != len(v) {
			t.Fatalf("%s has %d values, test gives %d", name, len(w[name].Data), len(v))
		}
		copy(w[name].Data, v)
	}
	return w
}

func near(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range want {
		if !close(got[i], want[i], 1e-12, 1e-12) {
			t.Fatalf("%s[%d] = %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

func TestReferenceKindsByHand(t *testing.T) {
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	for _, tc := range []struct {
		name  string
		spec  model.Spec
		w     map[string][]float32
		x     []float32
		n     int
		train bool
		want  []float64
	}{
		{name: "grouped conv with bias", spec: model.Spec{Input: []int{2, 1, 2}, Classes: 4, Layers: []model.Layer{
			{Name: "c", Kind: model.KindConv2D, Out: 2, Kernel: 1, Groups: 2}, {Name: "f", Kind: model.KindFlatten}}},
			w: map[string][]float32{"c.weight": {2, -1}, "c.bias": {0.5, 0}},
			x: []float32{1, 2, 3, 4}, n: 1, want: []float64{2.5, 4.5, -3, -4}},
		{name: "grouped conv, 2 channels per group", spec: model.Spec{Input: []int{4, 1, 1}, Classes: 2, Layers: []model.Layer{
			{Name: "c", Kind: model.KindConv2D, Out: 2, Kernel: 1, Groups: 2, NoBias: true}, {Name: "f", Kind: model.KindFlatten}}},
			// weight [2 out, 2 in per group, 1, 1]: out0 reads channels 0,1; out1 reads 2,3
			w: map[string][]float32{"c.weight": {1, 10, 100, 1000}},
			x: []float32{1, 2, 3, 4}, n: 1, want: []float64{21, 4300}},
		{name: "bias-free conv with padding", spec: model.Spec{Input: []int{1, 2, 2}, Classes: 4, Layers: []model.Layer{
			{Name: "c", Kind: model.KindConv2D, Out: 1, Kernel: 2, Padding: 1, Stride: 2, NoBias: true}, {Name: "f", Kind: model.KindFlatten}}},
			// stride 2 over the padded 4×4: each window holds one input cell, at kernel (1,1), (1,0), (0,1), (0,0)
			w: map[string][]float32{"c.weight": {1, 2, 3, 4}},
			x: []float32{1, 2, 3, 4}, n: 1, want: []float64{4, 6, 6, 4}},
		{name: "bias-free linear", spec: model.Spec{Input: []int{2}, Classes: 2, Layers: []model.Layer{
			{Name: "l", Kind: model.KindLinear, Out: 2, NoBias: true}}},
			w: map[string][]float32{"l.weight": {1, 2, 3, 4}},
			x: []float32{1, -1, 2, 0}, n: 2, want: []float64{-1, -1, 2, 6}},
		{name: "avgpool counts the padding", spec: model.Spec{Input: []int{1, 3, 3}, Classes: 4, Layers: []model.Layer{
			{Name: "p", Kind: model.KindAvgPool, Kernel: 3, Stride: 2, Padding: 1}, {Name: "f", Kind: model.KindFlatten}}},
			x: []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}, n: 1, want: []float64{12.0 / 9, 16.0 / 9, 24.0 / 9, 28.0 / 9}},
		{name: "avgpool stride defaults to kernel", spec: model.Spec{Input: []int{1, 2, 4}, Classes: 2, Layers: []model.Layer{
			{Name: "p", Kind: model.KindAvgPool, Kernel: 2}, {Name: "f", Kind: model.KindFlatten}}},
			x: []float32{1, 2, 3, 4, 5, 6, 7, 9}, n: 1, want: []float64{3.5, 5.75}},
		{name: "globalavgpool", spec: model.Spec{Input: []int{2, 1, 2}, Classes: 2, Layers: []model.Layer{
			{Name: "g", Kind: model.KindGlobalAvgPool}}},
			x: []float32{1, 2, 3, 5, 0, 0, -1, 1}, n: 2, want: []float64{1.5, 4, 0, 0}},
		{name: "relu6", spec: model.Spec{Input: []int{4}, Classes: 4, Layers: []model.Layer{{Name: "a", Kind: model.KindReLU6}}},
			x: []float32{-1, 3, 6, 7}, n: 1, want: []float64{0, 3, 6, 6}},
		{name: "silu", spec: model.Spec{Input: []int{3}, Classes: 3, Layers: []model.Layer{{Name: "a", Kind: model.KindSiLU}}},
			x: []float32{1, -2, 0}, n: 1, want: []float64{sig(1), -2 * sig(-2), 0}},
		{name: "add of a branch and the input", spec: model.Spec{Input: []int{3}, Classes: 3, Layers: []model.Layer{
			{Name: "a", Kind: model.KindReLU6},
			{Name: "s", Kind: model.KindAdd, Inputs: []string{"a", model.InputName}}}},
			x: []float32{-1, 3, 8}, n: 1, want: []float64{-1, 6, 14}},
		{name: "batchnorm1d at inference", spec: model.Spec{Input: []int{2}, Classes: 2, Layers: []model.Layer{
			{Name: "b", Kind: model.KindBatchNorm, Eps: 1e-3}}},
			w: map[string][]float32{"b.weight": {2, 0.5}, "b.bias": {1, 0}, "b.running_mean": {1, -1}, "b.running_var": {4, 0.25}},
			x: []float32{3, 0},
			n: 1, want: []float64{(3-1)/math.Sqrt(4+1e-3)*2 + 1, (0 + 1) / math.Sqrt(0.25+1e-3) * 0.5}},
		{name: "batchnorm1d in training", spec: model.Spec{Input: []int{2}, Classes: 2, Layers: []model.Layer{
			{Name: "b", Kind: model.KindBatchNorm}}},
			// channel 0: 1, 3 (mean 2, biased variance 1); channel 1: 2, 6 (mean 4, variance 4)
			w: map[string][]float32{"b.weight": {2, 0.5}, "b.bias": {1, 0}, "b.running_mean": {7, 7}, "b.running_var": {7, 7}},
			x: []float32{1, 2, 3, 6}, n: 2, train: true,
			want: []float64{-1/math.Sqrt(1+1e-5)*2 + 1, -2 / math.Sqrt(4+1e-5) * 0.5, 1/math.Sqrt(1+1e-5)*2 + 1, 2 / math.Sqrt(4+1e-5) * 0.5}},
		{name: "batchnorm2d in training", spec: model.Spec{Input: []int{1, 1, 2}, Classes: 2, Layers: []model.Layer{
			{Name: "b", Kind: model.KindBatchNorm}, {Name: "f", Kind: model.KindFlatten}}},
			// one channel over 2 examples × 2 positions: 0, 2, 4, 6 (mean 3, biased variance 5)
			x: []float32{0, 2, 4, 6}, n: 2, train: true,
			want: []float64{-3 / math.Sqrt(5+1e-5), -1 / math.Sqrt(5+1e-5), 1 / math.Sqrt(5+1e-5), 3 / math.Sqrt(5+1e-5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Name = tc.name
			if err := tc.spec.Validate(); err != nil {
				t.Fatal(err)
			}
			r, err := Reference(tc.spec, set(t, tc.spec, tc.w), tc.x, tc.n, ReferenceOptions{Train: tc.train})
			if err != nil {
				t.Fatal(err)
			}
			near(t, "logits", r.Logits, tc.want)
		})
	}
}

// TestReferenceRunningStatistics checks the running statistics a
// training batch leaves: PyTorch's momentum rule with the unbiased
// variance, the layer's momentum used.
func TestReferenceRunningStatistics(t *testing.T) {
	spec := model.Spec{Name: "bn", Input: []int{2}, Classes: 2, Layers: []model.Layer{{Name: "b", Kind: model.KindBatchNorm, Momentum: 0.3}}}
	w := set(t, spec, map[string][]float32{"b.running_mean": {1, -1}, "b.running_var": {2, 0.5}})
	// channel 0: 1, 3, 5 (mean 3, unbiased variance 4); channel 1: 0, 0, 3 (mean 1, unbiased variance 3)
	_, _, running, err := ReferenceTrainLayers(spec, w, []float32{1, 0, 3, 0, 5, 3}, 3, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "running_mean", running["b.running_mean"], []float64{0.7*1 + 0.3*3, 0.7*-1 + 0.3*1})
	near(t, "running_var", running["b.running_var"], []float64{0.7*2 + 0.3*4, 0.7*0.5 + 0.3*3})
	// Inference leaves them alone and reports none.
	r, err := Reference(spec, w, []float32{1, 0}, 1, ReferenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Running != nil {
		t.Errorf("inference returned running statistics %v", r.Running)
	}
	if w["b.running_mean"].Data[0] != 1 {
		t.Error("training modified the weights it was given")
	}
}

// TestReferenceTrainMatchesEvalAtBatchStatistics checks training mode
// on every graph spec against the batchnorm formula: with each
// batchnorm's running statistics set to the batch's mean and biased
// variance of its (training-mode) input, inference gives the training
// logits; and the returned running statistics follow the momentum rule
// from those batch statistics.
func TestReferenceTrainMatchesEvalAtBatchStatistics(t *testing.T) {
	for _, spec := range GraphSpecs(t) {
		t.Run(spec.Name, func(t *testing.T) {
			w, err := spec.Init(3)
			if err != nil {
				t.Fatal(err)
			}
			RandomizeBatchNorm(spec, w, 4)
			const n = 3
			x, _, _ := Inputs(spec, n, 5)
			shapes, _ := spec.Shapes()
			ins, _ := spec.InputIndices()
			var bns, feeds []string // each batchnorm and the layer it reads
			for i, l := range spec.Layers {
				if l.Kind == model.KindBatchNorm {
					if ins[i][0] < 0 {
						t.Fatalf("batchnorm %q reads the input", l.Name)
					}
					bns, feeds = append(bns, l.Name), append(feeds, spec.Layers[ins[i][0]].Name)
				}
			}
			if len(bns) == 0 {
				t.Fatal("no batchnorm")
			}
			logits, feats, running, err := ReferenceTrainLayers(spec, w, x, n, nil, feeds)
			if err != nil {
				t.Fatal(err)
			}
			atBatch := w.Clone()
			for k, name := range bns {
				l, li, _ := spec.Layer(name)
				C := shapes[li][0]
				hw := model.Numel(shapes[li]) / C
				cnt := float64(n * hw)
				for c := 0; c < C; c++ {
					var sum, sq float64
					for e := 0; e < n; e++ {
						for _, v := range feats[k][(e*C+c)*hw : (e*C+c+1)*hw] {
							sum += v
							sq += v * v
						}
					}
					mean := sum / cnt
					variance := sq/cnt - mean*mean
					atBatch[name+".running_mean"].Data[c] = float32(mean)
					atBatch[name+".running_var"].Data[c] = float32(variance)
					m := l.BNMomentum()
					wantMean := (1-m)*float64(w[name+".running_mean"].Data[c]) + m*mean
					wantVar := (1-m)*float64(w[name+".running_var"].Data[c]) + m*variance*cnt/(cnt-1)
					if !close(running[name+".running_mean"][c], wantMean, 1e-9, 1e-12) || !close(running[name+".running_var"][c], wantVar, 1e-9, 1e-12) {
						t.Errorf("%s channel %d: running mean, var %v, %v; want %v, %v", name, c,
							running[name+".running_mean"][c], running[name+".running_var"][c], wantMean, wantVar)
					}
				}
			}
			eval, err := ReferenceForward(spec, atBatch, x, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range logits {
				// The statistics went through float32: agree to its precision.
				if !close(eval[i], logits[i], 1e-5, 1e-6) {
					t.Fatalf("logit %d: %v at inference with the batch statistics, %v in training", i, eval[i], logits[i])
				}
			}
			plain, err := ReferenceForward(spec, w, x, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			same := true
			for i := range plain {
				same = same && close(plain[i], logits[i], 1e-3, 1e-4)
			}
			if same {
				t.Error("training and inference logits agree: the running statistics are not exercised")
			}
		})
	}
}

// TestReferenceGraphFeatures checks that features are read at any node,
// an add included, and that a layer read by two others (a shortcut) is
// not modified by either.
func TestReferenceGraphFeatures(t *testing.T) {
	spec := model.Spec{Name: "g", Input: []int{3}, Classes: 3, Layers: []model.Layer{
		{Name: "a", Kind: model.KindReLU},
		{Name: "b", Kind: model.KindSiLU},
		{Name: "c", Kind: model.KindAdd, Inputs: []string{"a", "b"}},
		{Name: "d", Kind: model.KindAdd, Inputs: []string{"c", "a"}},
	}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	x := []float32{-1, 0.5, 2, 3, -4, 1}
	logits, feats, err := ReferenceLayers(spec, model.Weights{}, x, 2, nil, []string{"a", "c", "d"})
	if err != nil {
		t.Fatal(err)
	}
	silu := func(v float64) float64 { return v / (1 + math.Exp(-v)) }
	var a, c, d []float64
	for _, v := range x {
		r := math.Max(float64(v), 0)
		a = append(a, r)
		c = append(c, r+silu(r))
		d = append(d, 2*r+silu(r))
	}
	near(t, "a", feats[0], a)
	near(t, "c", feats[1], c)
	near(t, "d", feats[2], d)
	near(t, "logits", logits, d)
}

func TestReferenceErrors(t *testing.T) {
	spec := model.Spec{Name: "bn", Input: []int{2}, Classes: 2, Layers: []model.Layer{{Name: "b", Kind: model.KindBatchNorm}}}
	w, _ := spec.Init(1)
	if _, _, _, err := ReferenceTrainLayers(spec, w, []float32{1, 2}, 1, nil, nil); err == nil || !strings.Contains(err.Error(), "more than one value per channel") {
		t.Errorf("batchnorm1d training on one example: error %v", err)
	}
	if _, err := ReferenceForward(spec, w, []float32{1, 2}, 1, nil); err != nil {
		t.Errorf("batchnorm1d inference on one example: %v", err)
	}
	if _, _, err := ReferenceLayers(spec, w, []float32{1, 2}, 1, nil, []string{"nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown feature layer: error %v", err)
	}
	if _, err := ReferenceForward(spec, w, []float32{1, 2, 3}, 1, nil); err == nil {
		t.Error("3 inputs for one example of 2: no error")
	}
	delete(w, "b.running_var")
	if _, err := ReferenceForward(spec, w, []float32{1, 2}, 1, nil); err == nil || !strings.Contains(err.Error(), "running_var") {
		t.Errorf("missing buffer: error %v", err)
	}
}

// TestReferenceGraphDropout: a dropout branch joined to its input by an
// add is masked when masks are given and the identity otherwise.
func TestReferenceGraphDropout(t *testing.T) {
	spec := model.Spec{Name: "d", Input: []int{3}, Classes: 3, Layers: []model.Layer{
		{Name: "drop", Kind: model.KindDropout, Rate: 0.5},
		{Name: "sum", Kind: model.KindAdd, Inputs: []string{"drop", model.InputName}},
	}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	x := []float32{1, 2, 3, 4, 5, 6}
	masked, err := ReferenceForward(spec, model.Weights{}, x, 2, [][]float32{{2, 0, 2, 0, 0, 2}})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "masked", masked, []float64{3, 2, 9, 4, 5, 18})
	plain, err := ReferenceForward(spec, model.Weights{}, x, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "at inference", plain, []float64{2, 4, 6, 8, 10, 12})
	if _, err := ReferenceForward(spec, model.Weights{}, x, 2, [][]float32{{2, 0, 2}}); err == nil {
		t.Error("a mask for one example of two: no error")
	}
}
