// Package backendtest is the conformance suite that every backend must
// pass: the same inputs give the same logits, loss values and gradients
// as a plain-Go float64 reference, within tolerance.
package backendtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// Specs are the small architectures the suite runs: one of each layer kind.
func Specs(t testing.TB) []model.Spec {
	mlp, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{7}, Hidden: []int{6, 5}, Classes: 4, Dropout: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	tanh, err := model.MLP(model.MLPConfig{Name: "tanh", Input: []int{1, 3, 3}, Hidden: []int{5}, Classes: 3, Activation: model.KindSigmoid, InputDropout: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	cnn, err := model.CNN(model.CNNConfig{Name: "cnn", Input: []int{2, 6, 6},
		Conv:   []model.ConvBlock{{Channels: 3, Kernel: 3, Padding: 1, Pool: 2}, {Channels: 2, Kernel: 2, Stride: 1}},
		Hidden: []int{5}, Classes: 3, Activation: model.KindTanh})
	if err != nil {
		t.Fatal(err)
	}
	return []model.Spec{mlp, tanh, cnn}
}

// Inputs draws n random examples, labels and teacher logits for spec.
func Inputs(spec model.Spec, n int, seed uint64) (x []float32, y []int32, teacher []float32) {
	rng := rand.New(rand.NewPCG(seed, 7))
	x = make([]float32, n*model.Numel(spec.Input))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y = make([]int32, n)
	for i := range y {
		y[i] = int32(rng.IntN(spec.Classes))
	}
	teacher = make([]float32, n*spec.Classes)
	for i := range teacher {
		teacher[i] = float32(3 * rng.NormFloat64())
	}
	return x, y, teacher
}

// Masks draws dropout masks for n examples as a training loop would.
func Masks(t testing.TB, spec model.Spec, n int, seed uint64) [][]float32 {
	layers, shapes, err := spec.DropoutLayers()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	var ms [][]float32
	for i, l := range layers {
		m := make([]float32, n*model.Numel(shapes[i]))
		keep := float32(1 / (1 - l.Rate))
		for j := range m {
			if rng.Float64() >= l.Rate {
				m[j] = keep
			}
		}
		ms = append(ms, m)
	}
	return ms
}

func close(a, b, rel, abs float64) bool {
	return math.Abs(a-b) <= abs+rel*math.Max(math.Abs(a), math.Abs(b))
}

// mustFall calls step steps times and fails unless the last value it
// returns is below the first divided by factor: how the learning tests see
// progress without pinning a trajectory, which differs between backends.
func mustFall(t *testing.T, what string, steps int, factor float64, step func() float64) {
	t.Helper()
	var first, last float64
	for i := 0; i < steps; i++ {
		v := step()
		if i == 0 {
			first = v
		}
		last = v
	}
	if !(last < first/factor) {
		t.Fatalf("%s went from %v to %v in %d steps; want at least %v× lower", what, first, last, steps, factor)
	}
}

// Run runs the suite against the backend that open returns.
func Run(t *testing.T, open func(t *testing.T) backend.Backend) {
	for _, c := range slices.Concat(checks, featureChecks) {
		t.Run(c.name, func(t *testing.T) { c.run(t, open(t)) })
	}
}

// Registered is an open function for Run: it opens the backend registered
// as name with opts, and closes it when the subtest ends.
func Registered(name string, opts backend.Options) func(t *testing.T) backend.Backend {
	return func(t *testing.T) backend.Backend {
		b, err := backend.Open(name, opts)
		if err != nil {
			t.Fatalf("opening backend %q: %v", name, err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
}

// check is one test of the suite; each runs as a subtest on a fresh
// backend.
type check struct {
	name string
	run  func(*testing.T, backend.Backend)
}

var checks = []check{
	{"Forward", testForward},
	{"WeightsRoundTrip", testWeights},
	{"LossAndGradients", testGradients},
	{"RunningStatistics", testRunning},
	{"MatchesPyTorch", testTorchGoldens},
	{"PartialBatch", testPartialBatch},
	{"AdamFirstStep", testAdam},
	{"OptimizerState", testState},
	{"LearnsSeparableData", testLearns},
	{"MaxNorm", testMaxNorm},
}

// specWeights is a spec with the weights a check starts from.
type specWeights struct {
	spec model.Spec
	w    model.Weights
}

// allSpecs is Specs then GraphSpecs, each with the weights
// spec.Init(seed) makes, the graph specs' batchnorms randomised
// (RandomizeBatchNorm) so that running and batch statistics differ.
func allSpecs(t *testing.T, seed uint64) []specWeights {
	t.Helper()
	var out []specWeights
	for _, spec := range Specs(t) {
		w, err := spec.Init(seed)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, specWeights{spec, w})
	}
	for _, spec := range GraphSpecs(t) {
		w, err := spec.Init(seed)
		if err != nil {
			t.Fatal(err)
		}
		RandomizeBatchNorm(spec, w, seed)
		out = append(out, specWeights{spec, w})
	}
	return out
}

// load loads spec with the weights spec.Init(seed) makes; the model is
// closed when the test ends.
func load(t *testing.T, b backend.Backend, spec model.Spec, seed uint64) (backend.Model, model.Weights) {
	t.Helper()
	w, err := spec.Init(seed)
	if err != nil {
		t.Fatal(err)
	}
	return loadWeights(t, b, spec, w), w
}

// loadWeights loads spec with w; the model is closed when the test ends.
func loadWeights(t *testing.T, b backend.Backend, spec model.Spec, w model.Weights) backend.Model {
	t.Helper()
	m, err := b.Load(spec, w)
	if err != nil {
		t.Fatalf("Load(%s): %v", spec.Name, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// newTrainer opens a trainer of m; it is closed when the test ends.
func newTrainer(t *testing.T, b backend.Backend, m backend.Model, cfg backend.TrainConfig) backend.Trainer {
	t.Helper()
	tr, err := b.NewTrainer(m, cfg)
	if err != nil {
		t.Fatalf("NewTrainer: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func testForward(t *testing.T, b backend.Backend) {
	for _, sw := range allSpecs(t, 1) {
		spec, w := sw.spec, sw.w
		m := loadWeights(t, b, spec, w)
		for _, n := range []int{1, 5} {
			x, _, _ := Inputs(spec, n, 2)
			got := make([]float32, n*spec.Classes)
			if err := m.Forward(x, n, got); err != nil {
				t.Fatalf("%s Forward(n=%d): %v", spec.Name, n, err)
			}
			want, err := ReferenceForward(spec, w, x, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if !close(float64(got[i]), want[i], 1e-4, 1e-5) {
					t.Fatalf("%s n=%d logit %d = %v, reference %v", spec.Name, n, i, got[i], want[i])
				}
			}
		}
	}
}

// testWeights checks that Weights returns what Load took, buffers (the
// running statistics) included.
func testWeights(t *testing.T, b backend.Backend) {
	for _, sw := range allSpecs(t, 3) {
		spec, w := sw.spec, sw.w
		m := loadWeights(t, b, spec, w)
		got, err := m.Weights()
		if err != nil {
			t.Fatal(err)
		}
		if err := spec.Check(got); err != nil {
			t.Fatalf("%s: Weights() does not fit the spec: %v", spec.Name, err)
		}
		for name, want := range w {
			for i := range want.Data {
				if got[name].Data[i] != want.Data[i] {
					t.Fatalf("%s: %s[%d] = %v after round trip, want %v", spec.Name, name, i, got[name].Data[i], want.Data[i])
				}
			}
		}
	}
}

// referenceLoss is the objective at weights w, all in float64, in
// training mode as Trainer.Step computes it (batchnorms use the batch's
// statistics).
func referenceLoss(t *testing.T, spec model.Spec, w model.Weights, obj loss.Objective, x []float32, y []int32, teacher []float32, n int, masks [][]float32) float64 {
	logits, _, _, err := ReferenceTrainLayers(spec, w, x, n, masks, nil)
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

func sgdStep(t *testing.T, b backend.Backend, m backend.Model, obj loss.Objective, batch *backend.Batch, maxBatch int) loss.Value {
	t.Helper()
	tr := newTrainer(t, b, m, backend.TrainConfig{MaxBatch: maxBatch, Objective: obj, Optimizer: backend.Optimizer{Kind: backend.SGD}})
	v, err := tr.Step(batch)
	if err != nil {
		t.Fatalf("Step: %v", err)
	}
	return v
}

// testGradients checks the loss and gradients of one training step, in
// training mode (batchnorms normalise with the batch's statistics).
func testGradients(t *testing.T, b backend.Backend) {
	objectives := []loss.Objective{loss.CrossEntropyOnly, loss.Hinton(0.7, 3), loss.Hinton(1, 20)}
	for si, sw := range allSpecs(t, 4) {
		spec, w := sw.spec, sw.w
		for oi, obj := range objectives {
			if si >= len(Specs(t)) && oi == 2 {
				break // the graph specs: two objectives keep the suite quick
			}
			const n = 4
			m := loadWeights(t, b, spec, w)
			x, y, teacher := Inputs(spec, n, 5)
			masks := Masks(t, spec, n, 6)
			const lr = 1.0
			v := sgdStep(t, b, m, obj, &backend.Batch{N: n, X: x, Labels: y, TeacherLogits: teacher, Masks: masks, LR: lr}, n)
			want := referenceLoss(t, spec, w, obj, x, y, teacher, n, masks)
			if !close(v.Total, want, 1e-4, 1e-5) {
				t.Errorf("%s objective %d: loss %v, reference %v", spec.Name, oi, v.Total, want)
			}
			if !close(v.Hard+v.Soft, v.Total, 1e-9, 1e-9) {
				t.Errorf("%s objective %d: parts %v + %v do not add to %v", spec.Name, oi, v.Hard, v.Soft, v.Total)
			}
			after, err := m.Weights()
			if err != nil {
				t.Fatal(err)
			}
			// Plain SGD with lr 1: the step is the gradient. Check a sample
			// of every tensor against central differences.
			ps, _ := spec.Params()
			for _, p := range ps {
				w0 := w[p.Name].Data
				for _, i := range sample(len(w0), 12) {
					got := float64(w0[i] - after[p.Name].Data[i])
					const h = 1e-5
					num := numericGrad(t, spec, w, p.Name, i, h, obj, x, y, teacher, n, masks)
					if !close(got, num, 2e-2, 2e-4) {
						t.Errorf("%s objective %d: d loss / d %s[%d] = %v, numeric %v", spec.Name, oi, p.Name, i, got, num)
					}
				}
			}
		}
	}
}

// numericGrad is the central difference of the float64 reference loss
// along one weight. Weights are float32, so the perturbed weights are
// carried as float64 through a scaled copy of the tensor.
func numericGrad(t *testing.T, spec model.Spec, w model.Weights, name string, i int, h float64, obj loss.Objective, x []float32, y []int32, teacher []float32, n int, masks [][]float32) float64 {
	eval := func(delta float64) float64 {
		wp := w.Clone()
		wp[name].Data[i] += float32(delta)
		return referenceLoss(t, spec, wp, obj, x, y, teacher, n, masks)
	}
	// float32 cannot hold w+h exactly: use the actually applied step.
	w0 := w[name].Data[i]
	hp := float64(w0+float32(h)) - float64(w0)
	hm := float64(w0) - float64(w0-float32(h))
	return (eval(h) - eval(-h)) / (hp + hm)
}

func sample(n, k int) []int {
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

// testPartialBatch steps on 3 examples in trainers for 3 and for 8: the
// padding must change nothing, batchnorm statistics (over the 3 real
// examples) and running statistics included.
func testPartialBatch(t *testing.T, b backend.Backend) {
	for _, spec := range append(Specs(t)[:1], GraphSpecs(t)...) {
		obj := loss.Hinton(0.5, 2)
		x, y, teacher := Inputs(spec, 3, 8)
		masks := Masks(t, spec, 3, 9)
		batch := &backend.Batch{N: 3, X: x, Labels: y, TeacherLogits: teacher, Masks: masks, LR: 0.1}
		m1, _ := load(t, b, spec, 10)
		m2, _ := load(t, b, spec, 10)
		v1 := sgdStep(t, b, m1, obj, batch, 3)
		v2 := sgdStep(t, b, m2, obj, batch, 8) // padded
		if !close(v1.Total, v2.Total, 1e-5, 1e-6) {
			t.Fatalf("%s: loss of a 3-example batch: %v in a trainer for 3, %v in a trainer for 8", spec.Name, v1.Total, v2.Total)
		}
		w1, _ := m1.Weights()
		w2, _ := m2.Weights()
		for name, a := range w1 {
			for i := range a.Data {
				if !close(float64(a.Data[i]), float64(w2[name].Data[i]), 1e-4, 1e-6) {
					t.Fatalf("%s: %s[%d] after a padded step = %v, unpadded %v", spec.Name, name, i, w2[name].Data[i], a.Data[i])
				}
			}
		}
	}
}

// testRunning checks the running statistics one Step leaves in
// Model.Weights() against the reference in training mode (PyTorch's
// momentum update, unbiased variance), and that inference afterwards
// uses them.
func testRunning(t *testing.T, b backend.Backend) {
	for _, sw := range allSpecs(t, 43)[len(Specs(t)):] {
		spec, w := sw.spec, sw.w
		const n = 5
		x, y, _ := Inputs(spec, n, 44)
		m := loadWeights(t, b, spec, w)
		sgdStep(t, b, m, loss.CrossEntropyOnly, &backend.Batch{N: n, X: x, Labels: y, LR: 0.5}, n)
		_, _, want, err := ReferenceTrainLayers(spec, w, x, n, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		after, err := m.Weights()
		if err != nil {
			t.Fatal(err)
		}
		bs, _ := spec.Buffers()
		for _, buf := range bs {
			for i, v := range want[buf.Name] {
				if !close(float64(after[buf.Name].Data[i]), v, 1e-4, 1e-6) {
					t.Fatalf("%s: %s[%d] = %v after a step, reference %v (before %v)", spec.Name, buf.Name, i, after[buf.Name].Data[i], v, w[buf.Name].Data[i])
				}
			}
		}
		got := make([]float32, n*spec.Classes)
		if err := m.Forward(x, n, got); err != nil {
			t.Fatal(err)
		}
		logits, err := ReferenceForward(spec, after, x, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range logits {
			if !close(float64(got[i]), logits[i], 1e-4, 1e-5) {
				t.Fatalf("%s: logit %d after a step = %v, reference with the new weights and statistics %v", spec.Name, i, got[i], logits[i])
			}
		}
	}
}

// testTorchGoldens checks the backend against PyTorch's results
// (TorchGoldens): inference logits, and one SGD step with lr 1 on the
// cross-entropy, whose loss, gradients (the step) and running statistics
// must be PyTorch's. PyTorch ran in float64; the tolerances are for a
// float32 engine.
func testTorchGoldens(t *testing.T, b backend.Backend) {
	for _, g := range TorchGoldens(t) {
		m := loadWeights(t, b, g.Spec, g.Weights)
		got := make([]float32, g.N*g.Spec.Classes)
		if err := m.Forward(g.X, g.N, got); err != nil {
			t.Fatalf("%s Forward: %v", g.Spec.Name, err)
		}
		for i, want := range g.EvalLogits {
			if !close(float64(got[i]), want, 1e-4, 1e-5) {
				t.Errorf("%s: logit %d = %v, PyTorch %v", g.Spec.Name, i, got[i], want)
			}
		}
		v := sgdStep(t, b, m, loss.CrossEntropyOnly, &backend.Batch{N: g.N, X: g.X, Labels: g.Y, LR: 1}, g.N)
		if !close(v.Total, g.Loss, 1e-5, 1e-6) {
			t.Errorf("%s: training loss %v, PyTorch %v", g.Spec.Name, v.Total, g.Loss)
		}
		after, err := m.Weights()
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range g.Grads {
			w0 := g.Weights[name].Data
			for i := range want {
				if step := float64(w0[i] - after[name].Data[i]); !close(step, want[i], 1e-3, 2e-6) {
					t.Errorf("%s: d loss / d %s[%d] = %v, PyTorch %v", g.Spec.Name, name, i, step, want[i])
				}
			}
		}
		for name, want := range g.Running {
			for i := range want {
				if !close(float64(after[name].Data[i]), want[i], 1e-4, 1e-6) {
					t.Errorf("%s: %s[%d] = %v after the step, PyTorch %v", g.Spec.Name, name, i, after[name].Data[i], want[i])
				}
			}
		}
	}
}

func testAdam(t *testing.T, b backend.Backend) {
	spec := Specs(t)[0]
	m, w := load(t, b, spec, 12)
	x, y, _ := Inputs(spec, 6, 13)
	tr := newTrainer(t, b, m, backend.TrainConfig{MaxBatch: 6, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.Adam}})
	const lr = 1e-3
	if _, err := tr.Step(&backend.Batch{N: 6, X: x, Labels: y, LR: lr}); err != nil {
		t.Fatal(err)
	}
	after, _ := m.Weights()
	// Adam's bias-corrected first step moves each weight by lr·g/(|g|+ε):
	// lr·sign(g) wherever the gradient is not tiny.
	moved := 0
	for name, w0 := range w {
		for i, v := range w0.Data {
			d := float64(v - after[name].Data[i])
			if math.Abs(d) > lr*0.5 {
				moved++
				if !close(math.Abs(d), lr, 1e-2, 1e-6) {
					t.Fatalf("%s[%d] moved by %v on Adam's first step, want ±%v", name, i, d, lr)
				}
			}
		}
	}
	if moved == 0 {
		t.Fatal("Adam's first step moved no weight")
	}
}

// testState checks that a trainer restored from saved weights and
// optimizer state continues exactly, and that a graph spec's buffers
// (running statistics, carried by the weights) have no optimizer slots.
func testState(t *testing.T, b backend.Backend) {
	for _, spec := range []model.Spec{Specs(t)[0], GraphSpecs(t)[2]} {
		x, y, teacher := Inputs(spec, 5, 14)
		batch := &backend.Batch{N: 5, X: x, Labels: y, TeacherLogits: teacher, LR: 1e-2}
		cfg := backend.TrainConfig{MaxBatch: 5, Objective: loss.Hinton(0.5, 2), Optimizer: backend.Optimizer{Kind: backend.Adam, WeightDecay: 1e-3}}
		r := resume(t, b, spec, 15, cfg, batch)
		if r.st.Step != 2 {
			t.Fatalf("%s: State().Step = %d after two steps", spec.Name, r.st.Step)
		}
		if r.v1.Total != r.v2.Total {
			t.Fatalf("%s: loss after resume %v, uninterrupted %v", spec.Name, r.v2.Total, r.v1.Total)
		}
		a, _ := r.m1.Weights()
		c, _ := r.m2.Weights()
		for name := range a {
			for i := range a[name].Data {
				if a[name].Data[i] != c[name].Data[i] {
					t.Fatalf("%s: %s[%d] after resume %v, uninterrupted %v", spec.Name, name, i, c[name].Data[i], a[name].Data[i])
				}
			}
		}
		ps, _ := spec.Params()
		bs, _ := spec.Buffers()
		for _, p := range ps {
			for _, slot := range []string{"m", "v"} {
				if _, ok := r.st.Tensors[slot+"/"+p.Name]; !ok {
					t.Errorf("%s: Adam's state lacks %q", spec.Name, slot+"/"+p.Name)
				}
			}
		}
		for name := range r.st.Tensors {
			_, tensor, _ := strings.Cut(name, "/")
			for _, buf := range bs {
				if tensor == buf.Name {
					t.Errorf("%s: optimizer state %q is a slot of the buffer %q, which no optimizer may see", spec.Name, name, buf.Name)
				}
			}
		}
		if want := 2 * len(ps); len(r.st.Tensors) != want {
			t.Errorf("%s: Adam's state has %d tensors, want %d (m and v of each parameter)", spec.Name, len(r.st.Tensors), want)
		}
	}
}

// resumed is what the resume tests compare: a run of three steps, and a
// fresh model and trainer restored from that run's weights and optimizer
// state after two steps, then stepped once.
type resumed struct {
	m1, m2   backend.Model   // uninterrupted, resumed
	tr1, tr2 backend.Trainer // uninterrupted, resumed
	v1, v2   loss.Value      // the third step's loss in each
	st       backend.OptimizerState
	w        model.Weights // saved after two steps, with st
}

// resume runs the two trainings of resumed on batch: a model of spec with
// the weights spec.Init(seed) makes, trained with cfg.
func resume(t *testing.T, b backend.Backend, spec model.Spec, seed uint64, cfg backend.TrainConfig, batch *backend.Batch) resumed {
	t.Helper()
	var r resumed
	r.m1, _ = load(t, b, spec, seed)
	r.tr1 = newTrainer(t, b, r.m1, cfg)
	for i := 0; i < 2; i++ {
		if _, err := r.tr1.Step(batch); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if r.st, err = r.tr1.State(); err != nil {
		t.Fatal(err)
	}
	if r.w, err = r.m1.Weights(); err != nil {
		t.Fatal(err)
	}
	if r.v1, err = r.tr1.Step(batch); err != nil {
		t.Fatal(err)
	}
	r.m2 = loadWeights(t, b, spec, r.w)
	r.tr2 = newTrainer(t, b, r.m2, cfg)
	if err := r.tr2.SetState(r.st); err != nil {
		t.Fatal(err)
	}
	if r.v2, err = r.tr2.Step(batch); err != nil {
		t.Fatal(err)
	}
	return r
}

func testLearns(t *testing.T, b backend.Backend) {
	spec := Specs(t)[2] // the CNN
	m, _ := load(t, b, spec, 16)
	const n = 16
	rng := rand.New(rand.NewPCG(17, 1))
	in := model.Numel(spec.Input)
	x := make([]float32, n*in)
	y := make([]int32, n)
	for e := 0; e < n; e++ {
		y[e] = int32(e % spec.Classes)
		for i := 0; i < in; i++ {
			v := 0.3 * rng.NormFloat64()
			if i%spec.Classes == int(y[e]) {
				v++
			}
			x[e*in+i] = float32(v)
		}
	}
	tr := newTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.Adam}})
	mustFall(t, "loss under Adam", 60, 4, func() float64 {
		v, err := tr.Step(&backend.Batch{N: n, X: x, Labels: y, LR: 1e-2})
		if err != nil {
			t.Fatal(err)
		}
		return v.Total
	})
}

// testMaxNorm takes the same large SGD step with and without the
// max-norm constraint, and checks the constrained weights against the
// unconstrained ones renormalised on the host: each unit's incoming
// weights (rows of [out, ...]) of every linear and conv weight scaled
// back to the bound when above it, biases untouched.
func testMaxNorm(t *testing.T, b backend.Backend) {
	for _, spec := range Specs(t) {
		const n = 5
		x, y, _ := Inputs(spec, n, 40)
		step := func(maxNorm float64) model.Weights {
			m, _ := load(t, b, spec, 41)
			tr := newTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.SGD, MaxNorm: maxNorm}})
			if _, err := tr.Step(&backend.Batch{N: n, X: x, Labels: y, LR: 3}); err != nil {
				t.Fatal(err)
			}
			w, err := m.Weights()
			if err != nil {
				t.Fatal(err)
			}
			return w
		}
		plain := step(0)
		params, _ := spec.Params()
		rowNorm := func(d []float32, u, per int) float64 {
			var ss float64
			for _, v := range d[u*per : (u+1)*per] {
				ss += float64(v) * float64(v)
			}
			return math.Sqrt(ss)
		}
		var norms []float64
		for _, p := range params {
			if backend.MaxNormed(spec, p) {
				per := len(plain[p.Name].Data) / p.Shape[0]
				for u := 0; u < p.Shape[0]; u++ {
					norms = append(norms, rowNorm(plain[p.Name].Data, u, per))
				}
			}
		}
		slices.Sort(norms)
		bound := norms[len(norms)/2] // about half the units are above it
		opt := backend.Optimizer{MaxNorm: bound}
		got := step(bound)
		scaled := 0
		for _, p := range params {
			want, have := plain[p.Name].Data, got[p.Name].Data
			per := len(want) / p.Shape[0]
			for u := 0; u < p.Shape[0]; u++ {
				f := 1.0
				if backend.MaxNormed(spec, p) {
					f = opt.MaxNormScale(rowNorm(want, u, per))
				}
				if f != 1 {
					scaled++
				}
				for k := u * per; k < (u+1)*per; k++ {
					if !close(float64(have[k]), f*float64(want[k]), 1e-5, 1e-7) {
						t.Fatalf("%s: %s[%d] = %v with max-norm %v, want %v (scale %v)", spec.Name, p.Name, k, have[k], bound, f*float64(want[k]), f)
					}
				}
			}
		}
		if scaled == 0 {
			t.Fatalf("%s: no unit was above the bound %v", spec.Name, bound)
		}
	}
	m, _ := load(t, b, Specs(t)[0], 42)
	if _, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: 1, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.SGD, MaxNorm: -1}}); err == nil {
		t.Error("a negative max-norm: no error")
	}
}
