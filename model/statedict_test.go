package model_test

import (
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/safetensors"
)

var update = flag.Bool("update", false, "rerun teacher/testdata/pytorch/make_teachers.py (needs a python3 with torch; $PYTHON picks one)")

// pytorchDir holds the PyTorch-made teachers (make_teachers.py).
const pytorchDir = "../teacher/testdata/pytorch"

// pytorchSpec is the network make_teachers.py builds, as distill describes it.
func pytorchSpec(t *testing.T) model.Spec {
	t.Helper()
	spec, err := model.Blocks(model.BlocksConfig{
		Name:    "pytorch-resnet",
		Input:   []int{1, 28, 28},
		Stem:    model.StemConfig{Channels: 8},
		Stages:  []model.Stage{{Channels: 8}, {Channels: 16, Stride: 2}},
		Classes: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

var regenerated bool

// pytorchFiles returns the directory of PyTorch's files, regenerated
// first under -update.
func pytorchFiles(t *testing.T) string {
	t.Helper()
	if *update && !regenerated {
		py := ""
		for _, p := range []string{os.Getenv("PYTHON"), "python3", "/usr/bin/python3"} {
			if p != "" && exec.Command(p, "-c", "import torch").Run() == nil {
				py = p
				break
			}
		}
		if py == "" {
			t.Fatal("-update needs a python3 that imports torch: install PyTorch or point $PYTHON at such a python")
		}
		cmd := exec.Command(py, "make_teachers.py", ".")
		cmd.Dir = pytorchDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make_teachers.py: %v\n%s", err, out)
		}
		regenerated = true
	}
	return pytorchDir
}

func readST(t *testing.T, path string) *safetensors.File {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func f32(t *testing.T, f *safetensors.File, name string) ([]int, []float32) {
	t.Helper()
	tt, ok := f.Tensors[name]
	if !ok {
		t.Fatalf("no tensor %q", name)
	}
	v, err := tt.Float32()
	if err != nil {
		t.Fatal(err)
	}
	return tt.Shape, v
}

// checkLogits runs w through the float64 reference and the FP32 runtime
// and compares both with PyTorch's logits.
func checkLogits(t *testing.T, spec model.Spec, w model.Weights, x []float32, n int, want []float32) {
	t.Helper()
	const tol = 1e-4
	ref, err := backendtest.ReferenceForward(spec, w, x, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := infer.Compile(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, n*spec.Classes)
	if err := p.Forward(x, n, got); err != nil {
		t.Fatal(err)
	}
	var worstRef, worstF32 float64
	for i, v := range want {
		worstRef = math.Max(worstRef, math.Abs(ref[i]-float64(v)))
		worstF32 = math.Max(worstF32, math.Abs(float64(got[i]-v)))
	}
	t.Logf("max |logit - PyTorch's|: reference %.3g, infer FP32 %.3g", worstRef, worstF32)
	if worstRef > tol || worstF32 > tol || math.IsNaN(worstRef+worstF32) {
		t.Errorf("logits differ from PyTorch's by %g (float64 reference) and %g (infer FP32), want <= %g", worstRef, worstF32, tol)
	}
}

// TestPyTorchStateDict loads PyTorch's state dict of a torchvision-named
// ResNet (and its float16 and bfloat16 copies) onto model.Blocks and
// checks the logits against PyTorch's on the same inputs.
func TestPyTorchStateDict(t *testing.T) {
	dir := pytorchFiles(t)
	spec := pytorchSpec(t)
	io := readST(t, filepath.Join(dir, "io.safetensors"))
	xs, x := f32(t, io, "x")
	n := xs[0]
	for _, tc := range []struct{ file, logits string }{
		{"resnet.safetensors", "logits"},
		{"resnet_f16.safetensors", "logits_f16"},
		{"resnet_bf16.safetensors", "logits_bf16"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			w, err := model.LoadSafetensorsWeights(filepath.Join(dir, tc.file), spec)
			if err != nil {
				t.Fatal(err)
			}
			// The running statistics are PyTorch's, not the initial 0 and 1.
			if rv := w["layer2.0.bn2.running_var"].Data; rv[0] == 1 || w["bn1.running_mean"].Data[0] == 0 {
				t.Fatalf("running statistics look untrained: var %v", rv)
			}
			_, want := f32(t, io, tc.logits)
			checkLogits(t, spec, w, x, n, want)
		})
	}
	// A float64 copy (as state_dict() of a model.double()) holds the
	// same values.
	t.Run("F64 copy", func(t *testing.T) {
		src := readST(t, filepath.Join(dir, "resnet.safetensors"))
		path := renamed(t, src, func(s string) string { return s })
		f := readST(t, path)
		for name, tt := range f.Tensors {
			if tt.DType == safetensors.Float32 {
				v, err := tt.Float64()
				if err != nil {
					t.Fatal(err)
				}
				f.Tensors[name] = safetensors.F64(tt.Shape, v)
			}
		}
		if err := safetensors.WriteFile(path, f); err != nil {
			t.Fatal(err)
		}
		w, err := model.LoadSafetensorsWeights(path, spec)
		if err != nil {
			t.Fatal(err)
		}
		_, want := f32(t, io, "logits")
		checkLogits(t, spec, w, x, n, want)
	})
}

// renamed writes the tensors of src under new names.
func renamed(t *testing.T, src *safetensors.File, rename func(string) string) string {
	t.Helper()
	out := &safetensors.File{Tensors: map[string]safetensors.Tensor{}, Metadata: src.Metadata}
	for name, tt := range src.Tensors {
		if nn := rename(name); nn != "" {
			out.Tensors[nn] = tt
		}
	}
	path := filepath.Join(t.TempDir(), "renamed.safetensors")
	if err := safetensors.WriteFile(path, out); err != nil {
		t.Fatal(err)
	}
	return path
}

// fileNames renames torchvision's names as another codebase might.
var fileNames = strings.NewReplacer("conv1.", "features.0.", "bn1.", "features.1.", "fc.", "classifier.")

func renameStem(name string) string {
	if strings.HasPrefix(name, "layer") {
		return strings.Replace(name, "layer2.", "stage2.", 1)
	}
	return fileNames.Replace(name)
}

func TestPyTorchStateDictPrefixAndMap(t *testing.T) {
	dir := pytorchFiles(t)
	spec := pytorchSpec(t)
	src := readST(t, filepath.Join(dir, "resnet.safetensors"))
	io := readST(t, filepath.Join(dir, "io.safetensors"))
	xs, x := f32(t, io, "x")
	_, want := f32(t, io, "logits")

	for _, tc := range []struct {
		name   string
		rename func(string) string
		m      map[string]string
	}{
		{"module", func(s string) string { return "module." + s }, nil},
		{"compiled DataParallel", func(s string) string { return "module._orig_mod." + s }, nil},
		{"map", renameStem, map[string]string{"conv1": "features.0", "bn1": "features.1", "layer2": "stage2", "fc": "classifier"}},
		{"map with prefix", func(s string) string { return "model." + renameStem(s) }, map[string]string{
			"conv1": "features.0", "bn1.weight": "features.1.weight", "bn1": "features.1", "layer2": "stage2", "fc.weight": "classifier.weight", "fc.bias": "classifier.bias",
		}},
		{"map value outside the prefix", func(s string) string {
			if strings.HasPrefix(s, "fc.") {
				return "head." + s
			}
			return "module." + s
		}, map[string]string{"fc": "head.fc"}},
		{"map values with the prefix", func(s string) string { return "module." + renameStem(s) }, map[string]string{
			"conv1": "module.features.0", "bn1": "features.1", "layer2": "module.stage2", "fc": "classifier",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := renamed(t, src, tc.rename)
			w, err := model.LoadStateDict(path, spec, model.StateDictOptions{Map: tc.m})
			if err != nil {
				t.Fatal(err)
			}
			checkLogits(t, spec, w, x, xs[0], want)
		})
	}
}

// TestPyTorchStateDictErrors: every problem of a file is reported at
// once, with the file's and the spec's names.
func TestPyTorchStateDictErrors(t *testing.T) {
	dir := pytorchFiles(t)
	spec := pytorchSpec(t)
	src := readST(t, filepath.Join(dir, "resnet.safetensors"))

	broken := &safetensors.File{Tensors: map[string]safetensors.Tensor{}}
	for name, tt := range src.Tensors {
		broken.Tensors["module."+name] = tt
	}
	delete(broken.Tensors, "module.layer1.0.bn2.running_var")                                                // missing
	broken.Tensors["module.layer3.0.conv1.weight"] = safetensors.F32([]int{2}, []float32{1, 2})              // extra
	broken.Tensors["module.fc.weight"] = safetensors.F32([]int{16, 10}, make([]float32, 160))                // mis-shaped (transposed)
	broken.Tensors["module.layer1.0.conv2.weight"] = safetensors.F32([]int{8, 8, 1, 1}, make([]float32, 64)) // mis-shaped
	broken.Tensors["module.layer1.0.bn1.weight"] = safetensors.I32([]int{8}, make([]int32, 8))               // not a float
	brokenPath := filepath.Join(t.TempDir(), "broken.safetensors")
	if err := safetensors.WriteFile(brokenPath, broken); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		path string
		m    map[string]string
		want []string
		not  []string // what the error leaves out
	}{
		{"all at once", brokenPath, nil, []string{
			`no tensor "module.layer1.0.bn2.running_var" (shape [8])`,
			`tensor "module.layer3.0.conv1.weight" is not a parameter of the spec or one of its buffers (F32 [2])`,
			`tensor "module.fc.weight" has shape [16 10], the spec needs [10 16] (transposed?`,
			`tensor "module.layer1.0.conv2.weight" has shape [8 8 1 1], the spec needs [8 8 3 3]`,
			`tensor "module.layer1.0.bn1.weight"`, "I32",
		}, nil},
		{"renamed without a map", renamed(t, src, renameStem), nil, []string{
			`no tensor "conv1.weight" (shape [8 1 3 3])`,
			`no tensor "layer2.0.downsample.1.running_mean" (shape [16])`,
			`tensor "features.0.weight" is not a parameter of the spec or one of its buffers (F32 [8 1 3 3]); spec tensors of that shape that found none: "conv1.weight"`,
			`tensor "classifier.bias" is not a parameter of the spec or one of its buffers (F32 [10]); spec tensors of that shape that found none: "fc.bias"`,
			`tensor "features.1.running_var" is not a parameter of the spec or one of its buffers (F32 [8]); spec tensors of that shape that found none: "bn1.running_var"` + "\n",
			"map the spec's name to the file's",
		}, []string{"num_batches_tracked"}},
		{"map to missing names", renamed(t, src, renameStem), map[string]string{"conv1": "features.0", "bn1": "features.1", "layer2": "stage2", "fc": "head"}, []string{
			`no tensor "head.weight" (spec tensor "fc.weight") (shape [10 16])`,
			`tensor "classifier.weight" is not a parameter of the spec or one of its buffers (F32 [10 16]); spec tensors of that shape that found none: "fc.weight"`,
		}, nil},
		{"map key names nothing", filepath.Join(dir, "resnet.safetensors"), map[string]string{"stem.conv": "features.0", "fc.": "x"}, []string{
			`map key "stem.conv" names no tensor or layer of the spec (layers with tensors: "conv1", "bn1",`,
			`map entry "fc.": "x": both names must be non-empty`,
		}, nil},
		{"two spec tensors on one file tensor", filepath.Join(dir, "resnet.safetensors"), map[string]string{"layer1.0.bn1": "layer1.0.bn2"}, []string{
			`spec tensors "layer1.0.bn1.weight" and "layer1.0.bn2.weight" both map to file tensor "layer1.0.bn2.weight"`,
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.LoadStateDict(tc.path, spec, model.StateDictOptions{Map: tc.m})
			if err == nil {
				t.Fatal("LoadStateDict succeeded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "model: ") || !strings.Contains(msg, tc.path) {
				t.Errorf("error %q does not start with model: and name %s", msg, tc.path)
			}
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not contain %q:\n%s", want, msg)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(msg, not) {
					t.Errorf("error contains %q:\n%s", not, msg)
				}
			}
		})
	}
}

// The counters of batchnorms are ignored under a map too, and only there.
func TestStateDictCounters(t *testing.T) {
	spec := pytorchSpec(t)
	src := readST(t, filepath.Join(pytorchFiles(t), "resnet.safetensors"))
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{}}
	for name, tt := range src.Tensors {
		f.Tensors[renameStem(name)] = tt
	}
	w, err := model.MapStateDict(f, spec, model.StateDictOptions{Map: map[string]string{"conv1": "features.0", "bn1": "features.1", "layer2": "stage2", "fc": "classifier"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Check(w); err != nil {
		t.Fatal(err)
	}
	f.Tensors["classifier.num_batches_tracked"] = safetensors.I64(nil, []int64{3})
	_, err = model.MapStateDict(f, spec, model.StateDictOptions{Map: map[string]string{"conv1": "features.0", "bn1": "features.1", "layer2": "stage2", "fc": "classifier"}})
	if err == nil || !strings.Contains(err.Error(), `tensor "classifier.num_batches_tracked" is not a parameter`) {
		t.Fatalf("a counter of a linear layer: %v", err)
	}
}

// A state dict whose layers another codebase named differently loads
// with a map from the spec's names to the file's.
func ExampleLoadStateDict() {
	dir, err := os.MkdirTemp("", "model")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	// As written by safetensors.torch.save_file(net.state_dict(), path)
	// for net = nn.Sequential(OrderedDict(features=nn.Sequential(nn.Linear(3, 2))))
	// inside nn.DataParallel.
	err = safetensors.WriteFile(path, &safetensors.File{
		Tensors: map[string]safetensors.Tensor{
			"module.features.0.weight": safetensors.F32([]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
			"module.features.0.bias":   safetensors.BF16([]int{2}, []float32{0, 1}),
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	spec := model.Spec{Name: "linear", Input: []int{3}, Classes: 2, Layers: []model.Layer{{Name: "fc", Kind: model.KindLinear, Out: 2}}}
	w, err := model.LoadStateDict(path, spec, model.StateDictOptions{Map: map[string]string{"fc": "features.0"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(w["fc.weight"].Shape, w["fc.weight"].Data, w["fc.bias"].Data)
	// Output: [2 3] [1 2 3 4 5 6] [0 1]
}
