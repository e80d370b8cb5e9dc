package pipeline

import (
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/teacher"
)

// TestTeacherPreprocessWired: wherever the pipeline opens a teacher with
// teacher.preprocess (soft targets and transfer sets through
// openTeacher, evaluation through loadForEval) it sees the normalised
// inputs, and the transfer set's key changes with the normalisation.
func TestTeacherPreprocessWired(t *testing.T) {
	be, err := backend.Open("gorgonia", backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	spec, err := recipe.Model{Hidden: []int{8}}.Spec("teacher", []int{4}, 3)
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	run := &runner{be: be, out: t.TempDir(), train: &data.Dataset{Shape: []int{4}, Classes: 3}}
	if err := model.Save(run.modelPath("teacher"), spec, w); err != nil {
		t.Fatal(err)
	}
	raw, err := be.Load(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	x := []float32{1, 2, 3, 4, -1, 0, 0.5, 9}
	norm := make([]float32, len(x))
	for i, v := range x {
		norm[i] = (v - 0.5) / 2
	}
	want := make([]float32, 6)
	if err := raw.Forward(norm, 2, want); err != nil {
		t.Fatal(err)
	}
	ts := teacher.Spec{Name: "teacher", Preprocess: recipe.Preprocess{Mean: []float64{0.5}, Std: []float64{2}}}
	m, err := run.openTeacher(ts)
	if err != nil {
		t.Fatal(err)
	}
	_, ev, _, _, err := run.loadForEval(evalEntry{name: "teacher", teacher: &ts}, run.modelPath("teacher"))
	if err != nil {
		t.Fatal(err)
	}
	for what, p := range map[string]interface {
		Forward([]float32, int, []float32) error
	}{"openTeacher": m, "loadForEval": ev} {
		got := make([]float32, 6)
		if err := p.Forward(x, 2, got); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if d := got[i] - want[i]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("%s: logits %v, want those of the normalised inputs %v", what, got, want)
			}
		}
	}
	m.Close()
	ev.Close()

	plain, err := run.teacherHash(teacher.Spec{Name: "teacher"})
	if err != nil {
		t.Fatal(err)
	}
	pre, err := run.teacherHash(ts)
	if err != nil {
		t.Fatal(err)
	}
	if plain == pre {
		t.Error("the transfer set's teacher hash ignores teacher.preprocess")
	}
}
