package loss_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// Values pinned from PyTorch 1.13 in float64, printed by
// testdata/feature_reference.py: the weighted loss and its gradient with
// respect to the adapter's output (the student itself without adapter).
var featureCases = []struct {
	name           string
	kind           loss.FeatureKind
	distance       loss.Distance
	adapter        loss.Adapter
	weight, p      float64
	sshape, tshape []int
	value          float64
	grad           []float64
}{
	{name: "hint mse", kind: "hint", weight: 0.7, distance: "mse", adapter: "none", p: 0.0,
		sshape: []int{3, 5}, tshape: []int{3, 5},
		value: 0.6904761904761904,
		grad:  []float64{0.0, -0.02666666666666666, -0.05333333333333332, -0.08, 0.19999999999999998, -0.1333333333333333, -0.15999999999999998, 0.11999999999999997, 0.09333333333333332, 0.06666666666666665, 0.04, 0.01333333333333333, -0.01333333333333333, -0.04, -0.06666666666666665}},
	{name: "hint cosine", kind: "hint", weight: 1.3, distance: "cosine", adapter: "none", p: 0.0,
		sshape: []int{3, 5}, tshape: []int{3, 5},
		value: 0.6742671643120808,
		grad:  []float64{0.06197003178523182, 0.011178559778008891, -0.03961291222921402, -0.09040438423643694, 0.11897181478023741, -0.02046723070649873, -0.12049070280322978, 0.11858274061872566, 0.018559268521994608, -0.08146420357473645, 0.0367707533189634, 0.012256917772987798, -0.012256917772987784, -0.03677075331896337, -0.06128458886493903}},
	{name: "hint linear mse", kind: "hint", weight: 1.0, distance: "mse", adapter: "linear", p: 0.0,
		sshape: []int{3, 6}, tshape: []int{3, 4},
		value: 0.6991593756643283,
		grad:  []float64{0.33668154761904756, -0.04017857142857143, -0.0747767857142857, -0.06659226190476189, 0.09114583333333333, -0.11681547619047619, 0.01748511904761903, 0.22879464285714282, -0.017485119047619048, 0.02901785714285715, 0.17819940476190477, -0.023437500000000007}},
	{name: "hint linear cosine map", kind: "hint", weight: 0.5, distance: "cosine", adapter: "linear", p: 0.0,
		sshape: []int{2, 2, 2, 3}, tshape: []int{2, 5},
		value: 0.58313026892273,
		grad:  []float64{0.38156568151665055, 0.17711351169854164, -0.11173583864303843, -0.29508871333027964, 0.35006744807128365, 0.027669061828124664, -0.19280432304665812, 0.02823148234028977, 0.03336457446032983, -0.08683926508342057}},
	{name: "hint conv1x1 mse", kind: "hint", weight: 2.0, distance: "mse", adapter: "conv1x1", p: 0.0,
		sshape: []int{2, 3, 2, 2}, tshape: []int{2, 4, 2, 2},
		value: 2.1194744499362246,
		grad:  []float64{0.185546875, 0.09626116071428571, -0.031529017857142856, -0.22349330357142858, 0.13783482142857142, 0.008370535714285712, -0.15959821428571427, 0.13448660714285712, 0.013113839285714291, -0.220703125, 0.212890625, 0.107421875, -0.053850446428571425, -0.16099330357142858, 0.10407366071428571, -0.05440848214285714, -0.19224330357142858, 0.02650669642857144, -0.02427455357142857, -0.04938616071428571, 0.15066964285714288, 0.03404017857142857, -0.05691964285714286, 0.17299107142857142, 0.12137276785714285, 0.015904017857142856, -0.17940848214285715, 0.12583705357142858, -0.029854910714285712, -0.18833705357142858, 0.15373883928571427, 0.05943080357142857}},
	{name: "hint conv1x1 cosine", kind: "hint", weight: 1.0, distance: "cosine", adapter: "conv1x1", p: 0.0,
		sshape: []int{2, 3, 2, 2}, tshape: []int{2, 4, 2, 2},
		value: 1.0791762824633302,
		grad:  []float64{0.17331444627991832, 0.03800848237198111, -0.0638413598567952, -0.10993099928697014, 0.06270996167000269, -0.03768526657272317, -0.10462437313628817, 0.12644358292704524, 0.019017720418408775, 0.009293430639495656, 0.11914355453195646, -0.0021011408441595075, -0.0748587033519264, -0.19464878474199188, 0.061632480412883064, -0.013549438738301289, -0.13344874385037508, 0.0582834188737377, -0.008980435490610339, -0.06674773738212905, 0.11806845778024934, 0.026443881855165222, -0.05568414159708958, 0.1401769569847751, 0.07260343243109567, -0.014892207636236558, -0.13562578135847145, 0.08810563426321842, -0.017970217163997274, -0.12507830255565092, 0.1122786013966201, 0.028911897187039754}},
	{name: "attention p=2", kind: "attention", weight: 1.5, distance: "", adapter: "none", p: 2.0,
		sshape: []int{2, 3, 2, 3}, tshape: []int{2, 4, 2, 3},
		value: 0.02984197617560639,
		grad:  []float64{7.157051710542396e-05, 0.0150461428169856, -0.0016320397067503105, 0.007102871101262323, -0.012849791173264872, 0.005843532381333835, 2.602564258379053e-05, -0.0025076904694976, 0.009792238240501863, 0.01953289552847139, 0.009994282023650455, 0.001298562751407519, -1.9519231937842898e-05, -0.0200615237559808, -0.016320397067503108, -0.008878588876577906, -0.0, -0.0032464068785187975, -0.01797582577183317, -0.002544271468193681, -0.0030884428267868836, -0.003394924135665266, -0.0014414462393362235, -0.02402644748087576, 0.010785495463099903, -0.00031803393352421015, 0.004117923769049178, -0.0152771586104937, 0.001853288022003716, -0.00873688999304573, -0.001797582577183317, 0.001908203601145261, 0.01132429036488524, 0.011882234474828432, 0.00041184178266749237, 0.006552667494784298}},
	{name: "attention p=3", kind: "attention", weight: 1.0, distance: "", adapter: "none", p: 3.0,
		sshape: []int{2, 3, 2, 3}, tshape: []int{2, 4, 2, 3},
		value: 0.03315745921098861,
		grad:  []float64{0.0003734685522476482, 0.013158842153930443, -0.00021190862607690873, 0.0036378773243608267, -0.01483989909996457, 0.012801750312092127, 4.9384271371589845e-05, -0.0003655233931647346, 0.007628710538768713, 0.02751144726547875, 0.008977222912324246, 0.000632185200597142, -2.7778652646519287e-05, -0.023393497162543013, -0.021190862607690875, -0.005684183319313792, -0.0, -0.003951157503732138, -0.024452293272629235, 5.7850079817365184e-05, -0.0013579951104840768, -0.0009596021343306203, -0.006119659722326214, -0.04064434268188325, 0.008802825578146522, 9.03907497146331e-07, 0.00241421352974947, -0.019431943220195064, 0.010116172194049457, -0.005374458536447372, -0.0002445229327262923, -3.254066989726791e-05, 0.018257489818730366, 0.011755126145550101, 0.0004995640589654051, 0.0030231329267516463}},
	{name: "attention p=1", kind: "attention", weight: 1.0, distance: "", adapter: "none", p: 1.0,
		sshape: []int{2, 3, 2, 3}, tshape: []int{2, 2, 2, 3},
		value: 0.03390400496866667,
		grad:  []float64{0.005466584069819745, 0.0012547065146750987, -0.0068443010271100465, -0.0016729420195667974, -0.0040937875302340465, -0.006239089649443234, 0.005466584069819745, -0.0012547065146750987, 0.0068443010271100465, -0.0016729420195667974, 0.0040937875302340465, -0.006239089649443234, -0.005466584069819745, -0.0012547065146750987, -0.0068443010271100465, 0.0016729420195667974, -0.0, 0.006239089649443234, 0.006388507422281124, 0.006482905185148381, 0.0014141155064820471, 0.0069613722773285, -0.0014141155064820471, 0.0047643106200062615, -0.006388507422281124, 0.006482905185148381, -0.0014141155064820471, 0.0069613722773285, 0.0014141155064820471, 0.0047643106200062615, 0.006388507422281124, -0.006482905185148381, -0.0014141155064820471, -0.0069613722773285, 0.0014141155064820471, -0.0047643106200062615}},
}

