package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/distill-dev/distill/backend"
	_ "github.com/distill-dev/distill/backend/gorgonia" // the embedded default backend
	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/teacher"
	"github.com/distill-dev/distill/tensorboard"
	"github.com/distill-dev/distill/train"
	"github.com/distill-dev/distill/transfer"
)

// Version is the library version written into reports.
var Version = "0.1.0-dev"

// Options override a recipe and connect a run to its caller.
type Options struct {
	// OutDir overrides the recipe's output.dir.
	OutDir string
	// DataDir overrides data.dir (offline IDX files).
	DataDir string
	// Backend, Device and Precision override the recipe's backend,
	// device and precision.
	Backend   string
	Device    string
	Precision string
	// Progress receives events; nil discards them.
	Progress func(Event)
	// Logger receives warnings and milestones; nil discards them.
	Logger *slog.Logger
	// Memory is the budget that the recipe's sizes are checked against
	// before any work (see Check); zero means recipe.MachineMemory().
	Memory recipe.Memory
	// Remeasure measures serving again even where a measurement of the
	// same model file, settings and machine is recorded in the run
	// directory; by default a rerun reuses it, so that report.json keeps
	// its numbers.
	Remeasure bool
}

// runner holds one run's state.
type runner struct {
	r      *recipe.Recipe
	opts   Options
	out    string
	be     backend.Backend
	log    *slog.Logger
	stages []report.Stage
	train  *data.Dataset
	test   *data.Dataset
	// teacherKeys are the keys of the teachers, in teacher.Specs order.
	teacherKeys []string
	set         *transfer.Set
	tb          map[string]*tensorboard.Writer
	// last is the last progress event and active the model in training:
	// what an interruption stopped (see interrupted).
	last   Event
	active activeTraining
	// training is the model being trained, for its per-epoch test
	// accuracy (see trainBackend).
	training backend.Model
}

