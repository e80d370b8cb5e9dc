// Package student trains the small models: distilled from a teacher's
// soft targets, and the same architecture on hard labels alone as the
// baseline that shows what distillation buys.
package student

import (
	"context"
	"errors"

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
	cfg.Objective = loss.Hinton(alpha, T)
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