// val is feature_reference.py's exact rational input ((i·a) mod 23 − 11)/den.
func val(n, a int, den float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64((i*a)%23-11) / den
	}
	return out
}

func TestFeaturesMatchPyTorch(t *testing.T) {
	for _, c := range featureCases {
		t.Run(c.name, func(t *testing.T) {
			n := c.sshape[0]
			p := loss.FeaturePlan{
				Feature:      loss.Feature{Kind: c.kind, Student: "s", Teacher: "t", Weight: c.weight, Distance: c.distance, Adapter: c.adapter, P: c.p},
				StudentShape: c.sshape[1:],
				TeacherShape: c.tshape[1:],
			}
			s := val(model.Numel(c.sshape), 5, 7)
			tv := val(model.Numel(c.tshape), 7, 7)
			// The adapter's weights as the script builds them.
			w := model.Weights{}
			for i, pr := range p.AdapterParams() {
				a, den := 3, 32.0
				if i == 1 {
					a, den = 11, 64
				}
				tn := model.NewTensor(pr.Shape...)
				for j, v := range val(len(tn.Data), a, den) {
					tn.Data[j] = float32(v)
				}
				w[pr.Name] = tn
			}
			a, err := p.Adapt64(w, s, n)
			if err != nil {
				t.Fatal(err)
			}
			grad := make([]float64, len(a))
			v, err := p.Compute64(a, tv, n, grad)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(v-c.value) > 1e-12 {
				t.Errorf("value = %.15g, PyTorch %.15g", v, c.value)
			}
			if len(grad) != len(c.grad) {
				t.Fatalf("%d gradients, PyTorch %d", len(grad), len(c.grad))
			}
			for i := range grad {
				if math.Abs(grad[i]-c.grad[i]) > 1e-12 {
					t.Errorf("grad[%d] = %.15g, PyTorch %.15g", i, grad[i], c.grad[i])
				}
			}
			// The float32 entry point agrees to float32 precision.
			a32, t32 := make([]float32, len(a)), make([]float32, len(tv))
			for i := range a {
				a32[i] = float32(a[i])
			}
			for i := range tv {
				t32[i] = float32(tv[i])
			}
			g32 := make([]float32, len(a))
			v32, err := p.Compute(a32, t32, n, g32)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(v32-c.value) > 1e-6*math.Max(1, c.value) {
				t.Errorf("float32 value = %v, PyTorch %v", v32, c.value)
			}
			for i := range g32 {
				if math.Abs(float64(g32[i])-c.grad[i]) > 1e-6 {
					t.Errorf("float32 grad[%d] = %v, PyTorch %v", i, g32[i], c.grad[i])
				}
			}
		})
	}
}

