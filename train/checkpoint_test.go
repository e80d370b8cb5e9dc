package train_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/train"
)

func equalWeights(t *testing.T, a, b model.Weights) {
	t.Helper()
	for name, ta := range a {
		for i := range ta.Data {
			if ta.Data[i] != b[name].Data[i] {
				t.Fatalf("%s[%d]: %v vs %v", name, i, ta.Data[i], b[name].Data[i])
			}
		}
	}
}

// A run interrupted at any step and resumed from its checkpoint ends with
// exactly the weights and losses of an uninterrupted run.
func TestResumeIsExact(t *testing.T) {
	b, spec, ds := setup(t, 0.25)
	c := cfg()
	c.Epochs = 3
	ref, refRes, err := train.Fit(context.Background(), b, spec, 1, ds, c)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ref.Weights()

	for _, stopAt := range []int{1, 4, 5, 9} { // 4 steps an epoch: mid-epoch and epoch ends
		ck := &train.FileCheckpointer{Path: filepath.Join(t.TempDir(), "ck"), Key: "k"}
		ctx, cancel := context.WithCancel(context.Background())
		c1 := c
		c1.Checkpoints = ck
		c1.CheckpointEvery = 3
		c1.Progress = func(p train.Progress) {
			if p.Step == stopAt {
				cancel()
			}
		}
		if _, _, err := train.Fit(ctx, b, spec, 1, ds, c1); !errors.Is(err, context.Canceled) {
			t.Fatalf("stop at %d: %v", stopAt, err)
		}
		if saved, err := ck.Load(); err != nil || saved == nil || saved.Step != stopAt {
			t.Fatalf("stop at %d: checkpoint %+v, %v", stopAt, saved, err)
		}
		c2 := c
		c2.Checkpoints = ck
		m, res, err := train.Fit(context.Background(), b, spec, 1, ds, c2)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := m.Weights()
		equalWeights(t, want, got)
		if len(res.EpochLoss) != len(refRes.EpochLoss) {
			t.Fatalf("stop at %d: %d epoch losses, want %d", stopAt, len(res.EpochLoss), len(refRes.EpochLoss))
		}
		for i := range res.EpochLoss {
			if res.EpochLoss[i] != refRes.EpochLoss[i] {
				t.Fatalf("stop at %d: epoch %d loss %v, uninterrupted %v", stopAt, i, res.EpochLoss[i], refRes.EpochLoss[i])
			}
		}
		if err := ck.Remove(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(ck.Path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("checkpoint not removed: %v", err)
		}
	}
}

// A corrupted newest checkpoint is detected and the previous one used.
func TestCorruptCheckpointFallsBack(t *testing.T) {
	b, spec, ds := setup(t, 0)
	var warned error
	ck := &train.FileCheckpointer{Path: filepath.Join(t.TempDir(), "ck"), Key: "k", Warn: func(_ string, err error) { warned = err }}
	ctx, cancel := context.WithCancel(context.Background())
	c := cfg()
	c.Checkpoints = ck
	c.CheckpointEvery = 1
	c.Progress = func(p train.Progress) {
		if p.Step == 3 {
			cancel()
		}
	}
	train.Fit(ctx, b, spec, 1, ds, c)
	raw, err := os.ReadFile(ck.Path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-5] ^= 0xff // flip a weight byte
	os.WriteFile(ck.Path, raw, 0o644)
	got, err := ck.Load()
	if err != nil || got == nil || got.Step != 2 {
		t.Fatalf("after corrupting step 3's checkpoint: %+v, %v; want step 2's", got, err)
	}
	if warned == nil {
		t.Error("no warning about the corrupted checkpoint")
	}
	// Truncated: same.
	os.WriteFile(ck.Path, raw[:len(raw)/2], 0o644)
	if got, _ := ck.Load(); got == nil || got.Step != 2 {
		t.Fatalf("truncated checkpoint: got %+v, want step 2's", got)
	}
	// Another run's checkpoint is ignored.
	other := &train.FileCheckpointer{Path: ck.Path, Key: "other"}
	if got, _ := other.Load(); got != nil {
		t.Fatalf("checkpoint of key %q loaded for key %q", got.Key, other.Key)
	}
}
