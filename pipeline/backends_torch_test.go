//go:build torch

package pipeline_test

import (
	"context"
	"math"
	"testing"

	_ "github.com/distill-dev/distill/backend/torch"
	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/recipe"
)

// TestFeatureRecipeOnBothBackends runs the same FitNets + attention recipe
// on the gorgonia and the torch backend: both train every stage (hint
// stage, then distillation with hint and attention terms) and reach
// comparable accuracy. Bit-equality is not expected: the backends sum in
// different orders, and training amplifies the differences.
func TestFeatureRecipeOnBothBackends(t *testing.T) {
	acc := map[string][]float64{}
	for _, be := range []string{"gorgonia", "torch"} {
		r, err := recipe.Parse([]byte(featureRecipe), "")
		if err != nil {
			t.Fatal(err)
		}
		r.Backend, r.Device = be, "cpu"
		rep, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: t.TempDir()})
		if err != nil {
			t.Fatalf("%s: %v", be, err)
		}
		if rep.Backend != be {
			t.Fatalf("report of the %s run names backend %q", be, rep.Backend)
		}
		for _, m := range rep.Models {
			acc[be] = append(acc[be], m.Accuracy)
		}
		t.Logf("%s: accuracies %v", be, acc[be])
	}
	g, tc := acc["gorgonia"], acc["torch"]
	if len(g) != len(tc) {
		t.Fatalf("gorgonia reports %d models, torch %d", len(g), len(tc))
	}
	for i := range g {
		if math.Abs(g[i]-tc[i]) > 0.1 {
			t.Errorf("model %d: accuracy %.3f on gorgonia, %.3f on torch", i, g[i], tc[i])
		}
	}
}
