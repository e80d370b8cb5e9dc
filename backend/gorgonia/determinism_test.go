package gorgonia

import (
	"math"
	"runtime"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// TestTrainingReproducible: a few training steps of a residual network
// give the same weights, bit for bit, however many cores run them and
// however the work falls on them: a run's results must not depend on the
// machine's load (the README promises the same error counts on the same
// kind of CPU).
func TestTrainingReproducible(t *testing.T) {
	spec, err := model.Blocks(model.BlocksConfig{Name: "resnet", Input: []int{2, 12, 12}, Classes: 4,
		Stem:   model.StemConfig{Channels: 8},
		Stages: []model.Stage{{Channels: 8}, {Channels: 12, Stride: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	train := func() model.Weights {
		w, err := spec.Init(3)
		if err != nil {
			t.Fatal(err)
		}
		m, err := engine{}.Load(spec, w)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		tr, err := engine{}.NewTrainer(m, backend.TrainConfig{MaxBatch: n, Objective: loss.CrossEntropyOnly,
			Optimizer: backend.Optimizer{Kind: backend.SGD, Momentum: 0.9}})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		for i := range 3 {
			x, y, _ := backendtest.Inputs(spec, n, uint64(i))
			if _, err := tr.Step(&backend.Batch{N: n, X: x, Labels: y, LR: 0.05}); err != nil {
				t.Fatal(err)
			}
		}
		out, err := m.Weights()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(2)
	want := train()
	for _, procs := range []int{2, 1, 2, 4} {
		runtime.GOMAXPROCS(procs)
		got := train()
		for name, wt := range want {
			for i, v := range wt.Data {
				if math.Float32bits(got[name].Data[i]) != math.Float32bits(v) {
					t.Fatalf("GOMAXPROCS %d: %s[%d] = %v, first run %v", procs, name, i, got[name].Data[i], v)
				}
			}
		}
	}
}
