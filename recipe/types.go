package recipe

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/quantize"
	"github.com/distill-dev/distill/train"
)

// Recipe is one compression pipeline: where the data comes from, the
// teacher, the students distilled from it, how they train, and what is
// evaluated and written. Field docs state defaults; Parse fills them in
// (SetDefaults does the same for a Recipe built in Go). The one exception
// is the top-level Training section, which stays as written because it is
// only the base that each model's own section is merged over; see
// TrainingFor.
type Recipe struct {
	// Name labels the run in reports and names its output directory.
	// Default: the recipe file's base name without extension ("recipe"
	// when there is no file name). Must be file-name safe.
	Name string `yaml:"name"`
	// Backend is the compute engine: "gorgonia" (default) or "torch".
	Backend string `yaml:"backend"`
	// Device is "auto" (default), "cpu", "cuda" or "cuda:N".
	Device string `yaml:"device"`
	// Threads bounds the engine's intra-op threads; 0 (default) = engine default.
	Threads int `yaml:"threads"`
	// Precision is the arithmetic of the backend's forward passes in
	// training, labelling and evaluation: "auto" (default; empty means
	// auto: bf16 on a CUDA GPU of compute capability 8.0 or newer, fp32
	// elsewhere), "fp32", or "bf16" (mixed precision, torch backend
	// only: matrix products and convolutions in bfloat16; weights,
	// losses, softmax and optimizer state in float32).
	Precision string `yaml:"precision,omitempty"`
	// Seed drives every random choice (init, data order, dropout). Default 1.
	Seed int64 `yaml:"seed"`

	Data Data `yaml:"data"`
	// Training is the base for every model's training: each model's own
	// training section overrides it key by key, and defaults fill what
	// neither sets. Parse leaves it as written; use TrainingFor.
	Training Training `yaml:"training"`
	Teacher  Teacher  `yaml:"teacher"`
	// Ensemble adds teachers whose softened predictions are averaged with
	// the main teacher's, weighted by each teacher's weight.
	Ensemble []EnsembleTeacher `yaml:"ensemble"`
	// Transfer makes the teachers label an augmented transfer set once,
	// cached on disk, which distilled students then train on.
	Transfer Transfer  `yaml:"transfer"`
	Students []Student `yaml:"students"` // at least one
	// Quantize turns the students (and optionally the teacher) into INT8
	// models after training.
	Quantize   Quantize   `yaml:"quantize"`
	Serving    Serving    `yaml:"serving"`
	Eval       Eval       `yaml:"eval"`
	Output     Output     `yaml:"output"`
	Checkpoint Checkpoint `yaml:"checkpoint"`

	// given holds the dotted key paths that the YAML gave a non-null
	// value, so that filling defaults keeps explicit zeros (alpha: 0).
	given map[string]bool
	// dir is the directory Parse resolved relative paths against, and
	// written the relative paths it resolved, by key, as written: for
	// messages about files that cannot be read.
	dir     string
	written map[string]string
	// file is the recipe's file name as given to Parse, for problems.
	file string
}

// Data selects the dataset.
type Data struct {
	// Dataset is "mnist" (default), "fashion-mnist", "synthetic", or the
	// user's own data: "idx" (a directory of IDX files named as MNIST's),
	// "images" (an image folder, one subfolder per class), "arrays"
	// (NumPy .npz files) or "csv".
	Dataset string `yaml:"dataset"`
	// Dir holds the IDX files of mnist, fashion-mnist or idx, or the
	// image folder of images. For mnist, empty (default) = download once
	// into the user cache directory; for fashion-mnist, Debian's
	// dataset-fashion-mnist location. A relative path is relative to the
	// recipe file's directory.
	Dir string `yaml:"dir"`
	// TrainFile and TestFile are the .npz (arrays) or .csv (csv) files;
	// TestFile is optional. Relative to the recipe file's directory.
	TrainFile string `yaml:"train_file,omitempty" json:",omitempty"`
	TestFile  string `yaml:"test_file,omitempty" json:",omitempty"`
	// X and Y name the input and label arrays in a .npz (arrays only);
	// default "x" and "y".
	X string `yaml:"x,omitempty" json:",omitempty"`
	Y string `yaml:"y,omitempty" json:",omitempty"`
	// LabelColumn is the header of a CSV's label column (csv only);
	// empty (default) = the last column.
	LabelColumn string `yaml:"label_column,omitempty" json:",omitempty"`
	// Channels is 1 (gray, default) or 3 (RGB) (images only).
	Channels int `yaml:"channels,omitempty" json:",omitempty"`
	// Size is [height, width] to resize every image to (images only);
	// empty (default) = the images' own size, which must be the same for
	// all.
	Size []int `yaml:"size,omitempty" json:",omitempty"`
	// Mean and Std normalise each channel of an image after scaling to
	// [0, 1], (v - mean) / std (images only): one value for every
	// channel or one per channel; default 0 and 1.
	Mean []float64 `yaml:"mean,omitempty" json:",omitempty"`
	Std  []float64 `yaml:"std,omitempty" json:",omitempty"`
	// TestFraction is the share of each class held out as the test split
	// of idx-less user data that has none (an image folder without
	// train/ and test/, arrays or csv without test_file); default 0.2.
	TestFraction float64 `yaml:"test_fraction,omitempty" json:",omitempty"`
	// SplitSeed seeds that split and the order of user data; default:
	// the recipe's seed.
	SplitSeed int64 `yaml:"split_seed,omitempty" json:",omitempty"`

	// The keys above from TrainFile on, added after recipes were first
	// hashed, are omitted from the canonical forms (YAML, JSON, Hash) at
	// their zero value, so that recipes which do not use them keep their
	// hashes and stage keys.

	// TrainLimit / TestLimit use only the first N examples; 0 (default) = all.
	TrainLimit int `yaml:"train_limit"`
	TestLimit  int `yaml:"test_limit"`
	// Synthetic sizes the synthetic dataset (dataset: synthetic only; an
	// error with any other dataset).
	Synthetic Synthetic `yaml:"synthetic"`
}

