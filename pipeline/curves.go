package pipeline

import (
	"context"
	"path/filepath"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/tensorboard"
	"github.com/distill-dev/distill/train"
)

// curvesDir is the TensorBoard run folder of one training of a model:
// <out>/tensorboard/<name>/<first 12 hex digits of its stage key>. A
// retrained model (another key: a changed recipe section) gets a new
// folder, so TensorBoard draws it as a run of its own instead of
// splicing its steps into the old curve; a resumed training (same key)
// appends to its folder.
func curvesDir(out, name, key string) string {
	return filepath.Join(out, "tensorboard", name, key[:min(len(key), 12)])
}

// trainBackend is the run's backend for a training stage: it remembers
// the model that training loads, so that epochAccuracy can evaluate it.
// Only Load is intercepted; the trainer gets the backend's own model.
func (run *runner) trainBackend() backend.Backend {
	run.training = nil
	return recordingBackend{run.be, run}
}

type recordingBackend struct {
	backend.Backend
	run *runner
}

func (b recordingBackend) Load(spec model.Spec, w model.Weights) (backend.Model, error) {
	m, err := b.Backend.Load(spec, w)
	if err == nil {
		b.run.training = m
	}
	return m, err
}

// epochAccuracy writes the test accuracy of the model in training, at the
// end of an epoch, as eval/accuracy next to the loss curves. It runs the
// inference pass (dropout off) on the test set between two steps, which
// reads the weights and changes no training state, so the trained model
// is the same with or without it (TestEpochAccuracyChangesNothing). It
// is skipped, not fatal, if it fails.
func (run *runner) epochAccuracy(tb *tensorboard.Writer, name string, p train.Progress) {
	m := run.training
	if m == nil {
		return
	}
	classes := m.Spec().Classes
	logits, err := eval.Logits(context.Background(), m, run.test, run.test.Size(), classes, run.r.Eval.BatchSize)
	if err == nil {
		var met eval.Metrics
		if met, err = eval.Compute(logits, run.test.Y, nil, classes, run.r.Eval.ECEBins); err == nil {
			tb.Scalar("eval/accuracy", int64(p.Step), met.Accuracy)
			return
		}
	}
	run.log.Warn("no test accuracy for this epoch's curve", "model", name, "epoch", p.Epoch, "err", err)
}
