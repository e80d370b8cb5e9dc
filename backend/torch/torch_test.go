//go:build torch

package torch

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// testDevice is where the tests run: $DISTILL_TORCH_TEST_DEVICE (e.g.
// cuda), default cpu.
func testDevice() string {
	if d := os.Getenv("DISTILL_TORCH_TEST_DEVICE"); d != "" {
		return d
	}
	return "cpu"
}

// tol scales a CPU tolerance for the test device: cuDNN convolutions use
// TF32 (10-bit mantissa) by default, as in PyTorch.
func tol(cpu float64) float64 {
	if strings.HasPrefix(testDevice(), "cuda") || testDevice() == "auto" {
		return cpu * 300
	}
	return cpu
}

func openTest(t testing.TB) *Backend {
	t.Helper()
	b, err := Open(backend.Options{Device: testDevice()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func load(t testing.TB, b *Backend, spec model.Spec, w model.Weights) *Model {
	t.Helper()
	m, err := b.Load(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m.(*Model)
}

// mustTrainer is b.NewTrainer(m, cfg), failing t on an error; the trainer
// is closed when the test ends.
func mustTrainer(t testing.TB, b *Backend, m backend.Model, cfg backend.TrainConfig) backend.Trainer {
	t.Helper()
	tr, err := b.NewTrainer(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func randn(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

func randLabels(rng *rand.Rand, n, k int) []int32 {
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(rng.IntN(k))
	}
	return y
}

// randMasks draws inverted-dropout masks for spec's dropout layers.
func randMasks(rng *rand.Rand, spec model.Spec, n int) [][]float32 {
	dl, shapes, err := spec.DropoutLayers()
	if err != nil {
		panic(err)
	}
	var ms [][]float32
	for i, l := range dl {
		m := make([]float32, n*model.Numel(shapes[i]))
		for j := range m {
			if rng.Float64() >= l.Rate {
				m[j] = float32(1 / (1 - l.Rate))
			}
		}
		ms = append(ms, m)
	}
	return ms
}

// closeTo reports whether got is within tol of want, relative to
// max(1, |want|).
func closeTo(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func maxDiff(a []float32, b []float64) (float64, int) {
	worst, at := 0.0, -1
	for i := range b {
		d := math.Abs(float64(a[i])-b[i]) / math.Max(1, math.Abs(b[i]))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	return worst, at
}

func tinyMLP(t testing.TB) model.Spec {
	spec, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{12}, Hidden: []int{16, 8}, Classes: 5, Activation: model.KindTanh, Dropout: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	// Use every activation kind.
	_, i, _ := spec.Layer("act2")
	spec.Layers[i].Kind = model.KindSigmoid
	return spec
}

func tinyCNN(t testing.TB) model.Spec {
	spec, err := model.CNN(model.CNNConfig{
		Name:  "cnn",
		Input: []int{2, 9, 9},
		Conv: []model.ConvBlock{
			{Channels: 4, Kernel: 3, Stride: 1, Padding: 1, Pool: 2},
			{Channels: 3, Kernel: 2, Stride: 2},
		},
		Hidden:  []int{7},
		Classes: 4,
		Dropout: 0.25,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A pooling layer with an explicit stride smaller than its kernel.
	_, i, _ := spec.Layer("act_conv2")
	spec.Layers = slices.Insert(spec.Layers, i+1, model.Layer{Name: "pool_extra", Kind: model.KindMaxPool, Kernel: 2, Stride: 1})
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestRegistered(t *testing.T) {
	if !slices.Contains(backend.Names(), Name) {
		t.Fatalf("backend.Names() = %v, want %q registered", backend.Names(), Name)
	}
	b, err := backend.Open(Name, backend.Options{Device: "cpu", Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != "torch" || b.Device() != "cpu" {
		t.Errorf("Name, Device = %q, %q", b.Name(), b.Device())
	}
	if n, err := b.(*Backend).Threads(); err != nil || n != 2 {
		t.Errorf("Threads() = %d, %v after Options.Threads = 2", n, err)
	}
	// The libtorch this test binary loaded has a version somewhere
	// libtorchVersion looks (Debian's file names, a wheel's version.py,
	// an archive's build-version); the report names it.
	if lib := b.(backend.Library).Library(); !strings.HasPrefix(lib, "libtorch ") || len(lib) < len("libtorch 1.0") {
		t.Errorf("Library() = %q, want libtorch and its version", lib)
	}
}

func TestDevices(t *testing.T) {
	b, err := Open(backend.Options{Device: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	auto := b.Device()
	b.Close()
	if auto != "cpu" && auto != "cuda:0" {
		t.Errorf("auto device = %q", auto)
	}
	for _, d := range []string{"tpu", "cuda:x", "cuda:-1", "cuda:99"} {
		if b, err := Open(backend.Options{Device: d}); err == nil {
			b.Close()
			t.Errorf("device %q: no error", d)
		}
	}
	if auto == "cpu" {
		_, err := Open(backend.Options{Device: "cuda"})
		if err == nil || !strings.Contains(err.Error(), "CUDA") {
			t.Errorf("cuda on a machine without CUDA: err = %v", err)
		}
	}
}

func TestForwardMatchesPlainGo(t *testing.T) {
	b := openTest(t)
	for _, spec := range []model.Spec{tinyMLP(t), tinyCNN(t)} {
		t.Run(spec.Name, func(t *testing.T) {
			w, err := spec.Init(7)
			if err != nil {
				t.Fatal(err)
			}
			m := load(t, b, spec, w)
			rng := rand.New(rand.NewPCG(1, 2))
			n := 6
			x := randn(rng, n*model.Numel(spec.Input), 1)
			out := make([]float32, n*spec.Classes)
			if err := m.Forward(x, n, out); err != nil {
				t.Fatal(err)
			}
			want := refForward(spec, weights64(w), x, n, nil)
			if d, i := maxDiff(out, want); d > tol(1e-5) {
				t.Errorf("logit %d = %v, plain Go %v (rel diff %.2g)", i, out[i], want[i], d)
			}
		})
	}
}

func TestForwardFeatures(t *testing.T) {
	b := openTest(t)
	spec := tinyCNN(t)
	w, _ := spec.Init(4)
	m := load(t, b, spec, w)
	rng := rand.New(rand.NewPCG(3, 3))
	const n = 3
	x := randn(rng, n*model.Numel(spec.Input), 1)
	shapes, _ := spec.Shapes()
	names := []string{"pool1", "conv1", "flatten", "pool1", "drop1"}
	feats := make([][]float32, len(names))
	for i, name := range names {
		_, j, _ := spec.Layer(name)
		feats[i] = make([]float32, n*model.Numel(shapes[j]))
	}
	logits := make([]float32, n*spec.Classes)
	if err := m.ForwardFeatures(x, n, names, logits, feats); err != nil {
		t.Fatal(err)
	}
	ref := refLayers(spec, weights64(w), x, n, nil)
	for i, name := range names {
		_, j, _ := spec.Layer(name)
		if d, at := maxDiff(feats[i], ref[j]); d > tol(1e-5) {
			t.Errorf("layer %s value %d = %v, plain Go %v", name, at, feats[i][at], ref[j][at])
		}
	}
	if d, at := maxDiff(logits, ref[len(ref)-1]); d > tol(1e-5) {
		t.Errorf("logit %d = %v, plain Go %v", at, logits[at], ref[len(ref)-1][at])
	}
	if err := m.ForwardFeatures(x, n, []string{"nope"}, nil, [][]float32{nil}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown layer: err = %v", err)
	}
	if err := m.ForwardFeatures(x, n, []string{"conv1"}, nil, [][]float32{make([]float32, 5)}); err == nil {
		t.Error("short feature buffer: no error")
	}
}

// TestForwardSizes: Forward and ForwardFeatures reject a batch that does
// not fit the buffers they were given, naming the sizes; ForwardFeatures
// takes nil logits, Forward does not.
func TestForwardSizes(t *testing.T) {
	b := openTest(t)
	spec := tinyMLP(t) // 12 inputs, 5 classes
	w, _ := spec.Init(5)
	m := load(t, b, spec, w)
	x, out := make([]float32, 2*12), make([]float32, 2*5)
	feats := [][]float32{make([]float32, 2*16)}
	for _, c := range []struct {
		name string
		call func() error
		want string // "" for no error
	}{
		{"Forward", func() error { return m.Forward(x, 2, out) }, ""},
		{"Forward of 0", func() error { return m.Forward(x, 0, out) }, "Forward of 0 examples"},
		{"Forward short input", func() error { return m.Forward(x[:23], 2, out) }, "Forward of 2 examples needs 24 inputs and room for 10 logits, got 23 and 10"},
		{"Forward short logits", func() error { return m.Forward(x, 2, out[:9]) }, "got 24 and 9"},
		{"Forward nil logits", func() error { return m.Forward(x, 2, nil) }, "got 24 and 0"},
		{"ForwardFeatures", func() error { return m.ForwardFeatures(x, 2, []string{"fc1"}, out, feats) }, ""},
		{"ForwardFeatures nil logits", func() error { return m.ForwardFeatures(x, 2, []string{"fc1"}, nil, feats) }, ""},
		{"ForwardFeatures of -1", func() error { return m.ForwardFeatures(x, -1, []string{"fc1"}, nil, feats) }, "ForwardFeatures of -1 examples"},
		{"ForwardFeatures short input", func() error { return m.ForwardFeatures(x[:1], 2, []string{"fc1"}, nil, feats) }, "ForwardFeatures of 2 examples needs 24 inputs"},
		{"ForwardFeatures short logits", func() error { return m.ForwardFeatures(x, 2, []string{"fc1"}, out[:3], feats) }, "got 24 and 3"},
	} {
		err := c.call()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestWeightsRoundTrip(t *testing.T) {
	b := openTest(t)
	spec := tinyCNN(t)
	w, err := spec.Init(3)
	if err != nil {
		t.Fatal(err)
	}
	orig := w.Clone()
	m := load(t, b, spec, w)
	for k := range w { // Load must have copied
		w[k].Data[0] = 42
	}
	got, err := m.Weights()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Check(got); err != nil {
		t.Fatal(err)
	}
	for k, want := range orig {
		if !slices.Equal(got[k].Data, want.Data) || !slices.Equal(got[k].Shape, want.Shape) {
			t.Errorf("%s differs after the round trip", k)
		}
	}
	bad := orig.Clone()
	delete(bad, "conv1.bias")
	if _, err := b.Load(spec, bad); err == nil || !strings.Contains(err.Error(), "conv1.bias") {
		t.Errorf("Load with a missing tensor: err = %v", err)
	}
}

// identitySpec is a linear layer whose weights start as the identity, so
// that with zero bias the logits are the inputs: the loss and gradients
// can be compared with loss.Objective.Compute on fixed logits.
func identitySpec(k int) (model.Spec, model.Weights) {
	spec := model.Spec{Name: "id", Input: []int{k}, Classes: k, Layers: []model.Layer{{Name: "fc", Kind: model.KindLinear, Out: k}}}
	w := model.Weights{"fc.weight": model.NewTensor(k, k), "fc.bias": model.NewTensor(k)}
	for i := 0; i < k; i++ {
		w["fc.weight"].Data[i*k+i] = 1
	}
	return spec, w
}

func TestLossAndGradientsMatchReference(t *testing.T) {
	b := openTest(t)
	const n, k = 9, 6
	rng := rand.New(rand.NewPCG(5, 6))
	logits := randn(rng, n*k, 3)
	logits[4] = 25 // a confident row
	teacher := randn(rng, n*k, 4)
	labels := randLabels(rng, n, k)
	for _, obj := range []loss.Objective{loss.CrossEntropyOnly, loss.Hinton(0.9, 4), loss.Hinton(1, 2), loss.Hinton(0.3, 1)} {
		t.Run(fmt.Sprintf("hard%v_soft%v_T%v", obj.HardWeight, obj.SoftWeight, obj.Temperature), func(t *testing.T) {
			spec, w := identitySpec(k)
			m := load(t, b, spec, w)
			// SGD with lr 1 and no momentum: Δparam = −gradient.
			tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: obj, Optimizer: backend.Optimizer{Kind: backend.SGD}})
			var tl []float32
			if obj.NeedsTeacher() {
				tl = teacher
			}
			grad := make([]float32, n*k)
			want, err := obj.Compute(logits, tl, labels, n, k, grad)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tr.Step(&backend.Batch{N: n, X: logits, Labels: labels, TeacherLogits: tl, LR: 1})
			if err != nil {
				t.Fatal(err)
			}
			if !closeTo(got.Total, want.Total, tol(1e-5)) || !closeTo(got.Hard, want.Hard, tol(1e-5)) || !closeTo(got.Soft, want.Soft, tol(1e-5)) {
				t.Errorf("loss = %+v, loss.Objective.Compute = %+v", got, want)
			}
			after, err := m.Weights()
			if err != nil {
				t.Fatal(err)
			}
			// d/db = Σ_rows g; d/dW[o][j] = Σ_rows g[o]·x[j].
			for o := 0; o < k; o++ {
				var gb float64
				for r := 0; r < n; r++ {
					gb += float64(grad[r*k+o])
				}
				if gotB := -float64(after["fc.bias"].Data[o]); math.Abs(gotB-gb) > tol(1e-5) {
					t.Errorf("dL/dbias[%d] = %v, reference %v", o, gotB, gb)
				}
				for j := 0; j < k; j++ {
					var gw float64
					for r := 0; r < n; r++ {
						gw += float64(grad[r*k+o]) * float64(logits[r*k+j])
					}
					gotW := float64(w["fc.weight"].Data[o*k+j] - after["fc.weight"].Data[o*k+j])
					if math.Abs(gotW-gw) > tol(1e-4)*math.Max(1, math.Abs(gw)) {
						t.Errorf("dL/dW[%d][%d] = %v, reference %v", o, j, gotW, gw)
					}
				}
			}
		})
	}
}

// TestOptimizersMatchReference trains a linear model with dropout on its
// input for several steps and compares every step's loss and the final
// weights and optimiser state with a float64 reference of the same
// model, objective and optimiser.
func TestOptimizersMatchReference(t *testing.T) {
	b := openTest(t)
	const n, d, k, steps = 8, 7, 4, 6
	spec := model.Spec{Name: "lin", Input: []int{d}, Classes: k, Layers: []model.Layer{
		{Name: "drop", Kind: model.KindDropout, Rate: 0.2},
		{Name: "fc", Kind: model.KindLinear, Out: k},
	}}
	opts := []backend.Optimizer{
		{Kind: backend.Adam},
		{Kind: backend.Adam, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.01},
		{Kind: backend.SGD},
		{Kind: backend.SGD, Momentum: 0.9, WeightDecay: 1e-3},
		{Kind: backend.SGD, Momentum: 0.5, Nesterov: true, WeightDecay: 0.1},
	}
	for _, opt := range opts {
		t.Run(fmt.Sprintf("%s_mom%v_nest%v_wd%v", opt.Kind, opt.Momentum, opt.Nesterov, opt.WeightDecay), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, 10))
			w, _ := spec.Init(11)
			m := load(t, b, spec, w)
			obj := loss.Hinton(0.7, 2)
			tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: obj, Optimizer: opt})
			W := make([]float64, k*d)
			B := make([]float64, k)
			for i := range W {
				W[i] = float64(w["fc.weight"].Data[i])
			}
			for i := range B {
				B[i] = float64(w["fc.bias"].Data[i])
			}
			ref := newRefOptimizer(opt, []int{k * d, k})
			for step := 0; step < steps; step++ {
				x := randn(rng, n*d, 1)
				y := randLabels(rng, n, k)
				tl := randn(rng, n*k, 2)
				masks := randMasks(rng, spec, n)
				lr := 0.05 / float64(step+1) // a schedule: LR changes every step
				got, err := tr.Step(&backend.Batch{N: n, X: x, Labels: y, TeacherLogits: tl, Masks: masks, LR: lr})
				if err != nil {
					t.Fatal(err)
				}
				// Reference forward and gradients.
				xm := make([]float64, n*d)
				for i := range xm {
					xm[i] = float64(x[i]) * float64(masks[0][i])
				}
				logits := make([]float32, n*k)
				for r := 0; r < n; r++ {
					for o := 0; o < k; o++ {
						s := B[o]
						for j := 0; j < d; j++ {
							s += W[o*d+j] * xm[r*d+j]
						}
						logits[r*k+o] = float32(s)
					}
				}
				g := make([]float32, n*k)
				want, err := obj.Compute(logits, tl, y, n, k, g)
				if err != nil {
					t.Fatal(err)
				}
				if !closeTo(got.Total, want.Total, tol(1e-5)) {
					t.Fatalf("step %d: loss %v, reference %v", step, got.Total, want.Total)
				}
				gW := make([]float64, k*d)
				gB := make([]float64, k)
				for r := 0; r < n; r++ {
					for o := 0; o < k; o++ {
						gB[o] += float64(g[r*k+o])
						for j := 0; j < d; j++ {
							gW[o*d+j] += float64(g[r*k+o]) * xm[r*d+j]
						}
					}
				}
				ref.update([][]float64{W, B}, [][]float64{gW, gB}, lr)
			}
			after, err := m.Weights()
			if err != nil {
				t.Fatal(err)
			}
			if dd, i := maxDiff(after["fc.weight"].Data, W); dd > tol(1e-4) {
				t.Errorf("fc.weight[%d] = %v, reference %v", i, after["fc.weight"].Data[i], W[i])
			}
			if dd, i := maxDiff(after["fc.bias"].Data, B); dd > tol(1e-4) {
				t.Errorf("fc.bias[%d] = %v, reference %v", i, after["fc.bias"].Data[i], B[i])
			}
			st, err := tr.State()
			if err != nil {
				t.Fatal(err)
			}
			if st.Step != steps {
				t.Errorf("state step = %d, want %d", st.Step, steps)
			}
			slots := map[backend.OptimizerKind][]string{backend.Adam: {"m", "v"}, backend.SGD: {}}[opt.Kind]
			if opt.Momentum > 0 {
				slots = []string{"momentum"}
			}
			if len(st.Tensors) != 2*len(slots) {
				t.Errorf("state has %d tensors, want %d (%v)", len(st.Tensors), 2*len(slots), slots)
			}
			for _, slot := range slots {
				for i, p := range []string{"fc.weight", "fc.bias"} {
					got := st.Tensors[slot+"/"+p]
					if dd, j := maxDiff(got.Data, ref.state[slot][i]); dd > tol(1e-4) {
						t.Errorf("%s/%s[%d] = %v, reference %v", slot, p, j, got.Data[j], ref.state[slot][i][j])
					}
				}
			}
		})
	}
}

// refLoss is the objective of the float64 reference forward pass.
func refLoss(spec model.Spec, w map[string][]float64, bt *backend.Batch, obj loss.Objective) float64 {
	logits := refForward(spec, w, bt.X, bt.N, bt.Masks)
	// loss.Objective.Compute takes float32 logits; float64 keeps finite
	// differences accurate, so compute the objective here in float64.
	k := spec.Classes
	var total float64
	for r := 0; r < bt.N; r++ {
		row := logits[r*k : (r+1)*k]
		lse := func(T float64) (float64, []float64) {
			m := math.Inf(-1)
			for _, v := range row {
				m = math.Max(m, v/T)
			}
			var s float64
			for _, v := range row {
				s += math.Exp(v/T - m)
			}
			l := m + math.Log(s)
			ls := make([]float64, k)
			for j, v := range row {
				ls[j] = v/T - l
			}
			return l, ls
		}
		_, ls1 := lse(1)
		total += obj.HardWeight * -ls1[bt.Labels[r]]
		if obj.SoftWeight > 0 {
			T := obj.Temperature
			_, lst := lse(T)
			tl := make([]float32, k)
			copy(tl, bt.TeacherLogits[r*k:(r+1)*k])
			pt := loss.Softmax(tl, T)
			var kl float64
			for j := range pt {
				kl += pt[j] * (math.Log(pt[j]) - lst[j])
			}
			total += obj.SoftWeight * T * T * kl
		}
	}
	return total / float64(bt.N)
}

// TestGradientsFiniteDifferences checks the backward pass through every
// layer kind (conv with padding and stride, max-pool, dropout masks, all
// activations): the gradient from one SGD step with lr 1 must match central
// differences of the float64 reference loss along a random direction, for
// each parameter tensor.
func TestGradientsFiniteDifferences(t *testing.T) {
	b := openTest(t)
	obj := loss.Hinton(0.6, 3)
	for _, spec := range []model.Spec{tinyMLP(t), tinyCNN(t)} {
		t.Run(spec.Name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(36, 22)) // data 1e-3 away from any kink (see refKinkMargin)
			w, _ := spec.Init(5)
			const n = 5
			bt := &backend.Batch{
				N: n, X: randn(rng, n*model.Numel(spec.Input), 1), Labels: randLabels(rng, n, spec.Classes),
				TeacherLogits: randn(rng, n*spec.Classes, 2), Masks: randMasks(rng, spec, n), LR: 1,
			}
			if mg := refKinkMargin(spec, weights64(w), bt.X, n, bt.Masks); mg < 1e-4 {
				t.Fatalf("the test data is %.2g from a ReLU or max-pool kink, where float32 and float64 gradients may legitimately differ: pick other seeds", mg)
			}
			m := load(t, b, spec, w)
			tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: obj, Optimizer: backend.Optimizer{Kind: backend.SGD}})
			v, err := tr.Step(bt)
			if err != nil {
				t.Fatal(err)
			}
			w64 := weights64(w)
			if want := refLoss(spec, w64, bt, obj); !closeTo(v.Total, want, tol(1e-5)) {
				t.Errorf("loss %v, reference %v", v.Total, want)
			}
			after, err := m.Weights()
			if err != nil {
				t.Fatal(err)
			}
			// A small step, as ReLU and max-pool make the loss piecewise
			// smooth; the float64 reference keeps rounding error near 1e-9.
			const h = 1e-7
			for name, p := range w {
				u := randn(rng, len(p.Data), 1)
				var dir float64 // g·u from the step: g = w − w'
				for i := range u {
					dir += float64(p.Data[i]-after[name].Data[i]) * float64(u[i])
				}
				shift := func(s float64) map[string][]float64 {
					c := weights64(w)
					for i := range u {
						c[name][i] += s * float64(u[i])
					}
					return c
				}
				fd := (refLoss(spec, shift(h), bt, obj) - refLoss(spec, shift(-h), bt, obj)) / (2 * h)
				if math.Abs(dir-fd) > tol(1e-4)*math.Max(1, math.Abs(fd)) {
					t.Errorf("%s: gradient·u = %v, finite differences %v", name, dir, fd)
				}
			}
		})
	}
}

func TestTrainingLowersLoss(t *testing.T) {
	b := openTest(t)
	spec, err := model.MLP(model.MLPConfig{Name: "blobs", Input: []int{10}, Hidden: []int{32}, Classes: 3, Dropout: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := spec.Init(1)
	m := load(t, b, spec, w)
	tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: 32, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.Adam}})
	rng := rand.New(rand.NewPCG(3, 4))
	centers := randn(rng, 3*10, 2)
	batch := func() *backend.Batch {
		bt := &backend.Batch{N: 32, X: make([]float32, 32*10), Labels: randLabels(rng, 32, 3), LR: 0.01, Masks: randMasks(rng, spec, 32)}
		for r, y := range bt.Labels {
			for j := 0; j < 10; j++ {
				bt.X[r*10+j] = centers[int(y)*10+j] + float32(rng.NormFloat64()*0.5)
			}
		}
		return bt
	}
	var first, last float64
	for i := 0; i < 150; i++ {
		v, err := tr.Step(batch())
		if err != nil {
			t.Fatal(err)
		}
		if i < 10 {
			first += v.Total / 10
		}
		if i >= 140 {
			last += v.Total / 10
		}
	}
	if !(last < first/4) {
		t.Errorf("mean loss of the first 10 steps %.4f, of the last 10 %.4f: want at least 4× lower", first, last)
	}
	// The trained model classifies held-out examples.
	bt := batch()
	out := make([]float32, 32*3)
	if err := m.Forward(bt.X, 32, out); err != nil {
		t.Fatal(err)
	}
	right := 0
	for r, y := range bt.Labels {
		if slices.Index(out[r*3:r*3+3], slices.Max(out[r*3:r*3+3])) == int(y) {
			right++
		}
	}
	if right < 28 {
		t.Errorf("%d/32 held-out examples right after training", right)
	}
}

// TestStateRoundTrip: a second trainer given the first one's weights and
// state continues exactly as the first.
func TestStateRoundTrip(t *testing.T) {
	b := openTest(t)
	spec := tinyMLP(t)
	w, _ := spec.Init(2)
	rng := rand.New(rand.NewPCG(7, 8))
	n := 4
	batches := make([]*backend.Batch, 5)
	for i := range batches {
		batches[i] = &backend.Batch{N: n, X: randn(rng, n*12, 1), Labels: randLabels(rng, n, 5), Masks: randMasks(rng, spec, n), LR: 0.01}
	}
	for _, opt := range []backend.Optimizer{{Kind: backend.Adam, WeightDecay: 1e-4}, {Kind: backend.SGD, Momentum: 0.9, Nesterov: true}} {
		t.Run(string(opt.Kind), func(t *testing.T) {
			cfg := backend.TrainConfig{MaxBatch: n, Objective: loss.CrossEntropyOnly, Optimizer: opt}
			m1 := load(t, b, spec, w)
			t1 := mustTrainer(t, b, m1, cfg)
			for _, bt := range batches[:3] {
				if _, err := t1.Step(bt); err != nil {
					t.Fatal(err)
				}
			}
			st, err := t1.State()
			if err != nil {
				t.Fatal(err)
			}
			w1, _ := m1.Weights()
			m2 := load(t, b, spec, w1)
			t2 := mustTrainer(t, b, m2, cfg)
			if err := t2.SetState(st); err != nil {
				t.Fatal(err)
			}
			for i, bt := range batches[3:] {
				v1, err1 := t1.Step(bt)
				v2, err2 := t2.Step(bt)
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				if !closeTo(v1.Total, v2.Total, tol(1e-9)) || !closeTo(v1.Hard, v2.Hard, tol(1e-9)) {
					t.Errorf("step %d after restoring: loss %+v, original trainer %+v", i+3, v2, v1)
				}
			}
			a, _ := m1.Weights()
			c, _ := m2.Weights()
			for k := range a {
				if d, _ := maxDiff(a[k].Data, f64(c[k].Data)); d > tol(1e-8) {
					t.Errorf("%s differs between the original and the restored trainer", k)
				}
			}
			// A state of the wrong shape is refused with the names at fault.
			bad := backend.OptimizerState{Step: 1, Tensors: model.Weights{"x/fc1.weight": model.NewTensor(1)}}
			if err := t2.SetState(bad); err == nil || !strings.Contains(err.Error(), "x/fc1.weight") {
				t.Errorf("SetState(bad) = %v", err)
			}
		})
	}
}

func TestStepErrors(t *testing.T) {
	b := openTest(t)
	spec := tinyMLP(t)
	w, _ := spec.Init(1)
	m := load(t, b, spec, w)
	tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: 4, Objective: loss.Hinton(0.5, 2), Optimizer: backend.Optimizer{Kind: backend.Adam}})
	rng := rand.New(rand.NewPCG(1, 1))
	good := func() *backend.Batch {
		return &backend.Batch{N: 4, X: randn(rng, 48, 1), Labels: randLabels(rng, 4, 5), TeacherLogits: randn(rng, 20, 1), LR: 0.1}
	}
	cases := map[string]func(*backend.Batch){
		"too big":         func(b *backend.Batch) { b.N = 5 },
		"short X":         func(b *backend.Batch) { b.X = b.X[:40] },
		"bad label":       func(b *backend.Batch) { b.Labels[2] = 5 },
		"no teacher":      func(b *backend.Batch) { b.TeacherLogits = nil },
		"masks count":     func(b *backend.Batch) { b.Masks = [][]float32{make([]float32, 64)} },
		"negative LR":     func(b *backend.Batch) { b.LR = -1 },
		"short mask":      func(b *backend.Batch) { b.Masks = randMasks(rng, spec, 3) },
		"not finite loss": func(b *backend.Batch) { b.X[0] = float32(math.NaN()) },
	}
	for name, mutate := range cases {
		bt := good()
		mutate(bt)
		if _, err := tr.Step(bt); err == nil {
			t.Errorf("%s: no error", name)
		} else if name == "not finite loss" {
			var nf *loss.NonFiniteError
			if !errors.As(err, &nf) {
				t.Errorf("%s: err = %v, want a *loss.NonFiniteError", name, err)
			}
		}
	}
	// The failed steps left the weights alone.
	after, _ := m.Weights()
	for k := range w {
		if !slices.Equal(after[k].Data, w[k].Data) {
			t.Errorf("%s changed by failed steps", k)
		}
	}
	if _, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: 1, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: "rmsprop"}}); err == nil {
		t.Error("unknown optimizer accepted")
	}
	if _, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: 1, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.SGD, Nesterov: true}}); err == nil {
		t.Error("Nesterov without momentum accepted")
	}
	if _, err := tr.Step(good()); err != nil {
		t.Fatalf("a good step after the failures: %v", err)
	}
}

