package backendtest

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/safetensors"
)

var update = flag.Bool("update", false, "rewrite testdata/torch from GraphSpecs and rerun gen.py (needs a python3 with torch; $PYTHON picks one)")

// goldenN is the batch size of the goldens: big enough for batch
// statistics of a batchnorm1d, small enough to keep the files small.
const goldenN = 4

// writeGoldenInputs writes what gen.py reads for spec into dir: the spec,
// weights (batchnorms randomised) and a batch.
func writeGoldenInputs(t *testing.T, spec model.Spec, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	raw, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spec.json"), append(raw, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(7)
	if err != nil {
		t.Fatal(err)
	}
	RandomizeBatchNorm(spec, w, 8)
	wf := &safetensors.File{Tensors: map[string]safetensors.Tensor{}}
	for name, v := range w {
		wf.Tensors[name] = safetensors.F32(v.Shape, v.Data)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "weights.safetensors"), wf); err != nil {
		t.Fatal(err)
	}
	x, y32, _ := Inputs(spec, goldenN, 9)
	y := make([]int64, len(y32))
	for i, v := range y32 {
		y[i] = int64(v)
	}
	in := &safetensors.File{Tensors: map[string]safetensors.Tensor{
		"x": safetensors.F32(append([]int{goldenN}, spec.Input...), x),
		"y": safetensors.I64([]int{goldenN}, y),
	}}
	if err := safetensors.WriteFile(filepath.Join(dir, "inputs.safetensors"), in); err != nil {
		t.Fatal(err)
	}
}

// torchPython finds a python3 that imports torch: $PYTHON, then python3
// on the PATH, then /usr/bin/python3 (Debian's python3-torch).
func torchPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("PYTHON"), "python3", "/usr/bin/python3"} {
		if p == "" {
			continue
		}
		if exec.Command(p, "-c", "import torch").Run() == nil {
			return p
		}
	}
	t.Fatal("-update needs a python3 that imports torch: install PyTorch or point $PYTHON at such a python")
	return ""
}

// TestTorchGoldens compares the float64 reference with PyTorch on every
// graph spec: eval and train logits, the cross-entropy loss, its gradient
// with respect to every parameter (central differences of the float64
// reference) and the running statistics after the train forward. PyTorch
// ran in float64, so the tolerances are tight.
//
// With -update it first rewrites the inputs from GraphSpecs and reruns
// gen.py; otherwise it reads the committed files.
func TestTorchGoldens(t *testing.T) {
	if *update {
		py := torchPython(t)
		var dirs []string
		for _, spec := range GraphSpecs(t) {
			dir := filepath.Join(torchDir, spec.Name)
			writeGoldenInputs(t, spec, dir)
			dirs = append(dirs, dir)
		}
		cmd := exec.Command(py, append([]string{filepath.Join(torchDir, "gen.py")}, dirs...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gen.py: %v\n%s", err, out)
		}
	}
	var gs []TorchGolden
	if *update {
		// Read the source tree, just rewritten: the embedded copy is the
		// one compiled in.
		var err error
		if gs, err = loadTorchGoldens(os.DirFS("."), GraphSpecs(t)); err != nil {
			t.Fatal(err)
		}
	} else {
		gs = TorchGoldens(t)
	}
	const (
		valRel, valAbs   = 1e-10, 1e-12 // float64 against float64: summation order only
		gradRel, gradAbs = 1e-6, 1e-9   // central differences, step 1e-6
	)
	for _, g := range gs {
		t.Run(g.Spec.Name, func(t *testing.T) {
			var worst maxDiff
			eval, err := ReferenceForward(g.Spec, g.Weights, g.X, g.N, nil)
			if err != nil {
				t.Fatal(err)
			}
			worst.check(t, "eval logits", eval, g.EvalLogits, valRel, valAbs)
			logits, _, running, err := ReferenceTrainLayers(g.Spec, g.Weights, g.X, g.N, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			worst.check(t, "train logits", logits, g.TrainLogits, valRel, valAbs)
			for name, want := range g.Running {
				worst.check(t, name, running[name], want, valRel, valAbs)
			}
			v, err := loss.CrossEntropyOnly.Compute64(logits, nil, g.Y, g.N, g.Spec.Classes, nil)
			if err != nil {
				t.Fatal(err)
			}
			worst.check(t, "loss", []float64{v.Total}, []float64{g.Loss}, valRel, valAbs)
			values := worst
			worst = maxDiff{}
			w64 := map[string][]float64{}
			for name, tw := range g.Weights {
				w64[name] = to64(tw.Data)
			}
			lossAt := func() float64 {
				r, err := reference64(g.Spec, w64, g.X, g.N, ReferenceOptions{Train: true})
				if err != nil {
					t.Fatal(err)
				}
				v, err := loss.CrossEntropyOnly.Compute64(r.Logits, nil, g.Y, g.N, g.Spec.Classes, nil)
				if err != nil {
					t.Fatal(err)
				}
				return v.Total
			}
			ps, _ := g.Spec.Params()
			for _, p := range ps {
				num := make([]float64, len(w64[p.Name]))
				for i := range num {
					const h = 1e-6
					w0 := w64[p.Name][i]
					w64[p.Name][i] = w0 + h
					up := lossAt()
					w64[p.Name][i] = w0 - h
					down := lossAt()
					w64[p.Name][i] = w0
					num[i] = (up - down) / (2 * h)
				}
				worst.check(t, "d loss / d "+p.Name, num, g.Grads[p.Name], gradRel, gradAbs)
			}
			t.Logf("largest difference to PyTorch: values %.3g (relative %.3g), gradients %.3g (relative %.3g)",
				values.abs, values.rel, worst.abs, worst.rel)
		})
	}
}

// maxDiff tracks the largest absolute and relative differences seen.
type maxDiff struct{ abs, rel float64 }

func (m *maxDiff) check(t *testing.T, what string, got, want []float64, rel, abs float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, PyTorch %d", what, len(got), len(want))
	}
	for i := range want {
		d := math.Abs(got[i] - want[i])
		m.abs = math.Max(m.abs, d)
		if s := math.Max(math.Abs(got[i]), math.Abs(want[i])); s > 0 {
			m.rel = math.Max(m.rel, d/s)
		}
		if !close(got[i], want[i], rel, abs) {
			t.Errorf("%s[%d] = %.17g, PyTorch %.17g", what, i, got[i], want[i])
		}
	}
}
