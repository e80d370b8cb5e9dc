package ort

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/onnx"
)

// TestLibraryNotFound: without the library, the error says each way to
// provide it.
func TestLibraryNotFound(t *testing.T) {
	t.Setenv(onnx.RuntimeLibraryEnv, "")
	t.Setenv("DISTILL_ORT_DIR", t.TempDir())
	_, err := Library("")
	if err == nil {
		t.Fatal("Library found ONNX Runtime in an empty directory")
	}
	t.Log(err)
	for _, w := range []string{"onnxruntime-node", "install-ort.sh", onnx.RuntimeLibraryEnv} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if _, err := Check(""); err == nil {
		t.Error("Check succeeded without a library")
	}
}

// TestInspect lists what an exported network holds, without ONNX
// Runtime.
func TestInspect(t *testing.T) {
	spec := backendtest.GraphSpecs(t)[0]
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "resnet.onnx")
	if err := onnx.WriteFileFP32(path, spec, w); err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Inputs) != 1 || info.Inputs[0].Name != onnx.InputName || !slices.Equal(info.Inputs[0].Shape, []int{-1, 2, 8, 8}) || info.Inputs[0].Type != "FLOAT" {
		t.Errorf("inputs %+v, want one FLOAT %q of shape [-1 2 8 8]", info.Inputs, onnx.InputName)
	}
	if len(info.Outputs) != 1 || info.Outputs[0].Name != onnx.OutputName || !slices.Equal(info.Outputs[0].Shape, []int{-1, spec.Classes}) {
		t.Errorf("outputs %+v, want %q of shape [-1 %d]", info.Outputs, onnx.OutputName, spec.Classes)
	}
	i := slices.IndexFunc(info.Intermediate, func(x Tensor) bool { return x.Name == "layer1.0.add" })
	if i < 0 || info.Intermediate[i].Op != "Add" {
		t.Errorf("intermediate tensors %+v lack layer1.0.add computed by Add", info.Intermediate)
	}
	// Folding batchnorms changes the count, so compare with the
	// initializers' own total rather than the spec's.
	if info.Params <= 0 || info.Opsets[""] != onnx.Opset {
		t.Errorf("params %d, opsets %v", info.Params, info.Opsets)
	}
	bad := filepath.Join(t.TempDir(), "x.onnx")
	if err := os.WriteFile(bad, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(bad); err == nil || !strings.Contains(err.Error(), "not an ONNX model") {
		t.Errorf("Inspect of a non-ONNX file: %v", err)
	}
	if _, err := Inspect(filepath.Join(t.TempDir(), "none.onnx")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Inspect of a missing file: %v, want ErrNotExist", err)
	}
}
