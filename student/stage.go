package student

import (
	"context"
	"fmt"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/train"
)

// Distillation is one student of a recipe, ready to distil: its
// architecture, how it learns (Method, whose SoftTargets are the only
// copy of the recipe's temperature and alpha), and the report's label of
// that method.
type Distillation struct {
	Name   string
	Spec   model.Spec
	Method Method
	Label  string
}

// FromRecipe plans the distillation of student s of recipe r for data of
// the given shape and classes.
func FromRecipe(r *recipe.Recipe, s recipe.Student, shape []int, classes int) (Distillation, error) {
	spec, err := s.Model.Spec(s.Name, shape, classes)
	if err != nil {
		return Distillation{}, fmt.Errorf("distill: student %q model: %w", s.Name, err)
	}
	joint, hints := s.Distill.Features()
	m := Method{
		SoftTargets: loss.SoftTargets{Temperature: s.Distill.Temperature, Alpha: s.Distill.Alpha},
		Features:    joint, Hints: hints, HintEpochs: s.Distill.HintEpochs,
	}
	return Distillation{Name: s.Name, Spec: spec, Method: m, Label: label(r, s.Distill, joint, hints)}, nil
}

// label names a student's method in the report, e.g. "response, hint
// (2 epochs first), 2 teachers, transfer set ×5".
func label(r *recipe.Recipe, d recipe.Distill, joint, hints []loss.Feature) string {
	method := "response"
	var kinds []loss.FeatureKind // in order of first appearance, each once
	count := map[loss.FeatureKind]int{}
	for _, f := range append(joint, hints...) {
		if count[f.Kind] == 0 {
			kinds = append(kinds, f.Kind)
		}
		count[f.Kind]++
	}
	for _, k := range kinds {
		method += ", " + string(k)
		if count[k] > 1 {
			method += fmt.Sprintf(" ×%d", count[k])
		}
		if k == loss.FeatureHint && d.HintEpochs > 0 {
			unit := "epochs"
			if d.HintEpochs == 1 {
				unit = "epoch"
			}
			method += fmt.Sprintf(" (%d %s first)", d.HintEpochs, unit)
		}
	}
	if n := 1 + len(r.Ensemble); n > 1 {
		method += fmt.Sprintf(", %d teachers", n)
	}
	if tr := r.Transfer; tr.Enabled {
		method += fmt.Sprintf(", transfer set ×%d", tr.Copies+1)
		if tr.Unlabelled.Enabled {
			method += " of unlabelled inputs"
		}
	}
	return method
}

// Targets gives a student's soft targets at st and the data it trains
// on; with features the teacher must also be a train.FeatureTeacher.
// release frees what the teacher holds.
type Targets func(st SoftTargets, features bool) (t train.Teacher, src train.Source, release func(), err error)

// SoftTargets are the soft-target settings (package loss).
type SoftTargets = loss.SoftTargets

// Distil trains the student on b. It asks targets for soft targets at
// d.Method.SoftTargets, the value its objective is built from, so the
// teachers' mixing and the student's loss soften at one temperature.
// cfg is called right before training; progress, if not nil, receives the
// stage's milestone.
func (d Distillation) Distil(ctx context.Context, b backend.Backend, targets Targets, cfg func() train.Config, progress func(msg string)) (backend.Model, error) {
	features := len(d.Method.Features)+len(d.Method.Hints) > 0
	tt, src, release, err := targets(d.Method.SoftTargets, features)
	if err != nil {
		return nil, err
	}
	defer release()
	if progress != nil {
		st := d.Method.SoftTargets
		progress(fmt.Sprintf("distilling %s (T=%g, alpha=%g, %s)", d.Name, st.Temperature, st.Alpha, d.Label))
	}
	if features {
		ft, ok := tt.(train.FeatureTeacher)
		if !ok {
			return nil, fmt.Errorf("distill: student %q: hints and attention need the teacher's layer outputs, which the %s backend's models cannot give", d.Name, b.Name())
		}
		if err := loss.CheckFeatures(d.Spec, ft.Spec(), append(d.Method.Features, d.Method.Hints...)); err != nil {
			return nil, fmt.Errorf("distill: student %q: %w", d.Name, err)
		}
	}
	m, _, err := Train(ctx, b, d.Spec, tt, d.Method, src, cfg())
	if err != nil {
		return nil, fmt.Errorf("distill: student %q: %w", d.Name, err)
	}
	return m, nil
}

// BaselinePlan is a student's architecture trained on hard labels alone:
// what distillation is measured against.
type BaselinePlan struct {
	Name  string // report.BaselineName of the student
	Spec  model.Spec
	Label string
	// Data is what it trains on: the training split or, with the recipe's
	// transfer.augment_baselines, the students' inputs (originals and
	// augmented copies) with their true labels.
	Data train.Source
	// Augmented reports the second case.
	Augmented bool
}

// BaselineFromRecipe plans the baseline of d, a student of r, trained on
// the split ds.
func BaselineFromRecipe(r *recipe.Recipe, d Distillation, ds *data.Dataset) (BaselinePlan, error) {
	p := BaselinePlan{Name: report.BaselineName(d.Name), Spec: d.Spec, Label: "hard-labels", Data: ds}
	if tr := r.Transfer; tr.Enabled && tr.AugmentBaselines {
		src, err := augment.NewSource(ds, tr.Copies, tr.Augment, tr.Seed)
		if err != nil {
			return BaselinePlan{}, fmt.Errorf("distill: baseline %q augmentation: %w", p.Name, err)
		}
		p.Data, p.Augmented = src, true
		p.Label += fmt.Sprintf(", data ×%d augmented %s", tr.Copies+1, tr.Augment)
	}
	return p, nil
}

// Train trains the baseline on b from the same initial weights as the
// distilled student (see Baseline); cfg is called right before training.
func (p BaselinePlan) Train(ctx context.Context, b backend.Backend, cfg func() train.Config) (backend.Model, error) {
	m, _, err := Baseline(ctx, b, p.Spec, p.Data, cfg())
	if err != nil {
		return nil, fmt.Errorf("distill: baseline %q: %w", p.Name, err)
	}
	return m, nil
}