func TestUseAfterClose(t *testing.T) {
	b, err := Open(backend.Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	spec := tinyMLP(t)
	w, _ := spec.Init(1)
	m, err := b.Load(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: 1, Objective: loss.CrossEntropyOnly})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Forward(make([]float32, 12), 1, make([]float32, 5)); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Close: %v", err)
	}
	if _, err := tr.Step(&backend.Batch{N: 1, X: make([]float32, 12), Labels: []int32{0}, LR: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Step after the model's Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("trainer Close after the model's: %v", err)
	}
	b.Close()
	if _, err := b.Load(spec, w); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after the backend's Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("trainer Close after the backend's: %v", err)
	}
}

// TestConcurrentUse: goroutines sharing a backend are serialised on its
// thread; a second backend runs on its own thread at the same time.
func TestConcurrentUse(t *testing.T) {
	b1, b2 := openTest(t), openTest(t)
	spec := tinyCNN(t)
	w, _ := spec.Init(9)
	m1, m2 := load(t, b1, spec, w), load(t, b2, spec, w)
	rng := rand.New(rand.NewPCG(4, 4))
	const n = 4
	x := randn(rng, n*model.Numel(spec.Input), 1)
	want := make([]float32, n*spec.Classes)
	if err := m1.Forward(x, n, want); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		m := m1
		if g%2 == 1 {
			m = m2
		}
		go func() {
			out := make([]float32, n*spec.Classes)
			for i := 0; i < 20; i++ {
				if err := m.Forward(x, n, out); err != nil {
					errs <- err
					return
				}
				if !slices.Equal(out, want) {
					errs <- fmt.Errorf("concurrent Forward gave %v, want %v", out, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
