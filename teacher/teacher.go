// Package teacher obtains the model that students learn from: trained
// from a spec, or loaded from a file, and combined with others into an
// ensemble whose averaged soft targets a student learns from.
package teacher

import (
	"context"
	"fmt"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/train"
)

// Train trains a teacher from scratch on hard labels with cross-entropy.
// cfg.Objective and cfg.Teacher are ignored.
func Train(ctx context.Context, b backend.Backend, spec model.Spec, src train.Source, cfg train.Config) (backend.Model, train.Result, error) {
	cfg.Objective = loss.CrossEntropyOnly
	cfg.Teacher = nil
	return train.Fit(ctx, b, spec, uint64(cfg.Seed), src, cfg)
}

// Load loads a teacher saved by distill (model.Save: a .json spec beside
// a .safetensors file) onto b.
func Load(b backend.Backend, path string) (backend.Model, error) {
	spec, w, err := model.Load(path)
	if err != nil {
		return nil, fmt.Errorf("load teacher: %w", err)
	}
	return b.Load(spec, w)
}