// Synthetic describes a generated, learnable classification task. Its
// defaults are filled only when the dataset is synthetic.
type Synthetic struct {
	Train   int   `yaml:"train"`   // training examples, ≥ 1, default 2048
	Test    int   `yaml:"test"`    // test examples, ≥ 1, default 512
	Shape   []int `yaml:"shape"`   // per-example shape [D] or [C, H, W], default [1, 8, 8]
	Classes int   `yaml:"classes"` // ≥ 2, default 4
	Seed    int64 `yaml:"seed"`    // default: the recipe's seed
}

// Model is an architecture. Type "mlp" uses Hidden/Activation/Dropout/
// InputDropout; type "cnn" uses Conv, then Hidden as its dense head (with
// Activation and Dropout). An mlp with no hidden layers is a linear
// (softmax-regression) classifier. Types "resnet" and "mobilenet" are
// residual networks (model.Blocks): Stem, then Stages of blocks (basic
// blocks by default for resnet, inverted residuals for mobilenet), global
// average pooling and a linear classifier, with Activation. Type "graph"
// is any network of Nodes.
type Model struct {
	Type         string      `yaml:"type"`          // mlp (default) | cnn | resnet | mobilenet | graph
	Hidden       []int       `yaml:"hidden"`        // hidden layer widths, each ≥ 1; default none
	Activation   string      `yaml:"activation"`    // relu (default; relu6 for mobilenet) | tanh | sigmoid | relu6 | silu
	Dropout      float64     `yaml:"dropout"`       // after hidden activations, [0, 1), default 0
	InputDropout float64     `yaml:"input_dropout"` // on the input, mlp only, [0, 1), default 0
	Conv         []ConvBlock `yaml:"conv"`          // cnn only, at least one

	// The keys below, added after recipes were first hashed, are left
	// out of the canonical forms (YAML, JSON: stage keys, Hash) when
	// unused, so that mlp and cnn recipes keep their hashes.

	// Stem is the first conv-batchnorm-activation of a resnet or
	// mobilenet (required there).
	Stem Stem `yaml:"stem,omitempty" json:",omitzero"`
	// Stages are the stages of blocks of a resnet or mobilenet, at least
	// one.
	Stages []Stage `yaml:"stages,omitempty" json:",omitempty"`
	// Nodes are the layers of a graph, in any order (they are sorted so
	// that each comes after the nodes it reads), at least one. The node
	// that no other reads is the output and must give one logit per
	// class.
	Nodes []Node `yaml:"nodes,omitempty" json:",omitempty"`
}

// ConvBlock is a conv → activation → optional max-pool stage.
type ConvBlock struct {
	Channels int `yaml:"channels"` // output channels, ≥ 1, required
	Kernel   int `yaml:"kernel"`   // square kernel size, ≥ 1, default 3
	Stride   int `yaml:"stride"`   // ≥ 1, default 1
	Padding  int `yaml:"padding"`  // zero padding, ≥ 0, default 0
	Pool     int `yaml:"pool"`     // max-pool size (and stride), 0 (default) or 1 = none
}

