// Package backend defines the small interface that every compute engine
// implements, and a registry through which engines make themselves
// available, as database/sql drivers do.
//
// The interface is shaped so that a define-then-run engine (gorgonia,
// which compiles one graph per model and objective) and an eager engine
// (libtorch through gotch) fit it equally: models and trainers are built
// once from a declarative description (a model.Spec, a loss.Objective and
// an Optimizer), then fed host-side batches. Everything random (weight
// initialisation, dropout masks, data order) is drawn on the host by the
// caller, so two backends given the same inputs compute the same numbers.
package backend

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/distill-dev/distill/internal/vocab"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// Backend is a compute engine on one device.
type Backend interface {
	// Name is the registered name, e.g. "gorgonia" or "torch".
	Name() string
	// Device is where the tensors live, e.g. "cpu" or "cuda:0".
	Device() string
	// Load builds a model from a spec and its weights (model's canonical
	// layout). The backend copies the weights; w may be reused.
	Load(spec model.Spec, w model.Weights) (Model, error)
	// NewTrainer prepares to train m in place with cfg.
	NewTrainer(m Model, cfg TrainConfig) (Trainer, error)
	// Close releases the engine's resources.
	Close() error
}

// Model is a network instantiated on a backend.
type Model interface {
	Spec() model.Spec
	// Forward computes inference-mode logits (dropout off) of n examples
	// laid out row-major in x (n × the spec's input size) and writes the
	// n × Classes logits into out.
	Forward(x []float32, n int, out []float32) error
	// Weights returns a host copy of the current weights.
	Weights() (model.Weights, error)
	Close() error
}

// FeatureModel is a Model that can also return intermediate layer
// outputs, so that a teacher's features can be read for feature
// distillation (loss.Feature). Backends implement it on their Model type;
// callers discover it with a type assertion.
type FeatureModel interface {
	Model
	// ForwardFeatures runs the inference-mode forward pass (dropout off)
	// of n examples x, as Forward does, writes the n × Classes logits into
	// logits unless it is nil, and the output of each named layer into
	// feats[i]: n × that layer's per-example size (model.Spec.Shapes),
	// row-major. A layer may be named more than once.
	ForwardFeatures(x []float32, n int, layers []string, logits []float32, feats [][]float32) error
}

// Trainer runs optimisation steps on a model.
type Trainer interface {
	// Step does one forward/backward pass and one optimiser update on b
	// and returns the batch's mean loss and its parts.
	Step(b *Batch) (loss.Value, error)
	// State returns the optimiser's state (step count and moment
	// tensors), for checkpoints.
	State() (OptimizerState, error)
	// SetState restores a state returned by State.
	SetState(OptimizerState) error
	Close() error
}

// ResidentTrainer is a Trainer that can keep a whole training set on its
// device and step on rows of it: on CUDA a step then copies no examples
// from the host and does not wait on host-to-device transfers.
type ResidentTrainer interface {
	Trainer
	// KeepBudget is how many bytes of training set the trainer would keep
	// (examples as float32, labels as int64, teacher logits as float32);
	// 0 when keeping gains nothing (on the CPU, where the host's memory
	// is the device's) or the device cannot tell its free memory.
	KeepBudget() int64
	// Keep copies the set.N rows of set.X, set.Labels and, when the
	// objective has a soft term, set.TeacherLogits to the device, for
	// StepRows; Masks, LR and TeacherFeatures are not read. It replaces
	// a set kept before.
	Keep(set *Batch) error
	// StepRows is Step on rows idx of the kept set: b.N must be len(idx);
	// b's Masks and LR are used, its X, Labels and TeacherLogits are not
	// read. The objective must have no feature terms.
	StepRows(idx []int, b *Batch) (loss.Value, error)
}

// Batch is one training step's input, all on the host.
type Batch struct {
	N int
	// X holds N examples row-major (N × the spec's input size).
	X []float32
	// Labels holds N class indices.
	Labels []int32
	// TeacherLogits holds N × Classes soft targets' logits; required when
	// the objective has a soft term, ignored otherwise.
	TeacherLogits []float32
	// Masks holds one dropout mask per dropout layer of the spec, in the
	// order of model.Spec.DropoutLayers, each N × that layer's per-example
	// size, with values 0 or 1/(1-rate). Nil trains without dropout.
	Masks [][]float32
	// LR is the learning rate for this step, after any schedule.
	LR float64
	// TeacherFeatures holds one entry per Objective.Features term, in
	// order: the teacher layer's output for the N examples, N × that
	// layer's per-example size, row-major (as FeatureModel's
	// ForwardFeatures writes it). Required when the objective has feature
	// terms, ignored otherwise.
	TeacherFeatures [][]float32
}

