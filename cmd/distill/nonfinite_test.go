package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
)

// hugeTeacher saves a model for tinyRecipe's data whose weights are
// finite but so large (3e38) that its activations overflow float32.
func hugeTeacher(t *testing.T, dir string) string {
	t.Helper()
	spec, err := model.MLP(model.MLPConfig{Name: "huge", Input: []int{4}, Hidden: []int{4}, Classes: 2})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range w {
		for i := range tn.Data {
			tn.Data[i] = 3e38
		}
	}
	path := filepath.Join(dir, "huge.json")
	if err := model.Save(path, spec, w); err != nil {
		t.Fatal(err)
	}
	return path
}

// Issue 15 item 3: a teacher whose outputs overflow is reported, naming
// it and the first bad example, by every command that meets it: never a
// panic, never an error that blames the student's learning rate, and no
// output file written before the check.
func TestOverflowingTeacher(t *testing.T) {
	dir := t.TempDir()
	huge := hugeTeacher(t, dir)

	code, _, errOut := capture(t, "quantize", huge, "--dataset", "synthetic")
	if code != exitFailed || !strings.Contains(errOut, `model "huge": calibration example 0: layer "fc1" output`) {
		t.Errorf("quantize: exit %d: %s", code, errOut)
	}
	if ms, _ := filepath.Glob(filepath.Join(dir, "huge-int8*")); len(ms) > 0 {
		t.Errorf("quantize wrote %v before failing", ms)
	}

	withTeacher := strings.Replace(tinyRecipe, "  model: {hidden: [4]}\n", "  checkpoint: "+huge+"\n", 1)
	for _, tc := range []struct{ name, recipe, want string }{
		// The run copies the teacher in as "teacher". With α = 0 the
		// student never reads it; evaluating it finds the overflow.
		{"alpha 0", withTeacher + "    distill: {alpha: 0}\n", `eval teacher: eval: model "teacher" gave logit 0 = `},
		{"default alpha", withTeacher, `student "s": train: teacher "teacher" gave logit 0 = `},
	} {
		d := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		code, _, errOut := capture(t, recipeWith(t, d, tc.recipe)...)
		if code != exitFailed || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "learning rate") || strings.Contains(errOut, "panic") {
			t.Errorf("run, %s: exit %d: %s\nwant exit %d and %q", tc.name, code, errOut, exitFailed, tc.want)
		}
		if _, err := os.Stat(filepath.Join(d, "out", "report.json")); err == nil {
			t.Errorf("run, %s: a report was written", tc.name)
		}
	}
}
