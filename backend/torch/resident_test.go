//go:build torch

package torch

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// TestStepRowsMatchesStep: steps on rows of a kept set give the weights,
// optimizer state and losses of steps on the same rows copied from the
// host, bit for bit (index_select copies the rows exactly).
func TestStepRowsMatchesStep(t *testing.T) {
	b := openTest(t)
	spec := tinyCNN(t)
	w, _ := spec.Init(3)
	const rows, batch = 40, 8
	in, k := model.Numel(spec.Input), spec.Classes
	rng := rand.New(rand.NewPCG(7, 8))
	set := &backend.Batch{N: rows, X: randn(rng, rows*in, 1), Labels: randLabels(rng, rows, k), TeacherLogits: randn(rng, rows*k, 2)}
	cfg := backend.TrainConfig{MaxBatch: batch, Objective: loss.Hinton(0.7, 3), Optimizer: backend.Optimizer{Kind: backend.Adam}}
	host := mustTrainer(t, b, load(t, b, spec, w), cfg).(*Trainer)
	dev := mustTrainer(t, b, load(t, b, spec, w), cfg).(*Trainer)
	if got := dev.KeepBudget(); got != 0 {
		t.Errorf("KeepBudget on the CPU = %d, want 0 (keeping gains nothing there)", got)
	}
	if _, err := dev.StepRows([]int{0}, &backend.Batch{N: 1, LR: 0.01}); err == nil {
		t.Error("StepRows before Keep: no error")
	}
	dev.keepOnCPU = true
	if err := dev.Keep(set); err != nil {
		t.Fatal(err)
	}
	for step := 0; step < 6; step++ {
		idx := rng.Perm(rows)[:batch]
		masks := randMasks(rng, spec, batch)
		hb := &backend.Batch{N: batch, X: make([]float32, batch*in), Labels: make([]int32, batch), TeacherLogits: make([]float32, batch*k), Masks: masks, LR: 0.01}
		for r, i := range idx {
			copy(hb.X[r*in:], set.X[i*in:(i+1)*in])
			hb.Labels[r] = set.Labels[i]
			copy(hb.TeacherLogits[r*k:], set.TeacherLogits[i*k:(i+1)*k])
		}
		want, err := host.Step(hb)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dev.StepRows(idx, &backend.Batch{N: batch, Masks: masks, LR: 0.01})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("step %d: StepRows loss %+v, Step %+v", step, got, want)
		}
	}
	wh, _ := host.m.Weights()
	wd, _ := dev.m.Weights()
	for name, h := range wh {
		if !slices.Equal(h.Data, wd[name].Data) {
			t.Errorf("%s differs after StepRows and Step", name)
		}
	}
	sh, _ := host.State()
	sd, _ := dev.State()
	for name, h := range sh.Tensors {
		if !slices.Equal(h.Data, sd.Tensors[name].Data) {
			t.Errorf("optimizer state %s differs", name)
		}
	}
	if _, err := dev.StepRows([]int{0, rows}, &backend.Batch{N: 2, LR: 0.01}); err == nil {
		t.Error("StepRows of a row outside the kept set: no error")
	}
	if _, err := dev.StepRows([]int{0, 1}, &backend.Batch{N: 3, LR: 0.01}); err == nil {
		t.Error("StepRows with len(idx) != N: no error")
	}
	bad := *set
	bad.Labels = slices.Clone(set.Labels)
	bad.Labels[3] = int32(k)
	if err := dev.Keep(&bad); err == nil {
		t.Error("Keep of a label outside the classes: no error")
	}
}
