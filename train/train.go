// Package train is distill's training loop: it feeds a backend.Trainer
// batches from any Source in a deterministic order, draws dropout masks,
// asks a Teacher for soft targets, follows the learning-rate schedule
// and reports progress. It works with any model and data, without a
// recipe.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// Source is labelled training data. *data.Dataset implements it.
type Source interface {
	Len() int
	// Gather copies examples idx into x (len(idx) × input size) and y.
	Gather(idx []int, x []float32, y []int32)
}

// Teacher provides soft targets: the logits of examples idx, whose inputs
// are x (n rows). A model run in the loop ignores idx; a cached transfer
// set looks them up by idx.
type Teacher interface {
	Logits(idx []int, x []float32, n int, out []float32) error
}

// IndexedTeacher is a Teacher whose logits depend on the rows' indices
// only, not on their inputs (a cached transfer set's). Train may read
// them for the whole training set at once, to keep the set on the
// device (backend.ResidentTrainer).
type IndexedTeacher interface {
	Teacher
	// IndexedLogits is Logits without the inputs.
	IndexedLogits(idx []int, n int, out []float32) error
}

// FeatureTeacher is a Teacher that can also give intermediate layer
// outputs, which feature and attention terms need (loss.Feature).
type FeatureTeacher interface {
	Teacher
	// Spec is the teacher's architecture.
	Spec() model.Spec
	// Features writes the outputs of layers into feats (one buffer per
	// layer, n rows) and, if logits is non-nil, the logits.
	Features(idx []int, x []float32, n int, layers []string, logits []float32, feats [][]float32) error
}

// ModelTeacher runs a model's forward pass in the loop. It is a
// FeatureTeacher when the model is a backend.FeatureModel.
func ModelTeacher(m backend.Model) Teacher { return modelTeacher{m} }

type modelTeacher struct{ m backend.Model }

func (t modelTeacher) Logits(_ []int, x []float32, n int, out []float32) error {
	return t.m.Forward(x, n, out)
}

func (t modelTeacher) Spec() model.Spec { return t.m.Spec() }

func (t modelTeacher) Features(_ []int, x []float32, n int, layers []string, logits []float32, feats [][]float32) error {
	fm, ok := t.m.(backend.FeatureModel)
	if !ok {
		return fmt.Errorf("train: the teacher model (%T) cannot give intermediate layer outputs for feature terms", t.m)
	}
	return fm.ForwardFeatures(x, n, layers, logits, feats)
}

// Config is what Train needs besides the model and data.
type Config struct {
	Epochs    int
	BatchSize int
	LR        float64
	Schedule  Schedule
	// Seed fixes the data order and dropout masks.
	Seed      int64
	Objective loss.Objective
	Optimizer backend.Optimizer
	// Teacher is required when Objective has a soft term.
	Teacher Teacher
	// Progress, if set, is called after every step.
	Progress func(Progress)
	// Checkpoints, if set, receives a checkpoint every CheckpointEvery
	// steps, every CheckpointInterval, and when ctx is cancelled; Fit
	// resumes from the newest one.
	Checkpoints        Checkpointer
	CheckpointEvery    int
	CheckpointInterval time.Duration
}

// Progress reports one finished step.
type Progress struct {
	Epoch, Epochs int // 1-based epoch
	Step, Steps   int // 1-based global step, total steps
	Loss          loss.Value
	LR            float64
	Elapsed       time.Duration
}

// Result summarises a training run.
type Result struct {
	Steps int
	// EpochLoss is each epoch's mean training loss.
	EpochLoss []float64
	Duration  time.Duration
}