// TrainConfig configures a trainer.
//
// Feature terms (Objective.Features) pair a student layer with a layer of
// TeacherSpec; the trainer resolves them with loss.ResolveFeatures. A hint
// whose shapes differ goes through an adapter (FitNets' regressor: a
// linear map or a 1×1 convolution, loss.FeaturePlan.AdapterParams). The
// adapters belong to the trainer, not to the model: they start from
// loss.FeaturePlan.InitAdapter, are trained by the same optimizer as the
// student, and are not part of Model.Weights (FitNets discards the
// regressor after the hint stage). Their values and optimizer slots are
// in the trainer's OptimizerState (see there), so a resumed run continues
// them exactly. A backend that cannot train feature terms returns an error
// wrapping errors.ErrUnsupported from NewTrainer rather than ignoring them.
type TrainConfig struct {
	// MaxBatch is the largest Batch.N that Step will be given.
	MaxBatch  int
	Objective loss.Objective
	Optimizer Optimizer
	// TeacherSpec is the teacher's architecture. It is required when the
	// objective has feature terms, to find the teacher layers' shapes and
	// so size the adapters; it is ignored otherwise.
	TeacherSpec model.Spec
}

// OptimizerKind names a parameter update rule.
type OptimizerKind string

// Optimizer kinds.
const (
	Adam OptimizerKind = "adam"
	SGD  OptimizerKind = "sgd" // with momentum
)

// DefaultOptimizer is the kind a zero Optimizer and a recipe without
// training.optimizer use.
const DefaultOptimizer = Adam

// optimizers lists every kind, DefaultOptimizer first; recipe
// validation, its schema and the reference docs derive from it, and every
// backend implements each.
var optimizers = vocab.Set[OptimizerKind]{Adam, SGD}

// Optimizers returns the optimizer kinds, DefaultOptimizer first. The
// slice is a copy.
func Optimizers() []OptimizerKind { return optimizers.Values() }

// ParseOptimizer returns the kind named s, or an error listing the valid
// names.
func ParseOptimizer(s string) (OptimizerKind, error) {
	return optimizers.Parse("backend", "optimizer", s)
}

// Optimizer configures the parameter update. WeightDecay is an L2 term
// added to the gradient, as PyTorch's weight_decay does.
//
// MaxNorm > 0 is the max-norm constraint of Srivastava et al. 2014 (the
// dropout paper; Hinton et al. 2015 used it for their MNIST teacher):
// after every update, each unit's incoming weight vector (a row of a
// linear layer's [out, in] weight, one output channel of a convolution's
// [out, in, kh, kw]) whose L2 norm exceeds MaxNorm is scaled back to it,
// as torch.renorm(w, 2, 0, MaxNorm) does (scale MaxNorm/(norm+1e-7)).
// Biases and feature adapters are not constrained.
type Optimizer struct {
	Kind        OptimizerKind // "" means DefaultOptimizer
	Momentum    float64       // SGD
	Nesterov    bool          // SGD
	Beta1       float64       // Adam; 0 means 0.9
	Beta2       float64       // Adam; 0 means 0.999
	Eps         float64       // Adam; 0 means 1e-8
	WeightDecay float64
	MaxNorm     float64 // 0: off
}

// MaxNormScale returns the factor by which max-norm scales a unit's
// incoming weights of L2 norm norm: 1 within the bound.
func (o Optimizer) MaxNormScale(norm float64) float64 {
	if o.MaxNorm <= 0 || norm <= o.MaxNorm {
		return 1
	}
	return o.MaxNorm / (norm + 1e-7)
}

// MaxNormed reports whether max-norm constrains parameter p of spec: the
// weight of a layer whose rows are the incoming weights of its units
// (model.KindInfo.Quantizable: linear, conv2d).
func MaxNormed(spec model.Spec, p model.Param) bool {
	l, _, ok := spec.Layer(p.Layer)
	info, known := model.Describe(l.Kind)
	return ok && known && info.Quantizable && p.Name == p.Layer+".weight"
}

