//go:build torch

package pipeline

import (
	"testing"

	"github.com/distill-dev/distill/backend"
	_ "github.com/distill-dev/distill/backend/torch"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/teacher"
)

// TestBF16StageKeysApart: a bf16 run's models are cached under keys of
// their own, so that a run directory never hands a bf16 run the fp32
// models or the other way round; on the CPU, auto is fp32 and shares
// fp32's keys.
func TestBF16StageKeysApart(t *testing.T) {
	r, err := recipe.Load("../recipes/synthetic-tiny.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r.Backend = "torch"
	keys := func(p backend.Precision) map[string]string {
		be, err := backend.Open(r.Backend, backend.Options{Device: "cpu", Precision: p})
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		run := &runner{r: r, be: be}
		got := map[string]string{}
		for _, ts := range teacher.Specs(r) {
			got[ts.Name] = run.teacherKey(ts)
			run.teacherKeys = append(run.teacherKeys, got[ts.Name])
		}
		for _, s := range r.Students {
			got[s.Name] = run.studentKey(s)
		}
		return got
	}
	fp, auto, bf := keys(backend.PrecisionFP32), keys(backend.PrecisionAuto), keys(backend.PrecisionBF16)
	for name, k := range fp {
		if auto[name] != k {
			t.Errorf("%s: the auto key differs from fp32's on the CPU, where auto is fp32", name)
		}
		if bf[name] == k {
			t.Errorf("%s: the bf16 run has the fp32 run's key", name)
		}
	}
}
