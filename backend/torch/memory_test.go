//go:build torch

package torch

import (
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// rss is the resident set size from /proc/self/statm, after a Go GC.
func rss(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// TestMemoryStaysFlat trains a mid-size MLP for 2000 distillation steps
// (teacher Forward, dropout masks, Adam with weight decay, State every 100
// steps) and checks that the process's RSS does not grow between step 200
// and step 2000. Tensors live in C memory the Go GC does not see: a tensor
// not freed per step (a gradient is 1.6 MB here, an activation 128 KB)
// grows RSS by hundreds of MB over 1800 steps.
func TestMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("2000 training steps")
	}
	b := openTest(t)
	const n = 64
	spec, err := model.MLP(model.MLPConfig{Name: "mid", Input: []int{256}, Hidden: []int{512, 512}, Classes: 10, Dropout: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	tspec, _ := model.MLP(model.MLPConfig{Name: "teacher", Input: []int{256}, Hidden: []int{256}, Classes: 10})
	w, _ := spec.Init(1)
	tw, _ := tspec.Init(2)
	m := load(t, b, spec, w)
	teacher := load(t, b, tspec, tw)
	tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: loss.Hinton(0.9, 4), Optimizer: backend.Optimizer{Kind: backend.Adam, WeightDecay: 1e-4}})
	rng := rand.New(rand.NewPCG(1, 1))
	xs := make([][]float32, 8)
	for i := range xs {
		xs[i] = randn(rng, n*256, 1)
	}
	tl := make([]float32, n*10)
	flatOver(t, 2000, func(step int) {
		x := xs[step%len(xs)]
		if err := teacher.Forward(x, n, tl); err != nil {
			t.Fatal(err)
		}
		bt := &backend.Batch{N: n, X: x, Labels: randLabels(rng, n, 10), TeacherLogits: tl, Masks: randMasks(rng, spec, n), LR: 1e-3}
		if _, err := tr.Step(bt); err != nil {
			t.Fatal(err)
		}
		if step%100 == 0 {
			if _, err := tr.State(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestFeatureMemoryStaysFlat is TestMemoryStaysFlat for feature
// distillation: a CNN student with a 1×1-conv hint and attention transfer
// at two layers, the teacher's features read with ForwardFeatures every
// step (a leaked 8-channel 14×14 map of 32 examples is 200 KB a step).
func TestFeatureMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 training steps")
	}
	b := openTest(t)
	const n = 32
	spec, err := model.CNN(model.CNNConfig{Name: "student", Input: []int{1, 28, 28},
		Conv: []model.ConvBlock{{Channels: 8, Kernel: 5, Padding: 2, Pool: 2}, {Channels: 16, Kernel: 5, Padding: 2, Pool: 2}}, Hidden: []int{32}, Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	tspec, err := model.CNN(model.CNNConfig{Name: "teacher", Input: []int{1, 28, 28},
		Conv: []model.ConvBlock{{Channels: 12, Kernel: 5, Padding: 2, Pool: 2}, {Channels: 24, Kernel: 5, Padding: 2, Pool: 2}}, Hidden: []int{32}, Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := spec.Init(1)
	tw, _ := tspec.Init(2)
	m := load(t, b, spec, w)
	teacher := load(t, b, tspec, tw)
	obj := loss.Hinton(0.5, 4)
	obj.Features = []loss.Feature{
		{Kind: loss.FeatureHint, Student: "act_conv2", Teacher: "act_conv2", Weight: 1, Adapter: loss.AdapterConv1x1},
		{Kind: loss.FeatureAttention, Student: "act_conv1", Teacher: "act_conv1", Weight: 10},
		{Kind: loss.FeatureHint, Student: "act1", Teacher: "act1", Weight: 1, Distance: loss.DistanceCosine},
	}
	tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: obj, Optimizer: backend.Optimizer{Kind: backend.Adam}, TeacherSpec: tspec})
	rng := rand.New(rand.NewPCG(1, 2))
	xs := make([][]float32, 8)
	for i := range xs {
		xs[i] = randn(rng, n*28*28, 1)
	}
	layers := []string{"act_conv2", "act_conv1", "act1"}
	shapes, _ := tspec.Shapes()
	feats := make([][]float32, len(layers))
	for i, l := range layers {
		_, li, _ := tspec.Layer(l)
		feats[i] = make([]float32, n*model.Numel(shapes[li]))
	}
	tl := make([]float32, n*10)
	flatOver(t, 1000, func(step int) {
		x := xs[step%len(xs)]
		if err := teacher.ForwardFeatures(x, n, layers, tl, feats); err != nil {
			t.Fatal(err)
		}
		bt := &backend.Batch{N: n, X: x, Labels: randLabels(rng, n, 10), TeacherLogits: tl, TeacherFeatures: feats, LR: 1e-3}
		if _, err := tr.Step(bt); err != nil {
			t.Fatal(err)
		}
		if step%100 == 0 {
			if _, err := tr.State(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// flatOver runs step 1..steps and fails if the RSS grows by more than
// 64 MB between a tenth of the way and the end.
func flatOver(t *testing.T, steps int, step func(int)) {
	t.Helper()
	var early int64
	for i := 1; i <= steps; i++ {
		step(i)
		if i == steps/10 {
			early = rss(t)
		}
	}
	end := rss(t)
	const margin = 64 << 20
	t.Logf("RSS after step %d: %d MB, after step %d: %d MB", steps/10, early>>20, steps, end>>20)
	if end-early > margin {
		t.Errorf("RSS grew by %d MB between steps %d and %d (allowed %d MB): tensors are leaking", (end-early)>>20, steps/10, steps, margin>>20)
	}
}

// TestGraphMemoryStaysFlat is TestMemoryStaysFlat for a graph with
// batchnorms: a residual block, then a batchnorm1d over 16384 features,
// trained with SGD with momentum and weight decay, with an inference
// Forward and a ForwardFeatures of the add node every step. Each step
// replaces the running statistics (a leaked pair of the wide batchnorm's
// is 128 KB a step) and a block activation is 512 KB.
func TestGraphMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("800 training steps")
	}
	b := openTest(t)
	const n = 8
	spec := model.Spec{Name: "resblock", Input: []int{4, 32, 32}, Classes: 10, Layers: []model.Layer{
		{Name: "conv1", Kind: model.KindConv2D, Out: 16, Kernel: 3, Padding: 1, NoBias: true},
		{Name: "bn1", Kind: model.KindBatchNorm},
		{Name: "act1", Kind: model.KindReLU},
		{Name: "conv2", Kind: model.KindConv2D, Out: 16, Kernel: 3, Padding: 1, Groups: 4, NoBias: true},
		{Name: "bn2", Kind: model.KindBatchNorm},
		{Name: "add", Kind: model.KindAdd, Inputs: []string{"bn2", "act1"}},
		{Name: "act2", Kind: model.KindReLU6},
		{Name: "drop", Kind: model.KindDropout, Rate: 0.1},
		{Name: "flatten", Kind: model.KindFlatten},
		{Name: "bn3", Kind: model.KindBatchNorm},
		{Name: "fc", Kind: model.KindLinear, Out: 10},
	}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	w, _ := spec.Init(1)
	m := load(t, b, spec, w)
	tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.SGD, Momentum: 0.9, WeightDecay: 1e-4}})
	rng := rand.New(rand.NewPCG(1, 3))
	xs := make([][]float32, 8)
	for i := range xs {
		xs[i] = randn(rng, n*4*32*32, 1)
	}
	logits := make([]float32, n*10)
	feats := [][]float32{make([]float32, n*16*32*32)}
	flatOver(t, 800, func(step int) {
		x := xs[step%len(xs)]
		bt := &backend.Batch{N: n, X: x, Labels: randLabels(rng, n, 10), Masks: randMasks(rng, spec, n), LR: 1e-2}
		if _, err := tr.Step(bt); err != nil {
			t.Fatal(err)
		}
		if err := m.Forward(x, n, logits); err != nil {
			t.Fatal(err)
		}
		if err := m.ForwardFeatures(x, n, []string{"add"}, nil, feats); err != nil {
			t.Fatal(err)
		}
	})
}
