package recipe

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/internal/vocab"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/quantize"
	"github.com/distill-dev/distill/train"
)

// Allowed values of the enumerated keys. Those of a vocabulary that
// another package implements are that package's set, so that validation,
// the schema (schema_test.go) and the reference docs (readme_test.go)
// cannot drift from the code.
var (
	backends    = backend.Known()
	datasets    = append(NamedDatasets(), "images", "arrays", "csv")
	modelTypes  = []string{"mlp", "cnn", "resnet", "mobilenet", "graph"}
	activations = vocab.Names(model.Activations())
	optimizers  = vocab.Names(backend.Optimizers())
	precisions  = vocab.Names(backend.Precisions())
	schedules   = vocab.Names(train.Schedules())
	methods     = vocab.Names(quantize.Methods())
	distances   = vocab.Names(loss.Distances())
	adapters    = vocab.Names(loss.Adapters())
	dtypes      = []string{"float32", "float16"}
)

// NamedDatasets are the datasets that their name (and, for idx, a
// directory) describes fully; the others need files named in the recipe.
func NamedDatasets() []string { return []string{"mnist", "fashion-mnist", "synthetic", "idx"} }

var (
	deviceRE = regexp.MustCompile(`^(auto|cpu|cuda|cuda:[0-9]+)$`)
	safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// maxNameLen bounds run and student names, which become file names.
const maxNameLen = 64

// Validate checks ranges and consistency of a Recipe that has its
// defaults filled in (by Parse or SetDefaults) and returns an *Error
// listing every problem, or nil. Its problems name keys but carry no
// line numbers; Parse runs the same checks and adds them.
func (r *Recipe) Validate() error {
	return newError(r.check())
}

// check returns every problem of r, by key, without positions.
func (r *Recipe) check() []Problem {
	var ps problems
	ps.name("name", r.Name, "the run")
	ps.oneOf("backend", r.Backend, backends)
	if !deviceRE.MatchString(r.Device) {
		ps.add("device", "must be auto, cpu, cuda or cuda:N (N a GPU index such as 0), got %q", r.Device)
	}
	ps.atLeast("threads", r.Threads, 0)
	if r.Precision != "" && ps.oneOf("precision", r.Precision, precisions) &&
		r.Precision == string(backend.PrecisionBF16) && r.Backend != "torch" {
		ps.add("precision", "bf16 runs only on the torch backend (backend: torch); the %s backend computes in fp32: set precision to auto or fp32", r.Backend)
	}

	input, classes := r.checkData(&ps)
	r.checkTeacher(&ps, input, classes)
	r.checkEnsemble(&ps, input, classes)
	r.checkTransfer(&ps, input)
	ps.positive("serving.seconds", r.Serving.Seconds)
	ps.positive("serving.latency_target_ms", r.Serving.LatencyTargetMS)
	if len(r.Serving.Batches) == 0 {
		ps.add("serving.batches", "must list at least one batch size")
	}
	for i, b := range r.Serving.Batches {
		ps.atLeast(fmt.Sprintf("serving.batches[%d]", i), b, 1)
	}
	if !(r.Serving.RequestsPerDay >= 0) || math.IsInf(r.Serving.RequestsPerDay, 0) {
		ps.add("serving.requests_per_day", "must be a number ≥ 0, got %v", r.Serving.RequestsPerDay)
	}
	sc := r.Serving.Server
	ps.atLeast("serving.server.max_batch", sc.MaxBatch, 1)
	if !(sc.MaxWaitMS >= 0) || math.IsInf(sc.MaxWaitMS, 0) {
		ps.add("serving.server.max_wait_ms", "must be a number ≥ 0, got %v", sc.MaxWaitMS)
	}
	ps.positive("serving.server.trial_seconds", sc.TrialSeconds)
	ps.atLeast("serving.server.steps", sc.Steps, 1)
	ps.atLeast("serving.server.searches", sc.Searches, 1)
	q := r.Quantize
	ps.oneOf("quantize.method", string(q.Method), methods)
	if !(q.Percentile > 50 && q.Percentile <= 100) {
		ps.add("quantize.percentile", "must be in (50, 100], got %v", q.Percentile)
	}
	ps.atLeast("quantize.calibration", q.Calibration, 1)
	ps.atLeast("quantize.validation", q.Validation, 1)
	if !(q.MaxDrop >= 0 && q.MaxDrop < 1) {
		ps.add("quantize.max_drop", "must be in [0, 1) (a fraction: 0.001 is 0.1 points), got %v", q.MaxDrop)
	}
	ps.training("training", r.Training, Training{})
	r.checkStudents(&ps, input, classes)

	ps.atLeast("eval.batch_size", r.Eval.BatchSize, 1)
	ps.atLeast("eval.ece_bins", r.Eval.ECEBins, 1)
	ps.atLeast("checkpoint.every_steps", r.Checkpoint.EverySteps, 0)
	ps.nonNegative("checkpoint.every_seconds", r.Checkpoint.EverySeconds)
	if r.Output.Dir == "" {
		ps.add("output.dir", "must not be empty; leave the key out for the default runs/<name>")
	}
	return ps.list
}

// checkData validates the data section and returns the per-example input
// shape and class count, or nil, 0 when they are not known.
func (r *Recipe) checkData(ps *problems) (input []int, classes int) {
	d := r.Data
	ok := ps.oneOf("data.dataset", d.Dataset, datasets)
	ps.atLeast("data.train_limit", d.TrainLimit, 0)
	ps.atLeast("data.test_limit", d.TestLimit, 0)
	r.checkUserData(ps)
	if d.Dataset != "synthetic" {
		if !reflect.ValueOf(d.Synthetic).IsZero() {
			ps.add("data.synthetic", "is only used with dataset: synthetic; remove it or set data.dataset: synthetic")
		}
	} else {
		s := d.Synthetic
		ps.atLeast("data.synthetic.train", s.Train, 1)
		ps.atLeast("data.synthetic.test", s.Test, 1)
		ps.atLeast("data.synthetic.classes", s.Classes, 2)
		if len(s.Shape) != 1 && len(s.Shape) != 3 {
			ps.add("data.synthetic.shape", "must be [D] or [C, H, W], such as [1, 8, 8], got %v", s.Shape)
			ok = false
		}
		for i, v := range s.Shape {
			if !ps.atLeast(fmt.Sprintf("data.synthetic.shape[%d]", i), v, 1) {
				ok = false
			}
		}
		if s.Classes < 2 {
			ok = false
		}
	}
	if !ok {
		return nil, 0
	}
	return d.Shape()
}

// checkUserData validates the keys of users' own data, each of which
// only some datasets use.
func (r *Recipe) checkUserData(ps *problems) {
	d := r.Data
	user := []string{"images", "arrays", "csv"}
	for _, k := range []struct {
		key      string
		set      bool
		datasets []string
	}{
		{"train_file", d.TrainFile != "", []string{"arrays", "csv"}},
		{"test_file", d.TestFile != "", []string{"arrays", "csv"}},
		{"x", d.X != "", []string{"arrays"}},
		{"y", d.Y != "", []string{"arrays"}},
		{"label_column", d.LabelColumn != "", []string{"csv"}},
		{"channels", d.Channels != 0, []string{"images"}},
		{"size", len(d.Size) > 0, []string{"images"}},
		{"mean", len(d.Mean) > 0, []string{"images"}},
		{"std", len(d.Std) > 0, []string{"images"}},
		{"test_fraction", d.TestFraction != 0, user},
		{"split_seed", d.SplitSeed != 0, user},
	} {
		if (k.set || r.given["data."+k.key]) && !slices.Contains(k.datasets, d.Dataset) && slices.Contains(datasets, d.Dataset) {
			ps.add("data."+k.key, "is only used with dataset: %s; remove it or change data.dataset", strings.Join(k.datasets, " or "))
		}
	}
	switch d.Dataset {
	case "arrays", "csv":
		if d.TrainFile == "" {
			ps.add("data.train_file", "is required with dataset: %s: the %s file of training examples", d.Dataset, map[string]string{"arrays": ".npz", "csv": ".csv"}[d.Dataset])
		}
		if d.Dataset == "arrays" {
			if d.X == d.Y && d.X != "" {
				ps.add("data.y", "names the same array as data.x (%q); the labels are another array", d.X)
			}
		}
	case "images":
		if d.Dir == "" {
			ps.add("data.dir", "is required with dataset: images: the folder with one subfolder of images per class")
		}
		if d.Channels != 1 && d.Channels != 3 {
			ps.add("data.channels", "must be 1 (gray) or 3 (RGB), got %d", d.Channels)
		}
		if len(d.Size) != 0 && (len(d.Size) != 2 || d.Size[0] < 1 || d.Size[1] < 1 || d.Size[0] > 1<<12 || d.Size[1] > 1<<12) {
			ps.add("data.size", "must be [height, width], each 1 to 4096, such as [32, 32], got %v", d.Size)
		}
		for _, s := range []struct {
			key  string
			vals []float64
			pos  bool
		}{{"mean", d.Mean, false}, {"std", d.Std, true}} {
			if n := len(s.vals); n > 1 && n != d.Channels {
				ps.add("data."+s.key, "has %d values; give one for every channel, or one per channel (%d)", n, d.Channels)
			}
			for i, x := range s.vals {
				if math.IsNaN(x) || math.IsInf(x, 0) || s.pos && x <= 0 {
					ps.add(fmt.Sprintf("data.%s[%d]", s.key, i), "must be a finite number%s, got %v", map[bool]string{true: " > 0", false: ""}[s.pos], x)
				}
			}
		}
	}
	if slices.Contains(user, d.Dataset) && !(d.TestFraction > 0 && d.TestFraction < 1) {
		ps.add("data.test_fraction", "must be between 0 and 1 (exclusive), such as 0.2, got %v", d.TestFraction)
	}
}

// augmentWithCheckpoint explains copies/augment on a loaded teacher.
const augmentWithCheckpoint = "augments the data a teacher is trained on, and is not used when the teacher is loaded from a checkpoint; remove copies and augment"

func (r *Recipe) checkTeacher(ps *problems, input []int, classes int) {
	r.checkTeacherAt(ps, "teacher", "teacher", r.Teacher, input, classes)
}

// checkTeacherAt checks teacher t, the main one or an ensemble member (a
// Teacher without TorchScript) named name, whose keys are under p.
func (r *Recipe) checkTeacherAt(ps *problems, p, name string, t Teacher, input []int, classes int) {
	hasModel := !reflect.ValueOf(t.Model).IsZero()
	var files []string
	for _, s := range t.sources() {
		if s.path != "" {
			files = append(files, p+"."+s.key)
		}
	}
	if len(files) > 1 {
		ps.add(p, "gives %s: give exactly one of checkpoint, torchscript, onnx or safetensors (files to load), or model alone to train the teacher", strings.Join(files, " and "))
		return
	}
	src := t.Source()
	switch {
	case src == "" && !hasModel:
		ps.add(p, "needs a model to train, such as model: {type: mlp, hidden: [512, 512]}, or a file to load: checkpoint, torchscript, onnx or safetensors")
	case (src == "checkpoint" || src == "onnx") && hasModel:
		ps.add(p, "give either model (to train the teacher) or %s (to load it), not both: a %s holds its own architecture", src, map[string]string{"checkpoint": "checkpoint", "onnx": "ONNX file"}[src])
	}
	if hasModel {
		ps.model(p+".model", name, t.Model, input, classes)
	}
	if src != "onnx" {
		for _, k := range []struct{ key, v string }{{"output", t.Output}, {"runtime", t.Runtime}} {
			if k.v != "" {
				ps.add(p+"."+k.key, "is an ONNX teacher's option: set %s.onnx, or remove it", p)
			}
		}
	}
	if src != "safetensors" && len(t.Map) > 0 {
		ps.add(p+".map", "renames a state_dict's tensors: set %s.safetensors, or remove it", p)
	}
	if t.Preprocess.Enabled() {
		if src == "" {
			ps.add(p+".preprocess", "normalises a loaded teacher's inputs; a teacher trained here learns on the data as it is: remove it, or normalise the data (data.mean, data.std)")
		} else {
			ps.preprocess(p+".preprocess", t.Preprocess, input)
		}
	}
	switch src {
	case "torchscript":
		switch {
		case !t.Trusted:
			ps.add("teacher.torchscript", "TorchScript archives are pickle-based and can run code when loaded: set trusted: true only for a file you trust")
		case !hasModel && r.readsTeacherLayers():
			ps.add("teacher.torchscript", "needs teacher.model, the architecture of the scripted module, for the teacher layers the students' hints and attention read (without it a TorchScript teacher of any architecture gives its logits only)")
		case !hasModel && r.Quantize.Teacher:
			ps.add("quantize.teacher", "a TorchScript teacher without teacher.model has no distill layers to quantize: set it to false, or describe its architecture in teacher.model")
		case r.Backend != "torch":
			ps.add("teacher.torchscript", "loads only on the torch backend (backend: torch), not on %q", r.Backend)
		}
		return // the model describes the scripted module: nothing to train
	case "safetensors":
		if !hasModel {
			ps.add(p+".safetensors", "needs %s.model: the architecture the state_dict's tensors load onto, such as model: {type: resnet, ...}", p)
		}
	case "":
		ps.training(p+".training", t.Training, r.Training)
		ps.augment(p, t.Copies, t.Augment, input)
		return
	}
	if src != "torchscript" {
		for _, f := range trainingFields {
			if t.Training.marked(f.key) {
				ps.add(p+".training", "is not used when the teacher is loaded from a file (%s.%s); remove it", p, src)
				break
			}
		}
		if t.Copies != 0 || t.Augment.Enabled() {
			ps.add(p+".augment", augmentWithCheckpoint)
		}
	}
	if src == "onnx" && r.Quantize.Teacher {
		ps.add("quantize.teacher", "%s: an ONNX teacher is run by ONNX Runtime and has no distill weights to quantize: set it to false", p)
	}
	if t.Preprocess.Enabled() && r.Quantize.Teacher {
		ps.add("quantize.teacher", "the INT8 teacher would lose %s.preprocess (the quantized network reads the data as it is): set it to false", p)
	}
}

// readsTeacherLayers reports whether a student's feature terms (hints,
// attention) read the main teacher's layers.
func (r *Recipe) readsTeacherLayers() bool {
	for _, s := range r.Students {
		if joint, hints := s.Distill.Features(); len(joint)+len(hints) > 0 {
			return true
		}
	}
	return false
}

// preprocess checks a teacher's preprocessing against the data's
// example shape (input; nil when only loading tells): the resize and
// channels fit the data, and mean and std have one value or one per
// channel of the teacher's input (the first dimension of an image's
// shape, 1 for flat examples).
func (ps *problems) preprocess(key string, p Preprocess, input []int) {
	if o := p.ChannelOrder; o != "" && o != ChannelsRGB && o != ChannelsBGR {
		ps.add(key+".channel_order", "unknown channel order %q: give %q (the data's own) or %q (reversed, for teachers trained on BGR images)", o, ChannelsRGB, ChannelsBGR)
	}
	if p.Channels < 0 {
		ps.add(key+".channels", "must be positive, got %d", p.Channels)
	}
	for _, v := range p.Size {
		if v <= 0 || len(p.Size) != 2 {
			ps.add(key+".size", "%v: give the teacher's image height and width, such as [224, 224]", p.Size)
			break
		}
	}
	teacherInput := input
	if input != nil {
		var err error
		if teacherInput, err = p.Shape(input); err != nil {
			ps.add(key, "%v", err)
			return
		}
	}
	channels := 0
	switch len(teacherInput) {
	case 3:
		channels = teacherInput[0]
	case 1:
		channels = 1
	}
	if p.ChannelOrder == ChannelsBGR && channels > 0 && channels != 3 {
		ps.add(key+".channel_order", "bgr reverses 3 colour channels, but the teacher's examples have %d (shape %v)", channels, teacherInput)
	}
	for _, s := range []struct {
		key  string
		vals []float64
		pos  bool
	}{{"mean", p.Mean, false}, {"std", p.Std, true}} {
		if n := len(s.vals); n > 1 && channels > 0 && n != channels {
			ps.add(key+"."+s.key, "has %d values, but the teacher's examples have %d channel(s) (shape %v): give one value for every channel, or one per channel", n, channels, teacherInput)
		}
		for i, x := range s.vals {
			if math.IsNaN(x) || math.IsInf(x, 0) || s.pos && x <= 0 {
				ps.add(fmt.Sprintf("%s.%s[%d]", key, s.key, i), "must be a finite number%s, got %v", map[bool]string{true: " > 0", false: ""}[s.pos], x)
			}
		}
	}
}

func (r *Recipe) checkEnsemble(ps *problems, input []int, classes int) {
	ps.positive("teacher.weight", r.Teacher.Weight)
	seen := map[string]string{"teacher": "the main teacher"}
	for _, s := range r.Students {
		seen[strings.ToLower(s.Name)] = "a student"
		seen[strings.ToLower(s.Name)+"-baseline"] = "a baseline"
	}
	for i, e := range r.Ensemble {
		p := fmt.Sprintf("ensemble[%d]", i)
		if ps.name(p+".name", e.Name, "a teacher") {
			if who, ok := seen[strings.ToLower(e.Name)]; ok {
				ps.add(p+".name", "%q is already used by %s (names must be unique, ignoring case)", e.Name, who)
			}
			seen[strings.ToLower(e.Name)] = p
		}
		ps.positive(p+".weight", e.Weight)
		r.checkTeacherAt(ps, p, e.Name, e.AsTeacher(), input, classes)
	}
}

func (r *Recipe) checkTransfer(ps *problems, input []int) {
	t := r.Transfer
	ps.oneOf("transfer.dtype", t.Dtype, dtypes)
	ps.augment("transfer", t.Copies, t.Augment, input)
	if t.AugmentBaselines {
		switch {
		case !t.Enabled:
			ps.add("transfer.augment_baselines", "trains baselines on the transfer set's inputs, but the transfer set is off (transfer.enabled: false)")
		case t.Copies == 0:
			ps.add("transfer.augment_baselines", "needs augmented copies (transfer.copies >= 1 with an augmentation on)")
		case t.Unlabelled.Enabled:
			ps.add("transfer.augment_baselines", "baselines train on labelled data, but the transfer set's inputs are unlabelled; remove one of them")
		}
	}
	if u := t.Unlabelled; u.Enabled {
		if !t.Enabled {
			ps.add("transfer.unlabelled", "is the transfer set's inputs, but the transfer set is off (transfer.enabled: false)")
		}
		if ps.oneOf("transfer.unlabelled.dataset", u.Dataset, datasets) && u.Dataset == "synthetic" && r.Data.Dataset != "synthetic" {
			ps.add("transfer.unlabelled.dataset", "synthetic inputs only fit a recipe whose data.dataset is synthetic")
		}
		if (u.Dataset == "arrays" || u.Dataset == "csv") && u.Dataset != r.Data.Dataset {
			ps.add("transfer.unlabelled.dataset", "%s inputs are read from data.train_file, so they need data.dataset: %s", u.Dataset, u.Dataset)
		}
		ps.atLeast("transfer.unlabelled.from", u.From, 0)
		ps.atLeast("transfer.unlabelled.limit", u.Limit, 0)
	}
}

// augment checks the copies and augment keys of section key (the
// transfer set or a teacher).
func (ps *problems) augment(key string, copies int, a augment.Config, input []int) {
	ps.atLeast(key+".copies", copies, 0)
	if err := a.Validate(); err != nil {
		ps.add(key+".augment", "%v", err)
	} else if a.Enabled() && input != nil && len(input) != 3 { // nil: users' data, checked when loaded
		ps.add(key+".augment", "augmentations work on images ([C, H, W] inputs), but the data's examples have shape %v", input)
	}
	if a.Enabled() && copies == 0 {
		ps.add(key+".copies", "must be >= 1 for the augmentations to be used")
	}
}

// checkFeatures checks a student's hint and attention terms: each on its
// own, and, when the teacher is trained from the recipe (its layers are
// known), that each pairing of layers fits.
func (r *Recipe) checkFeatures(ps *problems, key string, s Student, input []int, classes int) {
	d := s.Distill
	ps.atLeast(key+".hint_epochs", d.HintEpochs, 0)
	if d.HintEpochs > 0 && len(d.Hints) == 0 {
		ps.add(key+".hint_epochs", "needs hints to train in the first stage")
	}
	joint, hints := d.Features()
	all := append(append([]loss.Feature(nil), joint...), hints...)
	if len(all) == 0 {
		return
	}
	bad := false
	for i, h := range d.Hints {
		if err := (loss.Feature{Kind: loss.FeatureHint, Student: h.Student, Teacher: h.Teacher, Weight: h.Weight, Distance: h.Distance, Adapter: h.Adapter}).Validate(); err != nil {
			ps.add(fmt.Sprintf("%s.hints[%d]", key, i), "%v", err)
			bad = true
		}
	}
	for i, a := range d.Attention {
		if err := (loss.Feature{Kind: loss.FeatureAttention, Student: a.Student, Teacher: a.Teacher, Weight: a.Weight, P: a.P}).Validate(); err != nil {
			ps.add(fmt.Sprintf("%s.attention[%d]", key, i), "%v", err)
			bad = true
		}
	}
	if bad || input == nil || reflect.ValueOf(s.Model).IsZero() {
		return
	}
	sspec, err := s.Model.Spec(s.Name, input, classes)
	if err != nil {
		return // reported as a model problem
	}
	// A loaded teacher's layers are checked when it is loaded.
	known := r.Teacher.Checkpoint == "" && !reflect.ValueOf(r.Teacher.Model).IsZero()
	var tspec model.Spec
	if known {
		tin, err := r.Teacher.Preprocess.Shape(input)
		if err != nil {
			return // reported as a preprocess problem
		}
		if tspec, err = r.Teacher.Model.Spec("teacher", tin, classes); err != nil {
			return
		}
	}
	// Each name first, at its own key; then the pairings' shapes.
	names := func(list string, terms []FeatureTerm) {
		for i, f := range terms {
			p := fmt.Sprintf("%s.%s[%d]", key, list, i)
			if _, _, ok := sspec.Layer(f.Student); !ok {
				ps.add(p+".student", "the student %q has no layer %q; %s", s.Name, f.Student, featureNames(sspec))
				bad = true
			}
			if _, _, ok := tspec.Layer(f.Teacher); known && !ok {
				ps.add(p+".teacher", "the teacher has no layer %q; %s", f.Teacher, featureNames(tspec))
				bad = true
			}
		}
	}
	names("hints", d.Hints)
	names("attention", d.Attention)
	if bad || !known {
		return
	}
	if err := loss.CheckFeatures(sspec, tspec, all); err != nil {
		ps.add(key, "%v", err)
	}
}

// positive checks a finite value > 0.
func (ps *problems) positive(key string, v float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		ps.add(key, "must be > 0, got %v", v)
	}
}

