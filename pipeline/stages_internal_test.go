package pipeline

import (
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/teacher"
)

// TestStageKeysStable pins the stage keys of recipes/synthetic-tiny.yaml
// to those that version 0.1.0-dev (before the stages moved into package
// teacher and student) wrote into <out>/stages. A key that changes makes
// every existing run directory retrain that stage: if the change is
// meant, update the hashes here and say so in the release notes.
func TestStageKeysStable(t *testing.T) {
	r, err := recipe.Load("../recipes/synthetic-tiny.yaml")
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.Open(r.Backend, backend.Options{Device: r.Device})
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
		got[s.Name+"-int8"] = run.int8Key(got[s.Name])
		if s.BaselineEnabled() {
			got[s.Name+"-baseline"] = run.baselineKey(s, false)
		}
	}
	want := map[string]string{
		"teacher":       "4c24dbd2a4bf57b6666bb90f3779942a1526bdf9305db7aa9a850796da672dec",
		"tiny":          "cbf500b268f135e46852a23688d013ae37e0fba66f18ca64254d8ed9126407ce",
		"tiny-baseline": "71af29add13908ff6a55d24e857b11967128a2ea56583b750740569810696464",
		"tiny-int8":     "0f0f4ee2d85a7f323027394aefbbd42b1de5e36108b0620563e6071f97bb5eea",
		"linear":        "369e109d522eefbfb4344ce686154a744c46f80a8935c4847152f5fed42fb14b",
		"linear-int8":   "1cf16239f6738610d0ed70d1caee927f0a929c23f43bf74bac8bca71a5275d9d",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("stage key of %s = %s, want %s: existing run directories would retrain it", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("keys for %d models, want %d: %v", len(got), len(want), got)
	}
}
