package quantize

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
)

// graphNet is a graph spec with random weights, non-trivial batchnorms
// and n random inputs.
func graphNet(t testing.TB, spec model.Spec, n int) (model.Weights, [][]float32) {
	t.Helper()
	w, err := spec.Init(5)
	if err != nil {
		t.Fatal(err)
	}
	backendtest.RandomizeBatchNorm(spec, w, 5)
	rng := rand.New(rand.NewPCG(6, 6))
	xs := make([][]float32, n)
	for i := range xs {
		xs[i] = make([]float32, model.Numel(spec.Input))
		for j := range xs[i] {
			xs[i][j] = float32(rng.NormFloat64())
		}
	}
	return w, xs
}

// logits runs p on xs.
func logits(t testing.TB, p infer.Predictor, xs [][]float32, classes int) []float32 {
	t.Helper()
	out := make([]float32, len(xs)*classes)
	if err := p.Forward(slices.Concat(xs...), len(xs), out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestQuantizeGraphSpecs quantizes the graph specs and checks that the
// model is the folded network, with activation parameters at every node
// that needs them (add inputs and outputs included), and that its INT8
// program stays within quantization error of the FP32 one.
func TestQuantizeGraphSpecs(t *testing.T) {
	for _, spec := range backendtest.GraphSpecs(t) {
		w, xs := graphNet(t, spec, 64)
		m, err := Quantize(context.Background(), spec, w, FromSlices(xs, 16), Config{Method: MinMax})
		if err != nil {
			t.Fatalf("%s: %v", spec.Name, err)
		}
		fs, _, err := infer.Fold(spec, w)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m.Spec, fs) || !reflect.DeepEqual(m.Source, spec) {
			t.Fatalf("%s: model spec %+v, source %+v; want the folded network and the one given", spec.Name, m.Spec, m.Source)
		}
		for _, l := range m.Spec.Layers {
			if _, ok := m.Act[l.Name]; infer.NeedsActParams(l.Kind) && !ok {
				t.Errorf("%s: no activation parameters for %q", spec.Name, l.Name)
			}
		}
		fp, err := infer.Compile(spec, w)
		if err != nil {
			t.Fatal(err)
		}
		p, err := m.Compile()
		if err != nil {
			t.Fatal(err)
		}
		want, got := logits(t, fp, xs, spec.Classes), logits(t, p, xs, spec.Classes)
		var span, worst float64
		for i := range want {
			span = max(span, math.Abs(float64(want[i])))
			worst = max(worst, math.Abs(float64(got[i]-want[i])))
		}
		t.Logf("%s: INT8 within %.3g of FP32 (logits ±%.3g)\n%s", spec.Name, worst, span, p)
		if worst > 0.1*span {
			t.Errorf("%s: INT8 logits differ from FP32 by %.3g, more than a tenth of their range ±%.3g", spec.Name, worst, span)
		}
	}
}

// TestSaveLoadGraph round-trips a quantized graph model (with an
// unfolded batchnorm in float32 and a fallback layer) through its files
// and checks that the loaded one computes the same bits and still falls
// back from the weights of the network as given.
func TestSaveLoadGraph(t *testing.T) {
	spec := backendtest.GraphSpecs(t)[2] // mixed: a batchnorm after an add stays
	w, xs := graphNet(t, spec, 32)
	q, err := Quantize(context.Background(), spec, w, FromSlices(xs, 0), Config{Method: MinMax})
	if err != nil {
		t.Fatal(err)
	}
	fw, err := foldedWeights(q, w)
	if err != nil {
		t.Fatal(err)
	}
	m, err := withFloat(q, fw, []string{"side"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Float["bn_sum.running_var"]; !ok {
		t.Fatalf("the unfolded batchnorm's statistics are not in the model: %v", slices.Sorted(maps.Keys(m.Float)))
	}
	path := filepath.Join(t.TempDir(), "mixed-int8")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("Load = %+v, want %+v", got, m)
	}
	a, err := m.Compile()
	if err != nil {
		t.Fatal(err)
	}
	b, err := got.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if oa, ob := logits(t, a, xs, spec.Classes), logits(t, b, xs, spec.Classes); !slices.Equal(oa, ob) {
		t.Fatalf("loaded model computes %v, saved one %v", ob, oa)
	}
	fp, _ := infer.Compile(spec, w)
	eval := func(p infer.Predictor) (float64, error) { return agreement(fp, p, xs, spec.Classes) }
	if _, _, err := WithFallback(context.Background(), got, w, eval, Budget{MaxDrop: 1}); err != nil {
		t.Fatalf("fallback of the loaded model from the unfolded weights: %v", err)
	}
}

// TestSequentialFileHasNoSource checks that a network folding does not
// change is saved as before (no "source" entry), so files stay what
// earlier versions wrote and read.
func TestSequentialFileHasNoSource(t *testing.T) {
	m, path := savedModel(t)
	if len(m.Source.Layers) != 0 {
		t.Fatalf("sequential network got a source: %+v", m.Source)
	}
	b, err := os.ReadFile(path + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["source"]; ok {
		t.Fatalf("the file of a sequential network has a source entry")
	}
}

// TestWithFallbackGraph runs the accuracy-aware fallback on a residual
// network: it ranks the folded network's layers (conv names, no
// batchnorms), and keeps the one the evaluator penalises in float32.
func TestWithFallbackGraph(t *testing.T) {
	spec := backendtest.GraphSpecs(t)[0] // resnet
	w, xs := graphNet(t, spec, 32)
	qm, err := Quantize(context.Background(), spec, w, FromSlices(xs, 0), Config{Method: MinMax})
	if err != nil {
		t.Fatal(err)
	}
	const bad = "layer2.0.downsample.0" // a shortcut conv, its batchnorm folded in
	eval := func(p infer.Predictor) (float64, error) {
		if quantizedLayers(p)[bad] {
			return 0.5, nil
		}
		return 1, nil
	}
	m, rep, err := WithFallback(context.Background(), qm, w, eval, Budget{MaxDrop: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Fallback, []string{bad}) || !rep.Met {
		t.Fatalf("fallback %v, report %+v; want %q in float32", m.Fallback, rep, bad)
	}
	for _, s := range rep.Sensitivity {
		if l, _, ok := m.Spec.Layer(s.Layer); !ok || l.Kind == model.KindBatchNorm {
			t.Errorf("ranked %q, not a quantized layer of the folded network", s.Layer)
		}
	}
	p, err := m.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if q := quantizedLayers(p); q[bad] || !q["layer2.0.conv1"] {
		t.Errorf("program %s", p)
	}
}