// Validate reports unusable settings, all at once.
func (c Config) Validate() error {
	var errs []error
	if c.Epochs < 1 {
		errs = append(errs, fmt.Errorf("train: epochs must be >= 1, got %d", c.Epochs))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("train: batch size must be >= 1, got %d", c.BatchSize))
	}
	if !(c.LR > 0) {
		errs = append(errs, fmt.Errorf("train: learning rate must be > 0, got %v", c.LR))
	}
	errs = append(errs, c.Schedule.Validate(), c.Objective.Validate())
	if (c.Objective.NeedsTeacher() || c.Objective.NeedsTeacherFeatures()) && c.Teacher == nil {
		errs = append(errs, errors.New("train: the objective distils from a teacher, but Config.Teacher is nil"))
	}
	if c.Objective.NeedsTeacherFeatures() && c.Teacher != nil {
		if _, ok := c.Teacher.(FeatureTeacher); !ok {
			errs = append(errs, fmt.Errorf("train: feature terms need a teacher that gives its layer outputs (a train.FeatureTeacher: a model run in the loop, or a transfer set that stores the layers), not a %T", c.Teacher))
		}
	}
	return errors.Join(errs...)
}

// Train trains m in place on src. It stops early, returning ctx's error,
// when ctx is cancelled (after saving a checkpoint if cfg.Checkpoints is
// set).
func Train(ctx context.Context, b backend.Backend, m backend.Model, src Source, cfg Config) (Result, error) {
	return run(ctx, b, m, src, cfg, nil)
}

