package quantize

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
)

func TestHistogramStreaming(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	h := newHistogram(64)
	var all []float32
	for _, scale := range []float64{0.001, 1, 0.5, 30, 2, 1000} {
		xs := make([]float32, 500)
		for i := range xs {
			xs[i] = float32(rng.NormFloat64() * scale)
		}
		xs[0] = float32(math.NaN())
		h.add(xs)
		all = append(all, xs[1:]...)
	}
	if h.n != float64(len(all)) {
		t.Fatalf("n = %v, want %d", h.n, len(all))
	}
	var sum float64
	for _, c := range h.counts {
		sum += c
	}
	if sum != h.n {
		t.Fatalf("counts sum to %v, want %v", sum, h.n)
	}
	// Every value lies in the bin the final width assigns it.
	want := make([]float64, len(h.counts))
	for _, x := range all {
		i := int(math.Floor(float64(x)/h.width)) + h.half
		want[i]++
	}
	if !slices.Equal(want, h.counts) {
		t.Fatal("streamed histogram differs from the histogram of all values at the final width")
	}
	if float64(slices.Min(all)) != h.min || float64(slices.Max(all)) != h.max {
		t.Fatalf("min/max = %v/%v, want %v/%v", h.min, h.max, slices.Min(all), slices.Max(all))
	}
}

// dist draws n values.
func dist(name string, n int) []float32 {
	rng := rand.New(rand.NewPCG(2, 2))
	xs := make([]float32, n)
	for i := range xs {
		switch name {
		case "relu-normal":
			xs[i] = float32(max(rng.NormFloat64(), 0))
		case "normal":
			xs[i] = float32(rng.NormFloat64())
		case "laplace":
			xs[i] = float32(rng.ExpFloat64())
			if rng.IntN(2) == 0 {
				xs[i] = -xs[i]
			}
		case "uniform":
			xs[i] = float32(rng.Float64())
		}
	}
	if strings.HasSuffix(name, "normal") {
		xs[0] = 30 // an outlier
	}
	return xs
}

func TestClipRange(t *testing.T) {
	for _, tc := range []struct {
		dist         string
		method       Method
		wantA, wantB [2]float64 // bounds on the range [a, b]
	}{
		{"relu-normal", MinMax, [2]float64{0, 0}, [2]float64{30, 30}},
		{"relu-normal", Percentile, [2]float64{0, 0}, [2]float64{3, 5}},
		{"relu-normal", Entropy, [2]float64{0, 0}, [2]float64{2, 10}},
		{"relu-normal", MSE, [2]float64{0, 0}, [2]float64{2, 30}},
		{"normal", MinMax, [2]float64{-6, -3}, [2]float64{30, 30}},
		{"normal", Percentile, [2]float64{-5, -3}, [2]float64{3, 5}},
		{"normal", Entropy, [2]float64{-6, -1.5}, [2]float64{1.5, 10}},
		{"normal", MSE, [2]float64{-6, -2}, [2]float64{2, 30}},
		// A heavy tail without outliers: MSE clips it.
		{"laplace", MinMax, [2]float64{-14, -9}, [2]float64{9, 14}},
		{"laplace", MSE, [2]float64{-11, -6}, [2]float64{6, 11}},
		{"laplace", Entropy, [2]float64{-12, -2}, [2]float64{2, 12}},
		{"uniform", MinMax, [2]float64{0, 0}, [2]float64{0.999, 1}},
		{"uniform", Percentile, [2]float64{0, 0}, [2]float64{0.99, 1}},
		{"uniform", Entropy, [2]float64{0, 0}, [2]float64{0.9, 1}},
		{"uniform", MSE, [2]float64{0, 0}, [2]float64{0.9, 1}},
	} {
		h := newHistogram(2048)
		xs := dist(tc.dist, 100000)
		for i := 0; i < len(xs); i += 10000 {
			h.add(xs[i : i+10000])
		}
		a, b := clipRange(h, tc.method, 99.99)
		if a < tc.wantA[0] || a > tc.wantA[1] || b < tc.wantB[0] || b > tc.wantB[1] {
			t.Errorf("%s %s: range [%v, %v], want a in %v and b in %v", tc.dist, tc.method, a, b, tc.wantA, tc.wantB)
		}
		q := actParams(a, b)
		if err := q.Check(); err != nil {
			t.Errorf("%s %s: %v", tc.dist, tc.method, err)
		}
		if h.nonNegative() && q.ZeroPoint != 0 {
			t.Errorf("%s %s: zero point %d for a non-negative tensor", tc.dist, tc.method, q.ZeroPoint)
		}
	}
}

