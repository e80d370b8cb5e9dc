package model_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
)

// FuzzLoad feeds model.Load a fuzzed JSON spec and a fuzzed safetensors
// file, through the JSON path (spec from the JSON, weights checked against
// its hash when it has one) or the .safetensors path (spec from the
// file's metadata). Load must never panic, and a model it accepts must
// validate, fit its weights exactly, hold only finite values and run.
func FuzzLoad(f *testing.F) {
	for _, m := range []func(testing.TB) (model.Spec, model.Weights){mlp, cnn} {
		spec, w := m(f)
		path := filepath.Join(f.TempDir(), "m.json")
		if err := model.Save(path, spec, w); err != nil {
			f.Fatal(err)
		}
		jsonPath, stPath := model.Paths(path)
		doc, err := os.ReadFile(jsonPath)
		if err != nil {
			f.Fatal(err)
		}
		st, err := os.ReadFile(stPath)
		if err != nil {
			f.Fatal(err)
		}
		// Without the hash, fuzzed weights get past it to the checks
		// behind it.
		var d map[string]any
		if err := json.Unmarshal(doc, &d); err != nil {
			f.Fatal(err)
		}
		delete(d, "sha256")
		noHash, _ := json.Marshal(d)
		for _, viaWeights := range []bool{false, true} {
			f.Add(doc, st, viaWeights)
			f.Add(noHash, st, viaWeights)
			f.Add(noHash, st[:len(st)/2], viaWeights)
		}
	}
	f.Add([]byte(`{"format":"distill.model/v1"}`), []byte{}, false)
	f.Fuzz(func(t *testing.T, doc, st []byte, viaWeights bool) {
		dir := t.TempDir()
		jsonPath := filepath.Join(dir, "m.json")
		stPath := filepath.Join(dir, "m.safetensors")
		if err := os.WriteFile(jsonPath, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(stPath, st, 0o644); err != nil {
			t.Fatal(err)
		}
		path := jsonPath
		if viaWeights {
			path = stPath
		}
		spec, w, err := model.Load(path)
		if err != nil {
			return
		}
		if err := spec.Validate(); err != nil {
			t.Fatalf("accepted a spec that does not validate: %v", err)
		}
		if err := spec.Check(w); err != nil {
			t.Fatalf("accepted weights that do not fit the spec: %v", err)
		}
		for name, tn := range w {
			for i, v := range tn.Data {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("accepted %s[%d] = %v", name, i, v)
				}
			}
		}
		shapes, err := spec.Shapes()
		if err != nil {
			t.Fatalf("a validated spec has no shapes: %v", err)
		}
		for _, sh := range shapes {
			if model.Numel(sh) > 1<<16 {
				return // valid, but too big to run at fuzzing speed
			}
		}
		p, err := infer.Compile(spec, w)
		if err != nil {
			t.Fatalf("accepted a model that does not compile: %v", err)
		}
		if err := p.Forward(make([]float32, p.InputSize()), 1, make([]float32, p.Classes())); err != nil {
			t.Fatalf("accepted a model that does not run: %v", err)
		}
	})
}
