package teacher

import (
	"context"
	"fmt"
	"slices"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/teacher/ort"
	"github.com/distill-dev/distill/train"
	"github.com/distill-dev/distill/transfer"
)

// Spec is one teacher of a recipe: the main one or an ensemble member.
type Spec struct {
	Name       string
	Model      recipe.Model
	Checkpoint string // a model file to load instead of training
	Training   recipe.Training
	Weight     float64 // weight in the ensemble
	// TorchScript is a trusted TorchScript file to load (main teacher
	// only; empty unless the recipe marked it trusted).
	TorchScript string
	// Copies augmented copies of each example, made with Augment, are
	// trained on besides the data.
	Copies  int
	Augment augment.Config
	// ONNX is an ONNX file run by ONNX Runtime, opened with ORT: its
	// logits output, the library, and as Features the tensors the
	// students' feature terms read (the main teacher's only).
	ONNX string
	ORT  ort.Options
	// Safetensors is a PyTorch state_dict loaded onto Model, its names
	// matched as Map says.
	Safetensors string
	Map         map[string]string
	// Preprocess normalises the teacher's inputs (a loaded teacher only).
	Preprocess recipe.Preprocess
}

// Specs lists the recipe's teachers: the main one, named "teacher", then
// the ensemble members in recipe order.
func Specs(r *recipe.Recipe) []Spec {
	t := r.Teacher
	ts := []Spec{{Name: "teacher", Model: t.Model, Checkpoint: t.Checkpoint, Training: t.Training, Weight: t.Weight, Copies: t.Copies, Augment: t.Augment}}
	if t.Trusted {
		ts[0].TorchScript = t.TorchScript
	}
	ts[0].loadedFrom(t, FeatureLayers(r))
	for _, e := range r.Ensemble {
		s := Spec{Name: e.Name, Model: e.Model, Checkpoint: e.Checkpoint, Training: e.Training, Weight: e.Weight, Copies: e.Copies, Augment: e.Augment}
		s.loadedFrom(e.AsTeacher(), nil) // feature terms read only the main teacher
		ts = append(ts, s)
	}
	return ts
}

// loadedFrom sets the ONNX, state_dict and preprocessing fields from t;
// features are the ONNX tensors to read besides the logits.
func (s *Spec) loadedFrom(t recipe.Teacher, features []string) {
	if t.ONNX != "" {
		s.ONNX = t.ONNX
		s.ORT = ort.Options{Library: t.Runtime, Output: t.Output, Features: features}
	}
	s.Safetensors, s.Map, s.Preprocess = t.Safetensors, t.Map, t.Preprocess
}

// FeatureLayers lists the main teacher's layers that the students'
// feature terms (hints, attention) read, in recipe order, each once.
func FeatureLayers(r *recipe.Recipe) []string {
	var layers []string
	for _, s := range r.Students {
		joint, hints := s.Distill.Features()
		for _, f := range append(joint, hints...) {
			if !slices.Contains(layers, f.Teacher) {
				layers = append(layers, f.Teacher)
			}
		}
	}
	return layers
}

// Weights are the teachers' ensemble weights, in order.
func Weights(ts []Spec) []float64 {
	w := make([]float64, len(ts))
	for i, t := range ts {
		w[i] = t.Weight
	}
	return w
}

// Method is the report's label of how the teacher was made: its
// augmentation when it was trained on augmented data, else "".
func (s Spec) Method() string {
	if s.Copies == 0 { // only a teacher trained here has copies (recipe validation)
		return ""
	}
	return fmt.Sprintf("trained on data ×%d, augmented %s", s.Copies+1, s.Augment)
}

// Env is what obtaining a teacher needs from the run.
type Env struct {
	// Backend loads models; Trainer trains them (it may be Backend
	// wrapped to watch the model in training).
	Backend, Trainer backend.Backend
	// Data is the training split: the teacher trains on it and must fit
	// its shape and classes.
	Data *data.Dataset
	// Seed seeds the augmentation of a teacher trained on copies.
	Seed int64
	// Progress reports a milestone of teacher name; nil discards it.
	Progress func(name, msg string)
}

