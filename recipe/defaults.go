package recipe

import (
	"fmt"
	"path/filepath"
	"reflect"
	"time"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/quantize"
	"github.com/distill-dev/distill/serve"
	"github.com/distill-dev/distill/train"
)

// Defaults, as documented on the types and in recipes/README.md.
const (
	DefaultBackend     = backend.Default
	DefaultDevice      = "auto"
	DefaultPrecision   = string(backend.PrecisionAuto)
	DefaultSeed        = 1
	DefaultDataset     = "mnist"
	DefaultModelType   = "mlp"
	DefaultActivation  = "relu"
	DefaultKernel      = 3
	DefaultStride      = 1
	DefaultEpochs      = 10
	DefaultBatchSize   = 128
	DefaultOptimizer   = backend.DefaultOptimizer
	DefaultAdamLR      = 1e-3
	DefaultSGDLR       = 0.1
	DefaultMomentum    = 0.9
	DefaultSchedule    = train.DefaultSchedule
	DefaultStepGamma   = 0.1
	DefaultExpGamma    = 0.95
	DefaultTemperature = 4
	DefaultAlpha       = 0.9
	DefaultEvalBatch   = 1000
	DefaultECEBins     = 15
	// DefaultCheckpointSeconds bounds the work a preempted run loses.
	DefaultCheckpointSeconds = 60.0
	DefaultTestFraction      = 0.2
	DefaultSynthTrain        = 2048
	DefaultSynthTest         = 512
	DefaultSynthClass        = 4
	DefaultMethod            = quantize.DefaultMethod
	DefaultPercentile        = quantize.DefaultPercentile
	// DefaultCalibration and DefaultValidation count training examples.
	DefaultCalibration = 2048
	DefaultValidation  = 5000
)

// defaultSynthShape is the default per-example shape of the synthetic
// dataset; copy it, never modify it.
var defaultSynthShape = []int{1, 8, 8}

// SetDefaults fills in the defaults of a Recipe built in Go, as Parse
// does for a parsed one: every zero-valued field that has a default gets
// it (so set a field whose meaningful value is zero, such as Alpha 0,
// after calling SetDefaults), and the teacher's and students' Training
// become their effective values (see TrainingFor). Fields that a parsed
// recipe gave explicitly keep their value, so calling SetDefaults on a
// parsed recipe changes nothing. Name defaults to "recipe".
func (r *Recipe) SetDefaults() {
	r.fillDefaults()
	r.resolveTrainings()
}