// Identical features cost nothing, and attention ignores the channel
// count and a positive scale of the maps.
func TestFeaturesByHand(t *testing.T) {
	x := []float64{1, -2, 3, 0.5, 0, -1, 2, 2}
	for _, f := range []loss.Feature{
		{Kind: loss.FeatureHint, Weight: 1, Distance: loss.DistanceMSE},
		{Kind: loss.FeatureHint, Weight: 1, Distance: loss.DistanceCosine},
	} {
		p := loss.FeaturePlan{Feature: f, StudentShape: []int{4}, TeacherShape: []int{4}}
		if v, err := p.Compute64(x, x, 2, nil); err != nil || math.Abs(v) > 1e-15 {
			t.Errorf("%s of identical features = %v, %v; want 0", f.Distance, v, err)
		}
	}
	// Teacher: two channels each equal to the student's one channel,
	// scaled by 3: mean |x|² is 9× the student's, normalised away.
	s := []float64{1, -2, 3, 0.5}
	tt := []float64{3, -6, 9, 1.5, -3, 6, -9, -1.5}
	p := loss.FeaturePlan{Feature: loss.Feature{Kind: loss.FeatureAttention, Weight: 1, P: 2}, StudentShape: []int{1, 2, 2}, TeacherShape: []int{2, 2, 2}}
	if v, err := p.Compute64(s, tt, 1, nil); err != nil || math.Abs(v) > 1e-15 {
		t.Errorf("attention of proportional maps = %v, %v; want 0", v, err)
	}
	// All-zero features stay finite: the norms are clamped as PyTorch does.
	z := make([]float64, 4)
	g := make([]float64, 4)
	for _, f := range []loss.Feature{
		{Kind: loss.FeatureHint, Weight: 1, Distance: loss.DistanceCosine},
		{Kind: loss.FeatureAttention, Weight: 1, P: 2},
	} {
		p := loss.FeaturePlan{Feature: f, StudentShape: []int{1, 2, 2}, TeacherShape: []int{1, 2, 2}}
		if f.Kind == loss.FeatureHint {
			p.StudentShape, p.TeacherShape = []int{4}, []int{4}
		}
		if _, err := p.Compute64(z, s, 1, g); err != nil {
			t.Errorf("%s of a zero student: %v", f.Kind, err)
		}
	}
}

