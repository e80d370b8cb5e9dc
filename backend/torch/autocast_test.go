//go:build torch

package torch

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// openPrecision opens a backend on the test device in precision p and
// checks that it resolved to want.
func openPrecision(t *testing.T, p, want backend.Precision) *Backend {
	t.Helper()
	b, err := Open(backend.Options{Device: testDevice(), Precision: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if got := b.Precision(); got != want {
		t.Fatalf("precision %q on %s resolved to %q, want %q", p, b.Device(), got, want)
	}
	return b
}

func TestPrecisionResolves(t *testing.T) {
	if testDevice() != "cpu" {
		t.Skip("the CPU's defaults")
	}
	openPrecision(t, "", backend.PrecisionFP32) // auto: off on the CPU
	openPrecision(t, backend.PrecisionAuto, backend.PrecisionFP32)
	openPrecision(t, backend.PrecisionFP32, backend.PrecisionFP32)
	openPrecision(t, backend.PrecisionBF16, backend.PrecisionBF16)
	if _, err := Open(backend.Options{Device: "cpu", Precision: "fp16"}); err == nil {
		t.Error("precision fp16: no error")
	}
	// Through package backend, which checks what the backend resolved.
	b, err := backend.Open(Name, backend.Options{Device: "cpu", Precision: backend.PrecisionBF16})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := backend.PrecisionOf(b); got != backend.PrecisionBF16 {
		t.Errorf("backend.PrecisionOf = %q, want bf16", got)
	}
}

// TestBF16ForwardIsAutocast: under bf16 the logits differ from float32's
// by bfloat16's rounding (8 significant bits) and no more; a run that
// left autocast off would give them bit for bit. Autocast is left as it
// was after each call, so an fp32 backend on the same thread-free API
// keeps computing float32.
func TestBF16ForwardIsAutocast(t *testing.T) {
	spec := tinyCNN(t)
	w, _ := spec.Init(5)
	rng := rand.New(rand.NewPCG(1, 2))
	n, k := 16, spec.Classes
	x := randn(rng, n*model.Numel(spec.Input), 1)
	fp := load(t, openPrecision(t, backend.PrecisionFP32, backend.PrecisionFP32), spec, w)
	bf := load(t, openPrecision(t, backend.PrecisionBF16, backend.PrecisionBF16), spec, w)
	want, got := make([]float32, n*k), make([]float32, n*k)
	if err := fp.Forward(x, n, want); err != nil {
		t.Fatal(err)
	}
	if err := bf.Forward(x, n, got); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(got, want) {
		t.Fatal("bf16 logits equal the float32 ones bit for bit: autocast did not run")
	}
	scale := 0.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	// Each product rounds its inputs to 8 bits (relative error 2^-8 each);
	// over the few layers of tinyCNN the logits stay within a few
	// multiples of that, relative to their scale.
	for i := range want {
		if d := math.Abs(float64(got[i]-want[i])) / scale; d > 8*math.Pow(2, -8) {
			t.Fatalf("logit %d: bf16 %v, fp32 %v: off by %.3g of the logits' scale, more than bfloat16 rounding explains", i, got[i], want[i], d)
		}
	}
	// The fp32 backend, after the bf16 one ran, still computes float32.
	again := make([]float32, n*k)
	if err := fp.Forward(x, n, again); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again, want) {
		t.Error("fp32 logits changed after a bf16 forward pass")
	}
	// ForwardFeatures copies bf16 activations out as float32.
	logits := make([]float32, n*k)
	feat := make([]float32, n*4*9*9)
	if err := bf.ForwardFeatures(x, n, []string{"conv1"}, logits, [][]float32{feat}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(logits, got) {
		t.Error("ForwardFeatures' bf16 logits differ from Forward's")
	}
}

// TestBF16TrainingAccuracy trains the same network from the same weights
// on the same batches in float32 and in bf16, and checks that the bf16
// model's test accuracy is within the sampling noise of the float32
// one's: the difference of two accuracies measured on n examples has a
// binomial standard error of √(2p(1−p)/n) (p pooled); more than 3 of
// them is a difference the test set can tell apart.
func TestBF16TrainingAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two models")
	}
	const classes, nTest, batch, epochs = 10, 4000, 64, 4
	train, test := data.Synthetic(data.SyntheticConfig{Train: 8192, Test: nTest, Shape: []int{1, 8, 8}, Classes: classes, Seed: 7, Noise: 0.9})
	spec, err := model.CNN(model.CNNConfig{
		Name: "cnn", Input: []int{1, 8, 8},
		Conv:    []model.ConvBlock{{Channels: 8, Kernel: 3, Padding: 1, Pool: 2}},
		Hidden:  []int{64},
		Classes: classes,
		Dropout: 0.1,
	})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := spec.Init(11)
	size := model.Numel(spec.Input)
	acc := map[backend.Precision]float64{}
	for _, p := range []backend.Precision{backend.PrecisionFP32, backend.PrecisionBF16} {
		b := openPrecision(t, p, p)
		m := load(t, b, spec, w)
		tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: batch, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.Adam}})
		rng := rand.New(rand.NewPCG(3, 4)) // the same order and masks for both
		var last loss.Value
		for e := 0; e < epochs; e++ {
			order := rng.Perm(train.Len())
			for i := 0; i+batch <= len(order); i += batch {
				bt := &backend.Batch{N: batch, X: make([]float32, batch*size), Labels: make([]int32, batch), LR: 2e-3, Masks: randMasks(rng, spec, batch)}
				for r, j := range order[i : i+batch] {
					copy(bt.X[r*size:], train.X[j*size:(j+1)*size])
					bt.Labels[r] = train.Y[j]
				}
				if last, err = tr.Step(bt); err != nil {
					t.Fatalf("%s: %v", p, err)
				}
			}
		}
		out := make([]float32, nTest*classes)
		if err := m.Forward(test.X, nTest, out); err != nil {
			t.Fatal(err)
		}
		right := 0
		for r, y := range test.Y {
			row := out[r*classes : (r+1)*classes]
			if slices.Index(row, slices.Max(row)) == int(y) {
				right++
			}
		}
		acc[p] = float64(right) / nTest
		t.Logf("%s: test accuracy %.4f (%d/%d), last training loss %.4f", p, acc[p], right, nTest, last.Total)
	}
	fp, bf := acc[backend.PrecisionFP32], acc[backend.PrecisionBF16]
	if fp < 2.0/classes {
		t.Fatalf("the float32 model learnt nothing (accuracy %.3f): the comparison would be empty", fp)
	}
	p := (fp + bf) / 2
	se := math.Sqrt(2 * p * (1 - p) / nTest)
	t.Logf("bf16 − fp32 = %+.4f, binomial standard error %.4f", bf-fp, se)
	if math.Abs(bf-fp) > 3*se {
		t.Errorf("bf16 accuracy %.4f vs fp32 %.4f: the difference %.4f is more than 3 standard errors (%.4f) of a test set of %d", bf, fp, bf-fp, 3*se, nTest)
	}
}

