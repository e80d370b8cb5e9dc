package train_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/safetensors"
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

// position prints where a checkpoint stands, without its tensors.
func position(c *train.Checkpoint) string {
	if c == nil {
		return "none"
	}
	return fmt.Sprintf("step %d (epoch %d, batch %d)", c.Step, c.Epoch, c.Batch)
}

// interrupted trains with a checkpoint after every step until stopAt
// finished steps, so that ck holds step stopAt's and its .prev step
// stopAt−1's.
func interrupted(t *testing.T, ck *train.FileCheckpointer, stopAt int) {
	t.Helper()
	b, spec, ds := setup(t, 0.25)
	ctx, cancel := context.WithCancel(context.Background())
	c := cfg()
	c.Checkpoints = ck
	c.CheckpointEvery = 1
	c.Progress = func(p train.Progress) {
		if p.Step == stopAt {
			cancel()
		}
	}
	if _, _, err := train.Fit(ctx, b, spec, 1, ds, c); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
}

// Issue 15 item 2: the checksum covers the position too. A same-length
// edit of "batch" (what one flipped bit can do) in the newest checkpoint
// is caught, the previous one is used with a warning, and the resumed run
// ends exactly where an uninterrupted one does.
func TestEditedPositionFallsBack(t *testing.T) {
	b, spec, ds := setup(t, 0.25)
	ref, refRes, err := train.Fit(context.Background(), b, spec, 1, ds, cfg())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ref.Weights()

	for _, edit := range []struct{ from, to string }{
		{`\"batch\":3`, `\"batch\":1`},
		{`\"step\":3`, `\"step\":7`},
		{`\"epoch\":0`, `\"epoch\":1`},
		{`\"optimizer_step\":3`, `\"optimizer_step\":9`},
	} {
		var warned []error
		ck := &train.FileCheckpointer{Path: filepath.Join(t.TempDir(), "ck"), Key: "k",
			Warn: func(_ string, err error) { warned = append(warned, err) }}
		interrupted(t, ck, 3) // 4 steps an epoch: step 3 is epoch 0, batch 3
		raw, err := os.ReadFile(ck.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, []byte(edit.from)) {
			t.Fatalf("%s not in the checkpoint's metadata", edit.from)
		}
		if err := os.WriteFile(ck.Path, bytes.Replace(raw, []byte(edit.from), []byte(edit.to), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ck.Load()
		if err != nil || got == nil || got.Step != 2 || got.Batch != 2 {
			t.Fatalf("%s → %s: loaded %s, %v; want step 2's checkpoint", edit.from, edit.to, position(got), err)
		}
		if len(warned) != 1 || !strings.Contains(warned[0].Error(), "checksum mismatch") {
			t.Fatalf("%s → %s: warnings %v, want one checksum mismatch", edit.from, edit.to, warned)
		}
		c := cfg()
		c.Checkpoints = ck
		m, res, err := train.Fit(context.Background(), b, spec, 1, ds, c)
		if err != nil {
			t.Fatal(err)
		}
		got2, _ := m.Weights()
		equalWeights(t, want, got2)
		for i := range res.EpochLoss {
			if res.EpochLoss[i] != refRes.EpochLoss[i] {
				t.Fatalf("%s → %s: epoch %d loss %v, uninterrupted %v", edit.from, edit.to, i, res.EpochLoss[i], refRes.EpochLoss[i])
			}
		}
	}
}

// With both checkpoints edited, training starts from the beginning
// (warning twice) rather than resuming at a position nobody saved.
func TestEditedBothRetrains(t *testing.T) {
	var warned int
	ck := &train.FileCheckpointer{Path: filepath.Join(t.TempDir(), "ck"), Key: "k",
		Warn: func(string, error) { warned++ }}
	interrupted(t, ck, 3)
	for _, p := range []string{ck.Path, ck.Path + ".prev"} {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(raw, []byte(`\"epoch_sum\":`))
		if i < 0 {
			t.Fatalf("%s: no epoch_sum", p)
		}
		raw[i+len(`\"epoch_sum\":`)] ^= 1 // first digit of the running sum
		os.WriteFile(p, raw, 0o644)
	}
	if got, err := ck.Load(); got != nil || err != nil {
		t.Fatalf("loaded %s, %v from two edited checkpoints; want none", position(got), err)
	}
	if warned != 2 {
		t.Errorf("%d warnings, want one for each edited checkpoint", warned)
	}
}

// A checkpoint of format v1, whose checksum left the position out, is
// not resumed from: it is reported and skipped like a damaged one.
func TestV1CheckpointRejected(t *testing.T) {
	var warned []error
	ck := &train.FileCheckpointer{Path: filepath.Join(t.TempDir(), "ck"), Key: "k",
		Warn: func(_ string, err error) { warned = append(warned, err) }}
	meta := `{"format":"distill.checkpoint/v1","key":"k","step":1,"epoch":0,"batch":1,"epoch_sum":1,"epoch_loss":null,"optimizer_step":1,"sha256":"00"}`
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{"weights/x": safetensors.F32([]int{1}, []float32{1})},
		Metadata: map[string]string{"distill.checkpoint": meta}}
	if err := safetensors.WriteFile(ck.Path, f); err != nil {
		t.Fatal(err)
	}
	if got, err := ck.Load(); got != nil || err != nil {
		t.Fatalf("v1 checkpoint loaded: %s, %v", position(got), err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0].Error(), "v1") {
		t.Fatalf("warnings %v, want one naming the v1 format", warned)
	}
}

// A checkpoint that passes its checksum but whose position this run never
// reaches (a bug, not damage) is an error, never an index panic.
func TestImpossiblePositionIsAnError(t *testing.T) {
	dir := t.TempDir()
	ck := &train.FileCheckpointer{Path: filepath.Join(dir, "ck"), Key: "k"}
	interrupted(t, ck, 3)
	c0, err := ck.Load()
	if err != nil || c0 == nil {
		t.Fatal(c0, err)
	}
	for _, bad := range []func(c *train.Checkpoint){
		func(c *train.Checkpoint) { c.Batch = 187; c.Step = 187 },
		func(c *train.Checkpoint) { c.Step = 5 },
		func(c *train.Checkpoint) { c.Epoch, c.Batch, c.Step = 9, 0, 36 },
	} {
		c := *c0
		bad(&c)
		fresh := &train.FileCheckpointer{Path: filepath.Join(t.TempDir(), "ck"), Key: "k"}
		if err := fresh.Save(&c); err != nil {
			t.Fatal(err)
		}
		b, spec, ds := setup(t, 0.25)
		cf := cfg()
		cf.Checkpoints = fresh
		if _, _, err := train.Fit(context.Background(), b, spec, 1, ds, cf); err == nil || !strings.Contains(err.Error(), "does not fit this run") {
			t.Fatalf("step %d epoch %d batch %d: %v", c.Step, c.Epoch, c.Batch, err)
		}
	}
}