// fillDefaults sets every zero field that the YAML did not give.
func (r *Recipe) fillDefaults() {
	def := func(path string, field any, value any) {
		v := reflect.ValueOf(field).Elem()
		if v.IsZero() && !r.given[path] {
			v.Set(reflect.ValueOf(value).Convert(v.Type()))
		}
	}
	def("name", &r.Name, "recipe")
	def("backend", &r.Backend, DefaultBackend)
	def("device", &r.Device, DefaultDevice)
	// auto is kept as "", so that recipes written before the key existed
	// keep their hash.
	if r.Precision == string(backend.PrecisionAuto) {
		r.Precision = ""
	}
	def("seed", &r.Seed, DefaultSeed)

	def("data.dataset", &r.Data.Dataset, DefaultDataset)
	switch r.Data.Dataset {
	case "images":
		def("data.channels", &r.Data.Channels, 1)
	case "arrays":
		def("data.x", &r.Data.X, "x")
		def("data.y", &r.Data.Y, "y")
	}
	switch r.Data.Dataset {
	case "images", "arrays", "csv":
		def("data.test_fraction", &r.Data.TestFraction, DefaultTestFraction)
		def("data.split_seed", &r.Data.SplitSeed, r.Seed)
	}
	if r.Data.Dataset == "synthetic" {
		s := &r.Data.Synthetic
		def("data.synthetic.train", &s.Train, DefaultSynthTrain)
		def("data.synthetic.test", &s.Test, DefaultSynthTest)
		def("data.synthetic.classes", &s.Classes, DefaultSynthClass)
		def("data.synthetic.seed", &s.Seed, r.Seed)
		if len(s.Shape) == 0 && !r.given["data.synthetic.shape"] {
			s.Shape = append([]int(nil), defaultSynthShape...)
		}
	}

	// Models get defaults only when given, so that a missing model is
	// still reported as missing.
	if r.given["teacher.model"] || !reflect.ValueOf(r.Teacher.Model).IsZero() {
		r.Teacher.Model.fillDefaults(r.given, "teacher.model")
	}
	def("teacher.weight", &r.Teacher.Weight, 1.0)
	for i := range r.Ensemble {
		e := &r.Ensemble[i]
		p := fmt.Sprintf("ensemble[%d]", i)
		def(p+".name", &e.Name, fmt.Sprintf("teacher%d", i+1))
		def(p+".weight", &e.Weight, 1.0)
		if r.given[p+".model"] || !reflect.ValueOf(e.Model).IsZero() {
			e.Model.fillDefaults(r.given, p+".model")
		}
	}
	if r.given["transfer"] {
		def("transfer.enabled", &r.Transfer.Enabled, true)
	}
	def("transfer.seed", &r.Transfer.Seed, r.Seed)
	if r.given["transfer.unlabelled"] {
		u := &r.Transfer.Unlabelled
		def("transfer.unlabelled.enabled", &u.Enabled, true)
		if u.Dataset == "" || u.Dataset == r.Data.Dataset {
			def("transfer.unlabelled.dir", &u.Dir, r.Data.Dir)
		}
		def("transfer.unlabelled.dataset", &u.Dataset, r.Data.Dataset)
	}
	if r.given["quantize"] {
		def("quantize.enabled", &r.Quantize.Enabled, true)
	}
	def("serving.seconds", &r.Serving.Seconds, 2.0)
	def("serving.latency_target_ms", &r.Serving.LatencyTargetMS, 100.0)
	def("serving.server.max_batch", &r.Serving.Server.MaxBatch, serve.DefaultMaxBatch)
	def("serving.server.max_wait_ms", &r.Serving.Server.MaxWaitMS, float64(serve.DefaultMaxWait)/float64(time.Millisecond))
	def("serving.server.trial_seconds", &r.Serving.Server.TrialSeconds, 1.0)
	def("serving.server.steps", &r.Serving.Server.Steps, 6)
	def("serving.server.searches", &r.Serving.Server.Searches, 3)
	if len(r.Serving.Batches) == 0 && !r.given["serving.batches"] {
		r.Serving.Batches = []int{1, 8, 32, 128, 256}
	}
	def("quantize.method", &r.Quantize.Method, DefaultMethod)
	def("quantize.percentile", &r.Quantize.Percentile, DefaultPercentile)
	def("quantize.calibration", &r.Quantize.Calibration, DefaultCalibration)
	def("quantize.validation", &r.Quantize.Validation, DefaultValidation)
	def("transfer.dtype", &r.Transfer.Dtype, "float32")
	for i := range r.Students {
		s := &r.Students[i]
		p := fmt.Sprintf("students[%d]", i)
		def(p+".name", &s.Name, fmt.Sprintf("student%d", i))
		if r.given[p+".model"] || !reflect.ValueOf(s.Model).IsZero() {
			s.Model.fillDefaults(r.given, p+".model")
		}
		def(p+".distill.temperature", &s.Distill.Temperature, DefaultTemperature)
		def(p+".distill.alpha", &s.Distill.Alpha, DefaultAlpha)
		for j := range s.Distill.Hints {
			h := &s.Distill.Hints[j]
			q := fmt.Sprintf("%s.distill.hints[%d]", p, j)
			def(q+".weight", &h.Weight, 1.0)
			def(q+".distance", &h.Distance, loss.DefaultDistance)
			def(q+".adapter", &h.Adapter, loss.DefaultAdapter)
		}
		for j := range s.Distill.Attention {
			a := &s.Distill.Attention[j]
			q := fmt.Sprintf("%s.distill.attention[%d]", p, j)
			def(q+".weight", &a.Weight, float64(loss.DefaultAttentionWeight))
			def(q+".p", &a.P, 2.0)
		}
		if s.Baseline == nil {
			on := true
			s.Baseline = &on
		}
	}

	def("eval.batch_size", &r.Eval.BatchSize, DefaultEvalBatch)
	def("eval.ece_bins", &r.Eval.ECEBins, DefaultECEBins)
	def("output.dir", &r.Output.Dir, filepath.Join("runs", r.Name))
	def("checkpoint.every_seconds", &r.Checkpoint.EverySeconds, DefaultCheckpointSeconds)
}