func (r *Recipe) checkStudents(ps *problems, input []int, classes int) {
	if len(r.Students) == 0 {
		ps.add("students", "at least one student is required, such as students: [{name: small, model: {hidden: [128]}}]")
		return
	}
	// owner maps a lower-cased output name to who uses it.
	owner := map[string]string{}
	for i, s := range r.Students {
		p := fmt.Sprintf("students[%d]", i)
		if ps.name(p+".name", s.Name, "a student") {
			for _, n := range []string{s.Name, s.Name + "-baseline"} {
				if n != s.Name && !s.BaselineEnabled() {
					continue
				}
				key := strings.ToLower(n)
				if who, taken := owner[key]; taken {
					what := fmt.Sprintf("%q is already used by %s", n, who)
					if n != s.Name {
						what = fmt.Sprintf("its baseline %q clashes with %s; rename it or set baseline: false", n, who)
					}
					ps.add(p+".name", "%s (names must be unique, ignoring case)", what)
					break
				}
				if n == s.Name {
					owner[key] = p
				} else {
					owner[key] = "the baseline of " + p
				}
			}
		}
		if reflect.ValueOf(s.Model).IsZero() {
			ps.add(p+".model", "is required, such as model: {type: mlp, hidden: [128, 128]}")
		} else {
			ps.model(p+".model", s.Name, s.Model, input, classes)
		}
		if t := s.Distill.Temperature; !(t > 0) || math.IsInf(t, 0) {
			ps.add(p+".distill.temperature", "must be > 0, got %v", t)
		}
		if a := s.Distill.Alpha; !(a >= 0 && a <= 1) {
			ps.add(p+".distill.alpha", "must be in [0, 1] (the weight of the soft-target loss), got %v", a)
		}
		r.checkFeatures(ps, p+".distill", s, input, classes)
		ps.training(p+".training", s.Training, r.Training)
	}
}