// Stem is a residual network's stem: a bias-free conv (padding
// kernel/2), batchnorm and activation, then an optional max pool. Its
// nodes are conv1, bn1, act1 and maxpool.
type Stem struct {
	Channels int `yaml:"channels,omitempty"` // output channels, ≥ 1, required
	Kernel   int `yaml:"kernel,omitempty"`   // square kernel size, ≥ 1, default 3
	Stride   int `yaml:"stride,omitempty"`   // ≥ 1, default 1
	Pool     int `yaml:"pool,omitempty"`     // max-pool size (and stride), 0 (default) or 1 = none
}

// Stage is Repeat residual blocks of one kind and width; the first block
// carries the stride. Block b of stage s (both from 1 and 0) is the node
// layer<s>.<b>, whose output hints and attention terms can name.
type Stage struct {
	// Block is basic (ResNet's two 3×3 convs) or inverted (MobileNetV2's
	// expand, depthwise, project); default basic for a resnet, inverted
	// for a mobilenet.
	Block    string `yaml:"block,omitempty"`
	Channels int    `yaml:"channels,omitempty"` // output channels, ≥ 1, required
	Repeat   int    `yaml:"repeat,omitempty"`   // blocks, ≥ 1, default 1
	Stride   int    `yaml:"stride,omitempty"`   // of the first block, ≥ 1, default 1
	// Expand is an inverted block's expansion factor, ≥ 1, default 6;
	// basic blocks have none.
	Expand int `yaml:"expand,omitempty"`
}

// Node is one layer of a graph model (a model.Layer). Which keys a node
// takes depends on its kind; the others must be left out.
type Node struct {
	// Name identifies the node: unique, without spaces or slashes, not
	// "input" (which names the network's input). Required.
	Name string `yaml:"name"`
	// Kind is what it computes: a model.Kind such as conv2d, batchnorm,
	// relu, add or linear. Required.
	Kind string `yaml:"kind"`
	// Inputs names the nodes it reads ("input" for the network's input);
	// default the node listed before it (the input for the first). An
	// add reads two.
	Inputs []string `yaml:"inputs,omitempty"`
	// Out is a linear's units or a conv2d's output channels, ≥ 1,
	// required by both.
	Out int `yaml:"out,omitempty"`
	// Kernel is the square kernel of a conv2d, maxpool or avgpool, ≥ 1,
	// required by them.
	Kernel int `yaml:"kernel,omitempty"`
	// Stride of a conv2d (default 1) or a pool (default its kernel), ≥ 1.
	Stride int `yaml:"stride,omitempty"`
	// Padding of a conv2d or avgpool, ≥ 0, default 0 (an avgpool's at
	// most half its kernel).
	Padding int `yaml:"padding,omitempty"`
	// Groups of a conv2d, ≥ 1, default 1; equal to the input and output
	// channels it is depthwise.
	Groups int `yaml:"groups,omitempty"`
	// Bias of a linear or conv2d, default true; false before a batchnorm.
	Bias *bool `yaml:"bias,omitempty"`
	// Rate of a dropout, [0, 1), default 0.
	Rate float64 `yaml:"rate,omitempty"`
	// Momentum and Eps of a batchnorm, as PyTorch's: momentum in (0, 1],
	// default 0.1; eps > 0, default 1e-5.
	Momentum float64 `yaml:"momentum,omitempty"`
	Eps      float64 `yaml:"eps,omitempty"`
}

// Training configures one model's optimisation. A teacher's or student's
// own training section overrides, key by key (schedule keys included),
// the recipe's top-level one; defaults fill what neither sets.
type Training struct {
	Epochs      int                   `yaml:"epochs"`       // ≥ 1, default 10
	BatchSize   int                   `yaml:"batch_size"`   // ≥ 1, default 128
	Optimizer   backend.OptimizerKind `yaml:"optimizer"`    // adam (default) | sgd
	LR          float64               `yaml:"lr"`           // > 0, default 1e-3 (adam), 0.1 (sgd)
	Momentum    float64               `yaml:"momentum"`     // sgd only, [0, 1), default 0.9 with sgd
	Nesterov    bool                  `yaml:"nesterov"`     // sgd only, default false
	WeightDecay float64               `yaml:"weight_decay"` // L2, ≥ 0, default 0
	Schedule    Schedule              `yaml:"schedule"`
	// MaxNorm > 0 bounds the L2 norm of each unit's incoming weights
	// after every update (backend.Optimizer.MaxNorm), ≥ 0, 0 (default)
	// = off.
	MaxNorm float64 `yaml:"max_norm"`

	// set marks the keys (as named by TrainingKeys) that were given
	// explicitly, even when zero, for merging. Parse fills it; MarkSet
	// adds to it. Without a mark, a key counts as given when non-zero.
	set map[string]bool
}

