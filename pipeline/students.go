package pipeline

import (
	"context"

	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/student"
	"github.com/distill-dev/distill/train"
)

// studentStage distils student s and trains its baseline (package
// student), each unless an earlier run of this directory finished it with
// the same key, and returns both for evaluation.
func (run *runner) studentStage(ctx context.Context, s recipe.Student) ([]evalEntry, error) {
	d, err := student.FromRecipe(run.r, s, run.train.Shape, run.train.Classes)
	if err != nil {
		return nil, err
	}
	key := run.studentKey(s)
	entries := []evalEntry{{name: d.Name, role: report.RoleStudent, key: key, method: d.Label, soft: d.Method.SoftTargets}}
	id := report.StageID{Kind: report.StageStudent, Model: s.Name}
	if rec, ok := run.finished(d.Name, key); ok {
		run.log.Info("student already distilled; reusing it", "student", d.Name)
		run.done(id, rec)
	} else {
		clock := run.begin()
		targets := func(st student.SoftTargets, features bool) (train.Teacher, train.Source, func(), error) {
			return run.softTargets(ctx, st, features)
		}
		progress := func(msg string) { run.opts.Progress(Event{Stage: "students", Model: d.Name, Message: msg}) }
		m, err := d.Distil(ctx, run.trainBackend(), targets, func() train.Config { return run.trainConfig(s.Training, "students", d.Name, key) }, progress)
		if err != nil {
			return nil, err
		}
		if err := run.keep(id, d.Name, key, m, clock); err != nil {
			return nil, err
		}
	}

	if !s.BaselineEnabled() {
		return entries, nil
	}
	b, err := student.BaselineFromRecipe(run.r, d, run.train)
	if err != nil {
		return nil, err
	}
	key = run.baselineKey(s, b.Augmented)
	entries = append(entries, evalEntry{name: b.Name, role: report.RoleBaseline, key: key, method: b.Label})
	id = report.StageID{Kind: report.StageBaseline, Model: s.Name}
	if rec, ok := run.finished(b.Name, key); ok {
		run.log.Info("baseline already trained; reusing it", "model", b.Name)
		run.done(id, rec)
		return entries, nil
	}
	clock := run.begin()
	run.opts.Progress(Event{Stage: "students", Model: b.Name, Message: "training baseline " + b.Name + " on hard labels"})
	m, err := b.Train(ctx, run.trainBackend(), func() train.Config { return run.trainConfig(s.Training, "students", b.Name, key) })
	if err != nil {
		return nil, err
	}
	return entries, run.keep(id, b.Name, key, m, clock)
}
