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

// Ensemble runs several teachers in the training loop and gives, as
// logits, their mixture at st.Temperature: the weighted mean of their
// softened predictions (loss.EnsembleLogits). The student learns from it
// with st.Objective(), which softens at the same temperature. Weights are
// normalised to sum to 1.
func Ensemble(models []backend.Model, weights []float64, st loss.SoftTargets) (train.Teacher, error) {
	if len(models) == 0 || len(models) != len(weights) {
		return nil, fmt.Errorf("teacher: ensemble of %d models with %d weights", len(models), len(weights))
	}
	T := st.Temperature
	if err := loss.CheckTemperature(T); err != nil {
		return nil, fmt.Errorf("teacher: ensemble: %w", err)
	}
	var sum float64
	for _, w := range weights {
		if !(w > 0) {
			return nil, fmt.Errorf("teacher: ensemble weights must be > 0, got %v", weights)
		}
		sum += w
	}
	norm := make([]float64, len(weights))
	for i, w := range weights {
		norm[i] = w / sum
	}
	k := models[0].Spec().Classes
	for _, m := range models[1:] {
		if m.Spec().Classes != k {
			return nil, fmt.Errorf("teacher: ensemble members predict %d and %d classes", k, m.Spec().Classes)
		}
	}
	return &ensemble{models: models, weights: norm, T: T, k: k}, nil
}

type ensemble struct {
	models  []backend.Model
	weights []float64
	T       float64
	k       int
	buf     [][]float32
}

func (e *ensemble) Logits(_ []int, x []float32, n int, out []float32) error {
	if len(e.buf) != len(e.models) || len(e.buf[0]) < n*e.k {
		e.buf = make([][]float32, len(e.models))
		for i := range e.buf {
			e.buf[i] = make([]float32, n*e.k)
		}
	}
	for i, m := range e.models {
		if err := m.Forward(x, n, e.buf[i][:n*e.k]); err != nil {
			return fmt.Errorf("teacher: ensemble member %d: %w", i, err)
		}
		// Checked per member: the mixture would hide which one overflowed.
		if j := loss.FirstNonFinite(e.buf[i][:n*e.k]); j >= 0 {
			return fmt.Errorf("teacher: ensemble member %d (%q) gave logit %d = %v for row %d of the batch: its outputs must be finite; check its weights (activations that overflow float32) and the inputs",
				i, m.Spec().Name, j%e.k, e.buf[i][j], j/e.k)
		}
	}
	rows := make([][]float32, len(e.models))
	for r := 0; r < n; r++ {
		for i := range rows {
			rows[i] = e.buf[i][r*e.k : (r+1)*e.k]
		}
		loss.EnsembleLogits(rows, e.weights, e.T, out[r*e.k:(r+1)*e.k])
	}
	return nil
}

// Spec is the main (first) teacher's architecture: feature terms read
// its layers.
func (e *ensemble) Spec() model.Spec { return e.models[0].Spec() }

// Features gives the main teacher's layer outputs and, if logits is
// non-nil, the ensemble's mixture.
func (e *ensemble) Features(idx []int, x []float32, n int, layers []string, logits []float32, feats [][]float32) error {
	if err := train.ModelTeacher(e.models[0]).(train.FeatureTeacher).Features(idx, x, n, layers, nil, feats); err != nil {
		return err
	}
	if logits == nil {
		return nil
	}
	return e.Logits(idx, x, n, logits)
}
