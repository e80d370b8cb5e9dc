//go:build cgo

package ort

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx"
	"github.com/distill-dev/distill/onnx/onnxpb"
)

var (
	ortOnce sync.Once
	ortSkip string
	ortErr  error
)

// needORT loads ONNX Runtime once, or skips the test when its library
// is not installed (fails instead when DISTILL_REQUIRE_ORT is set), as
// package onnx's tests do.
func needORT(t testing.TB) {
	t.Helper()
	ortOnce.Do(func() {
		if _, err := onnx.RuntimeLibrary(); err != nil {
			ortSkip = err.Error()
			return
		}
		_, ortErr = Check("")
	})
	if ortSkip != "" {
		if os.Getenv("DISTILL_REQUIRE_ORT") != "" {
			t.Fatalf("DISTILL_REQUIRE_ORT is set but %s", ortSkip)
		}
		t.Skip(ortSkip)
	}
	if ortErr != nil {
		t.Fatal(ortErr)
	}
}

var _ backend.FeatureModel = (*Teacher)(nil)

// fixture is a network distill built, initialised with non-trivial
// batchnorms and exported as FP32 ONNX.
type fixture struct {
	spec model.Spec
	w    model.Weights
	path string
}

func newFixture(t *testing.T, spec model.Spec) fixture {
	t.Helper()
	w, err := spec.Init(7)
	if err != nil {
		t.Fatal(err)
	}
	backendtest.RandomizeBatchNorm(spec, w, 3)
	path := filepath.Join(t.TempDir(), spec.Name+".onnx")
	if err := onnx.WriteFileFP32(path, spec, w); err != nil {
		t.Fatal(err)
	}
	return fixture{spec: spec, w: w, path: path}
}

