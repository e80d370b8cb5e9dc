package gorgonia

import (
	"math"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// A model Forward keeps calling without a weight change runs on a
// compiled infer program; its logits must match the graph's (which
// ForwardFeatures always runs), before and after a training step, which
// must drop the program so the new weights are used.
func TestFrozenForwardMatchesGraph(t *testing.T) {
	specs := backendtest.Specs(t)
	// Batchnorms (folded by the compiler, with running statistics that a
	// training step changes), residual adds, depthwise convolutions.
	for _, c := range []model.BlocksConfig{
		{Name: "resnet", Input: []int{1, 8, 8}, Classes: 3, Stem: model.StemConfig{Channels: 4},
			Stages: []model.Stage{{Channels: 4}, {Channels: 8, Stride: 2}}},
		{Name: "mobile", Input: []int{1, 8, 8}, Classes: 3, Stem: model.StemConfig{Channels: 4},
			Stages: []model.Stage{{Block: model.BlockInverted, Channels: 4, Expand: 1}, {Block: model.BlockInverted, Channels: 6, Stride: 2}}},
	} {
		spec, err := model.Blocks(c)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, spec)
	}
	for _, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			w, err := spec.Init(3)
			if err != nil {
				t.Fatal(err)
			}
			bm, err := engine{}.Load(spec, w)
			if err != nil {
				t.Fatal(err)
			}
			m := bm.(*Model)
			defer m.Close()
			const n = 5
			x, y, _ := backendtest.Inputs(spec, n, 4)
			k := spec.Classes
			check := func(when string) {
				t.Helper()
				want := make([]float32, n*k)
				if err := m.ForwardFeatures(x, n, nil, want, nil); err != nil {
					t.Fatal(err)
				}
				for call := 1; call <= compileAfter+1; call++ {
					got := make([]float32, n*k)
					if err := m.Forward(x, n, got); err != nil {
						t.Fatal(err)
					}
					for i := range got {
						if d := math.Abs(float64(got[i] - want[i])); d > 1e-4+1e-4*math.Abs(float64(want[i])) {
							t.Fatalf("%s, call %d: logit %d = %v, graph %v", when, call, i, got[i], want[i])
						}
					}
				}
				if m.prog == nil && !m.noProg {
					t.Fatalf("%s: %d calls without a weight change did not compile", when, compileAfter+1)
				}
				if m.noProg {
					t.Logf("%s: spec does not compile; the graph ran", spec.Name)
				}
			}
			check("before training")
			tr, err := engine{}.NewTrainer(m, backend.TrainConfig{MaxBatch: n, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.Adam}})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if _, err := tr.Step(&backend.Batch{N: n, X: x, Labels: y, LR: 0.05}); err != nil {
				t.Fatal(err)
			}
			if m.prog != nil {
				t.Fatal("a training step kept the compiled program of the old weights")
			}
			check("after a step")
		})
	}
}