func featSpecs(t *testing.T) (mlpS, mlpT, cnnS, cnnT model.Spec) {
	t.Helper()
	var err error
	must := func(s model.Spec, e error) model.Spec {
		if e != nil {
			err = e
		}
		return s
	}
	mlpS = must(model.MLP(model.MLPConfig{Name: "ms", Input: []int{7}, Hidden: []int{6, 5}, Classes: 4}))
	mlpT = must(model.MLP(model.MLPConfig{Name: "mt", Input: []int{7}, Hidden: []int{8, 5}, Classes: 4}))
	cnnS = must(model.CNN(model.CNNConfig{Name: "cs", Input: []int{2, 6, 6}, Conv: []model.ConvBlock{{Channels: 3, Kernel: 3, Padding: 1, Pool: 2}}, Hidden: []int{5}, Classes: 3}))
	cnnT = must(model.CNN(model.CNNConfig{Name: "ct", Input: []int{2, 6, 6}, Conv: []model.ConvBlock{{Channels: 4, Kernel: 3, Padding: 1}}, Hidden: []int{5}, Classes: 3}))
	if err != nil {
		t.Fatal(err)
	}
	return
}

func TestResolveFeatures(t *testing.T) {
	mlpS, mlpT, cnnS, cnnT := featSpecs(t)
	hint := func(s, tl string, adapter loss.Adapter) loss.Feature {
		return loss.Feature{Kind: loss.FeatureHint, Student: s, Teacher: tl, Weight: 1, Adapter: adapter}
	}
	ok := []struct {
		student, teacher model.Spec
		f                loss.Feature
		adapter          loss.Adapter
		input            []int
	}{
		{mlpS, mlpT, hint("act2", "act2", ""), loss.AdapterNone, []int{5}},
		{mlpS, mlpT, hint("act1", "act1", ""), loss.AdapterLinear, []int{8}},
		{cnnS, cnnT, hint("act_conv1", "conv1", ""), loss.AdapterConv1x1, []int{4, 6, 6}},
		// A [C,H,W] map against a vector: linear flattens both sides.
		{cnnS, cnnT, hint("pool1", "fc1", loss.AdapterLinear), loss.AdapterLinear, []int{5}},
		// none pairs a map with its flattened form.
		{cnnS, cnnS, hint("pool1", "flatten", loss.AdapterNone), loss.AdapterNone, []int{3, 3, 3}},
		{cnnS, cnnT, loss.Feature{Kind: loss.FeatureAttention, Student: "conv1", Teacher: "act_conv1", Weight: 1}, loss.AdapterNone, []int{3, 6, 6}},
	}
	for _, c := range ok {
		ps, err := loss.ResolveFeatures(c.student, c.teacher, []loss.Feature{c.f})
		if err != nil {
			t.Errorf("%s: %v", c.f, err)
			continue
		}
		p := ps[0]
		if p.Adapter != c.adapter || !slices.Equal(p.InputShape(), c.input) {
			t.Errorf("%s: adapter %q, input %v; want %q, %v", c.f, p.Adapter, p.InputShape(), c.adapter, c.input)
		}
		if p.Kind == loss.FeatureHint && p.Distance != loss.DistanceMSE || p.Kind == loss.FeatureAttention && p.P != 2 {
			t.Errorf("%s: defaults not filled: %+v", c.f, p.Feature)
		}
	}
	bad := []struct {
		student, teacher model.Spec
		f                loss.Feature
		want             []string // all in the message
	}{
		{cnnS, cnnT, hint("pool1", "fc1", ""), []string{`"pool1"`, "[3 3 3]", `"fc1"`, "[5]", `adapter "linear"`}},
		{cnnS, cnnT, hint("pool1", "act_conv1", loss.AdapterConv1x1), []string{`"pool1"`, "[3 3 3]", `"act_conv1"`, "[4 6 6]", "H×W"}},
		{mlpS, mlpT, hint("act1", "act1", loss.AdapterNone), []string{"[6]", "[8]", "number of elements"}},
		{mlpS, mlpT, hint("act1", "act1", loss.AdapterConv1x1), []string{"[6]", "[8]"}},
		{cnnS, cnnT, loss.Feature{Kind: loss.FeatureAttention, Student: "pool1", Teacher: "conv1", Weight: 1}, []string{"[3 3 3]", "[4 6 6]", "attention"}},
		{cnnS, cnnT, loss.Feature{Kind: loss.FeatureAttention, Student: "fc1", Teacher: "fc1", Weight: 1}, []string{"[5]", "attention"}},
		{mlpS, mlpT, hint("conv9", "act1", ""), []string{`student "ms" has no layer "conv9"`, "fc1"}},
		{mlpS, mlpT, hint("act1", "nope", ""), []string{`teacher "mt" has no layer "nope"`}},
	}
	for _, c := range bad {
		err := loss.CheckFeatures(c.student, c.teacher, []loss.Feature{c.f})
		if err == nil {
			t.Errorf("%s: no error", c.f)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %s", c.f, err, w)
			}
		}
	}
}