func randomInputs(spec model.Spec, n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n*model.Numel(spec.Input))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// engineLogits are distill's FP32 inference engine's logits.
func engineLogits(t *testing.T, f fixture, x []float32, n int) []float32 {
	t.Helper()
	p, err := infer.Compile(f.spec, f.w)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, n*f.spec.Classes)
	if err := p.Forward(x, n, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func near(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, 0
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	t.Logf("%s: max |diff| %.3g", what, worst)
	if !(worst <= tol) {
		t.Errorf("%s: |diff| %.3g at %d (got %v, want %v), want ≤ %g", what, worst, at, got[at], want[at], tol)
	}
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// TestLogitsMatchDistill runs networks of every graph kind distill
// builds, exported to ONNX, through the ORT teacher and compares its
// logits with distill's FP32 engine and the float64 reference.
func TestLogitsMatchDistill(t *testing.T) {
	needORT(t)
	for _, spec := range backendtest.GraphSpecs(t) {
		t.Run(spec.Name, func(t *testing.T) {
			f := newFixture(t, spec)
			tc, err := Open(f.path, Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			s := tc.Spec()
			if !slices.Equal(s.Input, spec.Input) || s.Classes != spec.Classes || len(s.Layers) != 1 || s.Layers[0].Name != onnx.OutputName {
				t.Errorf("spec %+v: want input %v, %d classes, one layer %q", s, spec.Input, spec.Classes, onnx.OutputName)
			}
			if tc.FixedBatch() != 0 {
				t.Errorf("FixedBatch() = %d for a dynamic batch", tc.FixedBatch())
			}
			const n = 5
			x := randomInputs(spec, n, 1)
			got := make([]float32, n*spec.Classes)
			if err := tc.Forward(x, n, got); err != nil {
				t.Fatal(err)
			}
			near(t, "ORT teacher vs infer FP32", got, f64(engineLogits(t, f, x, n)), 1e-4)
			ref, err := backendtest.ReferenceForward(spec, f.w, x, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "ORT teacher vs float64 reference", got, ref, 1e-4)
		})
	}
}

func resnet(t *testing.T) fixture {
	return newFixture(t, backendtest.GraphSpecs(t)[0])
}

// TestFeatures reads block outputs (a ReLU after an add, and the add
// itself) by tensor name and compares them with the float64 reference's
// outputs of the same layers.
func TestFeatures(t *testing.T) {
	needORT(t)
	f := resnet(t)
	info, err := Inspect(f.path)
	if err != nil {
		t.Fatal(err)
	}
	layers := []string{"layer2.0.add", "layer1.0"} // not in graph order
	for _, l := range layers {
		if !slices.ContainsFunc(info.Intermediate, func(x Tensor) bool { return x.Name == l }) {
			t.Fatalf("the exported model has no tensor %q: %+v", l, info.Intermediate)
		}
	}
	tc, err := Open(f.path, Options{Features: layers, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	s := tc.Spec()
	shapes, _ := f.spec.Shapes()
	var names []string
	for _, l := range s.Layers {
		names = append(names, l.Name)
		if l.Kind != model.KindExternal {
			t.Errorf("layer %q has kind %q, want external", l.Name, l.Kind)
		}
		if _, i, ok := f.spec.Layer(l.Name); ok && !slices.Equal(l.Shape, shapes[i]) {
			t.Errorf("layer %q has shape %v, distill's spec says %v", l.Name, l.Shape, shapes[i])
		}
	}
	if want := []string{"layer1.0", "layer2.0.add", onnx.OutputName}; !slices.Equal(names, want) {
		t.Errorf("spec layers %q, want %q (graph order, logits last)", names, want)
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}

	const n = 4
	x := randomInputs(f.spec, n, 2)
	ask := []string{"layer1.0", "layer2.0.add", "layer1.0", onnx.OutputName}
	sh, _ := s.Shapes()
	feats := make([][]float32, len(ask))
	for i, l := range ask {
		_, j, _ := s.Layer(l)
		feats[i] = make([]float32, n*model.Numel(sh[j]))
	}
	logits := make([]float32, n*f.spec.Classes)
	if err := tc.ForwardFeatures(x, n, ask, logits, feats); err != nil {
		t.Fatal(err)
	}
	refLogits, refFeats, err := backendtest.ReferenceLayers(f.spec, f.w, x, n, nil, ask[:3])
	if err != nil {
		t.Fatal(err)
	}
	near(t, "logits", logits, refLogits, 1e-4)
	near(t, "logits as a feature", feats[3], refLogits, 1e-4)
	for i, l := range ask[:3] {
		near(t, "feature "+l, feats[i], refFeats[i], 1e-4)
	}
	// Features alone, without logits.
	again := make([]float32, len(feats[1]))
	if err := tc.ForwardFeatures(x, n, ask[1:2], nil, [][]float32{again}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again, feats[1]) {
		t.Error("a feature alone differs from the same feature read with others")
	}
	if err := tc.ForwardFeatures(x, n, []string{"layer2.0"}, nil, [][]float32{again}); err == nil || !strings.Contains(err.Error(), "Options.Features") {
		t.Errorf("a feature not opened: %v; want an error saying to open it", err)
	}
}

// fixBatch rewrites the model's input and output batch dimension to b.
func fixBatch(t *testing.T, path string, b int64) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := new(onnxpb.ModelProto)
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	for _, v := range append(m.Graph.Input, m.Graph.Output...) {
		d := v.Type.GetTensorType().Shape.Dim[0]
		d.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: b}
	}
	out, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := strings.TrimSuffix(path, ".onnx") + "-fixed.onnx"
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFixedBatch: a model whose batch is fixed runs per chunk of that
// size, the last one padded, for any number of examples.
func TestFixedBatch(t *testing.T) {
	needORT(t)
	f := resnet(t)
	const n = 5
	x := randomInputs(f.spec, n, 3)
	want := engineLogits(t, f, x, n)
	_, refFeats, err := backendtest.ReferenceLayers(f.spec, f.w, x, n, nil, []string{"layer1.0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []int64{1, 3, 8} {
		tc, err := Open(fixBatch(t, f.path, b), Options{Features: []string{"layer1.0"}, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if tc.FixedBatch() != int(b) {
			t.Errorf("FixedBatch() = %d, want %d", tc.FixedBatch(), b)
		}
		got := make([]float32, n*f.spec.Classes)
		if err := tc.Forward(x, n, got); err != nil {
			t.Fatal(err)
		}
		near(t, "fixed batch logits", got, f64(want), 1e-4)
		feat := make([]float32, len(refFeats[0]))
		if err := tc.ForwardFeatures(x, n, []string{"layer1.0"}, nil, [][]float32{feat}); err != nil {
			t.Fatal(err)
		}
		near(t, "fixed batch feature", feat, refFeats[0], 1e-4)
		tc.Close()
	}
}

// TestOpaqueSpec: the teacher's spec has no tensors, distill's engines
// refuse to run it, and it has no distill weights.
func TestOpaqueSpec(t *testing.T) {
	needORT(t)
	f := resnet(t)
	tc, err := Open(f.path, Options{Features: []string{"layer1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.Weights(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Weights() error %v, want one wrapping errors.ErrUnsupported", err)
	}
	if _, err := infer.Compile(tc.Spec(), model.Weights{}); err == nil || !strings.Contains(err.Error(), "outside distill") {
		t.Errorf("infer.Compile of the teacher's spec: %v; want an error saying external layers run outside distill", err)
	}
	if _, err := backendtest.ReferenceForward(tc.Spec(), model.Weights{}, make([]float32, 128), 1, nil); err == nil || !strings.Contains(err.Error(), "outside distill") {
		t.Errorf("the float64 reference on the teacher's spec: %v; want an error saying external layers run outside distill", err)
	}
	if err := tc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tc.Forward(make([]float32, 128), 1, make([]float32, 3)); err == nil {
		t.Error("Forward after Close succeeded")
	}
}

// TestBadInputs: each kind of bad model or request fails at Open with an
// error that names the problem.
func TestBadInputs(t *testing.T) {
	needORT(t)
	f := resnet(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	m := new(onnxpb.ModelProto)
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	twoOut, err := withOutputs(m, []string{"layer1.0"})
	if err != nil {
		t.Fatal(err)
	}
	// Naming the logits picks them among several outputs, and a feature
	// the graph already outputs is read as such.
	tc, err := Open(write("two-named.onnx", twoOut), Options{Output: onnx.OutputName, Features: []string{"layer1.0"}})
	if err != nil {
		t.Fatalf("a model with two outputs, the logits named: %v", err)
	}
	if s := tc.Spec(); s.Classes != f.spec.Classes || len(s.Layers) != 2 {
		t.Errorf("spec %+v: want %d classes and two layers", s, f.spec.Classes)
	}
	tc.Close()
	m.Graph.Node[1].OpType = proto.String("NoSuchOp")
	badOp, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		opts       Options
		want       []string
	}{
		{"text file", write("notes.onnx", []byte("these are not the weights you are looking for\n")), Options{}, []string{"not an ONNX model"}},
		{"safetensors-like bytes", write("model.onnx", append([]byte{8, 0, 0, 0, 0, 0, 0, 0}, `{"a":1}`...)), Options{}, []string{"not an ONNX model"}},
		{"missing file", filepath.Join(dir, "absent.onnx"), Options{}, []string{"absent.onnx"}},
		{"op ONNX Runtime rejects", write("badop.onnx", badOp), Options{}, []string{"rejects", "NoSuchOp"}},
		{"missing feature", f.path, Options{Features: []string{"layer1.0", "layer9.0"}}, []string{`no intermediate tensor "layer9.0"`}},
		{"similar feature names", f.path, Options{Features: []string{"/layer1/layer1.0.add"}}, []string{`"layer1.0.add"`}},
		{"two outputs, none named", write("two.onnx", twoOut), Options{}, []string{"2 outputs", `"layer1.0"`, "name the logits"}},
		{"missing output", f.path, Options{Output: "probs"}, []string{`no output "probs"`, onnx.OutputName}},
		{"wrong input shape", f.path, Options{Input: []int{3, 8, 8}}, []string{"does not fit"}},
		{"unknown device", f.path, Options{Device: "tpu"}, []string{`device "tpu"`}},
		{"library path", f.path, Options{Library: filepath.Join(dir, "libnothing.so")}, []string{"libnothing.so", "onnxruntime-node", onnx.RuntimeLibraryEnv}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc, err := Open(c.path, c.opts)
			if err == nil {
				tc.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestCUDAWithoutProvider: the CPU library asked for CUDA says how to get
// a GPU build (the npm package's CPU library has no CUDA provider).
func TestCUDAWithoutProvider(t *testing.T) {
	needORT(t)
	f := resnet(t)
	tc, err := Open(f.path, Options{Device: "cuda:0"})
	if err == nil {
		// A GPU build on a machine with a GPU: then it must work.
		defer tc.Close()
		x := randomInputs(f.spec, 2, 4)
		got := make([]float32, 2*f.spec.Classes)
		if err := tc.Forward(x, 2, got); err != nil {
			t.Fatal(err)
		}
		near(t, "CUDA logits", got, f64(engineLogits(t, f, x, 2)), 1e-3)
		return
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "CUDA") || !strings.Contains(err.Error(), "cpu device") {
		t.Errorf("error %q does not say how to use CUDA or the CPU", err)
	}
}

// TestDynamicSpatialInput: a model that leaves the image size dynamic
// needs the input shape stated, and then runs at it.
func TestDynamicSpatialInput(t *testing.T) {
	needORT(t)
	f := resnet(t)
	data, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	m := new(onnxpb.ModelProto)
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	dims := m.Graph.Input[0].Type.GetTensorType().Shape.Dim
	dims[2].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "height"}
	dims[3].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "width"}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dynamic.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "give the per-example input shape") {
		t.Errorf("Open with a dynamic height and width and no input shape: %v", err)
	}
	tc, err := Open(path, Options{Input: f.spec.Input})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	const n = 3
	x := randomInputs(f.spec, n, 5)
	got := make([]float32, n*f.spec.Classes)
	if err := tc.Forward(x, n, got); err != nil {
		t.Fatal(err)
	}
	near(t, "dynamic-size model at the given shape", got, f64(engineLogits(t, f, x, n)), 1e-4)
}
