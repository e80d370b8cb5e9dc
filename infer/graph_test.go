package infer

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/model"
)

// graphNet is a graph spec with random weights and non-trivial
// batchnorms.
func graphNet(t testing.TB, spec model.Spec, seed uint64) model.Weights {
	w, err := spec.Init(seed)
	if err != nil {
		t.Fatal(err)
	}
	backendtest.RandomizeBatchNorm(spec, w, seed)
	return w
}

// fanOutSpec exercises what a sequential program never meets: a conv
// read by a relu and a shortcut (so not fused), one value read by two
// in-place activations, an add of a value with itself, a dropout in a
// branch, and a batchnorm on the network's input.
func fanOutSpec(t testing.TB) model.Spec {
	s := model.Spec{Name: "fanout", Input: []int{3, 5, 5}, Classes: 4, Layers: []model.Layer{
		{Name: "bn_in", Kind: model.KindBatchNorm},
		{Name: "conv", Kind: model.KindConv2D, Out: 4, Kernel: 3, Padding: 1},
		{Name: "relu", Kind: model.KindReLU},
		{Name: "res", Kind: model.KindAdd, Inputs: []string{"relu", "conv"}},
		{Name: "t1", Kind: model.KindTanh},
		{Name: "drop", Kind: model.KindDropout, Rate: 0.5, Inputs: []string{"res"}},
		{Name: "t2", Kind: model.KindSigmoid},
		{Name: "sum", Kind: model.KindAdd, Inputs: []string{"t1", "t2"}},
		{Name: "twice", Kind: model.KindAdd, Inputs: []string{"sum", "sum"}},
		{Name: "dw", Kind: model.KindConv2D, Out: 8, Kernel: 3, Stride: 2, Padding: 1, Groups: 4},
		{Name: "relu2", Kind: model.KindReLU},
		{Name: "gap", Kind: model.KindGlobalAvgPool},
		{Name: "fc", Kind: model.KindLinear, Out: 4},
	}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func allGraphSpecs(t testing.TB) []model.Spec {
	return append(backendtest.GraphSpecs(t), fanOutSpec(t))
}

// TestGraphMatchesReference checks the FP32 program of every graph spec
// (batchnorms folded or run as an affine map) against the float64
// reference of package backendtest (batchnorms unfolded), with the
// depthwise convolutions run directly and as GEMMs.
func TestGraphMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	for _, direct := range []bool{true, false} {
		directDepthwise = direct
		for _, spec := range allGraphSpecs(t) {
			w := graphNet(t, spec, 3)
			p, err := Compile(spec, w)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 3} {
				x := randInput(rng, n*p.InputSize())
				out := make([]float32, n*p.Classes())
				if err := p.Forward(x, n, out); err != nil {
					t.Fatal(err)
				}
				want, err := backendtest.ReferenceForward(spec, w, x, n, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, v := range want {
					if got := out[i]; math.Abs(float64(got)-v) > 1e-4*(1+math.Abs(v)) {
						t.Fatalf("%s direct=%v n=%d logit %d = %v, want %v\n%s", spec.Name, direct, n, i, got, v, p)
					}
				}
			}
		}
	}
	directDepthwise = true
}

// TestGraphMatchesPyTorch checks the FP32 program against PyTorch's
// eval-mode logits on the graph specs (backendtest's goldens).
func TestGraphMatchesPyTorch(t *testing.T) {
	for _, g := range backendtest.TorchGoldens(t) {
		p, err := Compile(g.Spec, g.Weights)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float32, g.N*p.Classes())
		if err := p.Forward(g.X, g.N, out); err != nil {
			t.Fatal(err)
		}
		for i, v := range g.EvalLogits {
			if got := out[i]; math.Abs(float64(got)-v) > 1e-4*(1+math.Abs(v)) {
				t.Fatalf("%s logit %d = %v, PyTorch %v\n%s", g.Spec.Name, i, got, v, p)
			}
		}
	}
}

// TestGraphFusion checks where a conv absorbs its ReLU: only when the
// ReLU is its sole reader.
func TestGraphFusion(t *testing.T) {
	spec := fanOutSpec(t)
	p, err := Compile(spec, graphNet(t, spec, 1))
	if err != nil {
		t.Fatal(err)
	}
	s := p.String()
	if !strings.Contains(s, "conv[conv ") || strings.Contains(s, "conv+relu[conv ") {
		t.Errorf("conv feeds a shortcut but was fused with its relu: %s", s)
	}
	if !strings.Contains(s, "dwconv+relu[dw ") {
		t.Errorf("dw's only reader is relu2, but they were not fused: %s", s)
	}
}

