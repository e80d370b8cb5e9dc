package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestTeacherSources: a teacher is trained from model or loaded from
// exactly one file; each file kind takes its own options, and
// preprocessing fits the data's channels.
func TestTeacherSources(t *testing.T) {
	const students = "students:\n  - model: {hidden: [8]}\n"
	for _, tc := range []struct {
		name, teacher string
		// want maps problem keys to a part of their message; nil: valid.
		want map[string]string
	}{
		{"onnx", "onnx: t.onnx", nil},
		{"onnx with output and runtime", "{onnx: t.onnx, output: logits, runtime: /opt/libonnxruntime.so, preprocess: {mean: [0.5], std: [0.25]}}", nil},
		{"safetensors", "{safetensors: t.safetensors, model: {type: resnet, stem: {channels: 8}, stages: [{channels: 8}, {channels: 16, stride: 2}]}, map: {fc: classifier.1, layer1: features.1}}", nil},
		{"onnx and model", "{onnx: t.onnx, model: {hidden: [8]}}", map[string]string{"teacher": "either model (to train the teacher) or onnx"}},
		{"onnx and checkpoint", "{onnx: t.onnx, checkpoint: c}", map[string]string{"teacher": "teacher.checkpoint and teacher.onnx: give exactly one of checkpoint, torchscript, onnx or safetensors"}},
		{"onnx and safetensors", "{onnx: t.onnx, safetensors: t.safetensors, model: {hidden: [8]}}", map[string]string{"teacher": "teacher.onnx and teacher.safetensors"}},
		{"safetensors without model", "safetensors: t.safetensors", map[string]string{"teacher.safetensors": "needs teacher.model"}},
		{"output without onnx", "{model: {hidden: [8]}, output: logits}", map[string]string{"teacher.output": "ONNX teacher's option"}},
		{"runtime without onnx", "{checkpoint: c, runtime: lib.so}", map[string]string{"teacher.runtime": "ONNX teacher's option"}},
		{"map without safetensors", "{model: {hidden: [8]}, map: {fc: head}}", map[string]string{"teacher.map": "set teacher.safetensors"}},
		{"map not a mapping", "{safetensors: t.safetensors, model: {hidden: [8]}, map: [fc]}", map[string]string{"teacher.map": "must be a mapping"}},
		{"preprocess length", "{onnx: t.onnx, preprocess: {mean: [0.5, 0.5, 0.5], std: [0.2, 0.2]}}", map[string]string{
			"teacher.preprocess.mean": "has 3 values, but the teacher's examples have 1 channel(s)",
			"teacher.preprocess.std":  "has 2 values"}},
		{"preprocess to rgb", "{onnx: t.onnx, preprocess: {size: [32, 32], channels: 3, channel_order: bgr, mean: [0.4, 0.5, 0.6], std: [0.2]}}", nil},
		{"preprocess mean per teacher channel", "{onnx: t.onnx, preprocess: {channels: 3, mean: [0.5]}}", nil},
		{"preprocess bad size", "{onnx: t.onnx, preprocess: {size: [32]}}", map[string]string{"teacher.preprocess.size": "height and width", "teacher.preprocess": "size [32]"}},
		{"preprocess bad channels", "{onnx: t.onnx, preprocess: {channels: -3}}", map[string]string{"teacher.preprocess.channels": "must be positive", "teacher.preprocess": "channels -3"}},
		{"preprocess bgr of grey", "{onnx: t.onnx, preprocess: {channel_order: bgr}}", map[string]string{"teacher.preprocess.channel_order": "teacher's examples have 1"}},
		{"preprocess unknown order", "{onnx: t.onnx, preprocess: {channel_order: BGRA}}", map[string]string{"teacher.preprocess.channel_order": "unknown channel order"}},
		{"preprocess channels mean", "{onnx: t.onnx, preprocess: {channels: 3, mean: [1, 2]}}", map[string]string{"teacher.preprocess.mean": "has 2 values, but the teacher's examples have 3 channel(s) (shape [3 28 28])"}},
		{"preprocess std zero", "{onnx: t.onnx, preprocess: {std: [0]}}", map[string]string{"teacher.preprocess.std[0]": "> 0"}},
		{"preprocess on a trained teacher", "{model: {hidden: [8]}, preprocess: {mean: [0.5]}}", map[string]string{"teacher.preprocess": "a teacher trained here"}},
		{"onnx with training", "{onnx: t.onnx, training: {epochs: 3}}", map[string]string{"teacher.training": "loaded from a file (teacher.onnx)"}},
		{"onnx quantized", "onnx: t.onnx\nquantize: {teacher: true}", map[string]string{"quantize.teacher": "ONNX Runtime"}},
		{"ensemble members from files", "onnx: t.onnx\nensemble:\n  - {onnx: e.onnx, preprocess: {std: [0.5]}}\n  - {safetensors: e.safetensors, model: {hidden: [8]}, map: {fc1: l1}}", nil},
		{"ensemble member with two files", "onnx: t.onnx\nensemble:\n  - {onnx: e.onnx, checkpoint: c}", map[string]string{"ensemble[0]": "ensemble[0].checkpoint and ensemble[0].onnx"}},
		{"ensemble member state_dict without model", "onnx: t.onnx\nensemble:\n  - {safetensors: e.safetensors, output: y}", map[string]string{
			"ensemble[0].safetensors": "needs ensemble[0].model", "ensemble[0].output": "set ensemble[0].onnx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "teacher:\n  " + tc.teacher + "\n" + students
			r, err := Parse([]byte(src), "")
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Parse:\n%s\nerror: %v", src, err)
				}
				return
			}
			var rerr *Error
			if !errors.As(err, &rerr) {
				t.Fatalf("Parse:\n%s\ngot %v (%T), want problems %v", src, err, err, tc.want)
			}
			if r != nil {
				t.Error("Parse returned a recipe with its error")
			}
			got := map[string]string{}
			for _, p := range rerr.Problems {
				got[p.Key] = p.Message
			}
			for k, msg := range tc.want {
				if !strings.Contains(got[k], msg) {
					t.Errorf("problem at %s = %q, want it to contain %q (all: %v)", k, got[k], msg, err)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("got problems %v, want only those at %v", err, tc.want)
			}
		})
	}
}

