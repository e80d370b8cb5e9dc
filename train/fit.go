package train

import (
	"context"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/model"
)

// Fit initialises a model of the given spec from initSeed (so every
// backend starts from the same weights), loads it on b and trains it.
// On error the model is closed.
func Fit(ctx context.Context, b backend.Backend, spec model.Spec, initSeed uint64, src Source, cfg Config) (backend.Model, Result, error) {
	w, err := spec.Init(initSeed)
	if err != nil {
		return nil, Result{}, err
	}
	m, err := b.Load(spec, w)
	if err != nil {
		return nil, Result{}, err
	}
	res, err := Train(ctx, b, m, src, cfg)
	if err != nil {
		m.Close()
		return nil, res, err
	}
	return m, res, nil
}