func run(ctx context.Context, b backend.Backend, m backend.Model, src Source, cfg Config, resume *Checkpoint) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	spec := m.Spec()
	n := src.Len()
	if n == 0 {
		return Result{}, errors.New("train: the training data is empty")
	}
	bs := min(cfg.BatchSize, n)
	stepsPerEpoch := (n + bs - 1) / bs
	if resume != nil {
		// Fit checked it already; this guards the indexing below.
		if err := checkPosition(resume, stepsPerEpoch, cfg.Epochs); err != nil {
			return Result{}, err
		}
	}
	tcfg := backend.TrainConfig{MaxBatch: bs, Objective: cfg.Objective, Optimizer: cfg.Optimizer}
	var (
		ft     FeatureTeacher
		layers []string
		feats  [][]float32
	)
	if cfg.Objective.NeedsTeacherFeatures() {
		ft = cfg.Teacher.(FeatureTeacher)
		tcfg.TeacherSpec = ft.Spec()
		tshapes, err := tcfg.TeacherSpec.Shapes()
		if err != nil {
			return Result{}, err
		}
		for _, f := range cfg.Objective.Features {
			_, li, ok := tcfg.TeacherSpec.Layer(f.Teacher)
			if !ok {
				return Result{}, fmt.Errorf("train: feature term %s: the teacher has no layer %q", f, f.Teacher)
			}
			layers = append(layers, f.Teacher)
			feats = append(feats, make([]float32, bs*model.Numel(tshapes[li])))
		}
	}
	tr, err := b.NewTrainer(m, tcfg)
	if err != nil {
		return Result{}, err
	}
	defer tr.Close()

	drops, dropShapes, err := spec.DropoutLayers()
	if err != nil {
		return Result{}, err
	}
	in, k := model.Numel(spec.Input), spec.Classes
	x := make([]float32, bs*in)
	y := make([]int32, bs)
	var soft []float32
	if cfg.Objective.NeedsTeacher() {
		soft = make([]float32, bs*k)
	}
	masks := make([][]float32, len(drops))
	for i := range drops {
		masks[i] = make([]float32, bs*model.Numel(dropShapes[i]))
	}

	resident, err := keepOnDevice(tr, src, cfg, n, in, k)
	if err != nil {
		return Result{}, err
	}

	total := stepsPerEpoch * cfg.Epochs
	var (
		res        Result
		step       int     // finished steps
		epoch, bi  int     // position of the next batch
		sum        float64 // loss sum of the current epoch
		start      = time.Now()
		lastSave   = time.Now()
		savedStep  = -1
		checkpoint = func() error {
			if cfg.Checkpoints == nil || savedStep == step {
				return nil
			}
			w, err := m.Weights()
			if err != nil {
				return err
			}
			st, err := tr.State()
			if err != nil {
				return err
			}
			ck := &Checkpoint{Step: step, Epoch: epoch, Batch: bi, EpochSum: sum, EpochLoss: res.EpochLoss, Weights: w, Optimizer: st}
			if fc, ok := cfg.Checkpoints.(*FileCheckpointer); ok {
				ck.Key = fc.Key
			}
			if err := cfg.Checkpoints.Save(ck); err != nil {
				return fmt.Errorf("train: save checkpoint at step %d: %w", step, err)
			}
			savedStep, lastSave = step, time.Now()
			return nil
		}
	)
	if resume != nil {
		if err := tr.SetState(resume.Optimizer); err != nil {
			return Result{}, fmt.Errorf("train: resume: %w", err)
		}
		step, epoch, bi, sum = resume.Step, resume.Epoch, resume.Batch, resume.EpochSum
		res.EpochLoss = append([]float64(nil), resume.EpochLoss...)
		savedStep = step
	}
	var batches [][]int
	for epoch < cfg.Epochs {
		if batches == nil {
			batches = data.Batches(data.Order(n, cfg.Seed, epoch), bs)
		}
		if err := ctx.Err(); err != nil {
			if cerr := checkpoint(); cerr != nil {
				return res, errors.Join(err, cerr)
			}
			return res, err
		}
		idx := batches[bi]
		rows := len(idx)
		if resident == nil {
			src.Gather(idx, x[:rows*in], y[:rows])
		}
		var tf [][]float32
		switch {
		case resident != nil: // examples and soft targets are on the device
		case ft != nil:
			var logits []float32
			if soft != nil {
				logits = soft[:rows*k]
			}
			tf = make([][]float32, len(feats))
			for i := range feats {
				tf[i] = feats[i][:rows*len(feats[i])/bs]
			}
			if err := ft.Features(idx, x[:rows*in], rows, layers, logits, tf); err != nil {
				return res, fmt.Errorf("train: teacher features: %w", err)
			}
			for i, f := range tf {
				if err := checkTeacher(cfg.Teacher, f, rows, idx, "layer "+strconv.Quote(layers[i])+" value"); err != nil {
					return res, err
				}
			}
			if logits != nil {
				if err := checkTeacher(cfg.Teacher, logits, rows, idx, "logit"); err != nil {
					return res, err
				}
			}
		case soft != nil:
			if err := cfg.Teacher.Logits(idx, x[:rows*in], rows, soft[:rows*k]); err != nil {
				return res, fmt.Errorf("train: teacher soft targets: %w", err)
			}
			if err := checkTeacher(cfg.Teacher, soft[:rows*k], rows, idx, "logit"); err != nil {
				return res, err
			}
		}
		var ms [][]float32
		if len(drops) > 0 {
			drawMasks(masks, drops, dropShapes, rows, cfg.Seed, step)
			ms = masks
		}
		pos := float64(epoch) + float64(bi)/float64(len(batches))
		lr := cfg.Schedule.LR(cfg.LR, pos, cfg.Epochs)
		var v loss.Value
		if resident != nil {
			v, err = resident.StepRows(idx, &backend.Batch{N: rows, Masks: ms, LR: lr})
		} else {
			v, err = tr.Step(&backend.Batch{N: rows, X: x, Labels: y, TeacherLogits: soft, TeacherFeatures: tf, Masks: ms, LR: lr})
		}
		if err == nil && (math.IsNaN(v.Total) || math.IsInf(v.Total, 0)) {
			err = &loss.NonFiniteError{Value: v}
		}
		if err != nil {
			// The weights may already be damaged: keep the last good
			// checkpoint rather than writing this state.
			return res, fmt.Errorf("train: epoch %d step %d: %w", epoch+1, step+1, err)
		}
		step++
		sum += v.Total * float64(rows)
		if cfg.Progress != nil {
			cfg.Progress(Progress{Epoch: epoch + 1, Epochs: cfg.Epochs, Step: step, Steps: total, Loss: v, LR: lr, Elapsed: time.Since(start)})
		}
		if bi++; bi == len(batches) {
			res.EpochLoss = append(res.EpochLoss, sum/float64(n))
			epoch, bi, sum, batches = epoch+1, 0, 0, nil
		}
		if (cfg.CheckpointEvery > 0 && step%cfg.CheckpointEvery == 0) ||
			(cfg.CheckpointInterval > 0 && time.Since(lastSave) >= cfg.CheckpointInterval) {
			if err := checkpoint(); err != nil {
				return res, err
			}
		}
	}
	res.Steps = step
	res.Duration = time.Since(start)
	return res, nil
}

