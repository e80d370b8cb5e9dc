package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every failure is an
// *Error with readable problems, and that every success is a valid,
// hashable recipe whose models build, whose sizes can be checked, and
// which survives yaml.Marshal.
func FuzzParse(f *testing.F) {
	var seeds []string
	for _, pattern := range []string{"../recipes/*.yaml", "testdata/*/*.yaml"} {
		paths, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, paths...)
	}
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("teacher: {model: {<<: *x}}"))
	f.Add([]byte("{? [a]: b}"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if r != nil {
				t.Error("Parse returned a recipe with an error")
			}
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error is %T with no problems: %v", err, err)
			}
			for _, p := range e.Problems {
				if p.Message == "" || p.File != "fuzz.yaml" || p.Line < 0 || p.Column < 0 {
					t.Errorf("bad problem %+v", p)
				}
				if strings.Contains(p.String(), "\n") {
					t.Errorf("multi-line problem %q", p.String())
				}
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse accepted a recipe that Validate rejects:\n%v", err)
		}
		h := r.Hash()
		if h != r.Hash() {
			t.Fatal("Hash is not deterministic")
		}
		input, classes := r.Data.Shape()
		if r.Teacher.Checkpoint == "" {
			if _, err := r.Teacher.Model.Spec("teacher", input, classes); err != nil {
				t.Fatalf("teacher spec: %v", err)
			}
		}
		for _, s := range r.Students {
			if _, err := s.Model.Spec(s.Name, input, classes); err != nil {
				t.Fatalf("student %s spec: %v", s.Name, err)
			}
			if tr := r.TrainingFor(s.Training); !sameValues(tr, s.Training) {
				t.Fatalf("TrainingFor is not idempotent on %s", s.Name)
			}
		}
		roundTrip(t, r)
		// Sizes of any magnitude are counted without wrapping around or
		// panicking, and each refusal is one keyed line.
		for _, b := range []int64{1 << 20, 1 << 62} {
			var e *Error
			if err := r.CheckResources(Memory{Bytes: b, Source: "fuzz"}); err != nil && !errors.As(err, &e) {
				t.Fatalf("CheckResources: %T %v", err, err)
			} else if err != nil {
				for _, p := range e.Problems {
					if p.Key == "" || p.Message == "" || strings.Contains(p.Message, "\n") {
						t.Errorf("bad size problem %+v", p)
					}
				}
			}
		}
	})
}
