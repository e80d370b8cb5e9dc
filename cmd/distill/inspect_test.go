package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pytorchTeachers holds the files make_teachers.py writes.
const pytorchTeachers = "../../teacher/testdata/pytorch"

func TestInspectFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"resnet.safetensors", []string{"safetensors state dict", "5,122 parameters", "| layer2.0.downsample.0 | conv2d 8→16 1×1, no bias | weight F32 [16 8 1 1] |", "| fc | linear 16→10 |"}},
		{"resnet.onnx", []string{"ONNX model", "| input | FLOAT | [batch, 1, 28, 28] |", "| logits | FLOAT | [batch, 10] |", "| /layer1/layer1.0/relu_1/Relu_output_0 | Relu |", "| Conv | 6 |"}},
		{"resnet.pt", []string{"TorchScript archive", "5,122 parameters", "| layer2.0.conv2.weight | F32 | [16 16 3 3] | parameter |", "torch backend", "trusted: true"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(pytorchTeachers, tc.file)
			code, out, errOut := capture(t, "inspect", path)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestInspectJSON(t *testing.T) {
	code, out, errOut := capture(t, "inspect", "--json", filepath.Join(pytorchTeachers, "resnet.onnx"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var s struct {
		Format string
		Params int64
		Graph  struct {
			Inputs        []struct{ Name string }
			Intermediates []struct {
				Name  string
				Shape []string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if s.Format != "onnx" || s.Params <= 0 || len(s.Graph.Inputs) != 1 || s.Graph.Inputs[0].Name != "input" || len(s.Graph.Intermediates) == 0 {
		t.Errorf("summary %+v", s)
	}
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not a model at all"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inspect", text}, exitFailed, "not a model file"},
		{[]string{"inspect", filepath.Join(dir, "none.onnx")}, exitUsage, "none.onnx"},
		{[]string{"inspect"}, exitUsage, "usage: distill inspect MODEL_FILE"},
	} {
		code, out, errOut := capture(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q (want %q)", tc.args, code, tc.code, out, errOut, tc.want)
		}
	}
}