// Schedule shapes the learning rate over training.
type Schedule struct {
	// Kind is "constant" (default), "cosine", "step" or "exponential".
	Kind train.ScheduleKind `yaml:"kind"`
	// Warmup is the number of epochs (fractions allowed) of linear ramp
	// from 0 to lr; ≥ 0 and at most the training's epochs, default 0.
	Warmup float64 `yaml:"warmup"`
	// StepEvery / Gamma: step multiplies the lr by Gamma every StepEvery
	// epochs; exponential multiplies it by Gamma every epoch. StepEvery
	// (≥ 1) is required by step. Gamma is in (0, 1], default 0.1 for step
	// and 0.95 for exponential; both are ignored by other kinds.
	StepEvery int     `yaml:"step_every"`
	Gamma     float64 `yaml:"gamma"`
	// MinLR is cosine's floor, ≥ 0 and below lr, default 0.
	MinLR float64 `yaml:"min_lr"`
}

// Teacher is trained from Model, or loaded from Checkpoint (a directory or
// model.json written by distill) when Checkpoint is set. Exactly one of
// the two must be given.
type Teacher struct {
	Model Model `yaml:"model"`
	// Checkpoint is relative to the recipe file's directory unless absolute.
	Checkpoint string `yaml:"checkpoint"`
	// Training overrides the top-level training for the teacher; not
	// allowed with Checkpoint. After Parse it holds the effective values.
	Training Training `yaml:"training"`
	// Copies and Augment train the teacher on its data plus Copies
	// augmented copies of each example (made afresh from the recipe's
	// seed, never stored), as Hinton et al. trained theirs on jittered
	// inputs. Only for a teacher trained here.
	Copies  int            `yaml:"copies"`
	Augment augment.Config `yaml:"augment"`
	// Weight of the teacher in an ensemble (see Recipe.Ensemble), > 0,
	// default 1.
	Weight float64 `yaml:"weight"`
	// TorchScript loads the teacher from a TorchScript file (a model
	// trained and scripted in PyTorch, torch.jit.save) on the torch
	// backend; Model gives its architecture and layer names. TorchScript
	// archives are pickle-based and can run code when loaded, so Trusted
	// must be true. Relative to the recipe file.
	TorchScript string `yaml:"torchscript"`
	Trusted     bool   `yaml:"trusted"`
	// ONNX loads the teacher from an ONNX file of any architecture, run
	// by ONNX Runtime (package teacher/ort); it needs no Model: its input
	// shape and class count come from the file. Its layers, for the
	// students' hints and attention terms, are its tensor names
	// (distill inspect lists them). Relative to the recipe file.
	ONNX string `yaml:"onnx,omitempty"`
	// Output names the ONNX teacher's logits output; default the model's
	// only output.
	Output string `yaml:"output,omitempty"`
	// Runtime is the path of ONNX Runtime's shared library
	// (libonnxruntime.so); default $ONNXRUNTIME_LIB, then the copy
	// onnx/testdata/install-ort.sh installs. Relative to the recipe file.
	Runtime string `yaml:"runtime,omitempty"`
	// Safetensors loads the teacher's weights from a PyTorch state_dict
	// saved as safetensors onto the architecture Model describes; names
	// are matched automatically (torchvision-style, module./_orig_mod.
	// prefixes) and Map renames the rest. Relative to the recipe file.
	Safetensors string `yaml:"safetensors,omitempty"`
	// Map renames spec tensor names, layer names or layer prefixes
	// (keys) to the state_dict's (values); see model.StateDictOptions.
	Map map[string]string `yaml:"map,omitempty"`
	// Preprocess normalises the teacher's inputs (only the teacher's) per
	// channel, so that a teacher trained on normalised data can teach a
	// student on the data as it is. Only for a loaded teacher.
	Preprocess Preprocess `yaml:"preprocess,omitempty"`
}

// Preprocess turns the data's examples into what a loaded teacher was
// trained on, for the teacher only (the students read the data as it
// is). In order: Size resizes each [C, H, W] image to [H', W']
// (bilinear, as PyTorch's F.interpolate with align_corners=False, no
// antialiasing); Channels makes a one-channel image one of several
// channels by repeating it (a grey image for an RGB teacher);
// ChannelOrder "bgr" reverses the channels (a teacher trained on
// OpenCV's BGR images from RGB data); then each channel c is normalised,
// x' = (x - Mean[c]) / Std[c]. Mean and Std have one value for every
// channel, or one per channel of the teacher's input. Empty Mean means
// 0, empty Std 1. The zero value changes nothing.
type Preprocess struct {
	Mean []float64 `yaml:"mean"`
	Std  []float64 `yaml:"std"`
	// The json tags keep stage keys of recipes without these keys as
	// they were (keys hash this struct as JSON).
	Size         []int  `yaml:"size,omitempty" json:",omitempty"`
	Channels     int    `yaml:"channels,omitempty" json:",omitempty"`
	ChannelOrder string `yaml:"channel_order,omitempty" json:",omitempty"`
}

