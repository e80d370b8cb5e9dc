// Package student trains the small models: distilled from a teacher's
// soft targets, and the same architecture on hard labels alone as the
// baseline that shows what distillation buys.
package student

import (
	"context"
	"errors"
	"fmt"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/train"
)

// Distill trains a student of the given spec on soft targets from t with
// response distillation at temperature T and weight alpha
// (loss.Hinton). cfg.Objective is replaced.
func Distill(ctx context.Context, b backend.Backend, spec model.Spec, t train.Teacher, alpha, T float64, src train.Source, cfg train.Config) (backend.Model, train.Result, error) {
	if t == nil {
		return nil, train.Result{}, errors.New("student: Distill needs a teacher")
	}
	cfg.Objective = loss.SoftTargets{Temperature: T, Alpha: alpha}.Objective()
	cfg.Teacher = t
	return train.Fit(ctx, b, spec, initSeed(cfg.Seed), src, cfg)
}

// Baseline trains the same architecture on hard labels only, from the
// same initial weights as Distill, so the two differ only in the loss.
func Baseline(ctx context.Context, b backend.Backend, spec model.Spec, src train.Source, cfg train.Config) (backend.Model, train.Result, error) {
	cfg.Objective = loss.CrossEntropyOnly
	cfg.Teacher = nil
	return train.Fit(ctx, b, spec, initSeed(cfg.Seed), src, cfg)
}

// initSeed separates students' initial weights from the teacher's.
func initSeed(seed int64) uint64 { return uint64(seed) ^ 0x73747564656e74 } // "student"

// Method is how a student learns from its teacher beyond the response
// objective: feature terms trained jointly with it (attention transfer,
// or hints), and an optional FitNets-style first stage that trains only
// the hint terms (Romero et al. 2015) before distilling.
type Method struct {
	// SoftTargets are the response objective's temperature and weight,
	// the same value the teacher's soft targets are made at.
	SoftTargets loss.SoftTargets
	// Features are added to the response objective during distillation.
	Features []loss.Feature
	// Hints and HintEpochs, if both set, train the student on Hints alone
	// for HintEpochs epochs first.
	Hints      []loss.Feature
	HintEpochs int
}

// Train distils a student with m. The teacher must be a
// train.FeatureTeacher (a model run in the loop) when m has feature terms.
// With checkpoints, each stage resumes on its own: the hint stage's
// checkpoints carry the suffix ".hints".
func Train(ctx context.Context, b backend.Backend, spec model.Spec, t train.Teacher, m Method, src train.Source, cfg train.Config) (backend.Model, train.Result, error) {
	if t == nil {
		return nil, train.Result{}, errors.New("student: Train needs a teacher")
	}
	cfg.Teacher = t
	cfg.Objective = m.SoftTargets.Objective()
	cfg.Objective.Features = m.Features
	if len(m.Hints) == 0 || m.HintEpochs == 0 {
		return train.Fit(ctx, b, spec, initSeed(cfg.Seed), src, cfg)
	}
	// Resume the distillation stage if it has started; otherwise run (or
	// resume) the hint stage first.
	if cfg.Checkpoints != nil {
		if ck, err := cfg.Checkpoints.Load(); err == nil && ck != nil {
			return train.Fit(ctx, b, spec, initSeed(cfg.Seed), src, cfg)
		}
	}
	hint := cfg
	hint.Epochs = m.HintEpochs
	hint.Objective = loss.Objective{Temperature: 1, Features: m.Hints}
	if fc, ok := cfg.Checkpoints.(*train.FileCheckpointer); ok {
		hint.Checkpoints = &train.FileCheckpointer{Path: fc.Path + ".hints", Key: fc.Key + "/hints", Warn: fc.Warn}
	}
	sm, hres, err := train.Fit(ctx, b, spec, initSeed(cfg.Seed), src, hint)
	if err != nil {
		return nil, hres, fmt.Errorf("student: hint stage: %w", err)
	}
	res, err := train.Train(ctx, b, sm, src, cfg)
	res.Steps += hres.Steps
	res.Duration += hres.Duration
	if err != nil {
		sm.Close()
		return nil, res, err
	}
	return sm, res, nil
}
