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

// ModelTeacher runs a model's forward pass in the loop.
func ModelTeacher(m backend.Model) Teacher { return modelTeacher{m} }

type modelTeacher struct{ m backend.Model }

func (t modelTeacher) Logits(_ []int, x []float32, n int, out []float32) error {
	return t.m.Forward(x, n, out)
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
	if c.Objective.NeedsTeacher() && c.Teacher == nil {
		errs = append(errs, errors.New("train: the objective distils from a teacher, but Config.Teacher is nil"))
	}
	return errors.Join(errs...)
}

// Train trains m in place on src. It stops early, returning ctx's error,
// when ctx is cancelled.
func Train(ctx context.Context, b backend.Backend, m backend.Model, src Source, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	spec := m.Spec()
	n := src.Len()
	if n == 0 {
		return Result{}, errors.New("train: the training data is empty")
	}
	bs := min(cfg.BatchSize, n)
	tr, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: bs, Objective: cfg.Objective, Optimizer: cfg.Optimizer})
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

	stepsPerEpoch := (n + bs - 1) / bs
	total := stepsPerEpoch * cfg.Epochs
	res := Result{}
	start := time.Now()
	step := 0
	for epoch := 0; epoch < cfg.Epochs; epoch++ {
		batches := data.Batches(data.Order(n, cfg.Seed, epoch), bs)
		var sum float64
		for bi, idx := range batches {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			rows := len(idx)
			src.Gather(idx, x[:rows*in], y[:rows])
			if soft != nil {
				if err := cfg.Teacher.Logits(idx, x[:rows*in], rows, soft[:rows*k]); err != nil {
					return res, fmt.Errorf("train: teacher soft targets: %w", err)
				}
			}
			var ms [][]float32
			if len(drops) > 0 {
				drawMasks(masks, drops, dropShapes, rows, cfg.Seed, step)
				ms = masks
			}
			pos := float64(epoch) + float64(bi)/float64(len(batches))
			lr := cfg.Schedule.LR(cfg.LR, pos, cfg.Epochs)
			v, err := tr.Step(&backend.Batch{N: rows, X: x, Labels: y, TeacherLogits: soft, Masks: ms, LR: lr})
			if err != nil {
				return res, fmt.Errorf("train: epoch %d step %d: %w", epoch+1, step+1, err)
			}
			if math.IsNaN(v.Total) || math.IsInf(v.Total, 0) {
				return res, fmt.Errorf("train: epoch %d step %d: %w", epoch+1, step+1, &loss.NonFiniteError{Value: v})
			}
			step++
			sum += v.Total * float64(rows)
			if cfg.Progress != nil {
				cfg.Progress(Progress{Epoch: epoch + 1, Epochs: cfg.Epochs, Step: step, Steps: total, Loss: v, LR: lr, Elapsed: time.Since(start)})
			}
		}
		res.EpochLoss = append(res.EpochLoss, sum/float64(n))
	}
	res.Steps = step
	res.Duration = time.Since(start)
	return res, nil
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