// Channel orders of Preprocess.ChannelOrder.
const (
	ChannelsRGB = "rgb"
	ChannelsBGR = "bgr"
)

// Enabled reports whether p changes the inputs.
func (p Preprocess) Enabled() bool {
	return len(p.Mean) > 0 || len(p.Std) > 0 || len(p.Size) > 0 || p.Channels != 0 || (p.ChannelOrder != "" && p.ChannelOrder != ChannelsRGB)
}

// Shape returns the shape of the teacher's examples for data examples of
// shape input: input itself unless p resizes or adds channels. Only
// images ([C, H, W]) can be resized or given channels.
func (p Preprocess) Shape(input []int) ([]int, error) {
	if len(p.Size) == 0 && p.Channels == 0 {
		return input, nil
	}
	if len(input) != 3 {
		return nil, fmt.Errorf("resizing and adding channels work on images ([C, H, W] examples), but the data's examples have shape %v", input)
	}
	out := slices.Clone(input)
	if len(p.Size) > 0 {
		if len(p.Size) != 2 || p.Size[0] <= 0 || p.Size[1] <= 0 {
			return nil, fmt.Errorf("size %v: give the teacher's image height and width, such as [224, 224]", p.Size)
		}
		out[1], out[2] = p.Size[0], p.Size[1]
	}
	if c := p.Channels; c > 0 && c != input[0] {
		if input[0] != 1 {
			return nil, fmt.Errorf("channels %d: only a one-channel image can be repeated into %d channels; the data's examples have %d", c, c, input[0])
		}
		out[0] = c
	} else if c < 0 {
		return nil, fmt.Errorf("channels %d: must be positive", c)
	}
	return out, nil
}

// Source names where the teacher comes from: "checkpoint",
// "torchscript", "onnx" or "safetensors" for a file it is loaded from,
// "" for a teacher trained here from Model. With several files set (an
// invalid recipe) the first in that order.
func (t Teacher) Source() string {
	for _, s := range t.sources() {
		if s.path != "" {
			return s.key
		}
	}
	return ""
}

// Trained reports whether the teacher is trained here (no file to load).
func (t Teacher) Trained() bool { return t.Source() == "" }

// loadsWeights reports whether the teacher's weights come from a file
// that holds them all (its training section is then unused). A
// TorchScript teacher's training is resolved as it always was, which
// keeps the hashes of such recipes.
func (t Teacher) loadsWeights() bool {
	return t.Checkpoint != "" || t.ONNX != "" || t.Safetensors != ""
}

func (t Teacher) sources() []struct{ key, path string } {
	return []struct{ key, path string }{{"checkpoint", t.Checkpoint}, {"torchscript", t.TorchScript}, {"onnx", t.ONNX}, {"safetensors", t.Safetensors}}
}

// EnsembleTeacher is one more teacher: trained from Model or loaded from
// Checkpoint, like the main teacher.
type EnsembleTeacher struct {
	// Name labels the teacher, unique among models. Default teacher<i+1>.
	Name       string   `yaml:"name"`
	Model      Model    `yaml:"model"`
	Checkpoint string   `yaml:"checkpoint"`
	Training   Training `yaml:"training"`
	// Copies and Augment are as for the main teacher.
	Copies  int            `yaml:"copies"`
	Augment augment.Config `yaml:"augment"`
	// Weight of its softened predictions in the ensemble, > 0, default 1.
	Weight float64 `yaml:"weight"`
	// ONNX, Output, Runtime, Safetensors, Map and Preprocess load the
	// member as they load the main teacher (see Teacher). Feature terms
	// read only the main teacher, so an ONNX member gives only logits.
	ONNX        string            `yaml:"onnx,omitempty"`
	Output      string            `yaml:"output,omitempty"`
	Runtime     string            `yaml:"runtime,omitempty"`
	Safetensors string            `yaml:"safetensors,omitempty"`
	Map         map[string]string `yaml:"map,omitempty"`
	Preprocess  Preprocess        `yaml:"preprocess,omitempty"`
}