// TestGraphBuffers checks that a deep residual network's program keeps
// a few activation buffers, not one per layer.
func TestGraphBuffers(t *testing.T) {
	spec, err := model.Blocks(model.BlocksConfig{Name: "deep", Input: []int{1, 12, 12}, Classes: 10,
		Stem:   model.StemConfig{Channels: 8},
		Stages: []model.Stage{{Channels: 8, Repeat: 4}, {Channels: 16, Stride: 2, Repeat: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(spec, graphNet(t, spec, 1))
	if err != nil {
		t.Fatal(err)
	}
	// A residual block needs its input (the shortcut), the branch's
	// current value and the next: three buffers, whatever the depth.
	if p.nbufF > 4 || len(p.steps) < 20 {
		t.Errorf("%d steps use %d float32 buffers, want at most 4:\n%s", len(p.steps), p.nbufF, p)
	}
}

// TestAddI8Rule checks the INT8 add against its documented rule,
// computed here step by step.
func TestAddI8Rule(t *testing.T) {
	a, b, o := QParams{Scale: 0.037, ZeroPoint: 120}, QParams{Scale: 0.011, ZeroPoint: 3}, QParams{Scale: 0.05, ZeroPoint: 77}
	op := newAddI8("add", a, b, o)
	s := &scratch{u: make([][]uint8, 1)}
	var qa, qb []uint8
	for x := range 256 {
		for y := range 256 {
			qa, qb = append(qa, uint8(x)), append(qb, uint8(y))
		}
	}
	got := op.run(s, []value{{u: qa, q: a, dim: len(qa)}, {u: qb, q: b, dim: len(qb)}}, 1, 0)
	for i := range qa {
		fa := float32(int32(qa[i])-a.ZeroPoint) * a.Scale
		fb := float32(int32(qb[i])-b.ZeroPoint) * b.Scale
		sum := fa + fb
		v := sum / o.Scale
		want := uint8(min(max(math.RoundToEven(float64(v))+float64(o.ZeroPoint), 0), 255))
		if got.u[i] != want {
			t.Fatalf("add(%d, %d) = %d, want %d", qa[i], qb[i], got.u[i], want)
		}
	}
}

// calibrateMinMax quantizes spec's folded network with per-tensor
// min/max ranges observed on xs (a stand-in for package quantize, which
// imports this one) and symmetric per-channel weights.
func calibrateMinMax(t testing.TB, spec model.Spec, w model.Weights, xs []float32, n int) *QuantModel {
	t.Helper()
	fs, fw, err := Fold(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(fs, fw)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := map[string]float64{}, map[string]float64{}
	see := func(name string, data []float32) {
		for _, v := range data {
			lo[name], hi[name] = min(lo[name], float64(v)), max(hi[name], float64(v))
		}
	}
	see(model.InputName, xs)
	if err := p.Observe(xs, n, make([]float32, n*p.Classes()), see); err != nil {
		t.Fatal(err)
	}
	qp := func(name string) QParams {
		s := (hi[name] - lo[name]) / 255
		if s == 0 {
			s = 1
		}
		return QParams{Scale: float32(s), ZeroPoint: int32(math.RoundToEven(-lo[name] / s))}
	}
	qm := &QuantModel{Spec: fs, Input: qp(model.InputName), Act: map[string]QParams{}, Layers: map[string]QLayer{}, Float: model.Weights{}}
	for _, l := range fs.Layers {
		if NeedsActParams(l.Kind) {
			qm.Act[l.Name] = qp(l.Name)
		}
	}
	tensors, _ := fs.Tensors()
	for _, tp := range tensors {
		if !Quantizable(fs, tp.Layer) {
			qm.Float[tp.Name] = fw[tp.Name]
		}
	}
	ins := LayerInputParams(fs, qm.Input, qm.Act)
	for _, l := range fs.Layers {
		if !Quantizable(fs, l.Name) {
			continue
		}
		wt, bias := fw[l.Name+".weight"].Data, fw[l.Name+".bias"].Data
		fan := len(wt) / l.Out
		ql := QLayer{Weight: make([]int8, len(wt)), Scale: make([]float32, l.Out), Bias: make([]int32, l.Out)}
		for c := range l.Out {
			var m float64
			for _, v := range wt[c*fan : (c+1)*fan] {
				m = max(m, math.Abs(float64(v)))
			}
			ql.Scale[c] = float32(max(m, 1e-12) / 127)
			for k, v := range wt[c*fan : (c+1)*fan] {
				ql.Weight[c*fan+k] = int8(math.RoundToEven(float64(v) / float64(ql.Scale[c])))
			}
			ql.Bias[c] = int32(math.RoundToEven(float64(bias[c]) / (float64(ins[l.Name].Scale) * float64(ql.Scale[c]))))
		}
		qm.Layers[l.Name] = ql
	}
	return qm
}

// TestGraphInt8 checks the INT8 programs of the graph specs against the
// FP32 ones within quantization error (calibrated on the inputs tested),
// fully quantized and with each quantized layer in turn left in float32;
// and that the direct and GEMM depthwise paths give the same bits.
func TestGraphInt8(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, spec := range allGraphSpecs(t) {
		w := graphNet(t, spec, 5)
		fp, err := Compile(spec, w)
		if err != nil {
			t.Fatal(err)
		}
		const n = 16
		x := randInput(rng, n*fp.InputSize())
		want := make([]float32, n*fp.Classes())
		if err := fp.Forward(x, n, want); err != nil {
			t.Fatal(err)
		}
		var span float64
		for _, v := range want {
			span = max(span, math.Abs(float64(v)))
		}
		qm := calibrateMinMax(t, spec, w, x, n)
		var quantized []string
		for _, l := range qm.Spec.Layers {
			if qm.Quantized(l.Name) {
				quantized = append(quantized, l.Name)
			}
		}
		for _, float := range append([]string{""}, quantized...) {
			m := *qm
			if float != "" {
				m.Layers = map[string]QLayer{}
				m.Float = model.Weights{}
				for k, v := range qm.Layers {
					m.Layers[k] = v
				}
				for k, v := range qm.Float {
					m.Float[k] = v
				}
				delete(m.Layers, float)
				fw := foldedWeights(t, spec, w)
				m.Float[float+".weight"], m.Float[float+".bias"] = fw[float+".weight"], fw[float+".bias"]
			}
			var outs [2][]float32
			for k, direct := range []bool{true, false} {
				directDepthwise = direct
				p, err := CompileInt8(&m)
				directDepthwise = true
				if err != nil {
					t.Fatal(err)
				}
				outs[k] = make([]float32, n*p.Classes())
				if err := p.Forward(x, n, outs[k]); err != nil {
					t.Fatal(err)
				}
				if k == 0 && float == "" && !strings.Contains(p.String(), "int8") {
					t.Fatalf("%s: nothing runs in INT8: %s", spec.Name, p)
				}
			}
			for i, v := range outs[0] {
				if outs[1][i] != v {
					t.Fatalf("%s float %q: logit %d is %v with direct depthwise, %v through GEMM", spec.Name, float, i, v, outs[1][i])
				}
				// Each quantization step adds up to half a step of
				// error; these small nets stay within a tenth of the
				// logits' range.
				if d := math.Abs(float64(v - want[i])); d > 0.1*span+1e-3 {
					t.Errorf("%s float %q: logit %d = %v, FP32 %v (range ±%.3g)", spec.Name, float, i, v, want[i], span)
				}
			}
		}
	}
}

func foldedWeights(t testing.TB, spec model.Spec, w model.Weights) model.Weights {
	_, fw, err := Fold(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// TestQuantModelNeedsFoldedSpec checks that CompileInt8 rejects a model
// whose spec still has a foldable batchnorm or a bias-free layer: the
// runtime does not fold, and the quantized weights are the folded ones.
func TestQuantModelNeedsFoldedSpec(t *testing.T) {
	spec := backendtest.GraphSpecs(t)[0]
	w := graphNet(t, spec, 2)
	qm := calibrateMinMax(t, spec, w, randInput(rand.New(rand.NewPCG(1, 1)), 4*model.Numel(spec.Input)), 4)
	if _, err := CompileInt8(qm); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(m *QuantModel)
	}{
		{"unfolded spec", func(m *QuantModel) { m.Spec = spec }},
		{"bias-free conv", func(m *QuantModel) {
			m.Spec.Layers = slices.Clone(m.Spec.Layers)
			m.Spec.Layers[0].NoBias = true
		}},
	} {
		m := *qm
		tc.mutate(&m)
		if _, err := CompileInt8(&m); err == nil || !strings.Contains(err.Error(), "folded network") {
			t.Errorf("%s: CompileInt8 error %v, want one saying the spec must be the folded network", tc.name, err)
		}
	}
}

// TestNewActivations checks relu6 and silu at values the small nets do
// not reach (relu6's upper clamp), FP32 and INT8.
func TestNewActivations(t *testing.T) {
	x := []float32{-7, -1, 0, 0.5, 3, 5.9, 6, 6.5, 40}
	for _, tc := range []struct {
		kind model.Kind
		f    func(float64) float64
	}{
		{model.KindReLU6, func(v float64) float64 { return min(max(v, 0), 6) }},
		{model.KindSiLU, func(v float64) float64 { return v / (1 + math.Exp(-v)) }},
	} {
		spec := model.Spec{Name: "act", Input: []int{len(x)}, Classes: len(x), Layers: []model.Layer{{Name: "a", Kind: tc.kind}}}
		p, err := Compile(spec, model.Weights{})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float32, len(x))
		if err := p.Forward(x, 1, out); err != nil {
			t.Fatal(err)
		}
		for i, v := range x {
			if want := tc.f(float64(v)); math.Abs(float64(out[i])-want) > 1e-6*(1+math.Abs(want)) {
				t.Errorf("%s(%v) = %v, want %v", tc.kind, v, out[i], want)
			}
		}
		// INT8: an identity linear layer (so that the activation reaches
		// the layer as uint8) quantized over [−8, 42], the output over
		// [−0.5, 42]; relu6 maps through a table, silu runs in float32.
		n := len(x)
		spec.Layers = []model.Layer{{Name: "fc", Kind: model.KindLinear, Out: n}, {Name: "a", Kind: tc.kind}}
		in := QParams{Scale: 50.0 / 255, ZeroPoint: 41}
		fc := QLayer{Weight: make([]int8, n*n), Scale: make([]float32, n), Bias: make([]int32, n)}
		for i := range n {
			fc.Weight[i*n+i], fc.Scale[i] = 127, 1.0/127
		}
		qm := &QuantModel{Spec: spec, Input: in, Layers: map[string]QLayer{"fc": fc},
			Act: map[string]QParams{"fc": in, "a": {Scale: 42.5 / 255, ZeroPoint: 3}}}
		q, err := CompileInt8(qm)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[model.Kind]string{model.KindReLU6: "relu6[a u8 table]", model.KindSiLU: "silu[a f32]"}[tc.kind]; !strings.Contains(q.String(), want) {
			t.Errorf("INT8 program %s does not run %s", q, want)
		}
		if err := q.Forward(x, 1, out); err != nil {
			t.Fatal(err)
		}
		for i, v := range x {
			// Three roundings (input, linear, output): half a step each.
			if want := tc.f(float64(v)); math.Abs(float64(out[i])-want) > 1.2*(50.0/255)*1.1+0.5*(42.5/255) {
				t.Errorf("INT8 %s(%v) = %v, want %v within quantization error\n%s", tc.kind, v, out[i], want, q)
			}
		}
	}
}

// TestReLU6LUTRule checks the uint8 relu6 table against its documented
// rule (ONNX's DequantizeLinear → Clip → QuantizeLinear in float32).
func TestReLU6LUTRule(t *testing.T) {
	in, out := QParams{Scale: 0.0731, ZeroPoint: 97}, QParams{Scale: 6.0 / 255, ZeroPoint: 0}
	o := newReLU6LUT("r", in, out)
	for q := range 256 {
		x := float32(int32(q)-in.ZeroPoint) * in.Scale
		x = float32(math.Min(math.Max(float64(x), 0), 6))
		v := x / out.Scale
		want := uint8(min(max(math.RoundToEven(float64(v))+float64(out.ZeroPoint), 0), 255))
		if o.lut[q] != want {
			t.Errorf("relu6 table[%d] = %d, want %d", q, o.lut[q], want)
		}
	}
	if o.lut[255] != 255 || o.lut[0] != 0 {
		t.Errorf("relu6 table does not clamp at the quantized 0 and 6: [0]=%d [255]=%d", o.lut[0], o.lut[255])
	}
}