// name checks a file-name-safe name.
func (ps *problems) name(key, name, what string) bool {
	switch {
	case name == "":
		ps.add(key, "must not be empty")
	case len(name) > maxNameLen:
		ps.add(key, "must be at most %d characters, got %d", maxNameLen, len(name))
	case !safeName.MatchString(name):
		ps.add(key, "names %s and becomes a file name: use letters, digits, '.', '_' and '-', starting with a letter or digit; got %q", what, name)
	case strings.EqualFold(name, "teacher") && what != "the run":
		ps.add(key, "%q is reserved for the teacher; choose another name", name)
	default:
		return true
	}
	return false
}

func (ps *problems) oneOf(key, v string, allowed []string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	ps.add(key, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	return false
}

func (ps *problems) atLeast(key string, v, lo int) bool {
	if v >= lo {
		return true
	}
	if lo == 0 {
		ps.add(key, "must not be negative, got %d", v)
	} else {
		ps.add(key, "must be at least %d, got %d", lo, v)
	}
	return false
}

func (ps *problems) nonNegative(key string, v float64) bool {
	if v >= 0 && !math.IsInf(v, 0) {
		return true
	}
	ps.add(key, "must be a finite number ≥ 0, got %v", v)
	return false
}

func (ps *problems) rate(key string, v float64) {
	if !(v >= 0 && v < 1) {
		ps.add(key, "must be in [0, 1), got %v", v)
	}
}

// model checks an architecture and, when the rest is valid and the input
// shape is known, that it fits the data.
func (ps *problems) model(path, name string, m Model, input []int, classes int) {
	before := len(ps.list)
	ps.oneOf(path+".type", m.Type, modelTypes)
	if m.Type == "graph" {
		if m.Activation != "" {
			ps.add(path+".activation", "is not used by type graph: write activations as nodes, such as {name: act1, kind: relu}")
		}
	} else {
		ps.oneOf(path+".activation", m.Activation, activations)
	}
	for i, h := range m.Hidden {
		ps.atLeast(fmt.Sprintf("%s.hidden[%d]", path, i), h, 1)
	}
	ps.rate(path+".dropout", m.Dropout)
	ps.rate(path+".input_dropout", m.InputDropout)
	// unused reports the keys that type m.Type does not read.
	unused := func(why string, keys ...string) {
		for _, k := range keys {
			set := map[string]bool{
				"hidden": len(m.Hidden) > 0, "dropout": m.Dropout != 0, "input_dropout": m.InputDropout != 0,
				"conv": len(m.Conv) > 0, "stem": m.Stem != Stem{}, "stages": len(m.Stages) > 0, "nodes": len(m.Nodes) > 0,
			}[k]
			if set {
				ps.add(path+"."+k, "is not used by type %s%s; remove it", m.Type, why)
			}
		}
	}
	switch m.Type {
	case "cnn":
		if len(m.Conv) == 0 {
			ps.add(path+".conv", "a cnn needs at least one conv block, such as conv: [{channels: 16, pool: 2}]")
		}
		if m.InputDropout != 0 {
			ps.add(path+".input_dropout", "is only supported by type mlp; remove it")
		}
		unused(" (stem and stages are resnet's and mobilenet's, nodes graph's)", "stem", "stages", "nodes")
	case "mlp":
		if len(m.Conv) > 0 {
			ps.add(path+".conv", "is only used by type cnn; remove it or set type: cnn")
		}
		unused(" (stem and stages are resnet's and mobilenet's, nodes graph's)", "stem", "stages", "nodes")
	case "resnet", "mobilenet":
		unused(" (it takes stem, stages and activation)", "hidden", "dropout", "input_dropout", "conv", "nodes")
		ps.blocks(path, m)
	case "graph":
		unused(" (it takes only nodes: dropout is a node of kind dropout)", "hidden", "dropout", "input_dropout", "conv", "stem", "stages")
	}
	for i, b := range m.Conv {
		p := fmt.Sprintf("%s.conv[%d]", path, i)
		ps.atLeast(p+".channels", b.Channels, 1)
		ps.atLeast(p+".kernel", b.Kernel, 1)
		ps.atLeast(p+".stride", b.Stride, 1)
		ps.atLeast(p+".padding", b.Padding, 0)
		ps.atLeast(p+".pool", b.Pool, 0)
	}
	if len(ps.list) > before {
		return
	}
	if m.Type == "graph" {
		// The graph's own checks put each problem at its node.
		if !ps.graph(path, m, input, classes) || input == nil {
			return
		}
	}
	if input == nil {
		return
	}
	if _, err := m.Spec(name, input, classes); err != nil {
		msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "recipe: "), "model: ")
		ps.addProblem(Problem{Key: path, whole: true,
			Message: fmt.Sprintf("does not fit the data's input shape %v: %s", input, msg)})
	}
}

