package train_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/train"
)

// FuzzCheckpoint feeds arbitrary bytes to the checkpoint reader, seeded
// with a real checkpoint: it must never panic, and whatever it accepts
// must be internally consistent.
func FuzzCheckpoint(f *testing.F) {
	b, spec, ds := setup(&testing.T{}, 0.2)
	dir := f.TempDir()
	ck := &train.FileCheckpointer{Path: filepath.Join(dir, "seed"), Key: "k"}
	c := cfg()
	c.Checkpoints = ck
	c.CheckpointEvery = 2
	ctx, cancel := context.WithCancel(context.Background())
	c.Progress = func(p train.Progress) {
		if p.Step == 3 {
			cancel()
		}
	}
	train.Fit(ctx, b, spec, 1, ds, c)
	seed, err := os.ReadFile(ck.Path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := filepath.Join(t.TempDir(), "ck")
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		got, _ := (&train.FileCheckpointer{Path: p, Key: "k"}).Load()
		if got == nil {
			return
		}
		if got.Step < 0 || got.Epoch < 0 || got.Batch < 0 {
			t.Fatalf("accepted a negative position: %+v", got)
		}
		if err := spec.Check(got.Weights); err == nil && len(got.Weights) == 0 {
			t.Fatal("empty weights passed the spec check")
		}
	})
}

// memCheckpoints hands Fit one checkpoint from memory.
type memCheckpoints struct{ c *train.Checkpoint }

func (m memCheckpoints) Load() (*train.Checkpoint, error) { return m.c, nil }
func (memCheckpoints) Save(*train.Checkpoint) error       { return nil }
func (memCheckpoints) Remove() error                      { return nil }

// FuzzResumePosition resumes from checkpoints of arbitrary position and
// running sums, as a bug or a hand-made file whose checksum was
// recomputed could hold (the file reader is FuzzCheckpoint's): Fit must
// return an error or finish the run, never panic (it used to index the
// epoch's batches with any batch number).
func FuzzResumePosition(f *testing.F) {
	b, spec, ds := setup(&testing.T{}, 0)
	// Weights and optimizer state of a real run stopped at step 3, so
	// that a consistent position resumes.
	seed := &train.FileCheckpointer{Path: filepath.Join(f.TempDir(), "seed"), Key: "k"}
	ctx, cancel := context.WithCancel(context.Background())
	c0 := cfg()
	c0.Checkpoints = seed
	c0.Progress = func(p train.Progress) {
		if p.Step == 3 {
			cancel()
		}
	}
	train.Fit(ctx, b, spec, 1, ds, c0)
	real, err := seed.Load()
	if err != nil || real == nil {
		f.Fatalf("seed checkpoint: %v", err)
	}
	// 100 examples in batches of 32: 4 steps an epoch, 2 epochs.
	f.Add(0, 0, 0, 0.0, 0, int64(0))
	f.Add(3, 0, 3, 12.5, 0, int64(3))
	f.Add(4, 1, 0, 0.0, 1, int64(4))
	f.Add(8, 2, 0, 0.0, 2, int64(8))
	f.Add(187, 0, 187, 1.0, 0, int64(187))
	f.Add(-1, 0, 0, 0.0, 0, int64(0))
	f.Fuzz(func(t *testing.T, step, epoch, batch int, sum float64, losses int, optStep int64) {
		if losses < 0 || losses > 16 {
			return // the list's length, not a position: keep allocations small
		}
		c := &train.Checkpoint{Key: "k", Step: step, Epoch: epoch, Batch: batch, EpochSum: sum,
			EpochLoss: make([]float64, losses), Weights: real.Weights,
			Optimizer: backend.OptimizerState{Step: optStep, Tensors: real.Optimizer.Tensors}}
		cf := cfg()
		cf.Checkpoints = memCheckpoints{c}
		m, res, err := train.Fit(context.Background(), b, spec, 1, ds, cf)
		if err != nil {
			return
		}
		defer m.Close()
		if res.Steps != 8 || len(res.EpochLoss) != 2 {
			t.Fatalf("resumed from step %d (epoch %d, batch %d) and finished with %d steps, %d epoch losses; want 8 and 2",
				step, epoch, batch, res.Steps, len(res.EpochLoss))
		}
	})
}