func TestActParams(t *testing.T) {
	for _, tc := range []struct{ a, b float64 }{{0, 1}, {-1, 1}, {-3, 0}, {-0.2, 7}, {0, 0}, {-1e-30, 1e-30}} {
		q := actParams(tc.a, tc.b)
		if err := q.Check(); err != nil {
			t.Errorf("actParams(%v, %v) = %+v: %v", tc.a, tc.b, q, err)
		}
		// The range ends are representable to within a step.
		if tc.b > tc.a {
			lo := float64(q.Scale) * float64(0-q.ZeroPoint)
			hi := float64(q.Scale) * float64(255-q.ZeroPoint)
			if lo > tc.a+float64(q.Scale) || hi < tc.b-float64(q.Scale) {
				t.Errorf("actParams(%v, %v) = %+v covers [%v, %v]", tc.a, tc.b, q, lo, hi)
			}
		}
	}
}

// testNet is a random MLP and inputs for it.
func testNet(t testing.TB, spec model.Spec, n int) (model.Weights, [][]float32) {
	w, err := spec.Init(3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	in := model.Numel(spec.Input)
	xs := make([][]float32, n)
	for i := range xs {
		xs[i] = make([]float32, in)
		for j := range xs[i] {
			xs[i][j] = float32(rng.Float64()*2 - 0.5)
		}
	}
	return w, xs
}

func mlpSpec(t testing.TB) model.Spec {
	s, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{64}, Hidden: []int{128, 96}, Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cnnSpec(t testing.TB) model.Spec {
	s, err := model.CNN(model.CNNConfig{Name: "cnn", Input: []int{1, 12, 12},
		Conv:   []model.ConvBlock{{Channels: 6, Kernel: 3, Padding: 1, Pool: 2}, {Channels: 8, Kernel: 3, Stride: 1}},
		Hidden: []int{32}, Classes: 5})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// agreement is the fraction of examples where p's argmax equals ref's
// (an accuracy against the float32 network's labels).
func agreement(ref, p infer.Predictor, xs [][]float32, classes int) (float64, error) {
	n := len(xs)
	x := slices.Concat(xs...)
	a := make([]float32, n*classes)
	b := make([]float32, n*classes)
	if err := ref.Forward(x, n, a); err != nil {
		return 0, err
	}
	if err := p.Forward(x, n, b); err != nil {
		return 0, err
	}
	same := 0
	for i := 0; i < n; i++ {
		if argmax(a[i*classes:(i+1)*classes]) == argmax(b[i*classes:(i+1)*classes]) {
			same++
		}
	}
	return float64(same) / float64(n), nil
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func TestQuantizeMethods(t *testing.T) {
	for _, spec := range []model.Spec{mlpSpec(t), cnnSpec(t)} {
		w, xs := testNet(t, spec, 400)
		calib, test := xs[:200], xs[200:]
		fp, err := infer.Compile(spec, w)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []Method{MinMax, Percentile, Entropy, MSE} {
			qm, err := Quantize(context.Background(), spec, w, FromSlices(calib, 32), Config{Method: m, Batches: 5})
			if err != nil {
				t.Fatalf("%s %s: %v", spec.Name, m, err)
			}
			p, err := qm.Compile()
			if err != nil {
				t.Fatal(err)
			}
			acc, err := agreement(fp, p, test, spec.Classes)
			if err != nil {
				t.Fatal(err)
			}
			if acc < 0.85 {
				t.Errorf("%s %s: INT8 agrees with FP32 on %.1f%% of examples\n%s", spec.Name, m, 100*acc, p)
			}
			t.Logf("%s %-10s agreement %.1f%%", spec.Name, m, 100*acc)
		}
	}
}

func TestQuantizeWeights(t *testing.T) {
	ql, err := quantizeLayer([]float32{1, -0.5, 0.25, 0, 0, 0}, []float32{0.1, 0.2}, 2, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int8{127, -64, 32, 0, 0, 0}; !slices.Equal(ql.Weight, want) {
		t.Errorf("weights %v, want %v", ql.Weight, want)
	}
	if ql.Scale[0] != float32(1.0/127) || ql.Scale[1] != 1 {
		t.Errorf("scales %v", ql.Scale)
	}
	if want := []int32{1270, 20}; !slices.Equal(ql.Bias, want) {
		t.Errorf("bias %v, want %v", ql.Bias, want)
	}
	if _, err := quantizeLayer([]float32{1e-30}, []float32{1e10}, 1, 1e-30); err == nil {
		t.Error("an int32 bias overflow was not reported")
	}
}

type failingCalib struct{}

func (failingCalib) Next() ([][]float32, error) { return nil, errors.New("disk on fire") }

func TestQuantizeErrors(t *testing.T) {
	spec := mlpSpec(t)
	w, xs := testNet(t, spec, 4)
	ctx := context.Background()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		calib Calibration
		cfg   Config
	}{
		{"unknown method", ctx, FromSlices(xs, 2), Config{Method: "magic"}},
		{"bad percentile", ctx, FromSlices(xs, 2), Config{Method: Percentile, Percentile: 20}},
		{"no data", ctx, FromSlices(nil, 2), Config{}},
		{"wrong example size", ctx, FromSlices([][]float32{{1, 2}}, 2), Config{}},
		{"calibration error", ctx, failingCalib{}, Config{}},
		{"canceled", canceled, FromSlices(xs, 2), Config{}},
	} {
		if _, err := Quantize(tc.ctx, spec, w, tc.calib, tc.cfg); err == nil {
			t.Errorf("%s: Quantize succeeded", tc.name)
		}
	}
	if _, err := Quantize(ctx, spec, w, FromSlices(nil, 2), Config{}); !errors.Is(err, ErrNoCalibrationData) {
		t.Errorf("no data: err = %v, want ErrNoCalibrationData", err)
	}
	if _, err := Quantize(canceled, spec, w, FromSlices(xs, 2), Config{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err = %v, want context.Canceled", err)
	}
}

// quantizedLayers parses which layers of a program run in INT8 from its
// description.
func quantizedLayers(p infer.Predictor) map[string]bool {
	out := map[string]bool{}
	for _, step := range strings.Split(p.(*infer.Program).String(), " → ") {
		i := strings.Index(step, "[")
		if i < 0 {
			continue
		}
		name := strings.Fields(step[i+1:])[0]
		out[name] = strings.Contains(step, "int8")
	}
	return out
}

func TestWithFallbackSynthetic(t *testing.T) {
	spec, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{8}, Hidden: []int{8, 8}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	w, xs := testNet(t, spec, 16)
	qm, err := Quantize(context.Background(), spec, w, FromSlices(xs, 0), Config{})
	if err != nil {
		t.Fatal(err)
	}
	penalty := map[string]float64{"fc1": 0.05, "fc2": 0.2, "fc3": 0.01}
	eval := func(p infer.Predictor) (float64, error) {
		acc := 1.0
		for name, q := range quantizedLayers(p) {
			if q {
				acc -= penalty[name]
			}
		}
		return acc, nil
	}
	for _, tc := range []struct {
		name      string
		budget    Budget
		wantFloat []string
		wantMet   bool
	}{
		{"within budget", Budget{MaxDrop: 0.3}, nil, true},
		{"one layer", Budget{MaxDrop: 0.1}, []string{"fc2"}, true},
		{"relative", Budget{MaxDrop: 0.04, Relative: true}, []string{"fc2", "fc1"}, true},
		{"one at a time", Budget{MaxDrop: 0.1, Ranking: OneAtATime}, []string{"fc2"}, true},
		{"zero drop", Budget{MaxDrop: 0}, []string{"fc2", "fc1", "fc3"}, true},
		{"unreachable", Budget{MaxDrop: 0.02, MaxFloatLayers: 1}, []string{"fc2"}, false},
	} {
		m, rep, err := WithFallback(context.Background(), qm, w, eval, tc.budget)
		var be *BudgetError
		if tc.wantMet && err != nil || !tc.wantMet && !errors.As(err, &be) {
			t.Fatalf("%s: err = %v", tc.name, err)
		}
		if rep.Met != tc.wantMet || !slices.Equal(rep.FloatLayers, tc.wantFloat) || !slices.Equal(m.Fallback, tc.wantFloat) {
			t.Errorf("%s: met %v float %v (model %v), want %v %v", tc.name, rep.Met, rep.FloatLayers, m.Fallback, tc.wantMet, tc.wantFloat)
		}
		p, err := m.Compile()
		if err != nil {
			t.Fatal(err)
		}
		if acc, _ := eval(p); acc != rep.Accuracy {
			t.Errorf("%s: returned model has accuracy %v, report says %v", tc.name, acc, rep.Accuracy)
		}
		if rep.FP32Accuracy != 1 || math.Abs(rep.Int8Accuracy-0.74) > 1e-9 {
			t.Errorf("%s: report %+v", tc.name, rep)
		}
		if be != nil && (be.Best != rep.Accuracy || !slices.Equal(be.FloatLayers, rep.FloatLayers)) {
			t.Errorf("%s: BudgetError %+v disagrees with report %+v", tc.name, be, rep)
		}
	}
}

func TestWithFallbackReal(t *testing.T) {
	spec := mlpSpec(t)
	w, xs := testNet(t, spec, 300)
	fp, _ := infer.Compile(spec, w)
	qm, err := Quantize(context.Background(), spec, w, FromSlices(xs[:100], 50), Config{Method: MinMax})
	if err != nil {
		t.Fatal(err)
	}
	eval := func(p infer.Predictor) (float64, error) { return agreement(fp, p, xs[100:], spec.Classes) }
	m, rep, err := WithFallback(context.Background(), qm, w, eval, Budget{MaxDrop: 0})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Met || rep.Accuracy != 1 {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("INT8 agreement %.3f; float layers %v; sensitivity %+v", rep.Int8Accuracy, m.Fallback, rep.Sensitivity)
}

func ExampleQuantize() {
	spec, _ := model.MLP(model.MLPConfig{Name: "tiny", Input: []int{16}, Hidden: []int{32}, Classes: 4})
	w, _ := spec.Init(1)
	rng := rand.New(rand.NewPCG(1, 2))
	examples := make([][]float32, 64)
	for i := range examples {
		examples[i] = make([]float32, 16)
		for j := range examples[i] {
			examples[i][j] = float32(rng.Float64())
		}
	}
	m, err := Quantize(context.Background(), spec, w, FromSlices(examples, 16), Config{Method: Entropy})
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := m.Compile()
	if err != nil {
		fmt.Println(err)
		return
	}
	logits := make([]float32, 4)
	if err := p.Forward(examples[0], 1, logits); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p)
	// Output:
	// quantize[input s=0.003908 z=0] → linear+relu[fc1 16→32 int8→u8] → linear[fc2 32→4 int8→f32]
}

// Issue 15 item 3: a model whose weights are finite but huge overflows in
// calibration. That is an error naming the model, the example and the
// layer, not histograms that drop the NaNs and a model of garbage.
func TestQuantizeNonFinite(t *testing.T) {
	spec := mlpSpec(t)
	w, xs := testNet(t, spec, 8)
	huge := model.Weights{}
	for n, tn := range w {
		d := slices.Clone(tn.Data)
		for i := range d {
			d[i] = 3e38
		}
		huge[n] = model.Tensor{Shape: tn.Shape, Data: d}
	}
	_, err := Quantize(context.Background(), spec, huge, FromSlices(xs, 3), Config{Method: Entropy})
	if err == nil || !strings.Contains(err.Error(), `model "mlp": calibration example 0: layer "fc1" output 0 is +Inf`) {
		t.Errorf("huge weights: %v", err)
	}
	bad := slices.Clone(xs)
	bad[4] = slices.Clone(bad[4])
	bad[4][7] = float32(math.NaN())
	_, err = Quantize(context.Background(), spec, w, FromSlices(bad, 3), Config{})
	if err == nil || !strings.Contains(err.Error(), "calibration example 4: input 7 is NaN") {
		t.Errorf("NaN input: %v", err)
	}
}
