package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/quantize"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
)

// quantizeStage makes an INT8 model of every float model entry that the
// recipe asks for, after training: calibrated on training examples and,
// with a budget, with its most sensitive layers kept in float32.
func (run *runner) quantizeStage(ctx context.Context, entries []evalEntry) ([]evalEntry, error) {
	q := run.r.Quantize
	if !q.Enabled {
		return nil, nil
	}
	var out []evalEntry
	for _, e := range entries {
		role, ok := e.role.Int8()
		if !ok || (e.role == report.RoleTeacher && !q.Teacher) {
			continue
		}
		name := report.Int8Name(e.name)
		key := run.int8Key(e.key)
		id := report.StageID{Kind: report.StageQuantize, Model: e.name}
		ie := evalEntry{name: name, role: role, key: key, int8: true, source: e.name, method: "int8 " + string(q.Method)}
		if rec, ok := run.finishedInt8(name, key); ok {
			run.done(id, rec)
			out = append(out, ie)
			continue
		}
		clock := run.begin()
		run.opts.Progress(Event{Stage: "quantize", Model: name, Message: fmt.Sprintf("quantizing %s to INT8 (%s calibration)", e.name, q.Method)})
		m, err := run.quantize(ctx, e.name)
		if err != nil {
			return nil, err
		}
		if err := m.Save(run.modelPath(name)); err != nil {
			return nil, fmt.Errorf("distill: save %s: %w", name, err)
		}
		rec := clock.end()
		run.done(id, rec)
		if err := run.record(name, key, rec); err != nil {
			return nil, err
		}
		out = append(out, ie)
	}
	return out, nil
}

func (run *runner) quantize(ctx context.Context, name string) (*quantize.Model, error) {
	spec, w, err := model.Load(run.modelPath(name))
	if err != nil {
		return nil, fmt.Errorf("distill: quantize: %w", err)
	}
	m, rep, err := Quantize(ctx, spec, w, run.train, run.r.Quantize, run.log)
	if err != nil {
		return nil, fmt.Errorf("distill: quantize %s: %w", name, err)
	}
	if rep != nil {
		run.log.Info("quantized", "model", name, "fp32", roundFraction(rep.FP32Accuracy), "int8", roundFraction(rep.Int8Accuracy), "chosen", roundFraction(rep.Accuracy), "float_layers", rep.FloatLayers)
	}
	return m, nil
}

// Quantize makes an INT8 model of a float one as a recipe's quantize
// section says: calibrated on the first examples of train and, with a
// budget, with the most sensitive layers kept in float32 until the
// accuracy on the last examples of train is within it. The report is nil
// without a budget. A budget that cannot be met is logged as a warning;
// the best model found is returned.
func Quantize(ctx context.Context, spec model.Spec, w model.Weights, train *data.Dataset, q recipe.Quantize, log *slog.Logger) (*quantize.Model, *quantize.Report, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if model.Numel(spec.Input) != train.Size() {
		return nil, nil, fmt.Errorf("the model takes inputs of shape %v but the calibration data has examples of shape %v", spec.Input, train.Shape)
	}
	n := min(q.Calibration, train.Len())
	size := train.Size()
	examples := make([][]float32, n)
	for i := range examples {
		examples[i] = train.X[i*size : (i+1)*size]
	}
	m, err := quantize.Quantize(ctx, spec, w, quantize.FromSlices(examples, 256), quantize.Config{Method: q.Method, Percentile: q.Percentile})
	if err != nil || q.MaxDrop == 0 {
		return m, nil, err
	}
	// The budget is checked on the last training examples, never on the
	// test set a report measures.
	val := train.Tail(min(q.Validation, train.Len()))
	evaluate := func(p infer.Predictor) (float64, error) {
		logits, err := eval.Logits(ctx, p, val, size, spec.Classes, 1000)
		if err != nil {
			return 0, err
		}
		met, err := eval.Compute(logits, val.Y, nil, spec.Classes, 15)
		return met.Accuracy, err
	}
	best, rep, err := quantize.WithFallback(ctx, m, w, evaluate, quantize.Budget{MaxDrop: q.MaxDrop, Relative: q.Relative})
	var be *quantize.BudgetError
	switch {
	case errors.As(err, &be):
		log.Warn("INT8 accuracy budget not met; keeping the best model found", "err", err)
	case err != nil:
		return nil, nil, err
	}
	return best, rep, nil
}
