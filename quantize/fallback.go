package quantize

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
)

// Evaluator measures a predictor's accuracy (higher is better), on a
// held-out set for instance.
type Evaluator func(p infer.Predictor) (accuracy float64, err error)

// Ranking is how WithFallback measures a layer's sensitivity.
type Ranking int

const (
	// AllButOne quantizes every layer but the one measured: its
	// sensitivity is how much accuracy keeping it in float32 recovers.
	AllButOne Ranking = iota
	// OneAtATime quantizes only the layer measured: its sensitivity is
	// how much accuracy quantizing it alone loses.
	OneAtATime
)

// Budget is the accuracy an INT8 model may lose against the float32 one.
type Budget struct {
	// MaxDrop is the largest acceptable drop: absolute (accuracy units)
	// or, with Relative, a fraction of the float32 accuracy.
	MaxDrop  float64
	Relative bool
	// MaxFloatLayers caps the layers kept in float32; 0 means no cap.
	MaxFloatLayers int
	// Ranking selects the sensitivity measure (AllButOne by default).
	Ranking Ranking
}

// LayerSensitivity is one layer's measured effect on accuracy.
type LayerSensitivity struct {
	Layer string
	// Accuracy of the model measured for this layer (all but it
	// quantized, or only it, depending on the Ranking).
	Accuracy float64
	// Sensitivity: accuracy recovered by keeping the layer in float32
	// (AllButOne) or lost by quantizing it (OneAtATime).
	Sensitivity float64
}

// Report describes what WithFallback measured and chose.
type Report struct {
	FP32Accuracy float64 // the float32 network
	Int8Accuracy float64 // every layer quantized
	Accuracy     float64 // the model returned
	Target       float64 // the least acceptable accuracy
	// Sensitivity lists the layers, most sensitive first.
	Sensitivity []LayerSensitivity
	// FloatLayers lists the layers kept in float32, in the order chosen.
	FloatLayers []string
	// Met reports whether Accuracy ≥ Target.
	Met bool
}

// BudgetError is returned, with the best model found and its Report,
// when no model within Budget.MaxFloatLayers reaches the target.
type BudgetError struct {
	Target, Best float64
	FloatLayers  []string
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("quantize: accuracy budget not met: best %.6g with %d float layer(s) %v, target %.6g",
		e.Best, len(e.FloatLayers), e.FloatLayers, e.Target)
}

