package pipeline

import (
	"context"
	"fmt"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/teacher"
	"github.com/distill-dev/distill/train"
	"github.com/distill-dev/distill/transfer"
)

// teacherStage obtains teacher t (package teacher) unless an earlier run
// of this directory finished it with the same key, and returns the key.
func (run *runner) teacherStage(ctx context.Context, t teacher.Spec) (string, error) {
	name := t.Name
	key := run.teacherKey(t)
	id := report.StageID{Kind: report.StageTeacher, Model: name}
	if rec, ok := run.finished(name, key); ok {
		run.log.Info("teacher already trained; reusing it", "path", run.modelPath(name))
		run.done(id, rec)
		return key, nil
	}
	clock := run.begin()
	env := teacher.Env{
		Backend: run.be, Trainer: run.trainBackend(), Data: run.train, Seed: run.r.Seed,
		Progress: func(name, msg string) { run.opts.Progress(Event{Stage: "teacher", Model: name, Message: msg}) },
	}
	m, err := teacher.Obtain(ctx, env, t, func() train.Config { return run.trainConfig(t.Training, "teacher", name, key) })
	if err != nil {
		return "", err
	}
	if t.External() {
		// Nothing to save: ONNX Runtime or libtorch runs the file itself,
		// reopened wherever the teacher is needed (openTeacher). Opening
		// it here checked that it runs and fits the data.
		rec := clock.end()
		m.Close()
		run.done(id, rec)
		return key, nil
	}
	return key, run.keep(id, name, key, m, clock)
}

// openTeacher opens teacher t as its stage left it: an external teacher
// (ONNX, TorchScript of any architecture) from its file, any other from
// the run directory; with its preprocessing.
func (run *runner) openTeacher(t teacher.Spec) (backend.Model, error) {
	var m backend.Model
	var err error
	if t.External() {
		m, err = teacher.OpenExternal(run.be, t, run.train.Shape, run.train.Classes)
	} else {
		m, err = teacher.Load(run.be, run.modelPath(t.Name))
	}
	if err != nil {
		return nil, fmt.Errorf("distill: %s: %w", t.Name, err)
	}
	return t.Preprocessed(m, run.train.Shape)
}

// softTargets gives a distilled student its soft targets at st (see
// teacher.Targets) and the data it trains on: the cached transfer set
// when the recipe has one, else the training data with the teachers run
// in the loop. With features the teacher is also a train.FeatureTeacher
// giving the main teacher's layers (from the transfer set, which stores
// every layer a student's feature terms read). release frees the
// teachers.
func (run *runner) softTargets(ctx context.Context, st loss.SoftTargets, features bool) (tt train.Teacher, src train.Source, release func(), err error) {
	specs := teacher.Specs(run.r)
	weights := teacher.Weights(specs)
	var models []backend.Model
	release = func() {
		for _, m := range models {
			m.Close()
		}
	}
	for _, t := range specs {
		m, err := run.openTeacher(t)
		if err != nil {
			release()
			return nil, nil, nil, err
		}
		models = append(models, m)
	}
	var set *transfer.Set
	src = run.train
	if run.r.Transfer.Enabled {
		if set, err = run.transferSet(ctx, specs, models, weights); err != nil {
			release()
			return nil, nil, nil, err
		}
		src = set
	}
	if tt, err = teacher.Targets(models, weights, set, st, features); err != nil {
		release()
		return nil, nil, nil, err
	}
	return tt, src, release, nil
}