// Obtain makes teacher s: opened from its ONNX file, loaded from its
// trusted TorchScript file, its state_dict or its checkpoint, else
// trained from its spec with the config that cfg returns (called only
// then, right before training). The model fits env.Data or is an error.
// A loaded teacher with Preprocess normalises its inputs (see
// Preprocess); its Weights are the network's own.
func Obtain(ctx context.Context, env Env, s Spec, cfg func() train.Config) (backend.Model, error) {
	progress := env.Progress
	if progress == nil {
		progress = func(string, string) {}
	}
	name := s.Name
	// The teacher's own input: the data's, unless preprocessing resizes
	// it or adds channels.
	input, err := s.Preprocess.Shape(env.Data.Shape)
	if err != nil {
		return nil, fmt.Errorf("distill: %s preprocess: %w", name, err)
	}
	var m backend.Model
	switch {
	case s.ONNX != "":
		progress(name, "opening ONNX "+s.ONNX)
		m, err = OpenONNX(s, env.Data.Shape)
	case s.Safetensors != "":
		var spec model.Spec
		if spec, err = s.Model.Spec(name, input, env.Data.Classes); err != nil {
			return nil, fmt.Errorf("distill: %s model: %w", name, err)
		}
		progress(name, "loading state_dict "+s.Safetensors)
		var w model.Weights
		if w, err = model.LoadStateDict(s.Safetensors, spec, model.StateDictOptions{Map: s.Map}); err == nil {
			m, err = env.Backend.Load(spec, w)
		}
	case s.TorchScript != "":
		progress(name, "loading TorchScript "+s.TorchScript)
		m, err = loadTorchScript(env.Backend, s, input, env.Data.Classes)
	case s.Checkpoint != "":
		progress(name, "loading "+s.Checkpoint)
		m, err = Load(env.Backend, s.Checkpoint)
	default:
		var spec model.Spec
		if spec, err = s.Model.Spec(name, env.Data.Shape, env.Data.Classes); err != nil {
			return nil, fmt.Errorf("distill: %s model: %w", name, err)
		}
		var src train.Source = env.Data
		msg := "training " + name
		if s.Copies > 0 {
			if src, err = augment.NewSource(env.Data, s.Copies, s.Augment, env.Seed); err != nil {
				return nil, fmt.Errorf("distill: %s augmentation: %w", name, err)
			}
			msg += fmt.Sprintf(" on the data and %d augmented copies (%s)", s.Copies, s.Augment)
		}
		progress(name, msg)
		m, _, err = Train(ctx, env.Trainer, spec, src, cfg())
	}
	if err != nil {
		return nil, fmt.Errorf("distill: %s: %w", name, err)
	}
	what := name
	for _, f := range []string{s.Checkpoint, s.ONNX, s.Safetensors, s.TorchScript} {
		if f != "" {
			what += " " + f
			break
		}
	}
	if err := fitsData(m.Spec(), input, env.Data, what); err != nil {
		m.Close()
		return nil, err
	}
	return s.Preprocessed(m, env.Data.Shape)
}

// External reports whether the teacher runs from its own file wherever
// it is needed, with nothing of it saved in the run directory: an ONNX
// file (ONNX Runtime runs it), or a TorchScript module whose architecture
// the recipe does not describe (libtorch runs it, for its logits only).
func (s Spec) External() bool {
	return s.ONNX != "" || s.TorchScript != "" && s.Model.IsZero()
}

// ExternalFile is the file an External teacher runs from.
func (s Spec) ExternalFile() string {
	if s.ONNX != "" {
		return s.ONNX
	}
	return s.TorchScript
}

// OpenExternal opens an External teacher for data examples of shape data
// and classes classes, a TorchScript one on b; without its
// preprocessing (see Preprocessed).
func OpenExternal(b backend.Backend, s Spec, data []int, classes int) (backend.Model, error) {
	if s.ONNX != "" {
		return OpenONNX(s, data)
	}
	input, err := s.Preprocess.Shape(data)
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	return loadTorchScript(b, s, input, classes)
}

