package backendtest

import (
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// Feature distillation (hints and attention transfer): every backend
// must pass these. A backend that does not implement backend.FeatureModel
// skips them; one whose NewTrainer rejects feature terms fails them
// (the recipes' FitNets and attention students must run on every
// backend).

// FeatureCase is a student and teacher pair with an objective that has
// feature terms, as the suite runs it.
type FeatureCase struct {
	Name             string
	Student, Teacher model.Spec
	Objective        loss.Objective
}

// FeatureCases covers each hint adapter (none, linear on vectors, linear
// flattening a map, 1×1 conv) with both distances, attention transfer
// with p = 2 and 3, and objectives with and without logit terms (without,
// the student is trained only up to its deepest feature layer), on
// sequential specs and on graphs (features at block outputs and at an add
// node, a student with batchnorms in training mode).
func FeatureCases(t testing.TB) []FeatureCase {
	specs := Specs(t)
	mlp, cnn := specs[0], specs[2]
	mlpT, err := model.MLP(model.MLPConfig{Name: "mlp-teacher", Input: []int{7}, Hidden: []int{8, 5}, Classes: 4})
	if err != nil {
		t.Fatal(err)
	}
	cnnT, err := model.CNN(model.CNNConfig{Name: "cnn-teacher", Input: []int{2, 6, 6},
		Conv:   []model.ConvBlock{{Channels: 4, Kernel: 3, Padding: 1, Pool: 2}, {Channels: 3, Kernel: 2, Stride: 1}},
		Hidden: []int{6}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	resnet := GraphSpecs(t)[0]
	resnetT, err := model.Blocks(model.BlocksConfig{Name: "resnet-teacher", Input: []int{2, 8, 8}, Classes: 3,
		Stem:   model.StemConfig{Channels: 6},
		Stages: []model.Stage{{Channels: 6}, {Channels: 8, Stride: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	hint := func(s, tl string, w float64, distance loss.Distance, adapter loss.Adapter) loss.Feature {
		return loss.Feature{Kind: loss.FeatureHint, Student: s, Teacher: tl, Weight: w, Distance: distance, Adapter: adapter}
	}
	at := func(s, tl string, w, p float64) loss.Feature {
		return loss.Feature{Kind: loss.FeatureAttention, Student: s, Teacher: tl, Weight: w, P: p}
	}
	with := func(o loss.Objective, fs ...loss.Feature) loss.Objective {
		o.Features = fs
		return o
	}
	return []FeatureCase{
		{"mlp soft+hints", mlp, mlpT, with(loss.Hinton(0.5, 2),
			hint("act2", "act2", 0.5, "", ""), // none
			hint("act1", "act1", 1, "", ""))}, // linear [6]→[8]
		{"mlp hint only", mlp, mlpT, with(loss.Objective{},
			hint("drop1", "fc2", 2, loss.DistanceCosine, ""))}, // linear [6]→[5]
		{"cnn ce+hint+attention", cnn, cnnT, with(loss.CrossEntropyOnly,
			hint("act_conv1", "act_conv1", 0.5, "", ""), // conv1x1 [3,6,6]→[4,6,6]
			at("pool1", "pool1", 10, 2))},
		{"cnn features only", cnn, cnnT, with(loss.Objective{},
			hint("pool1", "pool1", 1, loss.DistanceCosine, loss.AdapterConv1x1),
			at("act_conv2", "act_conv2", 10, 3),
			hint("act_conv2", "fc1", 1, "", loss.AdapterLinear))}, // [2,2,2] flattened → [6]
		// Graphs: features at block outputs, an add node among them.
		{"resnet soft+hint+attention", resnet, resnetT, with(loss.Hinton(0.5, 2),
			hint("layer1.0", "layer1.0", 1, "", ""),     // conv1x1 [4,8,8]→[6,8,8]
			at("layer2.0.add", "layer2.0.add", 10, 2))}, // [6,4,4] and [8,4,4]
		{"resnet hint only", resnet, resnetT, with(loss.Objective{},
			hint("layer1.0.add", "avgpool", 1, loss.DistanceCosine, loss.AdapterLinear))}, // [4,8,8] flattened → [8]
	}
}

// featureChecks run after checks, in Run.
var featureChecks = []check{
	{"ForwardFeatures", testForwardFeatures},
	{"FeatureLossAndGradients", testFeatureGradients},
	{"FeaturePartialBatch", testFeaturePartialBatch},
	{"FeatureOptimizerState", testFeatureState},
	{"HintStageLearns", testHintLearns},
	{"FeatureErrors", testFeatureErrors},
}

func featureModel(t *testing.T, m backend.Model) backend.FeatureModel {
	t.Helper()
	fm, ok := m.(backend.FeatureModel)
	if !ok {
		t.Skipf("%T does not implement backend.FeatureModel", m)
	}
	return fm
}

// testForwardFeatures reads every layer's output at inference (graph
// specs' batchnorms with non-trivial running statistics).
func testForwardFeatures(t *testing.T, b backend.Backend) {
	for _, sw := range allSpecs(t, 21) {
		spec, w := sw.spec, sw.w
		m := loadWeights(t, b, spec, w)
		fm := featureModel(t, m)
		var layers []string
		for _, l := range spec.Layers {
			layers = append(layers, l.Name)
		}
		layers = append(layers, layers[0]) // the same layer twice
		shapes, _ := spec.Shapes()
		for _, n := range []int{1, 5} {
			x, _, _ := Inputs(spec, n, 22)
			wantLogits, want, err := ReferenceLayers(spec, w, x, n, nil, layers)
			if err != nil {
				t.Fatal(err)
			}
			for _, withLogits := range []bool{true, false} {
				var logits []float32
				if withLogits {
					logits = make([]float32, n*spec.Classes)
				}
				feats := make([][]float32, len(layers))
				for i, name := range layers {
					_, li, _ := spec.Layer(name)
					feats[i] = make([]float32, n*model.Numel(shapes[li]))
				}
				if err := fm.ForwardFeatures(x, n, layers, logits, feats); err != nil {
					t.Fatalf("%s ForwardFeatures(n=%d): %v", spec.Name, n, err)
				}
				for i := range logits {
					if !close(float64(logits[i]), wantLogits[i], 1e-4, 1e-5) {
						t.Fatalf("%s n=%d: logit %d = %v, reference %v", spec.Name, n, i, logits[i], wantLogits[i])
					}
				}
				for li, name := range layers {
					for i := range want[li] {
						if !close(float64(feats[li][i]), want[li][i], 1e-4, 1e-5) {
							t.Fatalf("%s n=%d: layer %q value %d = %v, reference %v", spec.Name, n, name, i, feats[li][i], want[li][i])
						}
					}
				}
			}
		}
		err := fm.ForwardFeatures(make([]float32, model.Numel(spec.Input)), 1, []string{"no-such-layer"}, nil, [][]float32{make([]float32, 100)})
		if err == nil || !strings.Contains(err.Error(), "no-such-layer") {
			t.Errorf("%s: ForwardFeatures of an unknown layer: error %v, want one naming it", spec.Name, err)
		}
	}
}

// featureInputs is one batch for a feature case: inputs, labels and
// teacher logits as Inputs draws them, dropout masks, and the teacher's
// features at the objective's layers from the float64 reference.
type featureInputs struct {
	x, teacher []float32
	y          []int32
	masks      [][]float32
	feats      [][]float32
}

func newFeatureInputs(t *testing.T, c FeatureCase, n int, seed uint64) featureInputs {
	t.Helper()
	var in featureInputs
	in.x, in.y, in.teacher = Inputs(c.Student, n, seed)
	in.masks = Masks(t, c.Student, n, seed+1)
	tw, err := c.Teacher.Init(seed + 2)
	if err != nil {
		t.Fatal(err)
	}
	RandomizeBatchNorm(c.Teacher, tw, seed+3) // the teacher runs at inference
	var layers []string
	for _, f := range c.Objective.Features {
		layers = append(layers, f.Teacher)
	}
	_, f64, err := ReferenceLayers(c.Teacher, tw, in.x, n, nil, layers)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range f64 {
		f32 := make([]float32, len(f))
		for i, v := range f {
			f32[i] = float32(v)
		}
		in.feats = append(in.feats, f32)
	}
	return in
}

func (in featureInputs) batch(n int, lr float64) *backend.Batch {
	return &backend.Batch{N: n, X: in.x, Labels: in.y, TeacherLogits: in.teacher, Masks: in.masks, TeacherFeatures: in.feats, LR: lr}
}

// referenceFeatureLoss is the whole objective, logit and feature terms,
// at student weights w and adapter weights ad, all in float64, with the
// student in training mode as Trainer.Step runs it.
func referenceFeatureLoss(t *testing.T, c FeatureCase, plans []loss.FeaturePlan, w, ad model.Weights, in featureInputs, n int) (total, feature float64) {
	var layers []string
	for _, p := range plans {
		layers = append(layers, p.Student)
	}
	logits, feats, _, err := ReferenceTrainLayers(c.Student, w, in.x, n, in.masks, layers)
	if err != nil {
		t.Fatal(err)
	}
	if c.Objective.HasLogitTerms() {
		t64 := make([]float64, len(in.teacher))
		for i, v := range in.teacher {
			t64[i] = float64(v)
		}
		v, err := c.Objective.Compute64(logits, t64, in.y, n, c.Student.Classes, nil)
		if err != nil {
			t.Fatal(err)
		}
		total = v.Total
	}
	for i, p := range plans {
		a, err := p.Adapt64(ad, feats[i], n)
		if err != nil {
			t.Fatal(err)
		}
		tf := make([]float64, len(in.feats[i]))
		for j, v := range in.feats[i] {
			tf[j] = float64(v)
		}
		v, err := p.Compute64(a, tf, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		feature += v
	}
	return total + feature, feature
}

// initAdapters is every term's initial adapter, as the trainer must
// start from.
func initAdapters(plans []loss.FeaturePlan) model.Weights {
	ad := model.Weights{}
	for _, p := range plans {
		for k, v := range p.InitAdapter() {
			ad[k] = v
		}
	}
	return ad
}

func testFeatureGradients(t *testing.T, b backend.Backend) {
	for _, c := range FeatureCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			const n = 4
			plans, err := loss.ResolveFeatures(c.Student, c.Teacher, c.Objective.Features)
			if err != nil {
				t.Fatal(err)
			}
			m, w := load(t, b, c.Student, 23)
			in := newFeatureInputs(t, c, n, 24)
			tr := newTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: c.Objective, Optimizer: backend.Optimizer{Kind: backend.SGD}, TeacherSpec: c.Teacher})
			// Plain SGD with lr 1: the step is the gradient.
			v, err := tr.Step(in.batch(n, 1))
			if err != nil {
				t.Fatalf("Step: %v", err)
			}
			ad0 := initAdapters(plans)
			want, wantFeat := referenceFeatureLoss(t, c, plans, w, ad0, in, n)
			if !close(v.Total, want, 1e-4, 1e-5) || !close(v.Feature, wantFeat, 1e-4, 1e-5) {
				t.Errorf("loss %v (feature part %v), reference %v (%v)", v.Total, v.Feature, want, wantFeat)
			}
			if !close(v.Hard+v.Soft+v.Feature, v.Total, 1e-9, 1e-9) {
				t.Errorf("parts %v + %v + %v do not add to %v", v.Hard, v.Soft, v.Feature, v.Total)
			}
			after, err := m.Weights()
			if err != nil {
				t.Fatal(err)
			}
			st, err := tr.State()
			if err != nil {
				t.Fatal(err)
			}
			// The student's weights, including those after the deepest
			// feature layer when the objective has no logit terms (their
			// gradient is 0: they must not move).
			ps, _ := c.Student.Params()
			for _, p := range ps {
				checkGrad(t, p.Name, w[p.Name].Data, after[p.Name].Data, func(i int, d float64) float64 {
					wp := w.Clone()
					wp[p.Name].Data[i] += float32(d)
					l, _ := referenceFeatureLoss(t, c, plans, wp, ad0, in, n)
					return l
				})
			}
			// Every batchnorm's running statistics, also those after the
			// deepest feature layer when there are no logit terms: PyTorch's
			// forward runs the whole student.
			_, _, running, err := ReferenceTrainLayers(c.Student, w, in.x, n, in.masks, nil)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range running {
				for i, v := range want {
					if !close(float64(after[name].Data[i]), v, 1e-4, 1e-6) {
						t.Errorf("%s[%d] = %v after the step, reference %v", name, i, after[name].Data[i], v)
					}
				}
			}
			// The adapters, whose values after the step are in the state.
			for _, p := range plans {
				for _, pr := range p.AdapterParams() {
					got, ok := st.Tensors[backend.AdapterValueSlot+"/"+pr.Name]
					if !ok {
						t.Fatalf("optimizer state lacks %q", backend.AdapterValueSlot+"/"+pr.Name)
					}
					checkGrad(t, pr.Name, ad0[pr.Name].Data, got.Data, func(i int, d float64) float64 {
						ap := ad0.Clone()
						ap[pr.Name].Data[i] += float32(d)
						l, _ := referenceFeatureLoss(t, c, plans, w, ap, in, n)
						return l
					})
				}
			}
		})
	}
}

// checkGrad compares a sample of the step before−after (the gradient,
// after SGD with lr 1) with central differences of eval, which returns
// the reference loss with element i of the tensor moved by d.
func checkGrad(t *testing.T, name string, before, after []float32, eval func(i int, d float64) float64) {
	t.Helper()
	for _, i := range sample(len(before), 12) {
		got := float64(before[i] - after[i])
		const h = 1e-5
		// float32 cannot hold w+h exactly: use the actually applied step.
		w0 := before[i]
		hp := float64(w0+float32(h)) - float64(w0)
		hm := float64(w0) - float64(w0-float32(h))
		num := (eval(i, h) - eval(i, -h)) / (hp + hm)
		if !close(got, num, 2e-2, 2e-4) {
			t.Errorf("d loss / d %s[%d] = %v, numeric %v", name, i, got, num)
		}
	}
}

func testFeaturePartialBatch(t *testing.T, b backend.Backend) {
	cs := FeatureCases(t)
	// CNN and resnet with logit, hint and attention terms: the resnet's
	// batchnorms must see the 3 real examples only.
	for _, c := range []FeatureCase{cs[2], cs[4]} {
		featurePartialBatch(t, b, c)
	}
}

func featurePartialBatch(t *testing.T, b backend.Backend, c FeatureCase) {
	in := newFeatureInputs(t, c, 3, 25)
	cfg := func(maxBatch int) backend.TrainConfig {
		return backend.TrainConfig{MaxBatch: maxBatch, Objective: c.Objective, Optimizer: backend.Optimizer{Kind: backend.SGD}, TeacherSpec: c.Teacher}
	}
	m1, _ := load(t, b, c.Student, 26)
	m2, _ := load(t, b, c.Student, 26)
	tr1 := newTrainer(t, b, m1, cfg(3))
	tr2 := newTrainer(t, b, m2, cfg(8)) // padded
	v1, err := tr1.Step(in.batch(3, 0.1))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := tr2.Step(in.batch(3, 0.1))
	if err != nil {
		t.Fatal(err)
	}
	if !close(v1.Total, v2.Total, 1e-5, 1e-6) || !close(v1.Feature, v2.Feature, 1e-5, 1e-6) {
		t.Fatalf("%s: loss of a 3-example batch: %+v in a trainer for 3, %+v in a trainer for 8", c.Name, v1, v2)
	}
	s1, _ := tr1.State()
	s2, _ := tr2.State()
	w1, _ := m1.Weights()
	w2, _ := m2.Weights()
	for _, pair := range [][2]model.Weights{{w1, w2}, {s1.Tensors, s2.Tensors}} {
		for name, a := range pair[0] {
			for i := range a.Data {
				if !close(float64(a.Data[i]), float64(pair[1][name].Data[i]), 1e-4, 1e-6) {
					t.Fatalf("%s: %s[%d] after a padded step = %v, unpadded %v", c.Name, name, i, pair[1][name].Data[i], a.Data[i])
				}
			}
		}
	}
}

func testFeatureState(t *testing.T, b backend.Backend) {
	c := FeatureCases(t)[0] // MLP with soft and hint terms, one adapter
	in := newFeatureInputs(t, c, 5, 27)
	batch := in.batch(5, 1e-2)
	cfg := backend.TrainConfig{MaxBatch: 5, Objective: c.Objective, Optimizer: backend.Optimizer{Kind: backend.Adam, WeightDecay: 1e-3}, TeacherSpec: c.Teacher}
	// The resumed trainer's adapter must continue from its trained values
	// in the state, not restart.
	r := resume(t, b, c.Student, 28, cfg, batch)
	for _, name := range []string{"m/adapter.1.weight", "v/adapter.1.bias", backend.AdapterValueSlot + "/adapter.1.weight"} {
		if _, ok := r.st.Tensors[name]; !ok {
			t.Errorf("optimizer state lacks %q", name)
		}
	}
	if _, ok := r.w["adapter.1.weight"]; ok {
		t.Error("the adapter is part of the student's weights")
	}
	if r.v1 != r.v2 {
		t.Fatalf("loss after resume %+v, uninterrupted %+v", r.v2, r.v1)
	}
	a, _ := r.tr1.State()
	z, _ := r.tr2.State()
	for name, ta := range a.Tensors {
		for i := range ta.Data {
			if ta.Data[i] != z.Tensors[name].Data[i] {
				t.Fatalf("%s[%d] after resume %v, uninterrupted %v", name, i, z.Tensors[name].Data[i], ta.Data[i])
			}
		}
	}
	// A state without the adapters (saved by a trainer without feature
	// terms) does not fit.
	delete(r.st.Tensors, backend.AdapterValueSlot+"/adapter.1.weight")
	if err := r.tr2.SetState(r.st); err == nil || !strings.Contains(err.Error(), "adapter.1.weight") {
		t.Errorf("SetState without the adapter's values: error %v, want one naming it", err)
	}
}

// testHintLearns trains FitNets' first stage, a hint term alone, and
// checks that the hint loss falls.
func testHintLearns(t *testing.T, b backend.Backend) {
	c := FeatureCases(t)[2]
	c.Objective = loss.Objective{Features: c.Objective.Features[:1]} // the conv1x1 hint
	const n = 16
	in := newFeatureInputs(t, c, n, 29)
	m, _ := load(t, b, c.Student, 30)
	tr := newTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: c.Objective, Optimizer: backend.Optimizer{Kind: backend.Adam}, TeacherSpec: c.Teacher})
	mustFall(t, "hint loss under Adam", 40, 2, func() float64 {
		bt := in.batch(n, 1e-2)
		bt.Labels = nil // a hint-only objective needs no labels
		v, err := tr.Step(bt)
		if err != nil {
			t.Fatal(err)
		}
		if v.Hard != 0 || v.Soft != 0 || v.Total != v.Feature {
			t.Fatalf("hint-only step reports %+v", v)
		}
		return v.Feature
	})
}

func testFeatureErrors(t *testing.T, b backend.Backend) {
	c := FeatureCases(t)[2]
	m, _ := load(t, b, c.Student, 32)
	cfg := backend.TrainConfig{MaxBatch: 2, Objective: c.Objective, Optimizer: backend.Optimizer{Kind: backend.SGD}, TeacherSpec: c.Teacher}
	tr := newTrainer(t, b, m, cfg)
	in := newFeatureInputs(t, c, 2, 33)
	bt := in.batch(2, 0.1)
	bt.TeacherFeatures = nil
	if _, err := tr.Step(bt); err == nil || !strings.Contains(err.Error(), "TeacherFeatures") {
		t.Errorf("Step without teacher features: error %v, want one naming Batch.TeacherFeatures", err)
	}
	bt = in.batch(2, 0.1)
	bt.TeacherFeatures = [][]float32{in.feats[0], in.feats[1][:3]}
	if _, err := tr.Step(bt); err == nil {
		t.Error("Step with short teacher features: no error")
	}
	// Attention between maps of different H×W: a recipe error that names
	// both layers and shapes.
	bad := cfg
	bad.Objective = loss.Objective{Features: []loss.Feature{{Kind: loss.FeatureAttention, Student: "act_conv1", Teacher: "pool1", Weight: 1}}}
	_, err := b.NewTrainer(m, bad)
	for _, s := range []string{`"act_conv1"`, "[3 6 6]", `"pool1"`, "[4 3 3]"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("mismatched attention pairing: error %v, want one containing %s", err, s)
		}
	}
	bad = cfg
	bad.TeacherSpec = model.Spec{}
	if _, err := b.NewTrainer(m, bad); err == nil || !strings.Contains(err.Error(), "TeacherSpec") {
		t.Errorf("feature terms without a teacher spec: error %v, want one naming TrainConfig.TeacherSpec", err)
	}
}