// checkTeacher reports the first NaN or infinity in a batch's teacher
// outputs (rows rows of examples idx), naming the teacher and the
// example. Caught here, it is not mistaken for a diverging student.
// keepOnDevice copies the whole training set, and its soft targets where
// the objective has a soft term, to the trainer's device when the trainer
// can step on rows kept there and the set fits its budget; it returns the
// trainer to step with then, nil to step from the host. Soft targets are
// kept only when they are looked up by index (IndexedTeacher): a teacher
// run in the loop sees each batch as it comes. Feature terms need the
// teacher's layer outputs per batch, so they train from the host.
func keepOnDevice(tr backend.Trainer, src Source, cfg Config, n, in, k int) (backend.ResidentTrainer, error) {
	rt, ok := tr.(backend.ResidentTrainer)
	if !ok || cfg.Objective.NeedsTeacherFeatures() {
		return nil, nil
	}
	var it IndexedTeacher
	need := int64(n) * int64(in*4+8)
	if cfg.Objective.NeedsTeacher() {
		if it, ok = cfg.Teacher.(IndexedTeacher); !ok {
			return nil, nil
		}
		need += int64(n) * int64(k*4)
	}
	if rt.KeepBudget() < need {
		return nil, nil
	}
	set := &backend.Batch{N: n, X: make([]float32, n*in), Labels: make([]int32, n)}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	src.Gather(idx, set.X, set.Labels)
	if it != nil {
		set.TeacherLogits = make([]float32, n*k)
		if err := it.IndexedLogits(idx, n, set.TeacherLogits); err != nil {
			return nil, fmt.Errorf("train: teacher soft targets: %w", err)
		}
		if err := checkTeacher(cfg.Teacher, set.TeacherLogits, n, idx, "logit"); err != nil {
			return nil, err
		}
	}
	if err := rt.Keep(set); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return rt, nil
}

func checkTeacher(t Teacher, vals []float32, rows int, idx []int, what string) error {
	i := loss.FirstNonFinite(vals)
	if i < 0 {
		return nil
	}
	per := len(vals) / rows
	name := fmt.Sprintf("the teacher (%T)", t)
	if s, ok := t.(interface{ Spec() model.Spec }); ok {
		name = fmt.Sprintf("teacher %q", s.Spec().Name)
	}
	return fmt.Errorf("train: %s gave %s %d = %v for training example %d: its outputs must be finite; check its weights (activations that overflow float32) and the inputs",
		name, what, i%per, vals[i], idx[i/per])
}

// checkPosition rejects a checkpoint whose position is not one this run
// passes through. The checksum and the key make that a bug rather than a
// damaged file, but indexing the epoch's batches with it would panic.
func checkPosition(c *Checkpoint, stepsPerEpoch, epochs int) error {
	ok := c.Epoch >= 0 && c.Batch >= 0 && c.Epoch <= epochs && c.Batch < stepsPerEpoch && (c.Epoch < epochs || c.Batch == 0) &&
		c.Step == c.Epoch*stepsPerEpoch+c.Batch && len(c.EpochLoss) == c.Epoch
	if !ok {
		return fmt.Errorf("train: checkpoint position (step %d, epoch %d, batch %d, %d epoch losses) does not fit this run's %d epochs of %d steps; delete the checkpoint to train from the start",
			c.Step, c.Epoch, c.Batch, len(c.EpochLoss), epochs, stepsPerEpoch)
	}
	return nil
}

// drawMasks fills inverted-dropout masks for one step from a stream keyed
// by (seed, step), so a resumed run draws the same masks.
func drawMasks(masks [][]float32, drops []model.Layer, shapes [][]int, rows int, seed int64, step int) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x64726f70<<32|uint64(step)))
	for i, l := range drops {
		per := model.Numel(shapes[i])
		keep := float32(1 / (1 - l.Rate))
		m := masks[i][:rows*per]
		for j := range m {
			if rng.Float64() >= l.Rate {
				m[j] = keep
			} else {
				m[j] = 0
			}
		}
	}
}
