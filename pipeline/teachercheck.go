package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/teacher"
	"github.com/distill-dev/distill/teacher/ort"
)

// noRuntime ends the error of a build that cannot run ONNX Runtime, whose
// own error (teacher/ort) says only how to rebuild: the library is
// needed too.
const noRuntime = "; it also needs ONNX Runtime's shared library: npm's onnxruntime-node ships it (npm install onnxruntime-node), " +
	"onnx/testdata/install-ort.sh installs it where distill looks, or point $ONNXRUNTIME_LIB or teacher.runtime at libonnxruntime.so"

// checkTeacherFiles checks what the teachers' files hold, before any
// work: an ONNX file must parse, take the data's examples, give its
// classes and (the main teacher's) hold the tensors the students' feature
// terms name, and ONNX Runtime must load and accept it; a state_dict must
// fit the recipe's model, every tensor accounted for; a checkpoint must
// take the data's examples (after the teacher's preprocessing) and give
// its classes. skip names keys
// whose files CheckFiles already found unusable.
func checkTeacherFiles(r *recipe.Recipe, skip map[string]bool) []recipe.Problem {
	var ps []recipe.Problem
	add := func(key, format string, args ...any) {
		msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "; ")
		ps = append(ps, recipe.Problem{File: r.File(), Key: key, Message: msg})
	}
	specs := teacher.Specs(r)
	checkTeacherFile(r, "teacher", r.Teacher, specs[0], true, skip, add)
	for i, e := range r.Ensemble {
		checkTeacherFile(r, fmt.Sprintf("ensemble[%d]", i), e.AsTeacher(), specs[i+1], false, skip, add)
	}
	return ps
}

// checkTeacherFile checks the files of teacher t (keys under p, loaded
// as spec); hints says whether the students' feature terms read it.
func checkTeacherFile(r *recipe.Recipe, p string, t recipe.Teacher, spec teacher.Spec, hints bool, skip map[string]bool, add func(key, format string, args ...any)) {
	input, classes := r.Data.Shape() // nil, 0 for data whose shape only loading tells
	// The teacher's own input: the data's after its preprocessing.
	tin := input
	if input != nil {
		var err error
		if tin, err = t.Preprocess.Shape(input); err != nil {
			return // Validate reports the preprocessing
		}
	}
	switch {
	case t.ONNX != "" && !skip[p+".onnx"] && !skip[p+".runtime"]:
		found := false
		counted := func(key, format string, args ...any) { found = true; add(key, format, args...) }
		// ONNX Runtime's own errors would repeat the file's problems.
		if checkONNX(r, p, t, tin, classes, hints, counted); found {
			return
		}
		libKey := p + ".onnx"
		if t.Runtime != "" {
			libKey = p + ".runtime"
		}
		if _, err := ort.Check(t.Runtime); err != nil {
			if errors.Is(err, errors.ErrUnsupported) {
				add(libKey, "%v%s", err, noRuntime)
			} else {
				add(libKey, "%v", err)
			}
			return
		}
		if input == nil {
			return
		}
		// ONNX Runtime must accept the model (an operator it lacks fails
		// here), with the feature tensors as outputs.
		m, err := teacher.OpenONNX(spec, input)
		if err != nil {
			add(p+".onnx", "%v", err)
			return
		}
		defer m.Close()
		if !hints {
			return
		}
		// Only now are the teacher tensors' shapes known: each pairing
		// with a student layer must fit (the recipe's own validation
		// checks this for teachers it can describe).
		for i, s := range r.Students {
			joint, hs := s.Distill.Features()
			if len(joint)+len(hs) == 0 {
				continue
			}
			ss, err := s.Model.Spec(s.Name, input, classes)
			if err != nil {
				continue // Validate reports the model
			}
			if err := loss.CheckFeatures(ss, m.Spec(), append(joint, hs...)); err != nil {
				add(fmt.Sprintf("students[%d].distill", i), "%v", err)
			}
		}
	case t.Checkpoint != "" && !skip[p+".checkpoint"] && input != nil:
		ms, _, err := model.Load(t.Checkpoint)
		if err != nil {
			add(p+".checkpoint", "%v", err)
			return
		}
		if !slices.Equal(ms.Input, tin) && model.Numel(ms.Input) != model.Numel(tin) {
			if !slices.Equal(tin, input) {
				add(p+".checkpoint", "%s takes inputs of shape %v, but %s.preprocess makes the data's examples of shape %v into %v: set its size and channels to the teacher's input", t.Checkpoint, ms.Input, p, input, tin)
			} else {
				add(p+".checkpoint", "%s takes inputs of shape %v, but the data's examples have shape %v: use a teacher made for this data, or state how to make its input (%s.preprocess: size, channels)", t.Checkpoint, ms.Input, input, p)
			}
		}
		if ms.Classes != classes {
			add(p+".checkpoint", "%s predicts %d classes, but the data has %d", t.Checkpoint, ms.Classes, classes)
		}
	case t.Safetensors != "" && !skip[p+".safetensors"] && input != nil:
		ms, err := t.Model.Spec(spec.Name, tin, classes)
		if err != nil {
			return // Validate reports the model
		}
		if _, err := model.LoadStateDict(t.Safetensors, ms, model.StateDictOptions{Map: t.Map}); err != nil {
			add(p+".safetensors", "%v", err)
		}
	}
}