// loadTorchScript loads teacher s's TorchScript module on b for examples
// of shape input (the teacher's own) and classes classes. Without a
// recipe model the module is any architecture: distill knows only its
// input and output, enough for its logits.
func loadTorchScript(b backend.Backend, s Spec, input []int, classes int) (backend.Model, error) {
	loader, ok := b.(backend.TorchScriptLoader)
	if !ok {
		return nil, fmt.Errorf("the %s backend cannot load TorchScript; use backend torch (a build with -tags torch)", b.Name())
	}
	spec := model.Spec{Name: s.Name, Input: input, Classes: classes}
	if !s.Model.IsZero() {
		var err error
		if spec, err = s.Model.Spec(s.Name, input, classes); err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
	}
	return loader.LoadTorchScript(s.TorchScript, spec)
}

// OpenONNX opens an ONNX teacher (s.ONNX with s.ORT) for data examples
// of shape data, which its preprocessing makes the teacher's input
// shape: that shape is given to ONNX Runtime only when the file leaves a
// non-batch dimension dynamic, so that a file that fixes its input shape
// is checked against it by fitsData with both named.
func OpenONNX(s Spec, data []int) (backend.Model, error) {
	input, err := s.Preprocess.Shape(data)
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	opts := s.ORT
	info, err := ort.Inspect(s.ONNX)
	if err != nil {
		return nil, err
	}
	if len(info.Inputs) == 1 {
		sh := info.Inputs[0].Shape
		if len(sh) == 0 || slices.Contains(sh[1:], -1) {
			opts.Input = slices.Clone(input)
		}
	}
	t, err := ort.Open(s.ONNX, opts)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Preprocessed wraps m in s's input preprocessing, if any, for data
// examples of shape data (closing m on error).
func (s Spec) Preprocessed(m backend.Model, data []int) (backend.Model, error) {
	if !s.Preprocess.Enabled() {
		return m, nil
	}
	p, err := Preprocess(m, data, s.Preprocess)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("distill: %s: %w", s.Name, err)
	}
	return p, nil
}

// fitsData checks that a model takes examples of shape input (the
// dataset's, after the teacher's preprocessing) and predicts the
// dataset's classes.
func fitsData(spec model.Spec, input []int, d *data.Dataset, what string) error {
	if !slices.Equal(spec.Input, input) && model.Numel(spec.Input) != model.Numel(input) {
		if !slices.Equal(input, d.Shape) {
			return fmt.Errorf("distill: %s takes inputs of shape %v, but preprocessing makes dataset %q's examples of shape %v into %v: set the teacher's preprocess size and channels to its input", what, spec.Input, d.Name, d.Shape, input)
		}
		return fmt.Errorf("distill: %s takes inputs of shape %v, but dataset %q has examples of shape %v: use a model trained on this dataset, or state how to make its input (teacher preprocess: size, channels)", what, spec.Input, d.Name, d.Shape)
	}
	if spec.Classes != d.Classes {
		return fmt.Errorf("distill: %s predicts %d classes, but dataset %q has %d", what, spec.Classes, d.Name, d.Classes)
	}
	return nil
}

// Targets gives a student's soft targets from the loaded teachers
// (models, in Specs order, with their ensemble weights): read from the
// transfer set when there is one, else computed by running the teachers
// in the training loop. Several teachers are mixed at st.Temperature, the
// temperature of the student's objective (st.Objective), so the two
// agree. With features the teacher is also a train.FeatureTeacher giving
// the main teacher's layers.
func Targets(models []backend.Model, weights []float64, set *transfer.Set, st loss.SoftTargets, features bool) (train.Teacher, error) {
	if len(models) == 0 {
		return nil, fmt.Errorf("teacher: no teachers to give soft targets")
	}
	switch {
	case set == nil && len(models) == 1:
		return train.ModelTeacher(models[0]), nil
	case set == nil:
		return Ensemble(models, weights, st)
	case features:
		return set.FeatureTeacher(st.Temperature, 0, models[0].Spec())
	default:
		return set.Ensemble(st.Temperature)
	}
}