// WithDefaults fills Adam's zero hyper-parameters with the usual values.
func (o Optimizer) WithDefaults() Optimizer {
	if o.Kind == "" {
		o.Kind = DefaultOptimizer
	}
	if o.Beta1 == 0 {
		o.Beta1 = 0.9
	}
	if o.Beta2 == 0 {
		o.Beta2 = 0.999
	}
	if o.Eps == 0 {
		o.Eps = 1e-8
	}
	return o
}

// OptimizerState is an optimiser's state in a backend-neutral form:
// tensors are named "<slot>/<param>", e.g. "m/fc1.weight" (Adam's first
// moment) or "v/fc1.weight"; SGD uses "momentum/<param>".
//
// With feature terms, the adapters of TrainConfig's doc appear as
// parameters named "adapter.<i>.weight" and "adapter.<i>.bias" (i is the
// term's index in Objective.Features; PyTorch layout, as
// loss.FeaturePlan.AdapterParams lists them): their slots as
// "m/adapter.<i>.weight" and so on, and their current values, which no
// model file holds, under the slot AdapterValueSlot, e.g.
// "param/adapter.0.weight".
type OptimizerState struct {
	Step    int64
	Tensors model.Weights
}

// AdapterValueSlot is the OptimizerState slot that holds the adapters'
// current values.
const AdapterValueSlot = "param"

// Options select the device and threads of a backend.
type Options struct {
	// Device is "auto", "cpu", "cuda" or "cuda:N"; empty means auto.
	Device string
	// Threads bounds intra-op parallelism; 0 leaves the engine's default.
	Threads int
	// Precision is the arithmetic of the backend's forward passes
	// (training, labelling, evaluation); "" means PrecisionAuto.
	Precision Precision
}

// Precision names the arithmetic a backend's forward passes run in.
type Precision string

// Precisions. Under PrecisionBF16 the matrix products and convolutions
// run in bfloat16 (PyTorch's autocast); weights, losses, softmax,
// gradients' accumulation into the weights and optimizer state stay
// float32. PrecisionAuto lets the backend choose: bf16 where the device
// computes it natively (a CUDA GPU of compute capability 8.0 or newer),
// fp32 elsewhere.
const (
	PrecisionAuto Precision = "auto"
	PrecisionFP32 Precision = "fp32"
	PrecisionBF16 Precision = "bf16"
)

// precisions lists every precision, the default first; recipe validation,
// its schema and the reference docs derive from it.
var precisions = vocab.Set[Precision]{PrecisionAuto, PrecisionFP32, PrecisionBF16}

// Precisions returns the precisions, PrecisionAuto first. The slice is a
// copy.
func Precisions() []Precision { return precisions.Values() }

// ParsePrecision returns the precision named s ("" is PrecisionAuto), or
// an error listing the valid names.
func ParsePrecision(s string) (Precision, error) {
	if s == "" {
		return PrecisionAuto, nil
	}
	return precisions.Parse("backend", "precision", s)
}

// MixedPrecision is a Backend that can compute in a precision other than
// float32. A backend that does not implement it computes in float32.
type MixedPrecision interface {
	// Precision is the precision the backend resolved Options.Precision
	// to: PrecisionFP32 or PrecisionBF16, never PrecisionAuto.
	Precision() Precision
}

// CUDAStatus is a Backend that can say what the CUDA runtime reports
// about its device.
type CUDAStatus interface {
	// CUDAStatus returns the version of the CUDA runtime the backend
	// loaded ("12.8") and the device memory in use and in all
	// (cudaMemGetInfo), ok false off CUDA or when the runtime cannot tell.
	CUDAStatus() (runtime string, used, total int64, ok bool)
}

// DeviceMemory is a Backend whose device has memory of its own, handed
// out by an allocator that counts it (libtorch's CUDA caching allocator).
// Peaks are what a model needs on a device: the pipeline resets them
// before each stage and serving measurement and reads them after.
type DeviceMemory interface {
	// DeviceMemory returns the allocator's counters for the backend's
	// device. The error wraps ErrNoDeviceMemory when the device or the
	// build has no such counters (the CPU; a libtorch without them).
	DeviceMemory() (MemoryStats, error)
	// ResetPeakDeviceMemory starts new peaks at the current values.
	ResetPeakDeviceMemory() error
}

