package quantize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/safetensors"
)

// savedModel quantizes a small CNN (with one fallback layer) and saves it.
func savedModel(t testing.TB) (*Model, string) {
	spec := cnnSpec(t)
	w, xs := testNet(t, spec, 40)
	m, err := Quantize(context.Background(), spec, w, FromSlices(xs, 20), Config{Method: Percentile})
	if err != nil {
		t.Fatal(err)
	}
	if m, err = withFloat(m, w, []string{"fc1"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cnn-int8")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	return m, path
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m, path := savedModel(t)
	for _, p := range []string{path, path + ".json", path + ".safetensors"} {
		got, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("Load(%s) = %+v, want %+v", p, got, m)
		}
	}
	got, _ := Load(path)
	a, err := m.Compile()
	if err != nil {
		t.Fatal(err)
	}
	b, err := got.Compile()
	if err != nil {
		t.Fatal(err)
	}
	_, xs := testNet(t, m.Spec, 3)
	x := slices.Concat(xs...)
	oa, ob := make([]float32, 3*m.Spec.Classes), make([]float32, 3*m.Spec.Classes)
	a.Forward(x, 3, oa)
	b.Forward(x, 3, ob)
	if !slices.Equal(oa, ob) {
		t.Fatalf("loaded model computes %v, saved one %v", ob, oa)
	}
}

// rewrite rewrites the model files at path after edit changes the
// tensors and the document, keeping the hash consistent.
func rewrite(t *testing.T, path string, edit func(f *safetensors.File, doc map[string]any)) {
	jsonPath, stPath := model.Paths(path)
	f, err := safetensors.ReadFile(stPath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(jsonPath)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	edit(f, doc)
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["sha256"]; ok {
		sum := sha256.Sum256(buf.Bytes())
		doc["sha256"] = hex.EncodeToString(sum[:])
	}
	b, _ = json.Marshal(doc)
	if err := os.WriteFile(jsonPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(f *safetensors.File, doc map[string]any)
	}{
		{"weight -128", func(f *safetensors.File, _ map[string]any) {
			f.Tensors["conv1.weight"].Data[0] = 0x80
		}},
		{"zero weight scale", func(f *safetensors.File, _ map[string]any) {
			f.Tensors["conv2.weight_scale"] = safetensors.F32([]int{8}, make([]float32, 8))
		}},
		{"NaN activation scale", func(f *safetensors.File, doc map[string]any) {
			f.Tensors["fc2.output_scale"] = safetensors.F32([]int{}, []float32{float32(math.NaN())})
		}},
		{"zero point disagrees", func(f *safetensors.File, _ map[string]any) {
			f.Tensors["input.zero_point"].Data[0]++
		}},
		{"wrong shape", func(f *safetensors.File, _ map[string]any) {
			t := f.Tensors["conv1.bias"]
			t.Shape = []int{3, 2}
			f.Tensors["conv1.bias"] = t
		}},
		{"wrong dtype", func(f *safetensors.File, _ map[string]any) {
			f.Tensors["conv2.bias"] = safetensors.F32([]int{8}, make([]float32, 8))
		}},
		{"missing tensor", func(f *safetensors.File, _ map[string]any) { delete(f.Tensors, "fc2.weight_scale") }},
		{"unexpected tensor", func(f *safetensors.File, _ map[string]any) {
			f.Tensors["extra"] = safetensors.F32([]int{1}, []float32{1})
		}},
		{"float layer stored as int8", func(_ *safetensors.File, doc map[string]any) { doc["fallback"] = []string{"fc2"} }},
		{"unknown fallback layer", func(_ *safetensors.File, doc map[string]any) { doc["fallback"] = []string{"nope"} }},
		{"wrong format", func(_ *safetensors.File, doc map[string]any) { doc["format"] = "distill.model/v1" }},
		{"hash removed", func(_ *safetensors.File, doc map[string]any) { delete(doc, "sha256") }},
		{"unknown field", func(_ *safetensors.File, doc map[string]any) { doc["surprise"] = 1 }},
		{"activation of an unknown layer", func(f *safetensors.File, doc map[string]any) {
			doc["activations"].(map[string]any)["ghost"] = map[string]any{"scale": 1, "zero_point": 0}
		}},
		{"invalid spec", func(_ *safetensors.File, doc map[string]any) { doc["spec"].(map[string]any)["classes"] = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, path := savedModel(t)
			rewrite(t, path, tc.edit)
			if _, err := Load(path); !errors.Is(err, ErrInvalidFile) {
				t.Fatalf("Load: err = %v, want ErrInvalidFile", err)
			}
		})
	}
	// An unknown method is named with the valid ones, under Load's one
	// "quantize:" prefix.
	_, path := savedModel(t)
	rewrite(t, path, func(_ *safetensors.File, doc map[string]any) { doc["method"] = "median" })
	_, err := Load(path)
	if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), `unknown calibration method "median" (want one of entropy, minmax, percentile, mse)`) || strings.Count(err.Error(), "quantize:") != 1 {
		t.Errorf("unknown method: err = %v", err)
	}
	os.WriteFile(path+".safetensors", []byte("truncated"), 0o644)
	if _, err := Load(path); !errors.Is(err, ErrInvalidFile) {
		t.Errorf("truncated tensors: err = %v, want ErrInvalidFile", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing files: err = %v, want ErrNotExist", err)
	}
}

// FuzzLoadTensors fuzzes the safetensors file, keeping the JSON's hash
// in step so that the checks past it are reached. Load must never panic
// and a model it accepts must compile.
func FuzzLoadTensors(f *testing.F) {
	_, path := savedModel(f)
	jsonPath, stPath := model.Paths(path)
	st, _ := os.ReadFile(stPath)
	doc, _ := os.ReadFile(jsonPath)
	f.Add(st)
	f.Add(st[:len(st)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		var d map[string]any
		json.Unmarshal(doc, &d)
		sum := sha256.Sum256(data)
		d["sha256"] = hex.EncodeToString(sum[:])
		b, _ := json.Marshal(d)
		checkLoaded(t, b, data)
	})
}

// FuzzLoadJSON fuzzes the JSON file against valid tensors.
func FuzzLoadJSON(f *testing.F) {
	_, path := savedModel(f)
	jsonPath, stPath := model.Paths(path)
	st, _ := os.ReadFile(stPath)
	doc, _ := os.ReadFile(jsonPath)
	f.Add(doc)
	f.Add([]byte(`{"format":"distill.quantized/v1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkLoaded(t, data, st)
	})
}

func checkLoaded(t *testing.T, jsonBytes, st []byte) {
	m, err := loadBytes(jsonBytes, st)
	if err != nil {
		if !errors.Is(err, ErrInvalidFile) {
			t.Fatalf("error does not wrap ErrInvalidFile: %v", err)
		}
		return
	}
	p, err := infer.CompileInt8(&m.QuantModel)
	if err != nil {
		t.Fatalf("Load accepted a model that does not compile: %v", err)
	}
	shapes, _ := m.Spec.Shapes()
	for _, sh := range shapes {
		if model.Numel(sh) > 1<<20 {
			return // valid but too big to run here
		}
	}
	x := make([]float32, p.InputSize())
	if err := p.Forward(x, 1, make([]float32, p.Classes())); err != nil {
		t.Fatal(err)
	}
}
