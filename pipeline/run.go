package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/backend"
	_ "github.com/distill-dev/distill/backend/gorgonia" // the embedded default backend
	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/internal/fileio"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/quantize"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/student"
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
	// Backend and Device override the recipe's backend and device.
	Backend string
	Device  string
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

// Model roles in reports.
const (
	RoleTeacher  = "teacher"
	RoleStudent  = "student"
	RoleBaseline = "baseline"
)

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
	// teacherKeys are the keys of the teachers, in teachers() order.
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
	be, err := backend.Open(rc.Backend, backend.Options{Device: rc.Device, Threads: rc.Threads})
	if err != nil {
		return nil, fmt.Errorf("distill: open backend: %w", err)
	}
	defer be.Close()
	// Before any work: a run directory that takes no files would
	// otherwise fail only at the first save, after the teacher trained.
	if err := checkOutDir(out); err != nil {
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
	if err := run.timed("data", func() error { return run.loadData(ctx) }); err != nil {
		return nil, err
	}
	var models []evalEntry
	for _, t := range run.teachers() {
		key, err := run.teacherStage(ctx, t)
		if err != nil {
			return nil, err
		}
		run.teacherKeys = append(run.teacherKeys, key)
		e := evalEntry{name: t.name, role: RoleTeacher, key: key}
		if t.copies > 0 { // only a teacher trained here (recipe validation)
			e.method = fmt.Sprintf("trained on data ×%d, augmented %s", t.copies+1, t.augment)
		}
		models = append(models, e)
	}
	for i, s := range run.r.Students {
		entries, err := run.studentStage(ctx, i, s)
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
	err = run.timed("eval", func() error {
		var err error
		rep, err = run.evaluate(ctx, models)
		return err
	})
	if err != nil {
		return nil, err
	}
	rep.Stages = run.stages
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

// price turns the serving measurements and stage times into costs.
func (run *runner) price(rep *report.Report) error {
	sv := run.r.Serving
	if !sv.MeasureEnabled() {
		return nil
	}
	host := cost.Host(run.be.Device())
	rep.Machine = &host
	opts := cost.Options{Machine: sv.Machine, LatencyTarget: time.Duration(sv.LatencyTargetMS * float64(time.Millisecond))}
	if sv.Prices != "" {
		t, err := cost.LoadPrices(sv.Prices)
		if err != nil {
			return fmt.Errorf("distill: serving.prices: %w", err)
		}
		opts.Prices = t
	}
	if err := cost.Apply(rep, opts); err != nil {
		return fmt.Errorf("distill: price the models: %w", err)
	}
	return nil
}

func (run *runner) timed(stage string, f func() error) error {
	start := time.Now()
	if err := f(); err != nil {
		return err
	}
	run.stages = append(run.stages, report.Stage{Name: stage, Seconds: time.Since(start).Seconds()})
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
	default:
		train, test, err = data.LoadMNIST(ctx, data.MNISTOptions{Dir: d.Dir})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("distill: load dataset %q: %w", d.Dataset, err)
	}
	return train.Subset(d.TrainLimit), test.Subset(d.TestLimit), nil
}

// modelPath is where a model's files live: <out>/models/<name>.json.
func (run *runner) modelPath(name string) string {
	return filepath.Join(run.out, "models", name+".json")
}

// stageRecord marks a finished model: the key of everything that
// determined it, and how long it took.
type stageRecord struct {
	Key     string  `json:"key"`
	Seconds float64 `json:"seconds"`
}

func (run *runner) recordPath(name string) string {
	return filepath.Join(run.out, "stages", name+".json")
}

// finished reports whether the model named name was already produced
// with the same key, and how long that took.
func (run *runner) finished(name, key string) (float64, bool) {
	secs, ok := run.recorded(name, key)
	if !ok {
		return 0, false
	}
	if _, _, err := model.Load(run.modelPath(name)); err != nil {
		run.log.Warn("finished model is unreadable; training it again", "model", name, "err", err)
		return 0, false
	}
	return secs, true
}

// maxRecordSize bounds a stage record, which is a few dozen bytes.
const maxRecordSize = 1 << 16

// recorded reports whether name's stage record has key.
func (run *runner) recorded(name, key string) (float64, bool) {
	b, err := fileio.ReadFileMax(run.recordPath(name), maxRecordSize)
	if err != nil {
		return 0, false
	}
	var rec stageRecord
	if json.Unmarshal(b, &rec) != nil || rec.Key != key {
		return 0, false
	}
	return rec.Seconds, true
}

// record marks name finished, then drops its training checkpoints: only
// now is the finished model safely on disk.
func (run *runner) record(name, key string, seconds float64) error {
	b, _ := json.Marshal(stageRecord{Key: key, Seconds: seconds})
	if err := atomicfile.WriteFile(run.recordPath(name), b, 0o644); err != nil {
		return err
	}
	return errors.Join(
		(&train.FileCheckpointer{Path: run.checkpointPath(name)}).Remove(),
		(&train.FileCheckpointer{Path: run.checkpointPath(name) + ".hints"}).Remove())
}

func (run *runner) checkpointPath(name string) string {
	return filepath.Join(run.out, "checkpoints", name+".ckpt")
}

// keyOf hashes the JSON of parts: the content that determines an output.
func keyOf(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			panic(fmt.Sprintf("distill: key of %T: %v", p, err)) // only plain data is hashed
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
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

func (run *runner) dataKey() any {
	return struct {
		Backend, Device string
		Data            recipe.Data
		Seed            int64
	}{run.r.Backend, run.be.Device(), run.r.Data, run.r.Seed}
}

// teacherSpec is one teacher of the recipe: the main one or an
// ensemble member.
type teacherSpec struct {
	name        string
	model       recipe.Model
	checkpoint  string
	training    recipe.Training
	weight      float64
	torchscript string // trusted TorchScript file (main teacher only)
	copies      int    // augmented copies of each example to train on
	augment     augment.Config
}

func (run *runner) teachers() []teacherSpec {
	t := run.r.Teacher
	ts := []teacherSpec{{"teacher", t.Model, t.Checkpoint, t.Training, t.Weight, "", t.Copies, t.Augment}}
	if t.Trusted {
		ts[0].torchscript = t.TorchScript
	}
	for _, e := range run.r.Ensemble {
		ts = append(ts, teacherSpec{e.Name, e.Model, e.Checkpoint, e.Training, e.Weight, "", e.Copies, e.Augment})
	}
	return ts
}

func (run *runner) teacherStage(ctx context.Context, t teacherSpec) (string, error) {
	name := t.name
	key := keyOf(run.dataKey(), t.model, t.checkpoint, t.torchscript, run.r.TrainingFor(t.training))
	if t.copies > 0 { // keys of teachers without augmentation stay as they were
		key = keyOf(key, t.copies, t.augment.Key())
	}
	for _, f := range []string{t.checkpoint, t.torchscript} {
		if fi, err := os.Stat(f); f != "" && err == nil {
			key = keyOf(key, fi.ModTime(), fi.Size())
		}
	}
	if secs, ok := run.finished(name, key); ok {
		run.log.Info("teacher already trained; reusing it", "path", run.modelPath(name))
		run.stages = append(run.stages, report.Stage{Name: name, Seconds: secs})
		return key, nil
	}
	start := time.Now()
	var m backend.Model
	var err error
	switch {
	case t.torchscript != "":
		// Only reached when the recipe marked the file trusted.
		loader, ok := run.be.(backend.TorchScriptLoader)
		if !ok {
			return "", fmt.Errorf("distill: %s: the %s backend cannot load TorchScript; use backend torch (a build with -tags torch)", name, run.be.Name())
		}
		var spec model.Spec
		if spec, err = t.model.Spec(name, run.train.Shape, run.train.Classes); err != nil {
			return "", fmt.Errorf("distill: %s model: %w", name, err)
		}
		run.opts.Progress(Event{Stage: "teacher", Model: name, Message: "loading TorchScript " + t.torchscript})
		m, err = loader.LoadTorchScript(t.torchscript, spec)
	case t.checkpoint != "":
		run.opts.Progress(Event{Stage: "teacher", Model: name, Message: "loading " + t.checkpoint})
		m, err = teacher.Load(run.be, t.checkpoint)
	default:
		var spec model.Spec
		spec, err = t.model.Spec(name, run.train.Shape, run.train.Classes)
		if err != nil {
			return "", fmt.Errorf("distill: %s model: %w", name, err)
		}
		var src train.Source = run.train
		msg := "training " + name
		if t.copies > 0 {
			if src, err = augment.NewSource(run.train, t.copies, t.augment, run.r.Seed); err != nil {
				return "", fmt.Errorf("distill: %s augmentation: %w", name, err)
			}
			msg += fmt.Sprintf(" on the data and %d augmented copies (%s)", t.copies, t.augment)
		}
		run.opts.Progress(Event{Stage: "teacher", Model: name, Message: msg})
		m, _, err = teacher.Train(ctx, run.trainBackend(), spec, src, run.trainConfig(t.training, "teacher", name, key))
	}
	if err != nil {
		return "", fmt.Errorf("distill: %s: %w", name, err)
	}
	defer m.Close()
	if err := run.fitsData(m.Spec(), name+" "+t.checkpoint); err != nil {
		return "", err
	}
	if err := run.save(name, m); err != nil {
		return "", err
	}
	secs := time.Since(start).Seconds()
	run.stages = append(run.stages, report.Stage{Name: name, Seconds: secs})
	return key, run.record(name, key, secs)
}

// softTargets returns the teachers' soft targets at temperature T for a
// distilled student, and the data it trains on: the cached transfer set
// when the recipe has one, else the training data with the teachers run
// in the loop. With features set the teacher is also a
// train.FeatureTeacher giving the main teacher's layers (from the
// transfer set, which stores every layer a student's feature terms
// read). release frees the teachers.
func (run *runner) softTargets(ctx context.Context, T float64, features bool) (tt train.Teacher, src train.Source, release func(), err error) {
	specs := run.teachers()
	var models []backend.Model
	release = func() {
		for _, m := range models {
			m.Close()
		}
	}
	weights := make([]float64, len(specs))
	for i, t := range specs {
		m, err := teacher.Load(run.be, run.modelPath(t.name))
		if err != nil {
			release()
			return nil, nil, nil, err
		}
		models = append(models, m)
		weights[i] = t.weight
	}
	if !run.r.Transfer.Enabled {
		if len(models) == 1 {
			return train.ModelTeacher(models[0]), run.train, release, nil
		}
		tt, err := teacher.Ensemble(models, weights, T)
		if err != nil {
			release()
			return nil, nil, nil, err
		}
		return tt, run.train, release, nil
	}
	set, err := run.transferSet(ctx, specs, models, weights)
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	if features {
		tt, err = set.FeatureTeacher(T, 0, models[0].Spec())
	} else {
		tt, err = set.Ensemble(T)
	}
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	return tt, set, release, nil
}

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
func (run *runner) featureLayers() []string {
	var layers []string
	for _, s := range run.r.Students {
		joint, hints := s.Distill.Features()
		for _, f := range append(joint, hints...) {
			if !slices.Contains(layers, f.Teacher) {
				layers = append(layers, f.Teacher)
			}
		}
	}
	return layers
}

// transferSet gets the transfer set from the cache, building it (running
// the teachers once over every example and augmented copy) if needed.
func (run *runner) transferSet(ctx context.Context, specs []teacherSpec, models []backend.Model, weights []float64) (*transfer.Set, error) {
	if run.set != nil {
		return run.set, nil
	}
	tr := run.r.Transfer
	teachers := make([]transfer.Teacher, len(specs))
	for i, t := range specs {
		js, st := model.Paths(run.modelPath(t.name))
		h, err := transfer.HashFiles(js, st)
		if err != nil {
			return nil, err
		}
		teachers[i] = transfer.Teacher{Name: t.name, SHA256: h, Weight: weights[i], Model: models[i]}
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
	start := time.Now()
	set, err := cache.GetOrBuild(ctx, transfer.BuildSpec{
		Data: inputs, Unlabelled: tr.Unlabelled.Enabled, Classes: run.train.Classes, Copies: tr.Copies, Augment: tr.Augment, Seed: tr.Seed, Dtype: tr.Dtype,
	}, teachers, func(done, total int) {
		run.opts.Progress(Event{Stage: "transfer", Model: "transfer-set", Step: done, Steps: total, Elapsed: time.Since(start)})
	})
	if err != nil {
		return nil, fmt.Errorf("distill: transfer set: %w", err)
	}
	run.stages = append(run.stages, report.Stage{Name: "transfer", Seconds: time.Since(start).Seconds()})
	run.log.Info("transfer set ready", "rows", set.Len(), "teachers", set.Teachers(), "dir", set.Dir())
	run.set = set
	return set, nil
}

// fitsData checks that a model takes the dataset's examples and predicts
// its classes.
func (run *runner) fitsData(spec model.Spec, what string) error {
	if !slices.Equal(spec.Input, run.train.Shape) && model.Numel(spec.Input) != run.train.Size() {
		return fmt.Errorf("distill: %s takes inputs of shape %v, but dataset %q has examples of shape %v: use a model trained on this dataset", what, spec.Input, run.train.Name, run.train.Shape)
	}
	if spec.Classes != run.train.Classes {
		return fmt.Errorf("distill: %s predicts %d classes, but dataset %q has %d", what, spec.Classes, run.train.Name, run.train.Classes)
	}
	return nil
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

// evalEntry names a model to evaluate and how it was made.
type evalEntry struct {
	name, role, key string
	method          string
	alpha, T        float64
	int8            bool   // an INT8 model file (package quantize)
	source          string // the float model an INT8 one came from
}

func (run *runner) studentStage(ctx context.Context, i int, s recipe.Student) ([]evalEntry, error) {
	spec, err := s.Model.Spec(s.Name, run.train.Shape, run.train.Classes)
	if err != nil {
		return nil, fmt.Errorf("distill: student %q model: %w", s.Name, err)
	}
	tcfg := run.r.TrainingFor(s.Training)
	var entries []evalEntry

	// Distilled student.
	var weights []float64
	for _, t := range run.teachers() {
		weights = append(weights, t.weight)
	}
	keyTransfer := run.r.Transfer
	keyTransfer.AugmentBaselines = false // what the baselines train on does not change the student
	key := keyOf(run.teacherKeys, weights, keyTransfer, s.Model, s.Distill, tcfg)
	method := "response"
	joint, hints := s.Distill.Features()
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
		if k == loss.FeatureHint && s.Distill.HintEpochs > 0 {
			unit := "epochs"
			if s.Distill.HintEpochs == 1 {
				unit = "epoch"
			}
			method += fmt.Sprintf(" (%d %s first)", s.Distill.HintEpochs, unit)
		}
	}
	if len(weights) > 1 {
		method += fmt.Sprintf(", %d teachers", len(weights))
	}
	if tr := run.r.Transfer; tr.Enabled {
		method += fmt.Sprintf(", transfer set ×%d", tr.Copies+1)
		if tr.Unlabelled.Enabled {
			method += " of unlabelled inputs"
		}
	}
	entries = append(entries, evalEntry{name: s.Name, role: RoleStudent, key: key, method: method, alpha: s.Distill.Alpha, T: s.Distill.Temperature})
	if secs, ok := run.finished(s.Name, key); ok {
		run.log.Info("student already distilled; reusing it", "student", s.Name)
		run.stages = append(run.stages, report.Stage{Name: "student:" + s.Name, Seconds: secs})
	} else {
		start := time.Now()
		tt, src, release, err := run.softTargets(ctx, s.Distill.Temperature, len(joint)+len(hints) > 0)
		if err != nil {
			return nil, err
		}
		run.opts.Progress(Event{Stage: "students", Model: s.Name, Message: fmt.Sprintf("distilling %s (T=%g, alpha=%g, %s)", s.Name, s.Distill.Temperature, s.Distill.Alpha, method)})
		if len(joint)+len(hints) > 0 {
			ft, ok := tt.(train.FeatureTeacher)
			if !ok {
				release()
				return nil, fmt.Errorf("distill: student %q: hints and attention need the teacher's layer outputs, which the %s backend's models cannot give", s.Name, run.be.Name())
			}
			if err := loss.CheckFeatures(spec, ft.Spec(), append(joint, hints...)); err != nil {
				release()
				return nil, fmt.Errorf("distill: student %q: %w", s.Name, err)
			}
		}
		m, _, err := student.Train(ctx, run.trainBackend(), spec, tt, student.Method{Alpha: s.Distill.Alpha, T: s.Distill.Temperature, Features: joint, Hints: hints, HintEpochs: s.Distill.HintEpochs}, src, run.trainConfig(s.Training, "students", s.Name, key))
		release()
		if err != nil {
			return nil, fmt.Errorf("distill: student %q: %w", s.Name, err)
		}
		err = run.save(s.Name, m)
		m.Close()
		if err != nil {
			return nil, err
		}
		secs := time.Since(start).Seconds()
		run.stages = append(run.stages, report.Stage{Name: "student:" + s.Name, Seconds: secs})
		if err := run.record(s.Name, key, secs); err != nil {
			return nil, err
		}
	}

	if !s.BaselineEnabled() {
		return entries, nil
	}
	name := s.Name + "-baseline"
	key = keyOf(run.dataKey(), s.Model, tcfg)
	var src train.Source = run.train
	baseMethod := "hard-labels"
	if tr := run.r.Transfer; tr.Enabled && tr.AugmentBaselines {
		// The students' inputs, originals and copies, with true labels.
		if src, err = augment.NewSource(run.train, tr.Copies, tr.Augment, tr.Seed); err != nil {
			return nil, fmt.Errorf("distill: baseline %q augmentation: %w", name, err)
		}
		key = keyOf(key, tr.Copies, tr.Augment.Key(), tr.Seed)
		baseMethod += fmt.Sprintf(", data ×%d augmented %s", tr.Copies+1, tr.Augment)
	}
	entries = append(entries, evalEntry{name: name, role: RoleBaseline, key: key, method: baseMethod})
	if secs, ok := run.finished(name, key); ok {
		run.log.Info("baseline already trained; reusing it", "model", name)
		run.stages = append(run.stages, report.Stage{Name: "baseline:" + s.Name, Seconds: secs})
		return entries, nil
	}
	start := time.Now()
	run.opts.Progress(Event{Stage: "students", Model: name, Message: "training baseline " + name + " on hard labels"})
	m, _, err := student.Baseline(ctx, run.trainBackend(), spec, src, run.trainConfig(s.Training, "students", name, key))
	if err != nil {
		return nil, fmt.Errorf("distill: baseline %q: %w", name, err)
	}
	err = run.save(name, m)
	m.Close()
	if err != nil {
		return nil, err
	}
	secs := time.Since(start).Seconds()
	run.stages = append(run.stages, report.Stage{Name: "baseline:" + s.Name, Seconds: secs})
	return entries, run.record(name, key, secs)
}

func (run *runner) evaluate(ctx context.Context, entries []evalEntry) (*report.Report, error) {
	rep := &report.Report{
		Schema:  report.Schema,
		Recipe:  run.r.Name,
		Backend: run.be.Name(),
		Device:  run.be.Device(),
		Seed:    run.r.Seed,
		Dataset: report.Dataset{Name: run.r.Data.Dataset, Train: run.train.Len(), Test: run.test.Len()},
		Created: time.Now().UTC(),
		Version: Version,
	}
	var teacherLogits []float32
	phases := len(entries)
	if run.r.Serving.MeasureEnabled() {
		phases *= 2
	}
	prog := newEvalProgress(run.opts.Progress, phases)
	defer prog.end()
	for _, e := range entries {
		prog.phase(e.name, "evaluating "+e.name)
		path := run.modelPath(e.name)
		spec, m, calibration, fallback, err := run.loadForEval(e, path)
		if err != nil {
			return nil, fmt.Errorf("distill: eval %s: %w", e.name, err)
		}
		// A batch larger than the test set is the whole set at once
		// (recipe.Eval); eval.Logits would allocate all of it.
		batch := max(min(run.r.Eval.BatchSize, run.test.Len()), 1)
		logits, err := eval.Logits(ctx, m, run.test, run.test.Size(), spec.Classes, batch)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("distill: eval %s: %w", e.name, err)
		}
		var serving *report.Serving
		if run.r.Serving.MeasureEnabled() {
			if serving, err = run.serving(ctx, prog, e, path, spec, m); err != nil {
				m.Close()
				return nil, err
			}
		}
		m.Close()
		if e.name == "teacher" {
			teacherLogits = logits // agreement is with the main teacher
		}
		met, err := eval.Compute(logits, run.test.Y, teacherLogits, spec.Classes, run.r.Eval.ECEBins)
		if err != nil {
			return nil, fmt.Errorf("distill: eval %s: %w", e.name, err)
		}
		params, _ := spec.ParamCount()
		rel, _ := filepath.Rel(run.out, path)
		rep.Models = append(rep.Models, report.Model{
			Name: e.name, Role: e.role, Params: params, Bytes: fileSize(path),
			Accuracy: met.Accuracy, Errors: met.Errors, Agreement: met.Agreement, ECE: met.ECE,
			Path: filepath.ToSlash(rel), Method: e.method, Alpha: e.alpha, Temperature: e.T,
			Calibration: calibration, FallbackLayers: fallback, Source: e.source,
			Serving: serving,
		})
		prog.end()
		run.log.Info("evaluated", "model", e.name, "accuracy", roundFraction(met.Accuracy), "errors", met.Errors, "agreement", roundFraction(met.Agreement), "ece", roundFraction(met.ECE))
	}
	prog.finish()
	return rep, nil
}

// closablePredictor is a model to evaluate.
type closablePredictor interface {
	eval.Predictor
	Close() error
}

type program struct{ *infer.Program }

func (program) Close() error { return nil }

// loadForEval loads a float model onto the run's backend, or an INT8
// model into the INT8 runtime.
func (run *runner) loadForEval(e evalEntry, path string) (model.Spec, closablePredictor, string, []string, error) {
	if e.int8 {
		q, err := quantize.Load(path)
		if err != nil {
			return model.Spec{}, nil, "", nil, err
		}
		p, err := q.Compile()
		if err != nil {
			return model.Spec{}, nil, "", nil, err
		}
		return q.Spec, program{p}, string(q.Method), q.Fallback, nil
	}
	spec, w, err := model.Load(path)
	if err != nil {
		return model.Spec{}, nil, "", nil, err
	}
	m, err := run.be.Load(spec, w)
	return spec, m, "", nil, err
}

// fileSize is the size of a model's weights file: what it costs to ship.
func fileSize(jsonPath string) int64 {
	st := jsonPath[:len(jsonPath)-len(".json")] + ".safetensors"
	fi, err := os.Stat(st)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return 0
	}
	return fi.Size()
}
