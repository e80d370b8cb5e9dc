package student_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/distill-dev/distill/backend"
	_ "github.com/distill-dev/distill/backend/gorgonia"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/student"
	"github.com/distill-dev/distill/train"
)

// The soft targets are asked for at the very value the objective is
// built from, the recipe's temperature and alpha: one value, two users.
func TestDistilAsksTargetsAtItsSoftTargets(t *testing.T) {
	r, err := recipe.Load("../recipes/synthetic-tiny.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := r.Students[0]
	d, err := student.FromRecipe(r, s, []int{1, 8, 8}, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := loss.SoftTargets{Temperature: s.Distill.Temperature, Alpha: s.Distill.Alpha}
	if d.Method.SoftTargets != want {
		t.Fatalf("Method.SoftTargets = %+v, want the recipe's %+v", d.Method.SoftTargets, want)
	}
	if d.Label != "response" {
		t.Errorf("Label = %q, want %q", d.Label, "response")
	}
	b, err := backend.Open("gorgonia", backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var asked []loss.SoftTargets
	stop := errors.New("stop before training")
	targets := func(st loss.SoftTargets, features bool) (train.Teacher, train.Source, func(), error) {
		asked = append(asked, st)
		return nil, nil, nil, stop
	}
	cfg := func() train.Config {
		t.Error("training config asked for although the soft targets failed")
		return train.Config{}
	}
	if _, err := d.Distil(context.Background(), b, targets, cfg, nil); !errors.Is(err, stop) {
		t.Fatalf("Distil = %v, want the targets' error", err)
	}
	if len(asked) != 1 || asked[0] != want {
		t.Errorf("soft targets asked for at %+v, want once at %+v", asked, want)
	}
}

// A residual student plans like any other: its spec is the graph the
// recipe describes, and its hint at a block output resolves against the
// residual teacher's spec.
func TestFromRecipeResidualNetworks(t *testing.T) {
	r, err := recipe.Load("../recipes/fashion-resnet-quick.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := r.Students[0]
	d, err := student.FromRecipe(r, s, []int{1, 28, 28}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Sequential() {
		t.Error("the residual student's spec is sequential")
	}
	if _, _, ok := d.Spec.Layer("layer2.0.downsample.0"); !ok {
		t.Errorf("no projection shortcut in the student's spec: %v", d.Spec.Layers)
	}
	if d.Label != "response, hint" {
		t.Errorf("Label = %q, want %q", d.Label, "response, hint")
	}
	ts, err := r.Teacher.Model.Spec("teacher", []int{1, 28, 28}, 10)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := loss.ResolveFeatures(d.Spec, ts, d.Method.Features)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 1 || plans[0].Adapter != loss.AdapterConv1x1 || !slices.Equal(plans[0].StudentShape, []int{16, 14, 14}) {
		t.Errorf("hint plan %+v, want a 1×1-conv adapter from the student's [16 14 14] block output", plans)
	}
}