// TestTeacherFilesResolvedAndChecked: the ONNX, runtime and state_dict
// paths are relative to the recipe file, and CheckFiles (not Parse)
// requires them to exist.
func TestTeacherFilesResolvedAndChecked(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "r.yaml")
	src := "teacher: {onnx: m/t.onnx, runtime: lib/libonnxruntime.so}\nstudents:\n  - model: {hidden: [8]}\n"
	r, err := Parse([]byte(src), file)
	if err != nil {
		t.Fatalf("Parse must not need the files: %v", err)
	}
	if want := filepath.Join(dir, "m", "t.onnx"); r.Teacher.ONNX != want {
		t.Errorf("teacher.onnx = %q, want %q", r.Teacher.ONNX, want)
	}
	err = r.CheckFiles()
	for _, k := range []string{"teacher.onnx", "teacher.runtime"} {
		if err == nil || !strings.Contains(err.Error(), k+`: "`) || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("CheckFiles = %v, want %s reported missing", err, k)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "m"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m", "t.onnx"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckFiles(); err == nil || strings.Contains(err.Error(), "teacher.onnx") {
		t.Errorf("CheckFiles = %v, want only teacher.runtime reported", err)
	}

	r2, err := Parse([]byte("teacher: {safetensors: w.safetensors, model: {hidden: [8]}}\nstudents:\n  - model: {hidden: [8]}\n"), file)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.CheckFiles(); err == nil || !strings.Contains(err.Error(), "teacher.safetensors") {
		t.Errorf("CheckFiles = %v, want teacher.safetensors reported missing", err)
	}
}

// TestTeacherMapHashAndRoundTrip: the state_dict map is part of the hash
// whatever its key order, and yaml.Marshal writes it back.
func TestTeacherMapHashAndRoundTrip(t *testing.T) {
	parse := func(m string) *Recipe {
		t.Helper()
		r, err := Parse([]byte("teacher: {safetensors: w.safetensors, model: {hidden: [8]}, map: "+m+"}\nstudents:\n  - model: {hidden: [8]}\n"), "")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b, c := parse("{fc1: a, fc2: b}"), parse("{fc2: b, fc1: a}"), parse("{fc1: a, fc2: c}")
	if a.Hash() != b.Hash() {
		t.Error("the map's key order changes the hash")
	}
	if a.Hash() == c.Hash() {
		t.Error("a different map has the same hash")
	}
	text, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(text, "")
	if err != nil {
		t.Fatalf("Parse(Marshal) = %v\n%s", err, text)
	}
	if back.Teacher.Map["fc2"] != "b" || len(back.Teacher.Map) != 2 || back.Hash() != a.Hash() {
		t.Errorf("round trip gave map %v", back.Teacher.Map)
	}
}

// TestTorchScriptAnyArchitecture: a TorchScript teacher needs no model
// for its logits, but does for the layers hints read, and cannot be
// quantized without one.
func TestTorchScriptAnyArchitecture(t *testing.T) {
	const head = "backend: torch\ndata: {dataset: synthetic, synthetic: {shape: [1, 8, 8], classes: 4}}\nteacher: {torchscript: t.pt, trusted: true}\n"
	if _, err := Parse([]byte(head+"students:\n  - model: {hidden: [8]}\n"), ""); err != nil {
		t.Errorf("a TorchScript teacher without model for response distillation: %v", err)
	}
	for _, tc := range []struct{ extra, key, want string }{
		{"students:\n  - model: {type: cnn, conv: [{channels: 4}]}\n    distill: {hints: [{student: conv1, teacher: layer1}]}\n", "teacher.torchscript", "needs teacher.model"},
		{"students:\n  - model: {hidden: [8]}\nquantize: {teacher: true}\n", "quantize.teacher", "no distill layers to quantize"},
	} {
		_, err := Parse([]byte(head+tc.extra), "")
		var rerr *Error
		if !errors.As(err, &rerr) {
			t.Fatalf("%s: got %v, want a problem at %s", tc.extra, err, tc.key)
		}
		found := false
		for _, p := range rerr.Problems {
			found = found || p.Key == tc.key && strings.Contains(p.Message, tc.want)
		}
		if !found {
			t.Errorf("%s: problems %v, want %q at %s", tc.extra, err, tc.want, tc.key)
		}
	}
}