// AsTeacher is e as a Teacher (with no TorchScript file), so that the
// two are validated and loaded alike.
func (e EnsembleTeacher) AsTeacher() Teacher {
	return Teacher{Model: e.Model, Checkpoint: e.Checkpoint, Training: e.Training, Copies: e.Copies, Augment: e.Augment, Weight: e.Weight,
		ONNX: e.ONNX, Output: e.Output, Runtime: e.Runtime, Safetensors: e.Safetensors, Map: e.Map, Preprocess: e.Preprocess}
}

// Transfer is the transfer set: the training inputs plus Copies augmented
// copies of each, labelled once by the teacher(s) and cached on disk
// (keyed by the teachers' weights, the data, the augmentation and the
// seed), so later runs and other recipes reuse it. Distilled students
// train on it; baselines keep training on the original data.
type Transfer struct {
	// Enabled turns the transfer set on; default true when the transfer
	// section is present.
	Enabled bool `yaml:"enabled"`
	// Copies is the number K of augmented copies of each example, ≥ 0,
	// default 0 (the original inputs only: the targets are still cached).
	Copies int `yaml:"copies"`
	// Augment selects the augmentations of the copies.
	Augment augment.Config `yaml:"augment"`
	// Seed of the augmentations; default the recipe's seed.
	Seed int64 `yaml:"seed"`
	// Dtype of the stored logits: float32 (default, exact) or float16.
	Dtype string `yaml:"dtype"`
	// CacheDir holds transfer sets; default <user cache dir>/distill/transfer.
	// Relative to the recipe file's directory.
	CacheDir string `yaml:"cache_dir"`
	// Unlabelled, when enabled, replaces the training split as the set's
	// inputs with inputs whose labels are never read.
	Unlabelled Unlabelled `yaml:"unlabelled"`
	// AugmentBaselines trains the baselines on the same inputs as the
	// distilled students (the training data and its augmented copies,
	// same seed) with their true labels, so that a baseline shows what
	// the augmentation alone buys. Default false: baselines train on the
	// original data.
	AugmentBaselines bool `yaml:"augment_baselines" json:",omitempty"`
}

// Unlabelled inputs for the transfer set: the training split of Dataset
// (another dataset, or the recipe's own with the labelled part skipped),
// examples From to From+Limit. The teachers label them; the students'
// hard labels become the teachers' predictions.
type Unlabelled struct {
	// Enabled turns it on; default true when the section is present.
	Enabled bool `yaml:"enabled"`
	// Dataset is "mnist" or "synthetic"; default data.dataset. With Dir,
	// "mnist" reads any dataset stored in MNIST's IDX files (e.g.
	// Fashion-MNIST, QMNIST); its labels are not read.
	Dataset string `yaml:"dataset"`
	// Dir holds its IDX files; default data.dir when Dataset is
	// data.dataset. Relative to the recipe file's directory.
	Dir string `yaml:"dir"`
	// From is the first example used, ≥ 0 (e.g. data.train_limit, to
	// withhold the labels of the examples the teacher did not see).
	From int `yaml:"from"`
	// Limit is the number of examples, ≥ 0, 0 (default) = to the end.
	Limit int `yaml:"limit"`
}

// Student is a smaller model distilled from the teacher.
type Student struct {
	// Name labels the student, unique in the recipe (ignoring case) and
	// file-name safe; "teacher" is reserved. Default student<i>, with i
	// its index in the students list (student0, student1, …).
	Name string `yaml:"name"`
	// Model is required.
	Model   Model   `yaml:"model"`
	Distill Distill `yaml:"distill"`
	// Baseline also trains the same architecture on hard labels only, as
	// "<name>-baseline". Default true.
	Baseline *bool `yaml:"baseline"`
	// Training overrides the top-level training for this student. After
	// Parse it holds the effective values.
	Training Training `yaml:"training"`
}

// Distill sets the response-distillation loss
// α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−α)·CE(s, y).
type Distill struct {
	Temperature float64 `yaml:"temperature"` // T > 0, default 4
	Alpha       float64 `yaml:"alpha"`       // α in [0, 1], default 0.9
	// Hints are FitNets feature terms (Romero et al. 2015): a student
	// layer, through a learned adapter, regresses a teacher layer.
	Hints []FeatureTerm `yaml:"hints"`
	// HintEpochs > 0 trains on the hints alone for that many epochs
	// first (FitNets' two stages), then distils without them; 0 (default)
	// adds the hints to the distillation loss.
	HintEpochs int `yaml:"hint_epochs"`
	// Attention are attention-transfer terms (Zagoruyko & Komodakis
	// 2017) between CNN feature maps of equal spatial size.
	Attention []FeatureTerm `yaml:"attention"`
}