// TestBF16BatchNormStep: a bf16 training step through batchnorms and
// residual additions runs, gives a finite loss and float32 running
// statistics.
func TestBF16BatchNormStep(t *testing.T) {
	spec := resnetSpec(t)
	w, _ := spec.Init(2)
	b := openPrecision(t, backend.PrecisionBF16, backend.PrecisionBF16)
	m := load(t, b, spec, w)
	tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: 8, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.SGD, Momentum: 0.9}})
	rng := rand.New(rand.NewPCG(5, 6))
	bt := &backend.Batch{N: 8, X: randn(rng, 8*model.Numel(spec.Input), 1), Labels: randLabels(rng, 8, spec.Classes), LR: 0.01, Masks: randMasks(rng, spec, 8)}
	for i := 0; i < 3; i++ {
		v, err := tr.Step(bt)
		if err != nil {
			t.Fatal(err)
		}
		if math.IsNaN(v.Total) || math.IsInf(v.Total, 0) {
			t.Fatalf("step %d: loss %v", i, v.Total)
		}
	}
	got, err := m.Weights()
	if err != nil {
		t.Fatal(err)
	}
	for name, tsr := range got {
		for _, v := range tsr.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s has a non-finite value after bf16 steps", name)
			}
		}
	}
}

// TestCUDAStatusAbsentOnCPU: on the CPU there is no CUDA status to report
// (the report leaves its CUDA fields out); on CUDA the runtime answers.
func TestCUDAStatusAbsentOnCPU(t *testing.T) {
	b := openTest(t)
	rt, used, total, ok := b.CUDAStatus()
	if b.device < 0 {
		if ok || rt != "" || used != 0 || total != 0 {
			t.Errorf("CUDAStatus on the CPU = %q, %d, %d, %v; want nothing", rt, used, total, ok)
		}
		return
	}
	if !ok || rt == "" || total <= 0 || used <= 0 || used > total {
		t.Errorf("CUDAStatus on %s = %q, %d, %d, %v", b.Device(), rt, used, total, ok)
	}
}
