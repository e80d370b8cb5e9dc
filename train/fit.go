package train

import (
	"context"
	"fmt"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/model"
)

// Fit initialises a model of the given spec from initSeed (so every
// backend starts from the same weights), loads it on b and trains it. If
// cfg.Checkpoints holds a checkpoint, Fit resumes from it instead. The
// checkpoints stay until the caller has saved the result and calls
// cfg.Checkpoints.Remove, so that a crash in between loses nothing. On
// error the model is closed.
func Fit(ctx context.Context, b backend.Backend, spec model.Spec, initSeed uint64, src Source, cfg Config) (backend.Model, Result, error) {
	var resume *Checkpoint
	if cfg.Checkpoints != nil {
		var err error
		if resume, err = cfg.Checkpoints.Load(); err != nil {
			return nil, Result{}, err
		}
	}
	var w model.Weights
	if resume != nil {
		// Before the model is built: a position this run never reaches
		// is cheap to refuse.
		if n := src.Len(); n > 0 && cfg.BatchSize > 0 {
			bs := min(cfg.BatchSize, n)
			if err := checkPosition(resume, (n+bs-1)/bs, cfg.Epochs); err != nil {
				return nil, Result{}, err
			}
		}
		if err := spec.Check(resume.Weights); err != nil {
			return nil, Result{}, fmt.Errorf("train: checkpoint does not fit model %q: %w", spec.Name, err)
		}
		w = resume.Weights
	} else {
		var err error
		if w, err = spec.Init(initSeed); err != nil {
			return nil, Result{}, err
		}
	}
	m, err := b.Load(spec, w)
	if err != nil {
		return nil, Result{}, err
	}
	res, err := run(ctx, b, m, src, cfg, resume)
	if err != nil {
		m.Close()
		return nil, res, err
	}
	return m, res, nil
}