// FeatureTerm pairs a student layer with a teacher layer (names as in
// the model specs: fc1, act1, conv1, act_conv1, pool1, …).
type FeatureTerm struct {
	Student string `yaml:"student"`
	Teacher string `yaml:"teacher"`
	// Weight of the term, > 0; default 1 for hints and 1000 for attention
	// (the β of the authors' code, which weighs the same mean-squared
	// form; loss.DefaultAttentionWeight).
	Weight float64 `yaml:"weight"`
	// Distance of a hint: mse (default) or cosine.
	Distance loss.Distance `yaml:"distance"`
	// Adapter of a hint: auto (default: none when the shapes are equal,
	// linear for vectors, 1×1 conv for feature maps), none, linear or
	// conv1x1.
	Adapter loss.Adapter `yaml:"adapter"`
	// P is attention's power |A|^p, ≥ 1, default 2.
	P float64 `yaml:"p"`
}

// Quantize configures post-training INT8 quantization: per-channel int8
// weights, per-tensor uint8 activations calibrated on training examples,
// and, with a budget, the most sensitive layers kept in float32 until the
// accuracy drop (measured on held-out training examples) is within it.
type Quantize struct {
	// Enabled turns quantization on; default true when the section is
	// present.
	Enabled bool `yaml:"enabled"`
	// Method calibrates activation ranges: entropy (default), minmax,
	// percentile or mse.
	Method quantize.Method `yaml:"method"`
	// Percentile for method percentile, in (50, 100], default 99.99.
	Percentile float64 `yaml:"percentile"`
	// Calibration is the number of training examples calibrated on, ≥ 1,
	// default 2048.
	Calibration int `yaml:"calibration"`
	// MaxDrop is the accuracy budget: the largest acceptable drop against
	// float32, as a fraction (0.001 = 0.1 points), or relative with
	// Relative; 0 (default) quantizes every layer without checking.
	MaxDrop  float64 `yaml:"max_drop"`
	Relative bool    `yaml:"relative"`
	// Validation is the number of held-out training examples (the last
	// ones) the budget is checked on, ≥ 1, default 5000.
	Validation int `yaml:"validation"`
	// Teacher also quantizes the teacher(s); default false.
	Teacher bool `yaml:"teacher"`
}

// Serving configures the serving-cost measurement of every model and the
// prices it is turned into $ per 1M requests with (see docs/cost.md).
type Serving struct {
	// Measure turns the measurement on; default true.
	Measure *bool `yaml:"measure"`
	// Seconds each batch size is timed, > 0, default 2.
	Seconds float64 `yaml:"seconds"`
	// Batches whose throughput is timed; default [1, 8, 32, 128, 256].
	// They may exceed the test set (examples repeat to fill a batch);
	// validation refuses a batch that does not fit in memory.
	Batches []int `yaml:"batches"`
	// LatencyTargetMS bounds the p99 latency of the batch size a model is
	// priced at, > 0, default 100.
	LatencyTargetMS float64 `yaml:"latency_target_ms"`
	// Machine is the price-table entry the run is priced at; default
	// chosen from the device.
	Machine string `yaml:"machine"`
	// Prices is a YAML price table merged over the built-in one; relative
	// to the recipe file.
	Prices string `yaml:"prices"`
	// Server configures the server scenario, measured when serving is.
	Server ServerScenario `yaml:"server"`
	// RequestsPerDay is a traffic forecast, ≥ 0: the report bills each
	// model's cheapest deployment for it (report.Deployment); 0
	// (default) gives the options without a bill.
	RequestsPerDay float64 `yaml:"requests_per_day"`
}

// MeasureEnabled reports whether serving is measured (default true).
func (s Serving) MeasureEnabled() bool { return s.Measure == nil || *s.Measure }

// ServerScenario configures MLPerf Inference's server scenario (see
// serve.MeasureServer): Poisson arrivals of one-example requests through
// distill's HTTP server, p99 bounded by serving.latency_target_ms.
type ServerScenario struct {
	// Measure turns it on; default true (when serving is measured).
	Measure *bool `yaml:"measure"`
	// MaxBatch is the server's largest dynamic batch, ≥ 1, default 64.
	MaxBatch int `yaml:"max_batch"`
	// MaxWaitMS is the longest a partial batch waits, ≥ 0, default 2.
	MaxWaitMS float64 `yaml:"max_wait_ms"`
	// TrialSeconds is how long each rate is offered, > 0, default 1.
	TrialSeconds float64 `yaml:"trial_seconds"`
	// Steps is how many rates are tried after the highest, ≥ 1, default 6.
	Steps int `yaml:"steps"`
	// Searches is how many times the rate is searched for, ≥ 1, default
	// 3: the median is the figure, the spread of all its noise range.
	Searches int `yaml:"searches"`
}

