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

// TestStepsKeepNoStaleValues: a training graph's ops write into storage
// kept from the previous step (outBuf), so each step must give the
// weights that a freshly built trainer gives from the same weights, also
// when a partial batch follows a full one (batchnorm's padding rows).
// Plain SGD keeps no optimiser state, so the fresh trainers see all the
// state there is.
func TestStepsKeepNoStaleValues(t *testing.T) {
	spec, err := model.Blocks(model.BlocksConfig{Name: "resnet", Input: []int{2, 10, 10}, Classes: 4,
		Stem:   model.StemConfig{Channels: 6},
		Stages: []model.Stage{{Channels: 6}, {Channels: 8, Stride: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	const maxBatch = 16
	cfg := backend.TrainConfig{MaxBatch: maxBatch, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.SGD}}
	sizes := []int{16, 11, 16, 5}
	step := func(tr backend.Trainer, i int) {
		t.Helper()
		x, y, _ := backendtest.Inputs(spec, sizes[i], uint64(10+i))
		if _, err := tr.Step(&backend.Batch{N: sizes[i], X: x, Labels: y, LR: 0.1}); err != nil {
			t.Fatal(err)
		}
	}
	load := func(w model.Weights) (backend.Model, backend.Trainer) {
		t.Helper()
		m, err := engine{}.Load(spec, w)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := engine{}.NewTrainer(m, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return m, tr
	}
	w0, err := spec.Init(4)
	if err != nil {
		t.Fatal(err)
	}
	kept, keptTr := load(w0)
	defer kept.Close()
	defer keptTr.Close()
	want := w0
	for i := range sizes {
		step(keptTr, i)
		fresh, freshTr := load(want)
		step(freshTr, i)
		if want, err = fresh.Weights(); err != nil {
			t.Fatal(err)
		}
		freshTr.Close()
		fresh.Close()
		got, err := kept.Weights()
		if err != nil {
			t.Fatal(err)
		}
		for name, wt := range want {
			for j, v := range wt.Data {
				if math.Float32bits(got[name].Data[j]) != math.Float32bits(v) {
					t.Fatalf("step %d (batch %d): %s[%d] = %v, a fresh trainer gives %v", i, sizes[i], name, j, got[name].Data[j], v)
				}
			}
		}
	}
}

// TestNoInputGradient: the training graph computes no gradient with
// respect to the input (the stem convolution's would be thrown away),
// and every other convolution's.
func TestNoInputGradient(t *testing.T) {
	spec, err := model.Blocks(model.BlocksConfig{Name: "resnet", Input: []int{1, 8, 8}, Classes: 3,
		Stem:   model.StemConfig{Channels: 4},
		Stages: []model.Stage{{Channels: 4}, {Channels: 6, Stride: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := engine{}.Load(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tr, err := engine{}.NewTrainer(m, backend.TrainConfig{MaxBatch: 4, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.SGD}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	convs := 0
	for _, l := range spec.Layers {
		if l.Kind == model.KindConv2D {
			convs++
		}
	}
	dx, fromInput := 0, 0
	for _, n := range tr.(*trainer).gr.g.AllNodes() {
		op, ok := n.Op().(convOp)
		if !ok {
			continue
		}
		if op.part == convDx {
			dx++
		}
		if op.part == convForward && op.noDx {
			fromInput++
		}
	}
	if fromInput != 1 || dx != convs-1 {
		t.Errorf("%d convolutions, %d on the input, %d input gradients; want 1 on the input and %d input gradients", convs, fromInput, dx, convs-1)
	}
}
