package pipeline

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/teacher"
	"github.com/distill-dev/distill/tensorboard"
	"github.com/distill-dev/distill/train"
)

// TestEpochAccuracyChangesNothing trains the same model twice on every
// compiled-in backend, once with the per-epoch test accuracy of the
// curves (an inference pass between steps) and once without: the weights
// must be identical, bit for bit, and the curve must have one accuracy
// per epoch.
func TestEpochAccuracyChangesNothing(t *testing.T) {
	for _, name := range backend.Names() {
		t.Run(name, func(t *testing.T) { epochAccuracyChangesNothing(t, name) })
	}
}

func epochAccuracyChangesNothing(t *testing.T, name string) {
	be, err := backend.Open(name, backend.Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	trainSet, testSet := data.Synthetic(data.SyntheticConfig{Train: 256, Test: 96, Shape: []int{12}, Classes: 3, Seed: 4})
	spec, err := model.MLP(model.MLPConfig{Name: "m", Input: []int{12}, Hidden: []int{16}, Classes: 3, Dropout: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tb, err := tensorboard.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	run := &runner{be: be, test: testSet, log: slog.New(slog.DiscardHandler), r: &recipe.Recipe{Eval: recipe.Eval{BatchSize: 40, ECEBins: 15}}}
	fit := func(withEval bool) model.Weights {
		cfg := train.Config{Epochs: 3, BatchSize: 32, LR: 1e-2, Seed: 2, Optimizer: backend.Optimizer{Kind: backend.Adam}}
		b := be
		if withEval {
			b = run.trainBackend()
			cfg.Progress = func(p train.Progress) {
				if p.Step*p.Epochs == p.Epoch*p.Steps {
					run.epochAccuracy(tb, "m", p)
				}
			}
		}
		m, _, err := teacher.Train(context.Background(), b, spec, trainSet, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		w, err := m.Weights()
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	plain, evaluated := fit(false), fit(true)
	for name, p := range plain {
		e := evaluated[name]
		for i := range p.Data {
			if p.Data[i] != e.Data[i] {
				t.Fatalf("%s[%d]: %v without the epoch accuracy, %v with it", name, i, p.Data[i], e.Data[i])
			}
		}
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := tensorboard.ReadEvents(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		for _, v := range e.Values {
			if v.Tag == "eval/accuracy" {
				n++
			}
		}
	}
	if n != 3 {
		t.Errorf("%d eval/accuracy values for 3 epochs", n)
	}
}