func (m *Model) fillDefaults(given map[string]bool, path string) {
	if m.Type == "" && !given[path+".type"] {
		m.Type = DefaultModelType
	}
	if m.Activation == "" && !given[path+".activation"] && m.Type != "graph" {
		m.Activation = DefaultActivation
		if bt, ok := blockTypes[m.Type]; ok {
			m.Activation = string(bt.activation)
		}
	}
	if isBlocks(m.Type) {
		m.fillBlocks(given, path)
	}
	m.fillNodes(given, path)
	for i := range m.Conv {
		b := &m.Conv[i]
		p := fmt.Sprintf("%s.conv[%d]", path, i)
		if b.Kernel == 0 && !given[p+".kernel"] {
			b.Kernel = DefaultKernel
		}
		if b.Stride == 0 && !given[p+".stride"] {
			b.Stride = DefaultStride
		}
	}
}

// resolveTrainings replaces the teacher's and students' training sections
// by their effective values. The teacher's is left alone when it is
// loaded from a checkpoint.
func (r *Recipe) resolveTrainings() {
	if !r.Teacher.loadsWeights() {
		r.Teacher.Training = r.TrainingFor(r.Teacher.Training)
	}
	for i := range r.Students {
		r.Students[i].Training = r.TrainingFor(r.Students[i].Training)
	}
	for i := range r.Ensemble {
		if !r.Ensemble[i].AsTeacher().loadsWeights() {
			r.Ensemble[i].Training = r.TrainingFor(r.Ensemble[i].Training)
		}
	}
}

// TrainingFor returns the effective training of a model whose own
// training section is t: each key that t gives (see Training.IsSet)
// wins, then each key that the recipe's top-level training gives, then
// the defaults (lr's depends on the optimizer and gamma's on the
// schedule kind). Schedule keys merge one by one too. The result marks
// every key that t or the top-level section gave, so TrainingFor is
// idempotent: TrainingFor(TrainingFor(t)) == TrainingFor(t).
//
// TrainingFor(Training{}) is what a model without its own section gets.
// A nil r has no top-level section.
func (r *Recipe) TrainingFor(t Training) Training {
	var top Training
	if r != nil {
		top = r.Training
	}
	out := Training{set: map[string]bool{}}
	ov := reflect.ValueOf(&out).Elem()
	for _, f := range trainingFields {
		var src Training
		switch {
		case t.IsSet(f.key):
			src = t
		case top.IsSet(f.key):
			src = top
		default:
			continue
		}
		ov.FieldByIndex(f.index).Set(reflect.ValueOf(src).FieldByIndex(f.index))
		out.set[f.key] = true
	}
	out.fillDefaults()
	return out
}

// fillDefaults sets the keys that are not marked to their defaults.
func (t *Training) fillDefaults() {
	if !t.set["epochs"] {
		t.Epochs = DefaultEpochs
	}
	if !t.set["batch_size"] {
		t.BatchSize = DefaultBatchSize
	}
	if !t.set["optimizer"] {
		t.Optimizer = DefaultOptimizer
	}
	if !t.set["lr"] {
		t.LR = DefaultAdamLR
		if t.Optimizer == backend.SGD {
			t.LR = DefaultSGDLR
		}
	}
	if !t.set["momentum"] && t.Optimizer == backend.SGD {
		t.Momentum = DefaultMomentum
	}
	if !t.set["schedule.kind"] {
		t.Schedule.Kind = DefaultSchedule
	}
	if !t.set["schedule.gamma"] {
		switch t.Schedule.Kind {
		case train.Step:
			t.Schedule.Gamma = DefaultStepGamma
		case train.Exponential:
			t.Schedule.Gamma = DefaultExpGamma
		}
	}
}