// MeasureEnabled reports whether the server scenario is measured
// (default true).
func (s ServerScenario) MeasureEnabled() bool { return s.Measure == nil || *s.Measure }

// Eval configures evaluation.
type Eval struct {
	// Examples per evaluation batch, ≥ 1, default 1000; a batch larger
	// than the test set evaluates the whole set at once.
	BatchSize int `yaml:"batch_size"`
	ECEBins   int `yaml:"ece_bins"` // calibration-error bins, ≥ 1, default 15
}

// Checkpoint sets how often training saves a checkpoint (weights,
// optimizer state, position in the data) into the run directory, so a
// preempted run loses at most that much work. A checkpoint is also saved
// on SIGINT/SIGTERM. Whichever limit comes first triggers a save.
type Checkpoint struct {
	EverySteps   int     `yaml:"every_steps"`   // ≥ 0, 0 = off; default 0
	EverySeconds float64 `yaml:"every_seconds"` // ≥ 0, 0 = off; default 60
}

// Output configures where results go.
type Output struct {
	// Dir is the run directory; default runs/<name>. Unlike data.dir it
	// is relative to the working directory. --out overrides it.
	Dir string `yaml:"dir"`
}

// trainingField is one mergeable key of Training, with the reflect index
// path of its field.
type trainingField struct {
	key   string
	index []int
}

// trainingFields lists Training's keys in declaration order, schedule's
// flattened as "schedule.kind", … .
var trainingFields = flattenFields(reflect.TypeFor[Training](), "", nil)

func flattenFields(t reflect.Type, prefix string, index []int) []trainingField {
	var out []trainingField
	for i := range t.NumField() {
		f := t.Field(i)
		key := yamlKey(f)
		if key == "" {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		if f.Type.Kind() == reflect.Struct {
			out = append(out, flattenFields(f.Type, prefix+key+".", idx)...)
			continue
		}
		out = append(out, trainingField{key: prefix + key, index: idx})
	}
	return out
}

// yamlKey is a field's YAML key, or "" for unexported or untagged fields.
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if key == "-" {
		return ""
	}
	return key
}

// omitted reports whether field f of a struct, with value v, is left out
// of the canonical form (Hash, MarshalYAML): a key tagged omitempty at its
// zero value. Keys added after recipes were first hashed are tagged so,
// so that recipes which do not use them keep their hashes.
func omitted(f reflect.StructField, v reflect.Value) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return opts == "omitempty" && v.IsZero()
}

// TrainingKeys lists the keys that MarkSet and IsSet accept, in order:
// "epochs", "batch_size", …, "schedule.kind", "schedule.warmup", … .
func TrainingKeys() []string {
	keys := make([]string, len(trainingFields))
	for i, f := range trainingFields {
		keys[i] = f.key
	}
	return keys
}

func trainingFieldFor(key string) (trainingField, bool) {
	for _, f := range trainingFields {
		if f.key == key {
			return f, true
		}
	}
	return trainingField{}, false
}

// MarkSet records that keys (see TrainingKeys) were given explicitly, so
// that TrainingFor keeps them even when their value is zero — for
// example Momentum 0 for plain SGD, whose default momentum is 0.9. Parse
// marks every key the YAML gave. Unknown keys are ignored. MarkSet does
// not modify maps shared with copies of t.
func (t *Training) MarkSet(keys ...string) {
	set := maps.Clone(t.set)
	if set == nil {
		set = map[string]bool{}
	}
	for _, k := range keys {
		if _, ok := trainingFieldFor(k); ok {
			set[k] = true
		}
	}
	t.set = set
}

// IsSet reports whether key (see TrainingKeys) was given: marked by Parse
// or MarkSet, or holding a non-zero value.
func (t Training) IsSet(key string) bool {
	if t.set[key] {
		return true
	}
	f, ok := trainingFieldFor(key)
	return ok && !reflect.ValueOf(t).FieldByIndex(f.index).IsZero()
}

// marked is like IsSet, but when t carries marks (it came from Parse)
// only the marks count. It tells where a value came from, for errors.
func (t Training) marked(key string) bool {
	if t.set != nil {
		return t.set[key]
	}
	return t.IsSet(key)
}

// BaselineEnabled reports whether the student also trains a hard-label
// baseline of the same architecture. Default true.
func (s Student) BaselineEnabled() bool {
	return s.Baseline == nil || *s.Baseline
}
