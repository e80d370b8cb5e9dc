package gorgonia_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// The graph specs (resnet, mobile, mixed) use every kind that reads named
// inputs or keeps running statistics; these tests check them against the
// float64 reference of package backendtest, in value and gradient, in
// inference and in training mode.

func open(t *testing.T) backend.Backend {
	t.Helper()
	b, err := backend.Open("gorgonia", backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func near(a, b, rel, abs float64) bool {
	return math.Abs(a-b) <= abs+rel*math.Max(math.Abs(a), math.Abs(b))
}

func loadGraph(t *testing.T, b backend.Backend, spec model.Spec, seed uint64) (backend.Model, model.Weights) {
	t.Helper()
	w, err := spec.Init(seed)
	if err != nil {
		t.Fatal(err)
	}
	backendtest.RandomizeBatchNorm(spec, w, seed+1)
	m, err := b.Load(spec, w.Clone())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, w
}

// checkForward compares the model's logits and the output of every layer
// (add nodes included) with the float64 reference in inference mode
// (batchnorms with their running statistics).
func checkForward(t *testing.T, m backend.Model, spec model.Spec, w model.Weights, x []float32, n int) {
	t.Helper()
	var names []string
	for _, l := range spec.Layers {
		names = append(names, l.Name)
	}
	wantLogits, wantFeats, err := backendtest.ReferenceLayers(spec, w, x, n, nil, names)
	if err != nil {
		t.Fatal(err)
	}
	feats := make([][]float32, len(names))
	for i := range names {
		feats[i] = make([]float32, len(wantFeats[i]))
	}
	logits := make([]float32, n*spec.Classes)
	if err := m.(backend.FeatureModel).ForwardFeatures(x, n, names, logits, feats); err != nil {
		t.Fatal(err)
	}
	for i, v := range logits {
		if !near(float64(v), wantLogits[i], 1e-4, 1e-5) {
			t.Fatalf("%s: logit %d = %v, reference %v", spec.Name, i, v, wantLogits[i])
		}
	}
	for li, name := range names {
		for i, v := range feats[li] {
			if !near(float64(v), wantFeats[li][i], 1e-4, 1e-5) {
				t.Fatalf("%s: layer %q output %d = %v, reference %v", spec.Name, name, i, v, wantFeats[li][i])
			}
		}
	}
	// Forward is ForwardFeatures without layers; it must agree.
	out := make([]float32, n*spec.Classes)
	if err := m.Forward(x, n, out); err != nil {
		t.Fatal(err)
	}
	for i := range out {
		if out[i] != logits[i] {
			t.Fatalf("%s: Forward logit %d = %v, ForwardFeatures %v", spec.Name, i, out[i], logits[i])
		}
	}
}

func TestGraphForward(t *testing.T) {
	b := open(t)
	for _, spec := range backendtest.GraphSpecs(t) {
		m, w := loadGraph(t, b, spec, 3)
		x, _, _ := backendtest.Inputs(spec, 5, 4)
		checkForward(t, m, spec, w, x, 5)
	}
}

// trainLoss is the objective in training mode (batch statistics), in
// float64.
func trainLoss(t *testing.T, spec model.Spec, w model.Weights, obj loss.Objective, x []float32, y []int32, teacher []float32, n int, masks [][]float32) float64 {
	t.Helper()
	logits, _, _, err := backendtest.ReferenceTrainLayers(spec, w, x, n, masks, nil)
	if err != nil {
		t.Fatal(err)
	}
	t64 := make([]float64, len(teacher))
	for i, v := range teacher {
		t64[i] = float64(v)
	}
	v, err := obj.Compute64(logits, t64, y, n, spec.Classes, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v.Total
}

// sampleIdx picks up to k spread indices of n.
func sampleIdx(n, k int) []int {
	if n <= k {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	idx := make([]int, k)
	for i := range idx {
		idx[i] = i * (n - 1) / (k - 1)
	}
	return idx
}

// checkTrainStep takes one plain-SGD step (lr 1, so the update is the
// gradient) on n examples in a trainer built for maxBatch, and checks the
// loss, a sample of every parameter's gradient (against central
// differences of the float64 reference), the running statistics the step
// leaves, and that inference afterwards uses them.
func checkTrainStep(t *testing.T, spec model.Spec, obj loss.Objective, n, maxBatch int, masks [][]float32) {
	t.Helper()
	b := open(t)
	m, w := loadGraph(t, b, spec, 11)
	x, y, teacher := backendtest.Inputs(spec, n, 12)
	tr, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: maxBatch, Objective: obj, Optimizer: backend.Optimizer{Kind: backend.SGD}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	v, err := tr.Step(&backend.Batch{N: n, X: x, Labels: y, TeacherLogits: teacher, Masks: masks, LR: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := trainLoss(t, spec, w, obj, x, y, teacher, n, masks); !near(v.Total, want, 1e-4, 1e-5) {
		t.Errorf("%s: loss %v, reference %v", spec.Name, v.Total, want)
	}
	after, err := m.Weights()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := spec.Params()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		w0 := w[p.Name].Data
		for _, i := range sampleIdx(len(w0), 6) {
			got := float64(w0[i] - after[p.Name].Data[i])
			const h = 1e-5
			eval := func(d float64) float64 {
				wp := w.Clone()
				wp[p.Name].Data[i] += float32(d)
				return trainLoss(t, spec, wp, obj, x, y, teacher, n, masks)
			}
			hp := float64(w0[i]+float32(h)) - float64(w0[i])
			hm := float64(w0[i]) - float64(w0[i]-float32(h))
			num := (eval(h) - eval(-h)) / (hp + hm)
			if !near(got, num, 2e-2, 5e-4) {
				t.Errorf("%s: d loss / d %s[%d] = %v, numeric %v", spec.Name, p.Name, i, got, num)
			}
		}
	}
	_, _, running, err := backendtest.ReferenceTrainLayers(spec, w, x, n, masks, nil)
	if err != nil {
		t.Fatal(err)
	}
	bufs, err := spec.Buffers()
	if err != nil {
		t.Fatal(err)
	}
	for _, bf := range bufs {
		for i, v := range after[bf.Name].Data {
			if !near(float64(v), running[bf.Name][i], 1e-4, 1e-6) {
				t.Errorf("%s: %s[%d] = %v after the step, reference %v", spec.Name, bf.Name, i, v, running[bf.Name][i])
			}
		}
	}
	// The model is trained and used for inference alike: Forward now
	// uses the stepped parameters and the updated running statistics.
	checkForward(t, m, spec, after, x, n)
}

func TestGraphTrainStep(t *testing.T) {
	for _, spec := range backendtest.GraphSpecs(t) {
		// 5 real rows in a trainer for 7: the padding rows must not enter
		// the batch statistics.
		checkTrainStep(t, spec, loss.CrossEntropyOnly, 5, 7, nil)
		checkTrainStep(t, spec, loss.Hinton(0.6, 3), 4, 4, nil)
	}
}

// TestGraphDropout: a dropout inside a graph masks in training, and at
// inference its output is its input (a feature read there returns it).
func TestGraphDropout(t *testing.T) {
	spec := model.Spec{Name: "drop", Input: []int{6}, Classes: 3, Layers: []model.Layer{
		{Name: "fc1", Kind: model.KindLinear, Out: 5},
		{Name: "drop", Kind: model.KindDropout, Rate: 0.5},
		{Name: "sum", Kind: model.KindAdd, Inputs: []string{"drop", "fc1"}},
		{Name: "bn", Kind: model.KindBatchNorm},
		{Name: "act", Kind: model.KindReLU6},
		{Name: "fc2", Kind: model.KindLinear, Out: 3, NoBias: true},
	}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	checkTrainStep(t, spec, loss.CrossEntropyOnly, 6, 6, backendtest.Masks(t, spec, 6, 2))

	m, w := loadGraph(t, open(t), spec, 1)
	x, _, _ := backendtest.Inputs(spec, 3, 1)
	checkForward(t, m, spec, w, x, 3)
	feats := [][]float32{make([]float32, 15), make([]float32, 15)}
	if err := m.(backend.FeatureModel).ForwardFeatures(x, 3, []string{"fc1", "drop"}, nil, feats); err != nil {
		t.Fatal(err)
	}
	for i := range feats[0] {
		if feats[0][i] != feats[1][i] {
			t.Fatalf("dropout at inference: output %d = %v, its input %v", i, feats[1][i], feats[0][i])
		}
	}
}

// TestFeatureOnlyStepUpdatesEveryBatchNorm: with only a feature term the
// layers after the student layer do not affect the loss, but PyTorch's
// forward runs them, so their batchnorms' running statistics move; their
// parameters, which have no gradient, do not.
func TestFeatureOnlyStepUpdatesEveryBatchNorm(t *testing.T) {
	spec := backendtest.GraphSpecs(t)[0] // resnet
	const student = "layer1.0"
	if _, _, ok := spec.Layer(student); !ok {
		t.Fatalf("resnet has no layer %q", student)
	}
	b := open(t)
	m, w := loadGraph(t, b, spec, 5)
	obj := loss.Objective{Features: []loss.Feature{{Kind: loss.FeatureHint, Student: student, Teacher: student, Weight: 1}}}
	const n = 4
	tr, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: n, Objective: obj, TeacherSpec: spec, Optimizer: backend.Optimizer{Kind: backend.SGD}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	x, _, _ := backendtest.Inputs(spec, n, 6)
	shapes, _ := spec.Shapes()
	_, li, _ := spec.Layer(student)
	tf := make([]float32, n*model.Numel(shapes[li]))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range tf {
		tf[i] = float32(rng.NormFloat64())
	}
	if _, err := tr.Step(&backend.Batch{N: n, X: x, TeacherFeatures: [][]float32{tf}, LR: 0.1}); err != nil {
		t.Fatal(err)
	}
	after, err := m.Weights()
	if err != nil {
		t.Fatal(err)
	}
	_, _, running, err := backendtest.ReferenceTrainLayers(spec, w, x, n, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range running {
		for i, v := range after[name].Data {
			if !near(float64(v), want[i], 1e-4, 1e-6) {
				t.Fatalf("%s[%d] = %v after the step, reference %v", name, i, v, want[i])
			}
		}
	}
	moved := false
	for name, t0 := range w {
		if strings.HasPrefix(name, "layer2.") && !strings.Contains(name, "running") {
			for i := range t0.Data {
				if t0.Data[i] != after[name].Data[i] {
					t.Fatalf("%s[%d] changed although it does not affect the loss", name, i)
				}
			}
		}
		if strings.HasPrefix(name, "layer1.0.conv1") && t0.Data[0] != after[name].Data[0] {
			moved = true
		}
	}
	if !moved {
		t.Error("layer1.0.conv1.weight did not move: the feature term trained nothing")
	}
}

// TestBatchNormNeedsTwoValues: like PyTorch, training a batchnorm1d on
// one example is an error (its unbiased variance is undefined), not NaNs.
func TestBatchNormNeedsTwoValues(t *testing.T) {
	spec := backendtest.GraphSpecs(t)[2] // mixed: bn1 is a batchnorm1d
	b := open(t)
	m, _ := loadGraph(t, b, spec, 1)
	tr, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: 4, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.SGD}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	x, y, _ := backendtest.Inputs(spec, 1, 1)
	_, err = tr.Step(&backend.Batch{N: 1, X: x, Labels: y, LR: 0.1})
	if err == nil || !strings.Contains(err.Error(), `"bn1"`) {
		t.Fatalf("Step on one example: error %v, want one naming batchnorm bn1", err)
	}
	w, _ := m.Weights()
	for _, v := range w["bn1.running_var"].Data {
		if math.IsNaN(float64(v)) {
			t.Fatal("the refused step changed bn1.running_var")
		}
	}
}

// TestBuffersRoundTrip: Load takes the running statistics and Weights
// returns them, apart from the parameters (no optimizer state).
func TestBuffersRoundTrip(t *testing.T) {
	spec := backendtest.GraphSpecs(t)[1] // mobile
	b := open(t)
	m, w := loadGraph(t, b, spec, 9)
	got, err := m.Weights()
	if err != nil {
		t.Fatal(err)
	}
	tensors, _ := spec.Tensors()
	if len(got) != len(tensors) {
		t.Fatalf("Weights has %d tensors, spec %d", len(got), len(tensors))
	}
	for name, t0 := range w {
		for i := range t0.Data {
			if got[name].Data[i] != t0.Data[i] {
				t.Fatalf("%s[%d] = %v, loaded %v", name, i, got[name].Data[i], t0.Data[i])
			}
		}
	}
	tr, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: 2, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.Adam}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	st, err := tr.State()
	if err != nil {
		t.Fatal(err)
	}
	for name := range st.Tensors {
		if strings.Contains(name, "running_") {
			t.Errorf("optimizer state holds buffer %q", name)
		}
	}
}

// TestGraphEdges: a batchnorm on the network input, a grouped strided
// conv without bias, and an add that reads one node twice (its gradient
// counts twice).
func TestGraphEdges(t *testing.T) {
	spec := model.Spec{Name: "edges", Input: []int{2, 5, 5}, Classes: 3, Layers: []model.Layer{
		{Name: "bn_in", Kind: model.KindBatchNorm, Momentum: 0.5},
		{Name: "conv", Kind: model.KindConv2D, Out: 4, Kernel: 3, Stride: 2, Groups: 2, NoBias: true},
		{Name: "twice", Kind: model.KindAdd, Inputs: []string{"conv", "conv"}},
		{Name: "gap", Kind: model.KindGlobalAvgPool},
		{Name: "act", Kind: model.KindSiLU},
		{Name: "fc", Kind: model.KindLinear, Out: 3},
	}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	checkTrainStep(t, spec, loss.CrossEntropyOnly, 3, 5, nil)
	m, w := loadGraph(t, open(t), spec, 2)
	x, _, _ := backendtest.Inputs(spec, 4, 3)
	checkForward(t, m, spec, w, x, 4)
}