// Run executes the recipe and returns the report it wrote to
// <out>/report.json and <out>/report.md.
func Run(ctx context.Context, r *recipe.Recipe, opts Options) (*report.Report, error) {
	rc := *withOverrides(r, opts)
	if err := rc.Validate(); err != nil {
		return nil, err
	}
	out := rc.Output.Dir
	if opts.OutDir != "" {
		out = opts.OutDir
	}
	if out == "" {
		return nil, errors.New("distill: no output directory: set output.dir in the recipe or pass --out")
	}
	// Inputs first, so that a wrong path leaves no run directory behind.
	if err := checkInputs(&rc, opts); err != nil {
		return nil, err
	}
	if opts.Progress == nil {
		opts.Progress = func(Event) {}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	be, err := backend.Open(rc.Backend, backend.Options{Device: rc.Device, Threads: rc.Threads, Precision: backend.Precision(rc.Precision)})
	if err != nil {
		return nil, fmt.Errorf("distill: open backend: %w", err)
	}
	defer be.Close()
	// Before any work: a run directory that takes no files, or a price
	// table with no entry for this machine, would otherwise fail only
	// after the teacher trained.
	if err := checkOutDir(out); err != nil {
		return nil, err
	}
	if _, err := pricing(rc.Serving, cost.Host(be.Device())); err != nil {
		return nil, err
	}
	run := &runner{r: &rc, opts: opts, out: out, be: be, log: log}
	run.opts.Progress = run.observe(opts.Progress)
	defer run.closeCurves()
	rep, err := run.run(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, run.interrupted(err)
	}
	return rep, err
}

func (run *runner) run(ctx context.Context) (*report.Report, error) {
	if err := run.timed(report.StageData, func() error { return run.loadData(ctx) }); err != nil {
		return nil, err
	}
	var models []evalEntry
	for _, t := range teacher.Specs(run.r) {
		key, err := run.teacherStage(ctx, t)
		if err != nil {
			return nil, err
		}
		run.teacherKeys = append(run.teacherKeys, key)
		models = append(models, evalEntry{name: t.Name, role: report.RoleTeacher, key: key, method: t.Method(), teacher: &t})
	}
	for _, s := range run.r.Students {
		entries, err := run.studentStage(ctx, s)
		if err != nil {
			return nil, err
		}
		models = append(models, entries...)
	}
	int8s, err := run.quantizeStage(ctx, models)
	if err != nil {
		return nil, err
	}
	models = append(models, int8s...)
	var rep *report.Report
	err = run.timed(report.StageEval, func() error {
		var err error
		rep, err = run.evaluate(ctx, models)
		return err
	})
	if err != nil {
		return nil, err
	}
	rep.Stages = run.stages
	rep.Transfer = run.transferUse()
	if err := run.price(rep); err != nil {
		return nil, err
	}
	if err := rep.WriteJSON(filepath.Join(run.out, "report.json")); err != nil {
		return nil, err
	}
	if err := rep.WriteMarkdown(filepath.Join(run.out, "report.md")); err != nil {
		return nil, err
	}
	run.opts.Progress(Event{Stage: "report", Message: "wrote " + filepath.Join(run.out, "report.json"), Done: true})
	return rep, nil
}

// transferUse counts the teacher passes the transfer set saved: every
// student trains its epochs on the set's rows, reading every teacher's
// targets there instead of running the teachers. Nil without a set.
func (run *runner) transferUse() *report.TransferUse {
	if run.set == nil {
		return nil
	}
	u := &report.TransferUse{Rows: run.set.Len()}
	for _, s := range run.r.Students {
		u.TeacherExamplesAvoided += int64(s.Training.Epochs) * int64(run.set.Len()) * int64(run.set.Teachers())
	}
	return u
}

// price turns the serving measurements and stage times into costs.
func (run *runner) price(rep *report.Report) error {
	sv := run.r.Serving
	if !sv.MeasureEnabled() {
		return nil
	}
	host := cost.Host(run.be.Device())
	if cs, ok := run.be.(backend.CUDAStatus); ok {
		if rt, used, _, ok := cs.CUDAStatus(); ok {
			host.CUDARuntime, host.GPUMemoryInUseMiB = rt, int(used>>20)
		}
	}
	if lib, ok := run.be.(backend.Library); ok {
		host.Library = lib.Library()
	}
	rep.Machine = &host
	opts, err := pricing(sv, host)
	if err != nil {
		return err
	}
	if err := cost.Apply(rep, opts); err != nil {
		return fmt.Errorf("distill: price the models: %w", err)
	}
	return nil
}

// pricing returns the options the run's models are priced with, after
// checking that the price table has the machine the recipe names or,
// when it names none, one matching host: Run calls it before any work.
func pricing(sv recipe.Serving, host report.Machine) (cost.Options, error) {
	opts := cost.Options{Machine: sv.Machine, LatencyTarget: time.Duration(sv.LatencyTargetMS * float64(time.Millisecond)), RequestsPerDay: sv.RequestsPerDay}
	if !sv.MeasureEnabled() {
		return opts, nil
	}
	opts.Prices = cost.DefaultPrices()
	if sv.Prices != "" {
		t, err := cost.LoadPrices(sv.Prices)
		if err != nil {
			return opts, fmt.Errorf("distill: serving.prices: %w", err)
		}
		opts.Prices = t
	}
	if sv.Machine != "" {
		if _, err := opts.Prices.Lookup(sv.Machine); err != nil {
			return opts, fmt.Errorf("distill: serving.machine: %w", err)
		}
		return opts, nil
	}
	if _, _, err := opts.Prices.Match(host); err != nil {
		return opts, fmt.Errorf("distill: serving cost: %w", err)
	}
	return opts, nil
}

// timed runs the run-wide stage kind and records how long it took.
func (run *runner) timed(kind report.StageKind, f func() error) error {
	clock := run.begin()
	if err := f(); err != nil {
		return err
	}
	run.done(report.StageID{Kind: kind}, clock.end())
	return nil
}

func (run *runner) loadData(ctx context.Context) error {
	run.opts.Progress(Event{Stage: "data", Message: "loading " + run.r.Data.Dataset})
	var err error
	if run.train, run.test, err = LoadData(ctx, run.r.Data); err != nil {
		return err
	}
	run.log.Info("dataset loaded", "dataset", run.r.Data.Dataset, "train", run.train.Len(), "test", run.test.Len())
	return nil
}

// LoadData loads the training and test sets a recipe's data section
// describes, limits applied.
func LoadData(ctx context.Context, d recipe.Data) (train, test *data.Dataset, err error) {
	switch d.Dataset {
	case "synthetic":
		s := d.Synthetic
		train, test, err = data.NewSynthetic(data.SyntheticConfig{Train: s.Train, Test: s.Test, Shape: s.Shape, Classes: s.Classes, Seed: s.Seed})
	case "fashion-mnist":
		train, test, err = data.LoadFashionMNIST(d.Dir)
	case "idx":
		train, test, err = data.LoadIDXDir(d.Dir)
	case "images":
		o := data.ImageFolderOptions{Channels: d.Channels, Mean: float32s(d.Mean), Std: float32s(d.Std)}
		if len(d.Size) == 2 {
			o.Height, o.Width = d.Size[0], d.Size[1]
		}
		train, test, err = data.LoadImageFolder(d.Dir, o)
	case "arrays":
		train, test, err = data.LoadArrays(d.TrainFile, d.TestFile, d.X, d.Y)
	case "csv":
		train, test, err = data.LoadCSV(d.TrainFile, d.TestFile, d.LabelColumn)
	default:
		train, test, err = data.LoadMNIST(ctx, data.MNISTOptions{Dir: d.Dir})
	}
	if err == nil && (d.Dataset == "images" || d.Dataset == "arrays" || d.Dataset == "csv") {
		// Users' data may come sorted by class (an image folder always
		// does) and without a test split: split it by the seed, or
		// shuffle it, so that limits take examples of every class.
		if test == nil {
			// A data section filled for another dataset (that of
			// transfer.unlabelled) has no fraction of its own.
			frac := cmp.Or(d.TestFraction, recipe.DefaultTestFraction)
			train, test, err = data.Split(train, frac, d.SplitSeed)
		} else {
			train, test = train.Shuffled(d.SplitSeed), test.Shuffled(d.SplitSeed)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("distill: load dataset %q: %w", d.Dataset, err)
	}
	return train.Subset(d.TrainLimit), test.Subset(d.TestLimit), nil
}

// float32s converts recipe floats to the loaders' float32.
func float32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// modelPath is where a model's files live: <out>/models/<name>.json.
func (run *runner) modelPath(name string) string {
	return filepath.Join(run.out, "models", name+".json")
}

// curves returns the TensorBoard writer of a model's training curves,
// under <out>/tensorboard/<name>/<run> (see curvesDir); nil if it cannot
// be created (curves are a convenience, never a reason to fail a run).
func (run *runner) curves(name, key string) *tensorboard.Writer {
	dir := curvesDir(run.out, name, key)
	if w, ok := run.tb[dir]; ok {
		return w
	}
	w, err := tensorboard.Create(dir)
	if err != nil {
		run.log.Warn("no TensorBoard curves", "model", name, "err", err)
	}
	if run.tb == nil {
		run.tb = map[string]*tensorboard.Writer{}
	}
	run.tb[dir] = w
	return w
}

func (run *runner) closeCurves() {
	for _, w := range run.tb {
		if w != nil {
			w.Close()
		}
	}
}

func (run *runner) trainConfig(t recipe.Training, stage, name, key string) train.Config {
	t = run.r.TrainingFor(t)
	run.active = activeTraining{name: name, key: key}
	run.announceResume(run.active, stage, t.Epochs)
	tb := run.curves(name, key)
	return train.Config{
		Checkpoints: &train.FileCheckpointer{
			Path: run.checkpointPath(name),
			Key:  key,
			Warn: func(msg string, err error) { run.log.Warn(msg, "model", name, "err", err) },
		},
		CheckpointEvery:    run.r.Checkpoint.EverySteps,
		CheckpointInterval: time.Duration(run.r.Checkpoint.EverySeconds * float64(time.Second)),
		Epochs:             t.Epochs,
		BatchSize:          t.BatchSize,
		LR:                 t.LR,
		Schedule:           train.Schedule{Kind: t.Schedule.Kind, Warmup: t.Schedule.Warmup, StepEvery: t.Schedule.StepEvery, Gamma: t.Schedule.Gamma, MinLR: t.Schedule.MinLR},
		Seed:               run.r.Seed,
		Optimizer:          backend.Optimizer{Kind: t.Optimizer, Momentum: t.Momentum, Nesterov: t.Nesterov, WeightDecay: t.WeightDecay, MaxNorm: t.MaxNorm},
		Progress: func(p train.Progress) {
			if tb != nil && (p.Step%10 == 0 || p.Step == p.Steps) {
				step := int64(p.Step)
				tb.Scalar("loss/total", step, p.Loss.Total)
				tb.Scalar("loss/hard", step, p.Loss.Hard)
				tb.Scalar("loss/soft", step, p.Loss.Soft)
				if p.Loss.Feature != 0 {
					tb.Scalar("loss/feature", step, p.Loss.Feature)
				}
				tb.Scalar("lr", step, p.LR)
			}
			if tb != nil && p.Step*p.Epochs == p.Epoch*p.Steps { // the epoch's last step
				run.epochAccuracy(tb, name, p)
			}
			run.opts.Progress(Event{Stage: stage, Model: name, Epoch: p.Epoch, Epochs: p.Epochs, Step: p.Step, Steps: p.Steps, Loss: p.Loss.Total, Elapsed: p.Elapsed})
		},
	}
}

// keep ends a model's stage, measured by clock: it saves and closes the
// trained model m, adds the stage to the report and records it as
// finished with key.
func (run *runner) keep(id report.StageID, name, key string, m backend.Model, clock stageClock) error {
	rec := clock.end() // before Close: the peak is the model's, not less
	err := run.save(name, m)
	m.Close()
	if err != nil {
		return err
	}
	run.done(id, rec)
	return run.record(name, key, rec)
}

func (run *runner) save(name string, m backend.Model) error {
	w, err := m.Weights()
	if err != nil {
		return fmt.Errorf("distill: read weights of %s: %w", name, err)
	}
	spec := m.Spec()
	spec.Name = name
	if err := model.Save(run.modelPath(name), spec, w); err != nil {
		return fmt.Errorf("distill: save %s: %w", name, err)
	}
	run.opts.Progress(Event{Stage: "save", Model: name, Message: "saved " + run.modelPath(name), Done: true})
	return nil
}