// training checks the effective training of a section at prefix whose
// own values are own, merged over top. A problem is reported at the key
// where the offending value was written: the section's own key, or the
// top-level one it inherited.
func (ps *problems) training(prefix string, own, top Training) {
	var r Recipe
	r.Training = top
	e := r.TrainingFor(own)
	src := func(k string) string {
		if !own.marked(k) && top.marked(k) {
			return "training." + k
		}
		return prefix + "." + k
	}
	// srcVia locates a key that the schedule kind needs: where it was
	// written, or else next to the kind that asked for it.
	srcVia := func(k string) string {
		if own.marked(k) || top.marked(k) {
			return src(k)
		}
		return strings.TrimSuffix(src("schedule.kind"), "kind") + strings.TrimPrefix(k, "schedule.")
	}
	ps.atLeast(src("epochs"), e.Epochs, 1)
	ps.atLeast(src("batch_size"), e.BatchSize, 1)
	ps.oneOf(src("optimizer"), string(e.Optimizer), optimizers)
	if !(e.LR > 0) || math.IsInf(e.LR, 0) {
		ps.add(src("lr"), "must be a finite number > 0, got %v", e.LR)
	}
	ps.rate(src("momentum"), e.Momentum)
	ps.nonNegative(src("weight_decay"), e.WeightDecay)
	ps.nonNegative(src("max_norm"), e.MaxNorm)

	s := e.Schedule
	ps.oneOf(src("schedule.kind"), string(s.Kind), schedules)
	if ps.nonNegative(src("schedule.warmup"), s.Warmup) && e.Epochs >= 1 && s.Warmup > float64(e.Epochs) {
		ps.add(src("schedule.warmup"), "must be at most the %d training epochs, got %v", e.Epochs, s.Warmup)
	}
	if ps.nonNegative(src("schedule.min_lr"), s.MinLR) && s.Kind == train.Cosine && e.LR > 0 && s.MinLR >= e.LR {
		ps.add(src("schedule.min_lr"), "must be below lr (%v) for the cosine schedule, got %v", e.LR, s.MinLR)
	}
	switch s.Kind {
	case train.Step:
		if s.StepEvery < 1 {
			if own.marked("schedule.step_every") || top.marked("schedule.step_every") {
				ps.add(srcVia("schedule.step_every"), "must be at least 1, got %d", s.StepEvery)
			} else {
				ps.add(srcVia("schedule.step_every"), "is required by schedule kind step: the number of epochs between lr drops")
			}
		}
		fallthrough
	case train.Exponential:
		if !(s.Gamma > 0 && s.Gamma <= 1) {
			ps.add(srcVia("schedule.gamma"), "must be in (0, 1] for schedule kind %s, got %v", s.Kind, s.Gamma)
		}
	}
}
