package backendtest

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/safetensors"
)

// torchFiles are PyTorch's results on the graph specs, written by
// testdata/torch/gen.py (see TestTorchGoldens for how to regenerate).
//
//go:embed testdata/torch
var torchFiles embed.FS

// torchDir is where the goldens live, in torchFiles and in the source tree.
const torchDir = "testdata/torch"

// TorchGolden is one graph spec with its weights and a batch, and what
// PyTorch (float64, torch.nn modules built from the spec by
// testdata/torch/gen.py) computes on them. Engines compare their own
// results to it: "matches PyTorch in value and gradient".
type TorchGolden struct {
	Spec model.Spec
	// Weights are the parameters and buffers PyTorch loaded (batchnorms
	// randomised by RandomizeBatchNorm, so eval and train differ).
	Weights model.Weights
	N       int
	X       []float32 // N examples of Spec.Input, row-major
	Y       []int32   // N labels
	// EvalLogits are the model.eval() logits (running statistics), N ×
	// Classes; TrainLogits the model.train() ones (batch statistics).
	EvalLogits, TrainLogits []float64
	// Loss is the mean cross-entropy of TrainLogits against Y
	// (loss.CrossEntropyOnly); Grads its gradient with respect to every
	// parameter, by name, in train mode.
	Loss  float64
	Grads map[string][]float64
	// Running holds every buffer after that one train-mode forward:
	// what a Trainer.Step on this batch must leave in Model.Weights().
	Running map[string][]float64
}

// TorchGoldens returns PyTorch's results for each of GraphSpecs, in that
// order, from the files committed under testdata/torch. Each call
// returns fresh copies. It fails t if the files no longer match
// GraphSpecs (regenerate them: see TestTorchGoldens).
func TorchGoldens(t testing.TB) []TorchGolden {
	t.Helper()
	gs, err := loadTorchGoldens(torchFiles, GraphSpecs(t))
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

// loadTorchGoldens reads the goldens of specs from fsys (rooted above
// torchDir) and checks that each was made from that spec.
func loadTorchGoldens(fsys fs.FS, specs []model.Spec) ([]TorchGolden, error) {
	var out []TorchGolden
	for _, spec := range specs {
		g, err := loadTorchGolden(fsys, path.Join(torchDir, spec.Name))
		if err != nil {
			return nil, fmt.Errorf("backendtest: PyTorch goldens of %q: %w", spec.Name, err)
		}
		if !reflect.DeepEqual(g.Spec, spec) {
			return nil, fmt.Errorf("backendtest: the PyTorch goldens of %q were made from another spec than GraphSpecs' (regenerate them: go test ./backend/backendtest -run TestTorchGoldens -update)", spec.Name)
		}
		out = append(out, g)
	}
	return out, nil
}

func loadTorchGolden(fsys fs.FS, dir string) (TorchGolden, error) {
	var g TorchGolden
	raw, err := fs.ReadFile(fsys, path.Join(dir, "spec.json"))
	if err != nil {
		return g, err
	}
	if err := json.Unmarshal(raw, &g.Spec); err != nil {
		return g, fmt.Errorf("%s/spec.json: %w", dir, err)
	}
	read := func(name string) (*safetensors.File, error) {
		raw, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		f, err := safetensors.Read(strings.NewReader(string(raw)), int64(len(raw)))
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, name, err)
		}
		return f, nil
	}
	wf, err := read("weights.safetensors")
	if err != nil {
		return g, err
	}
	g.Weights = model.Weights{}
	for name, t := range wf.Tensors {
		d, err := t.Float32()
		if err != nil {
			return g, fmt.Errorf("%s weights %q: %w", dir, name, err)
		}
		g.Weights[name] = model.Tensor{Shape: t.Shape, Data: d}
	}
	if err := g.Spec.Check(g.Weights); err != nil {
		return g, fmt.Errorf("%s/weights.safetensors: %w", dir, err)
	}
	in, err := read("inputs.safetensors")
	if err != nil {
		return g, err
	}
	if g.X, err = in.Tensors["x"].Float32(); err != nil {
		return g, fmt.Errorf("%s inputs x: %w", dir, err)
	}
	y, err := in.Tensors["y"].Int64()
	if err != nil {
		return g, fmt.Errorf("%s inputs y: %w", dir, err)
	}
	g.N = len(y)
	for _, v := range y {
		g.Y = append(g.Y, int32(v))
	}
	if len(g.X) != g.N*model.Numel(g.Spec.Input) {
		return g, fmt.Errorf("%s: %d input values for %d examples of %v", dir, len(g.X), g.N, g.Spec.Input)
	}
	ex, err := read("expected.safetensors")
	if err != nil {
		return g, fmt.Errorf("%w (run testdata/torch/gen.py)", err)
	}
	f64 := func(name string, want int) ([]float64, error) {
		t, ok := ex.Tensors[name]
		if !ok {
			return nil, fmt.Errorf("%s/expected.safetensors has no %q", dir, name)
		}
		d, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("%s expected %q: %w", dir, name, err)
		}
		if len(d) != want {
			return nil, fmt.Errorf("%s expected %q has %d values, want %d", dir, name, len(d), want)
		}
		return d, nil
	}
	k := g.N * g.Spec.Classes
	if g.EvalLogits, err = f64("eval_logits", k); err != nil {
		return g, err
	}
	if g.TrainLogits, err = f64("train_logits", k); err != nil {
		return g, err
	}
	loss, err := f64("loss", 1)
	if err != nil {
		return g, err
	}
	g.Loss = loss[0]
	g.Grads, g.Running = map[string][]float64{}, map[string][]float64{}
	ps, _ := g.Spec.Params()
	for _, p := range ps {
		if g.Grads[p.Name], err = f64("grad/"+p.Name, model.Numel(p.Shape)); err != nil {
			return g, err
		}
	}
	bs, _ := g.Spec.Buffers()
	for _, b := range bs {
		if g.Running[b.Name], err = f64("running/"+b.Name, model.Numel(b.Shape)); err != nil {
			return g, err
		}
	}
	if want := len(ps) + len(bs) + 3; len(ex.Tensors) != want {
		return g, fmt.Errorf("%s/expected.safetensors has %d tensors, want %d (logits, loss, a gradient per parameter, each buffer)", dir, len(ex.Tensors), want)
	}
	return g, nil
}
