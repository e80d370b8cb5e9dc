package train_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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
