package recipe

// Recipe is one compression pipeline: where the data comes from, the
// teacher, the students distilled from it, how they train, and what is
// evaluated and written. Field docs state defaults; Parse fills them in.
type Recipe struct {
	// Name labels the run in reports. Default: the file name without extension.
	Name string `yaml:"name"`
	// Backend is the compute engine: "gorgonia" (default) or "torch".
	Backend string `yaml:"backend"`
	// Device is "auto" (default), "cpu", "cuda" or "cuda:N".
	Device string `yaml:"device"`
	// Threads bounds the engine's intra-op threads; 0 (default) = engine default.
	Threads int `yaml:"threads"`
	// Seed drives every random choice (init, data order, dropout). Default 1.
	Seed int64 `yaml:"seed"`

	Data     Data      `yaml:"data"`
	Training Training  `yaml:"training"` // defaults for every model's training
	Teacher  Teacher   `yaml:"teacher"`
	Students []Student `yaml:"students"`
	Eval     Eval      `yaml:"eval"`
	Output   Output    `yaml:"output"`
}

// Data selects the dataset.
type Data struct {
	// Dataset is "mnist" (default) or "synthetic".
	Dataset string `yaml:"dataset"`
	// Dir holds the IDX files for offline use; empty = download once into
	// the user cache directory.
	Dir string `yaml:"dir"`
	// TrainLimit / TestLimit use only the first N examples; 0 (default) = all.
	TrainLimit int `yaml:"train_limit"`
	TestLimit  int `yaml:"test_limit"`
	// Synthetic sizes the synthetic dataset (dataset: synthetic only).
	Synthetic Synthetic `yaml:"synthetic"`
}

// Synthetic describes a generated, learnable classification task.
type Synthetic struct {
	Train    int   `yaml:"train"`    // default 2048
	Test     int   `yaml:"test"`     // default 512
	Shape    []int `yaml:"shape"`    // per-example shape, default [1, 8, 8]
	Classes  int   `yaml:"classes"`  // default 4
	Seed     int64 `yaml:"seed"`     // default: the recipe's seed
}

// Model is an architecture. Type "mlp" uses Hidden/Activation/Dropout/
// InputDropout; type "cnn" uses Conv, then Hidden as its dense head.
type Model struct {
	Type         string      `yaml:"type"`          // mlp (default) | cnn
	Hidden       []int       `yaml:"hidden"`        // hidden layer widths
	Activation   string      `yaml:"activation"`    // relu (default) | tanh | sigmoid
	Dropout      float64     `yaml:"dropout"`       // after hidden activations, [0, 1)
	InputDropout float64     `yaml:"input_dropout"` // on the input (mlp), [0, 1)
	Conv         []ConvBlock `yaml:"conv"`          // cnn only, at least one
}

// ConvBlock is a conv → activation → optional max-pool stage.
type ConvBlock struct {
	Channels int `yaml:"channels"` // > 0
	Kernel   int `yaml:"kernel"`   // default 3
	Stride   int `yaml:"stride"`   // default 1
	Padding  int `yaml:"padding"`  // default 0
	Pool     int `yaml:"pool"`     // max-pool size, 0 = none
}

// Training configures one model's optimisation. A teacher's or student's
// own training section overrides, key by key, the recipe's top-level one.
type Training struct {
	Epochs      int       `yaml:"epochs"`       // default 10
	BatchSize   int       `yaml:"batch_size"`   // default 128
	Optimizer   string    `yaml:"optimizer"`    // adam (default) | sgd
	LR          float64   `yaml:"lr"`           // default 1e-3 (adam), 0.1 (sgd)
	Momentum    float64   `yaml:"momentum"`     // sgd only, default 0.9
	Nesterov    bool      `yaml:"nesterov"`     // sgd only
	WeightDecay float64   `yaml:"weight_decay"` // L2, default 0
	Schedule    Schedule  `yaml:"schedule"`
	MaxNorm     float64   `yaml:"max_norm"` // reserved: max-norm weight constraint, 0 = off

	// set marks which keys the YAML actually gave, for merging.
	set map[string]bool
}

// Schedule shapes the learning rate over training.
type Schedule struct {
	// Kind is "constant" (default), "cosine", "step" or "exponential".
	Kind string `yaml:"kind"`
	// Warmup epochs of linear ramp from 0, default 0.
	Warmup float64 `yaml:"warmup"`
	// StepEvery / Gamma: step multiplies by Gamma every StepEvery epochs;
	// exponential multiplies by Gamma every epoch.
	StepEvery int     `yaml:"step_every"`
	Gamma     float64 `yaml:"gamma"`
	// MinLR is cosine's floor, default 0.
	MinLR float64 `yaml:"min_lr"`
}

// Teacher is trained from Model, or loaded from Checkpoint (a directory or
// model.json written by distill) when Checkpoint is set.
type Teacher struct {
	Model      Model    `yaml:"model"`
	Checkpoint string   `yaml:"checkpoint"`
	Training   Training `yaml:"training"`
}

// Student is a smaller model distilled from the teacher.
type Student struct {
	// Name labels the student, unique in the recipe. Default student<i>.
	Name    string   `yaml:"name"`
	Model   Model    `yaml:"model"`
	Distill Distill  `yaml:"distill"`
	// Baseline also trains the same architecture on hard labels only, as
	// "<name>-baseline". Default true.
	Baseline *bool    `yaml:"baseline"`
	Training Training `yaml:"training"`
}

// Distill sets the response-distillation loss
// α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−α)·CE(s, y).
type Distill struct {
	Temperature float64 `yaml:"temperature"` // T > 0, default 4
	Alpha       float64 `yaml:"alpha"`       // α in [0, 1], default 0.9
}

// Eval configures evaluation.
type Eval struct {
	BatchSize int `yaml:"batch_size"` // default 1000
	ECEBins   int `yaml:"ece_bins"`   // default 15
}

// Output configures where results go.
type Output struct {
	// Dir is the run directory; default runs/<name>. --out overrides it.
	Dir string `yaml:"dir"`
}