// WithFallback makes a fully quantized model meet an accuracy budget by
// keeping its most sensitive layers in float32. It evaluates the float32
// network (from w, the weights m was quantized from, as given to
// Quantize or folded as in m.Spec) and m; if m is
// within budget it is returned as is. Otherwise it ranks the linear and
// conv2d layers of m.Spec (the folded network: a conv and the batchnorm
// folded into it are one layer, named after the conv) by sensitivity
// (see Ranking) and moves them to float32, most sensitive first, until the budget is met. The returned model runs
// as a mixed program: activations are dequantized before a float layer
// and quantized after it.
//
// If the budget cannot be met within Budget.MaxFloatLayers, it returns
// the most accurate model it evaluated, its report, and a *BudgetError.
func WithFallback(ctx context.Context, m *Model, w model.Weights, eval Evaluator, budget Budget) (*Model, *Report, error) {
	if budget.MaxDrop < 0 {
		return nil, nil, fmt.Errorf("quantize: negative accuracy budget %v", budget.MaxDrop)
	}
	w, err := foldedWeights(m, w)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: fallback: %w", err)
	}
	fp, err := infer.Compile(m.Spec, w)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: fallback: %w", err)
	}
	rep := &Report{}
	if rep.FP32Accuracy, err = eval(fp); err != nil {
		return nil, nil, fmt.Errorf("quantize: fallback: evaluating float32: %w", err)
	}
	rep.Target = rep.FP32Accuracy - budget.MaxDrop
	if budget.Relative {
		rep.Target = rep.FP32Accuracy * (1 - budget.MaxDrop)
	}
	evalWith := func(float []string) (*Model, float64, error) {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		mm, err := withFloat(m, w, float)
		if err != nil {
			return nil, 0, err
		}
		p, err := mm.Compile()
		if err != nil {
			return nil, 0, err
		}
		acc, err := eval(p)
		if err != nil {
			return nil, 0, fmt.Errorf("evaluating with %v in float32: %w", float, err)
		}
		return mm, acc, nil
	}
	base := slices.Clone(m.Fallback)
	best, bestAcc, err := evalWith(base)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: fallback: %w", err)
	}
	rep.Int8Accuracy = bestAcc
	rep.Accuracy, rep.FloatLayers = bestAcc, base
	if bestAcc >= rep.Target {
		rep.Met = true
		return best, rep, nil
	}

	var layers []string
	for _, l := range m.Spec.Layers {
		if _, ok := m.Layers[l.Name]; ok {
			layers = append(layers, l.Name)
		}
	}
	for _, name := range layers {
		var float []string
		if budget.Ranking == OneAtATime {
			for _, other := range layers {
				if other != name {
					float = append(float, other)
				}
			}
		} else {
			float = []string{name}
		}
		_, acc, err := evalWith(append(slices.Clone(base), float...))
		if err != nil {
			return nil, nil, fmt.Errorf("quantize: fallback: %w", err)
		}
		s := LayerSensitivity{Layer: name, Accuracy: acc, Sensitivity: acc - rep.Int8Accuracy}
		if budget.Ranking == OneAtATime {
			s.Sensitivity = rep.FP32Accuracy - acc
		}
		rep.Sensitivity = append(rep.Sensitivity, s)
	}
	sort.SliceStable(rep.Sensitivity, func(i, j int) bool {
		return rep.Sensitivity[i].Sensitivity > rep.Sensitivity[j].Sensitivity
	})

	float := slices.Clone(base)
	for _, s := range rep.Sensitivity {
		if budget.MaxFloatLayers > 0 && len(float)-len(base) >= budget.MaxFloatLayers {
			break
		}
		float = append(float, s.Layer)
		mm, acc, err := evalWith(float)
		if err != nil {
			return nil, nil, fmt.Errorf("quantize: fallback: %w", err)
		}
		if acc > bestAcc {
			best, bestAcc = mm, acc
			rep.FloatLayers = slices.Clone(float)
		}
		if acc >= rep.Target {
			rep.Accuracy, rep.Met = acc, true
			rep.FloatLayers = slices.Clone(float)
			return mm, rep, nil
		}
	}
	rep.Accuracy = bestAcc
	return best, rep, &BudgetError{Target: rep.Target, Best: bestAcc, FloatLayers: rep.FloatLayers}
}

// foldedWeights returns w as weights of m.Spec: w itself when it fits,
// or w folded as Quantize folded the network it was given (m.Source).
func foldedWeights(m *Model, w model.Weights) (model.Weights, error) {
	errSpec := m.Spec.Check(w)
	if errSpec == nil {
		return w, nil
	}
	if len(m.Source.Layers) == 0 {
		return nil, fmt.Errorf("the float32 weights do not fit the quantized network %q: %w", m.Spec.Name, errSpec)
	}
	if err := m.Source.Check(w); err != nil {
		return nil, fmt.Errorf("the float32 weights fit neither the network %q was quantized from (%w) nor its folded form (%w)", m.Spec.Name, err, errSpec)
	}
	fs, fw, err := infer.Fold(m.Source, w)
	if err != nil {
		return nil, err
	}
	if !sameSpec(fs, m.Spec) {
		return nil, fmt.Errorf("folding the network %q was quantized from does not give the quantized network: the model's source and spec disagree", m.Spec.Name)
	}
	return fw, nil
}

// withFloat returns a copy of m with the given layers in float32 (their
// weights from w).
func withFloat(m *Model, w model.Weights, float []string) (*Model, error) {
	mm := &Model{QuantModel: m.QuantModel, Method: m.Method, Percentile: m.Percentile, Source: m.Source}
	mm.Layers = maps.Clone(m.Layers)
	mm.Float = maps.Clone(m.Float)
	if mm.Float == nil {
		mm.Float = model.Weights{}
	}
	for _, name := range float {
		if _, ok := mm.Layers[name]; !ok && !slices.Contains(m.Fallback, name) {
			return nil, fmt.Errorf("layer %q is not a quantized layer", name)
		}
		delete(mm.Layers, name)
		for _, suf := range []string{".weight", ".bias"} {
			t, ok := w[name+suf]
			if !ok {
				return nil, fmt.Errorf("no float32 tensor %q", name+suf)
			}
			mm.Float[name+suf] = t
		}
		if !slices.Contains(mm.Fallback, name) {
			mm.Fallback = append(mm.Fallback, name)
		}
	}
	return mm, nil
}
