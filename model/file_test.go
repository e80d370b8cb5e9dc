package model_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/safetensors"
)

func mlp(t testing.TB) (model.Spec, model.Weights) {
	t.Helper()
	spec, err := model.MLP(model.MLPConfig{Name: "tiny", Input: []int{4}, Hidden: []int{3}, Classes: 2})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	return spec, w
}

func cnn(t testing.TB) (model.Spec, model.Weights) {
	t.Helper()
	spec, err := model.CNN(model.CNNConfig{
		Name: "conv", Input: []int{1, 6, 6}, Classes: 3, Hidden: []int{4}, Dropout: 0.25,
		Conv: []model.ConvBlock{{Channels: 2, Kernel: 3, Padding: 1, Pool: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(2)
	if err != nil {
		t.Fatal(err)
	}
	return spec, w
}

func TestPaths(t *testing.T) {
	for _, in := range []string{"runs/m", "runs/m.json", "runs/m.safetensors"} {
		j, s := model.Paths(in)
		if j != "runs/m.json" || s != "runs/m.safetensors" {
			t.Errorf("Paths(%q) = %q, %q", in, j, s)
		}
	}
	// Other extensions are part of the stem.
	if j, s := model.Paths("runs/m.v2"); j != "runs/m.v2.json" || s != "runs/m.v2.safetensors" {
		t.Errorf("Paths(runs/m.v2) = %q, %q", j, s)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, build := range []func(testing.TB) (model.Spec, model.Weights){mlp, cnn} {
		spec, w := build(t)
		t.Run(spec.Name, func(t *testing.T) {
			dir := t.TempDir()
			info := model.Info{Dataset: "synthetic", ClassNames: make([]string, spec.Classes)}
			for i := range info.ClassNames {
				info.ClassNames[i] = fmt.Sprintf("class %d", i)
			}
			stem := filepath.Join(dir, "sub", spec.Name)
			if err := model.SaveWithInfo(stem+".json", spec, w, info); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{stem, stem + ".json", stem + ".safetensors"} {
				gotSpec, gotW, gotInfo, err := model.LoadWithInfo(path)
				if err != nil {
					t.Fatalf("LoadWithInfo(%s): %v", path, err)
				}
				if !reflect.DeepEqual(gotSpec, spec) {
					t.Errorf("%s: spec = %+v, want %+v", path, gotSpec, spec)
				}
				if !reflect.DeepEqual(gotW, w) {
					t.Errorf("%s: weights differ", path)
				}
				if !reflect.DeepEqual(gotInfo, info) {
					t.Errorf("%s: info = %+v, want %+v", path, gotInfo, info)
				}
				if _, _, err := model.Load(path); err != nil {
					t.Errorf("Load(%s): %v", path, err)
				}
			}
			entries, _ := os.ReadDir(filepath.Dir(stem))
			if len(entries) != 2 {
				t.Errorf("Save left %d files, want 2", len(entries))
			}
		})
	}
}

// TestFileLayout pins what other tools see: a PyTorch state dict in the
// .safetensors file and the documented fields in the .json file.
func TestFileLayout(t *testing.T) {
	spec, w := mlp(t)
	stem := filepath.Join(t.TempDir(), "tiny")
	if err := model.SaveWithInfo(stem, spec, w, model.Info{Dataset: "xor", ClassNames: []string{"no", "yes"}}); err != nil {
		t.Fatal(err)
	}

	f, err := safetensors.ReadFile(stem + ".safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Names(), []string{"fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"}; !slices.Equal(got, want) {
		t.Errorf("tensors %v, want %v", got, want)
	}
	if tt := f.Tensors["fc1.weight"]; tt.DType != safetensors.Float32 || !slices.Equal(tt.Shape, []int{3, 4}) {
		t.Errorf("fc1.weight is %s %v, want F32 [3 4] ([out, in])", tt.DType, tt.Shape)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf(`metadata "format" = %q, want "pt"`, f.Metadata["format"])
	}
	var metaSpec model.Spec
	if err := json.Unmarshal([]byte(f.Metadata["distill.spec"]), &metaSpec); err != nil || !reflect.DeepEqual(metaSpec, spec) {
		t.Errorf("distill.spec metadata = %q (%v)", f.Metadata["distill.spec"], err)
	}

	raw, err := os.ReadFile(stem + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"format", "name", "input", "classes", "layers", "dataset", "class_names", "sha256"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("JSON file has no %q field: %s", key, raw)
		}
	}
	if doc["format"] != model.FileFormat || doc["name"] != "tiny" || doc["dataset"] != "xor" {
		t.Errorf("JSON file: %s", raw)
	}
	st, _ := os.ReadFile(stem + ".safetensors")
	sum := sha256.Sum256(st)
	if doc["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("sha256 = %v, want %x", doc["sha256"], sum)
	}
	if !strings.HasSuffix(string(raw), "}\n") {
		t.Error("JSON file does not end in a newline")
	}

	// Saving the same model again gives the same bytes.
	if err := model.SaveWithInfo(stem, spec, w, model.Info{Dataset: "xor", ClassNames: []string{"no", "yes"}}); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(stem + ".json")
	if string(again) != string(raw) {
		t.Error("Save is not deterministic")
	}
}

func TestSaveRefusesBadModels(t *testing.T) {
	spec, w := mlp(t)
	nan := w.Clone()
	nan["fc1.bias"].Data[0] = float32(math.NaN())
	extra := w.Clone()
	extra["fc3.weight"] = model.NewTensor(1)
	bad := spec
	bad.Classes = 5
	for _, tc := range []struct {
		name string
		spec model.Spec
		w    model.Weights
		info model.Info
		want string
	}{
		{"invalid spec", bad, w, model.Info{}, "want [5] logits"},
		{"missing tensor", spec, model.Weights{}, model.Info{}, `missing tensor "fc1.weight"`},
		{"NaN", spec, nan, model.Info{}, "NaN"},
		{"extra tensor", spec, extra, model.Info{}, `unexpected tensor "fc3.weight"`},
		{"class names", spec, w, model.Info{ClassNames: []string{"a"}}, "1 class names for 2 classes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := model.SaveWithInfo(filepath.Join(dir, "m"), tc.spec, tc.w, tc.info)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "m.json") {
				t.Errorf("error %v, want one naming m.json and containing %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("Save left %d files behind", len(entries))
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	spec, w := mlp(t)
	type files struct{ dir, stem, json, st string }
	setup := func(t *testing.T) files {
		dir := t.TempDir()
		stem := filepath.Join(dir, "m")
		if err := model.Save(stem, spec, w); err != nil {
			t.Fatal(err)
		}
		return files{dir, stem, stem + ".json", stem + ".safetensors"}
	}
	editJSON := func(t *testing.T, path string, edit func(map[string]any)) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		edit(doc)
		b, _ = json.Marshal(doc)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := spec.Init(99)

	for _, tc := range []struct {
		name    string
		load    string // "stem", "json" or "st": which path to pass
		corrupt func(t *testing.T, f files)
		want    []string // in the error message
		is      error
	}{
		{"no JSON file", "stem", func(t *testing.T, f files) { os.Remove(f.json) }, []string{"m.json"}, os.ErrNotExist},
		{"no weights file", "json", func(t *testing.T, f files) { os.Remove(f.st) }, []string{"m.safetensors"}, os.ErrNotExist},
		{"JSON not JSON", "stem", func(t *testing.T, f files) { os.WriteFile(f.json, []byte("name: m\n"), 0o644) }, []string{"m.json", "not a valid model file"}, nil},
		{"JSON without format", "stem", func(t *testing.T, f files) {
			editJSON(t, f.json, func(d map[string]any) { delete(d, "format") })
		}, []string{"m.json", `no "format" field`}, nil},
		{"JSON of a later format", "stem", func(t *testing.T, f files) {
			editJSON(t, f.json, func(d map[string]any) { d["format"] = "distill.model/v2" })
		}, []string{"m.json", `format "distill.model/v2"`}, nil},
		{"bad hash", "stem", func(t *testing.T, f files) {
			editJSON(t, f.json, func(d map[string]any) { d["sha256"] = "xyz" })
		}, []string{"m.json", "not a SHA-256"}, nil},
		{"invalid spec", "json", func(t *testing.T, f files) {
			editJSON(t, f.json, func(d map[string]any) { d["classes"] = 3 })
		}, []string{"m.json", "want [3] logits"}, nil},
		{"weights replaced", "stem", func(t *testing.T, f files) {
			// What an interrupted Save leaves: new weights, old JSON.
			g := &safetensors.File{Tensors: map[string]safetensors.Tensor{}, Metadata: map[string]string{"format": "pt"}}
			for n, tt := range other {
				g.Tensors[n] = safetensors.F32(tt.Shape, tt.Data)
			}
			if err := safetensors.WriteFile(f.st, g); err != nil {
				t.Fatal(err)
			}
		}, []string{"m.safetensors does not match", "m.json", "SHA-256"}, nil},
		{"truncated weights", "stem", func(t *testing.T, f files) {
			b, _ := os.ReadFile(f.st)
			os.WriteFile(f.st, b[:len(b)-3], 0o644)
		}, []string{"m.safetensors", "truncated"}, safetensors.ErrInvalid},
		{"truncated weights, loaded directly", "st", func(t *testing.T, f files) {
			b, _ := os.ReadFile(f.st)
			os.WriteFile(f.st, b[:100], 0o644)
		}, []string{"m.safetensors"}, safetensors.ErrInvalid},
		{"weights from elsewhere", "st", func(t *testing.T, f files) {
			g := &safetensors.File{Tensors: map[string]safetensors.Tensor{"fc1.weight": safetensors.F32([]int{1}, []float32{1})}}
			safetensors.WriteFile(f.st, g)
		}, []string{"m.safetensors", `no "distill.spec" metadata`, "LoadSafetensorsWeights"}, nil},
		{"weights that do not fit", "st", func(t *testing.T, f files) {
			g, _ := safetensors.ReadFile(f.st)
			delete(g.Tensors, "fc2.bias")
			g.Tensors["fc1.weight"] = safetensors.F32([]int{4, 3}, make([]float32, 12))
			safetensors.WriteFile(f.st, g)
		}, []string{"m.safetensors", `missing tensor "fc2.bias"`, `tensor "fc1.weight" has shape [4 3], the spec needs [3 4]`}, nil},
		{"integer weights", "st", func(t *testing.T, f files) {
			g, _ := safetensors.ReadFile(f.st)
			g.Tensors["fc2.bias"] = safetensors.I32([]int{2}, []int32{1, 2})
			safetensors.WriteFile(f.st, g)
		}, []string{"m.safetensors", `tensor "fc2.bias"`, "I32"}, safetensors.ErrInvalid},
		{"bad spec metadata", "st", func(t *testing.T, f files) {
			g, _ := safetensors.ReadFile(f.st)
			g.Metadata["distill.spec"] = "{"
			safetensors.WriteFile(f.st, g)
		}, []string{"m.safetensors", "not a valid spec"}, nil},
		{"NaN weights", "st", func(t *testing.T, f files) {
			g, _ := safetensors.ReadFile(f.st)
			g.Tensors["fc2.bias"] = safetensors.F32([]int{2}, []float32{1, float32(math.Inf(1))})
			safetensors.WriteFile(f.st, g)
		}, []string{"m.safetensors", "NaN or Inf"}, nil},
		{"class names do not fit", "st", func(t *testing.T, f files) {
			g, _ := safetensors.ReadFile(f.st)
			g.Metadata["distill.class_names"] = `["a","b","c"]`
			safetensors.WriteFile(f.st, g)
		}, []string{"m.safetensors", "3 class names for 2 classes"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			tc.corrupt(t, f)
			path := map[string]string{"stem": f.stem, "json": f.json, "st": f.st}[tc.load]
			_, _, err := model.Load(path)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.HasPrefix(err.Error(), "model: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", err, tc.is)
			}
		})
	}
}

func TestLoadWithoutHash(t *testing.T) {
	// A JSON file written by hand, without a hash, is accepted.
	spec, w := mlp(t)
	stem := filepath.Join(t.TempDir(), "m")
	if err := model.Save(stem, spec, w); err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{"format": model.FileFormat, "name": spec.Name, "input": spec.Input, "classes": spec.Classes, "layers": spec.Layers}
	b, _ := json.Marshal(doc)
	if err := os.WriteFile(stem+".json", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := model.Load(stem); err != nil {
		t.Fatal(err)
	}
}

// pytorchFile writes what safetensors.torch.save_file(state_dict) writes
// for tensors named prefix+param, in dtype.
func pytorchFile(t *testing.T, w model.Weights, prefix string, dtype safetensors.DType, extra map[string]safetensors.Tensor) string {
	t.Helper()
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{}, Metadata: map[string]string{"format": "pt"}}
	for name, tt := range w {
		var st safetensors.Tensor
		switch dtype {
		case safetensors.Float32:
			st = safetensors.F32(tt.Shape, tt.Data)
		case safetensors.Float16:
			st = safetensors.F16(tt.Shape, tt.Data)
		case safetensors.BFloat16:
			st = safetensors.BF16(tt.Shape, tt.Data)
		case safetensors.Float64:
			d := make([]float64, len(tt.Data))
			for i, v := range tt.Data {
				d[i] = float64(v)
			}
			st = safetensors.F64(tt.Shape, d)
		}
		f.Tensors[prefix+name] = st
	}
	for name, tt := range extra {
		f.Tensors[name] = tt
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := safetensors.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadSafetensorsWeights(t *testing.T) {
	spec, w := cnn(t)
	for _, tc := range []struct {
		prefix string
		dtype  safetensors.DType
		extra  map[string]safetensors.Tensor
		tol    float64
	}{
		{"", safetensors.Float32, nil, 0},
		{"model.", safetensors.Float32, nil, 0},
		{"module.", safetensors.Float16, nil, 1e-3},
		{"_orig_mod.", safetensors.BFloat16, nil, 1e-2},
		{"model.module.", safetensors.Float64, nil, 0},
		// Tensors outside the prefix (an optimizer step, an EMA copy
		// under another name) are ignored.
		{"student.", safetensors.Float32, map[string]safetensors.Tensor{
			"step":          safetensors.I64(nil, []int64{7}),
			"ema.fc1.bias2": safetensors.F32([]int{1}, []float32{1}),
		}, 0},
	} {
		t.Run(tc.prefix+string(tc.dtype), func(t *testing.T) {
			path := pytorchFile(t, w, tc.prefix, tc.dtype, tc.extra)
			got, err := model.LoadSafetensorsWeights(path, spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := spec.Check(got); err != nil {
				t.Fatal(err)
			}
			for name, want := range w {
				for i, v := range got[name].Data {
					if d := math.Abs(float64(v - want.Data[i])); d > tc.tol*math.Max(1, math.Abs(float64(want.Data[i]))) {
						t.Fatalf("%s[%d] = %g, want %g", name, i, v, want.Data[i])
					}
				}
			}
		})
	}
}

func TestLoadSafetensorsWeightsErrors(t *testing.T) {
	spec, w := mlp(t)
	transposed := w.Clone()
	transposed["fc1.weight"] = model.Tensor{Shape: []int{4, 3}, Data: w["fc1.weight"].Data}
	missing := w.Clone()
	delete(missing, "fc2.bias")
	nan := w.Clone()
	nan["fc2.bias"].Data[1] = float32(math.NaN())
	bad := spec
	bad.Layers = nil

	for _, tc := range []struct {
		name string
		path func(t *testing.T) string
		spec model.Spec
		want []string
	}{
		{"transposed", func(t *testing.T) string { return pytorchFile(t, transposed, "", safetensors.Float32, nil) }, spec,
			[]string{`"fc1.weight" has shape [4 3], the spec needs [3 4] (transposed?`}},
		{"missing", func(t *testing.T) string { return pytorchFile(t, missing, "model.", safetensors.Float32, nil) }, spec,
			[]string{`no tensor "model.fc2.bias" (shape [2])`}},
		{"unexpected", func(t *testing.T) string {
			return pytorchFile(t, w, "", safetensors.Float32, map[string]safetensors.Tensor{"fc3.weight": safetensors.F32([]int{1}, []float32{1})})
		}, spec, []string{`tensor "fc3.weight" is not a parameter of the spec`}},
		{"buffers", func(t *testing.T) string {
			return pytorchFile(t, w, "module.", safetensors.Float32, map[string]safetensors.Tensor{"module.bn.num_batches_tracked": safetensors.I64(nil, []int64{1})})
		}, spec, []string{`"module.bn.num_batches_tracked" is not a parameter`}},
		{"integer", func(t *testing.T) string {
			return pytorchFile(t, missing, "", safetensors.Float32, map[string]safetensors.Tensor{"fc2.bias": safetensors.I32([]int{2}, []int32{1, 2})})
		}, spec, []string{`tensor "fc2.bias"`, "I32"}},
		{"NaN", func(t *testing.T) string { return pytorchFile(t, nan, "", safetensors.Float32, nil) }, spec,
			[]string{"NaN or Inf"}},
		{"two models", func(t *testing.T) string {
			extra := map[string]safetensors.Tensor{}
			for n, tt := range w {
				extra["teacher."+n] = safetensors.F32(tt.Shape, tt.Data)
			}
			return pytorchFile(t, w, "student.", safetensors.Float32, extra)
		}, spec, []string{"several prefixes", "student.", "teacher."}},
		{"other model", func(t *testing.T) string {
			return pytorchFile(t, model.Weights{"0.weight": model.NewTensor(3, 4)}, "", safetensors.Float32, nil)
		}, spec, []string{`no tensor named "fc1.weight"`, `"0.weight"`}},
		{"invalid spec", func(t *testing.T) string { return pytorchFile(t, w, "", safetensors.Float32, nil) }, bad,
			[]string{"spec has no layers"}},
		{"not safetensors", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "x.safetensors")
			os.WriteFile(p, []byte("PK\x03\x04 a zip, as torch.save writes"), 0o644)
			return p
		}, spec, []string{"invalid data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path(t)
			_, err := model.LoadSafetensorsWeights(path, tc.spec)
			if err == nil {
				t.Fatal("LoadSafetensorsWeights succeeded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "model: ") || !strings.Contains(msg, path) {
				t.Errorf("error %q does not start with model: and name %s", msg, path)
			}
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
		})
	}
}

func ExampleSave() {
	dir, err := os.MkdirTemp("", "model")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	spec, err := model.MLP(model.MLPConfig{Name: "student", Input: []int{784}, Hidden: []int{32}, Classes: 10})
	if err != nil {
		log.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		log.Fatal(err)
	}
	if err := model.Save(filepath.Join(dir, "student"), spec, w); err != nil {
		log.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		fmt.Println(e.Name())
	}

	spec, w, err = model.Load(filepath.Join(dir, "student.json"))
	if err != nil {
		log.Fatal(err)
	}
	n, _ := spec.ParamCount()
	fmt.Println(spec.Name, n, "parameters; fc1.weight", w["fc1.weight"].Shape)
	// Output:
	// student.json
	// student.safetensors
	// student 25450 parameters; fc1.weight [32 784]
}

// PyTorch weights load into a spec whose layers are named like the
// nn.Module's submodules.
func ExampleLoadSafetensorsWeights() {
	dir, err := os.MkdirTemp("", "model")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	// As written by safetensors.torch.save_file(nn.DataParallel(net).state_dict(), path)
	// for net with a single nn.Linear(3, 2) named fc1.
	err = safetensors.WriteFile(path, &safetensors.File{
		Tensors: map[string]safetensors.Tensor{
			"module.fc1.weight": safetensors.F32([]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
			"module.fc1.bias":   safetensors.F32([]int{2}, []float32{0, 1}),
		},
		Metadata: map[string]string{"format": "pt"},
	})
	if err != nil {
		log.Fatal(err)
	}

	spec := model.Spec{Name: "linear", Input: []int{3}, Classes: 2, Layers: []model.Layer{{Name: "fc1", Kind: model.KindLinear, Out: 2}}}
	w, err := model.LoadSafetensorsWeights(path, spec)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(w["fc1.weight"].Shape, w["fc1.weight"].Data, w["fc1.bias"].Data)
	// Output: [2 3] [1 2 3 4 5 6] [0 1]
}