// checkONNX checks teacher t's ONNX file (keys under p) against the data
// (input, the teacher's input shape, nil when unknown, and classes) and, with hints, the students'
// feature terms, without ONNX Runtime.
func checkONNX(r *recipe.Recipe, p string, t recipe.Teacher, input []int, classes int, hints bool, add func(key, format string, args ...any)) {
	info, err := ort.Inspect(t.ONNX)
	if err != nil {
		add(p+".onnx", "%v", err)
		return
	}
	if len(info.Inputs) != 1 {
		add(p+".onnx", "%s has %d inputs; a teacher reads one (the examples)", t.ONNX, len(info.Inputs))
	} else if in := info.Inputs[0]; input != nil && len(in.Shape) > 0 && !shapeFits(in.Shape[1:], input) {
		if data, _ := r.Data.Shape(); !slices.Equal(data, input) {
			add(p+".onnx", "%s takes input %q of shape %v (batch first, -1 dynamic), but %s.preprocess makes the data's examples of shape %v into %v: set its size and channels to the teacher's input", t.ONNX, in.Name, in.Shape, p, data, input)
		} else {
			add(p+".onnx", "%s takes input %q of shape %v (batch first, -1 dynamic), but the data's examples have shape %v: use a teacher made for this data, or state how to make its input (%s.preprocess: size, channels)", t.ONNX, in.Name, in.Shape, input, p)
		}
	}
	var out *ort.Tensor
	switch {
	case t.Output != "":
		i := slices.IndexFunc(info.Outputs, func(o ort.Tensor) bool { return o.Name == t.Output })
		if i < 0 {
			add(p+".output", "%s has no output %q; its outputs are %q", t.ONNX, t.Output, ort.Names(info.Outputs))
		} else {
			out = &info.Outputs[i]
		}
	case len(info.Outputs) == 1:
		out = &info.Outputs[0]
	default:
		add(p+".onnx", "%s has %d outputs %q: name the logits with %s.output", t.ONNX, len(info.Outputs), ort.Names(info.Outputs), p)
	}
	if out != nil && classes > 0 && len(out.Shape) == 2 && out.Shape[1] > 0 && out.Shape[1] != classes {
		add(p+".onnx", "%s predicts %d classes (output %q of shape %v), but the data has %d", t.ONNX, out.Shape[1], out.Name, out.Shape, classes)
	}
	if !hints {
		return
	}
	for i, s := range r.Students {
		for _, list := range []struct {
			name  string
			terms []recipe.FeatureTerm
		}{{"hints", s.Distill.Hints}, {"attention", s.Distill.Attention}} {
			for j, f := range list.terms {
				if !slices.ContainsFunc(info.Intermediate, func(x ort.Tensor) bool { return x.Name == f.Teacher }) {
					add(fmt.Sprintf("students[%d].distill.%s[%d].teacher", i, list.name, j),
						"the ONNX teacher %s has no tensor %q%s", t.ONNX, f.Teacher, ort.Suggest(f.Teacher, info.Intermediate, fmt.Sprintf(": name one of its %d node outputs (distill inspect %s lists them)", len(info.Intermediate), t.ONNX)))
				}
			}
		}
	}
}

// shapeFits reports whether a per-example shape from an ONNX file (-1:
// dynamic) takes examples of shape data: the same rank with every fixed
// dimension equal, or a fixed shape of the same size (flat data read as
// an image, as distill's own models do).
func shapeFits(file, data []int) bool {
	if len(file) == len(data) {
		for i, d := range file {
			if d > 0 && d != data[i] {
				return false
			}
		}
		return true
	}
	if slices.Contains(file, -1) {
		return false
	}
	return model.Numel(file) == model.Numel(data)
}
