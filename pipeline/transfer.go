package pipeline

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/teacher"
	"github.com/distill-dev/distill/transfer"
)

// transferInputs returns the inputs the teachers label: the training
// split, or the unlabelled inputs of transfer.unlabelled.
func (run *runner) transferInputs(ctx context.Context) (*data.Dataset, error) {
	u := run.r.Transfer.Unlabelled
	if !u.Enabled {
		return run.train, nil
	}
	d := run.r.Data
	d.Dataset, d.Dir, d.TrainLimit, d.TestLimit = u.Dataset, u.Dir, 0, 0
	all, _, err := LoadData(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("distill: transfer.unlabelled: %w", err)
	}
	if u.From >= all.Len() {
		return nil, fmt.Errorf("distill: transfer.unlabelled.from is %d, but the training split of %q has %d examples", u.From, u.Dataset, all.Len())
	}
	in := all.Tail(all.Len() - u.From).Subset(u.Limit)
	if !slices.Equal(in.Shape, run.train.Shape) {
		return nil, fmt.Errorf("distill: transfer.unlabelled: %q has examples of shape %v, but the teachers take %v", u.Dataset, in.Shape, run.train.Shape)
	}
	run.log.Info("unlabelled transfer inputs", "dataset", u.Dataset, "from", u.From, "examples", in.Len())
	return in, nil
}

// featureLayers lists the main teacher's layers that the students'
// feature terms read, in recipe order, each once.
func (run *runner) featureLayers() []string { return teacher.FeatureLayers(run.r) }

// teacherHash identifies what labels the transfer set for teacher t: the
// ONNX file and its logits output for an ONNX teacher, the TorchScript
// file of one of any architecture, else the model
// saved in the run directory (for a state_dict teacher that is the file
// as mapped onto its architecture, which the .safetensors alone would
// not pin down); and the input normalisation, which changes the labels
// of the same network.
func (run *runner) teacherHash(t teacher.Spec) (string, error) {
	var h string
	var err error
	if t.External() {
		if h, err = transfer.HashFiles(t.ExternalFile()); err == nil && t.ONNX != "" {
			h = keyOf(h, t.ORT.Output)
		}
	} else {
		h, err = transfer.HashFiles(model.Paths(run.modelPath(t.Name)))
	}
	if err != nil {
		return "", err
	}
	if t.Preprocess.Enabled() {
		h = keyOf(h, t.Preprocess)
	}
	return h, nil
}

// transferSet gets the transfer set from the cache, building it (running
// the teachers once over every example and augmented copy) if needed.
func (run *runner) transferSet(ctx context.Context, specs []teacher.Spec, models []backend.Model, weights []float64) (*transfer.Set, error) {
	if run.set != nil {
		return run.set, nil
	}
	tr := run.r.Transfer
	teachers := make([]transfer.Teacher, len(specs))
	for i, t := range specs {
		h, err := run.teacherHash(t)
		if err != nil {
			return nil, err
		}
		teachers[i] = transfer.Teacher{Name: t.Name, SHA256: h, Weight: weights[i], Model: models[i]}
	}
	// The main teacher's layers that feature terms read are stored too,
	// so that no student runs a teacher in its training loop.
	if layers := run.featureLayers(); len(layers) > 0 {
		fm, ok := models[0].(backend.FeatureModel)
		if !ok {
			return nil, fmt.Errorf("distill: the %s backend's models cannot give layer outputs, which the students' hints and attention terms need", run.be.Name())
		}
		var err error
		if teachers[0].Features, teachers[0].FeatureFn, err = transfer.LayerFeatures(fm, models[0].Spec(), layers); err != nil {
			return nil, fmt.Errorf("distill: transfer set: %w", err)
		}
	}
	inputs, err := run.transferInputs(ctx)
	if err != nil {
		return nil, err
	}
	cache := transfer.Cache{Dir: tr.CacheDir}
	clock := run.begin()
	start := clock.start
	set, err := cache.GetOrBuild(ctx, transfer.BuildSpec{
		Data: inputs, Unlabelled: tr.Unlabelled.Enabled, Classes: run.train.Classes, Copies: tr.Copies, Augment: tr.Augment, Seed: tr.Seed, Dtype: tr.Dtype,
	}, teachers, func(done, total int) {
		run.opts.Progress(Event{Stage: "transfer", Model: "transfer-set", Step: done, Steps: total, Elapsed: time.Since(start)})
	})
	if err != nil {
		return nil, fmt.Errorf("distill: transfer set: %w", err)
	}
	run.done(report.StageID{Kind: report.StageTransfer}, clock.end())
	run.log.Info("transfer set ready", "rows", set.Len(), "teachers", set.Teachers(), "dir", set.Dir())
	run.set = set
	return set, nil
}