// TestResolveFeaturesOnGraphs pairs layers of graph specs (Blocks): a
// block output, an add node, the pooled vector; each shape is the node's
// own, whatever its position in the layer list, and the adapter is chosen
// from the shapes as on sequential specs.
func TestResolveFeaturesOnGraphs(t *testing.T) {
	blocks := func(name string, stem, c1, c2 int) model.Spec {
		s, err := model.Blocks(model.BlocksConfig{Name: name, Input: []int{2, 8, 8}, Classes: 3,
			Stem:   model.StemConfig{Channels: stem},
			Stages: []model.Stage{{Channels: c1}, {Channels: c2, Stride: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	student, teacher := blocks("s", 4, 4, 6), blocks("t", 6, 6, 8)
	fs := []loss.Feature{
		{Kind: loss.FeatureHint, Student: "layer1.0", Teacher: "layer1.0", Weight: 1},
		{Kind: loss.FeatureAttention, Student: "layer2.0.add", Teacher: "layer2.0.add", Weight: 1},
		{Kind: loss.FeatureHint, Student: "layer2.0.downsample.1", Teacher: "layer2.0", Weight: 1},
		{Kind: loss.FeatureHint, Student: "avgpool", Teacher: "avgpool", Weight: 1},
		{Kind: loss.FeatureHint, Student: "layer1.0.add", Teacher: "avgpool", Weight: 1, Adapter: loss.AdapterLinear},
	}
	ps, err := loss.ResolveFeatures(student, teacher, fs)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		adapter loss.Adapter
		s, t    []int
	}{
		{loss.AdapterConv1x1, []int{4, 8, 8}, []int{6, 8, 8}},
		{loss.AdapterNone, []int{6, 4, 4}, []int{8, 4, 4}},
		{loss.AdapterConv1x1, []int{6, 4, 4}, []int{8, 4, 4}},
		{loss.AdapterLinear, []int{6}, []int{8}},
		{loss.AdapterLinear, []int{4, 8, 8}, []int{8}},
	}
	for i, w := range want {
		p := ps[i]
		if p.Adapter != w.adapter || !slices.Equal(p.StudentShape, w.s) || !slices.Equal(p.TeacherShape, w.t) {
			t.Errorf("%s: adapter %q, shapes %v and %v; want %q, %v and %v", fs[i], p.Adapter, p.StudentShape, p.TeacherShape, w.adapter, w.s, w.t)
		}
	}
	// A misspelt node: the message names the block outputs first.
	err = loss.CheckFeatures(student, teacher, []loss.Feature{{Kind: loss.FeatureHint, Student: "layer1.1", Teacher: "layer1.0", Weight: 1}})
	if err == nil || !strings.Contains(err.Error(), `has no layer "layer1.1"; its block outputs are [layer1.0 layer2.0]`) {
		t.Errorf("unknown node of a graph: error %v, want one listing the block outputs", err)
	}
}

func TestFeatureValidate(t *testing.T) {
	hintOnly := loss.Objective{Features: []loss.Feature{{Kind: loss.FeatureHint, Student: "a", Teacher: "b", Weight: 1}}}
	if err := hintOnly.Validate(); err != nil {
		t.Errorf("hint-only objective (FitNets stage 1): %v", err)
	}
	if !hintOnly.NeedsTeacherFeatures() || hintOnly.NeedsTeacher() || hintOnly.HasLogitTerms() {
		t.Error("hint-only objective: wrong NeedsTeacherFeatures/NeedsTeacher/HasLogitTerms")
	}
	for _, f := range []loss.Feature{
		{Kind: "fitnet", Student: "a", Teacher: "b", Weight: 1},
		{Kind: loss.FeatureHint, Student: "", Teacher: "b", Weight: 1},
		{Kind: loss.FeatureHint, Student: "a", Teacher: "b", Weight: 0},
		{Kind: loss.FeatureHint, Student: "a", Teacher: "b", Weight: math.Inf(1)},
		{Kind: loss.FeatureHint, Student: "a", Teacher: "b", Weight: 1, Distance: "l1"},
		{Kind: loss.FeatureHint, Student: "a", Teacher: "b", Weight: 1, Adapter: "mlp"},
		{Kind: loss.FeatureHint, Student: "a", Teacher: "b", Weight: 1, P: 2},
		{Kind: loss.FeatureAttention, Student: "a", Teacher: "b", Weight: 1, P: 0.5},
		{Kind: loss.FeatureAttention, Student: "a", Teacher: "b", Weight: 1, Adapter: loss.AdapterLinear},
	} {
		obj := loss.Objective{HardWeight: 1, Features: []loss.Feature{f}}
		if err := obj.Validate(); err == nil {
			t.Errorf("%+v validated", f)
		} else if !strings.Contains(err.Error(), "feature term 0") {
			t.Errorf("%+v: error %q does not say which term", f, err)
		}
	}
}

func TestInitAdapter(t *testing.T) {
	p := loss.FeaturePlan{Index: 2, Feature: loss.Feature{Kind: loss.FeatureHint, Weight: 1, Adapter: loss.AdapterConv1x1}, StudentShape: []int{3, 4, 4}, TeacherShape: []int{5, 4, 4}}
	ps := p.AdapterParams()
	if len(ps) != 2 || ps[0].Name != "adapter.2.weight" || !slices.Equal(ps[0].Shape, []int{5, 3, 1, 1}) || ps[1].Name != "adapter.2.bias" || !slices.Equal(ps[1].Shape, []int{5}) {
		t.Fatalf("AdapterParams = %+v", ps)
	}
	a, b := p.InitAdapter(), p.InitAdapter()
	bound := float32(1 / math.Sqrt(3))
	for name, tn := range a {
		for i, v := range tn.Data {
			if v != b[name].Data[i] {
				t.Fatalf("InitAdapter is not deterministic: %s[%d] %v then %v", name, i, v, b[name].Data[i])
			}
			if v < -bound || v > bound || v == 0 {
				t.Fatalf("%s[%d] = %v, want within ±%v", name, i, v, bound)
			}
		}
	}
	p.Index = 3
	if p.InitAdapter()["adapter.3.weight"].Data[0] == a["adapter.2.weight"].Data[0] {
		t.Error("adapters of different terms start equal")
	}
	none := loss.FeaturePlan{Feature: loss.Feature{Kind: loss.FeatureHint, Adapter: loss.AdapterNone}, StudentShape: []int{4}, TeacherShape: []int{4}}
	if none.AdapterParams() != nil || none.InitAdapter() != nil {
		t.Error("a term without adapter has adapter parameters")
	}
}

func TestFeatureErrors(t *testing.T) {
	p := loss.FeaturePlan{Feature: loss.Feature{Kind: loss.FeatureHint, Weight: 1, Distance: loss.DistanceMSE, Adapter: loss.AdapterNone}, StudentShape: []int{2}, TeacherShape: []int{2}}
	if _, err := p.Compute([]float32{1}, []float32{1, 2}, 1, nil); err == nil {
		t.Error("short student: no error")
	}
	_, err := p.Compute([]float32{float32(math.Inf(1)), 0}, []float32{1, 2}, 1, nil)
	var nf *loss.NonFiniteError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "feature") {
		t.Errorf("Inf feature: error %v, want *NonFiniteError naming the feature part", err)
	}
	// A non-finite teacher value is the teacher's fault, named as such.
	for _, p := range []loss.FeaturePlan{p,
		{Feature: loss.Feature{Kind: loss.FeatureAttention, Weight: 1, P: 2}, StudentShape: []int{1, 1, 2}, TeacherShape: []int{1, 1, 2}}} {
		_, err = p.Compute([]float32{1, 2, 3, 4}, []float32{1, 2, 3, float32(math.NaN())}, 2, nil)
		if err == nil || !strings.Contains(err.Error(), "teacher value 1 of row 1 is NaN") || errors.As(err, &nf) {
			t.Errorf("%s: NaN teacher value: %v, want an error naming the teacher's row", p.Kind, err)
		}
	}
}

// The default attention weight reproduces Zagoruyko & Komodakis' code:
// loss = β·(at(s) − at(t)).pow(2).mean() with β = 1000 and
// at(x) = F.normalize(x.pow(2).mean(1).view(N, −1)), written out here
// independently of the package.
func TestDefaultAttentionWeightIsAuthorsBeta(t *testing.T) {
	const n, cs, ct, hw = 4, 3, 5, 6
	rng := rand.New(rand.NewPCG(1, 2))
	s, tt := make([]float64, n*cs*hw), make([]float64, n*ct*hw)
	for i := range s {
		s[i] = rng.NormFloat64()
	}
	for i := range tt {
		tt[i] = rng.NormFloat64()
	}
	at := func(x []float64, c int) []float64 { // one example: [c, hw] → [hw]
		q := make([]float64, hw)
		for ch := 0; ch < c; ch++ {
			for j := 0; j < hw; j++ {
				q[j] += x[ch*hw+j] * x[ch*hw+j] / float64(c)
			}
		}
		var norm float64
		for _, v := range q {
			norm += v * v
		}
		norm = math.Max(math.Sqrt(norm), 1e-12)
		for j := range q {
			q[j] /= norm
		}
		return q
	}
	const beta = 1000 // their --beta 1e+3, applied as opt.beta * sum(loss_groups)
	var sum float64
	for b := 0; b < n; b++ {
		as, at2 := at(s[b*cs*hw:(b+1)*cs*hw], cs), at(tt[b*ct*hw:(b+1)*ct*hw], ct)
		for j := range as {
			sum += (as[j] - at2[j]) * (as[j] - at2[j])
		}
	}
	want := beta * sum / (n * hw)
	p := loss.FeaturePlan{Feature: loss.Feature{Kind: loss.FeatureAttention, Weight: loss.DefaultAttentionWeight, P: 2},
		StudentShape: []int{cs, 2, 3}, TeacherShape: []int{ct, 2, 3}}
	got, err := p.Compute64(s, tt, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-12*want {
		t.Fatalf("attention term at the default weight = %.15g, the authors' β·mean((at(s)−at(t))²) = %.15g", got, want)
	}
}