// MemoryStats are a device allocator's counters, in bytes.
type MemoryStats struct {
	// Allocated is what live tensors occupy now; AllocatedPeak its
	// maximum since the last reset.
	Allocated, AllocatedPeak int64
	// Reserved is what the allocator holds from the driver (its cache
	// included): what other processes cannot use. ReservedPeak is its
	// maximum since the last reset.
	Reserved, ReservedPeak int64
}

// ErrNoDeviceMemory is wrapped by DeviceMemory's errors when there are no
// device memory counters to read.
var ErrNoDeviceMemory = errors.New("no device memory counters")

// Library is a Backend that computes through a native library and can
// say which version of it the process loaded.
type Library interface {
	// Library returns the library's name and version ("libtorch
	// 1.13.0"), or its name alone when the version cannot be found.
	Library() string
}

// PrecisionOf returns the precision b computes in.
func PrecisionOf(b Backend) Precision {
	if m, ok := b.(MixedPrecision); ok {
		return m.Precision()
	}
	return PrecisionFP32
}

// Factory opens a backend.
type Factory func(Options) (Backend, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a backend available by name. It panics if the name is
// taken, as database/sql.Register does: that is a programming error.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if f == nil {
		panic("backend: Register factory is nil")
	}
	if _, dup := factories[name]; dup {
		panic("backend: Register called twice for " + name)
	}
	factories[name] = f
}

// Names lists the registered backends, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrUnknownBackend is returned by Open for a name nobody registered.
var ErrUnknownBackend = errors.New("unknown backend")

// modulePath prefixes the import paths of this module's backends.
const modulePath = "github.com/distill-dev/distill/backend/"

// Default is the backend a recipe without backend and the CLI use: the
// pure-Go engine, which every build has.
const Default = "gorgonia"

// known are this module's backends, Default first, and what makes each
// available: a backend registers itself when its package is imported, so
// Open's error tells a library user which import a name needs. It is the
// one list of backend names: Known, and through it recipe validation,
// its schema and the reference docs, derive from it.
var known = []struct{ name, how string }{
	{Default, `import _ "` + modulePath + `gorgonia"`},
	{"torch", `build with -tags torch (see docs/torch.md) and import _ "` + modulePath + `torch"`},
}

// Known returns the names of this module's backends, Default first,
// whether or not this program registered them (see Names): a recipe may
// name a backend that only another build has.
func Known() []string {
	names := make([]string, len(known))
	for i, k := range known {
		names[i] = k.name
	}
	return names
}

// Open opens the named backend.
func Open(name string, opts Options) (Backend, error) {
	mu.RLock()
	f, ok := factories[name]
	mu.RUnlock()
	if !ok {
		return nil, unknown(name)
	}
	want, err := ParsePrecision(string(opts.Precision))
	if err != nil {
		return nil, err
	}
	opts.Precision = want
	b, err := f(opts)
	if err != nil {
		return nil, err
	}
	// A backend that cannot compute in bf16 ignores the option: asked
	// for explicitly, that is an error, not a silent float32 run.
	if got := PrecisionOf(b); want != PrecisionAuto && got != want {
		_ = b.Close()
		return nil, fmt.Errorf("backend %q computes in %s, not %s: set precision to %s or %s, or use a backend with %s (torch)", name, got, want, PrecisionAuto, got, want)
	}
	return b, nil
}

// unknown explains why name is not registered and how to register it.
func unknown(name string) error {
	registered := "none"
	if n := Names(); len(n) > 0 {
		registered = strings.Join(n, ", ")
	}
	for _, k := range known {
		if k.name == name {
			return fmt.Errorf("%w %q: it is not registered in this program (registered: %s); to register it, %s", ErrUnknownBackend, name, registered, k.how)
		}
	}
	ways := make([]string, len(known))
	for i, k := range known {
		ways[i] = k.name + ": " + k.how
	}
	return fmt.Errorf("%w %q (registered: %s); the backends and how to register them: %s", ErrUnknownBackend, name, registered, strings.Join(ways, "; "))
}

// TorchScriptLoader is a Backend that can load a TorchScript module (a
// model trained and scripted in PyTorch) as a Model whose layers follow
// spec. TorchScript archives are pickle-based and can run code when
// loaded: callers must load only files their user marked as trusted.
type TorchScriptLoader interface {
	LoadTorchScript(path string, spec model.Spec) (Model, error)
}
