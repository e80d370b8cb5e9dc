//go:build torch

package torch

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
)

// pythonTorch returns a Python interpreter that can import torch:
// $DISTILL_TORCH_PYTHON, python3 or /usr/bin/python3 (Debian's
// python3-torch, when python3 on PATH is another interpreter).
func pythonTorch(t *testing.T) string {
	t.Helper()
	cands := []string{"python3", "/usr/bin/python3"}
	if p := os.Getenv("DISTILL_TORCH_PYTHON"); p != "" {
		cands = []string{p}
	}
	for _, p := range cands {
		if exec.Command(p, "-c", "import torch").Run() == nil {
			return p
		}
	}
	t.Skipf("no Python with torch among %v (apt-get install -y python3-torch)", cands)
	return ""
}

// scriptModules is run by Python: it scripts an MLP and a CNN whose
// submodules are named as model.MLP and model.CNN name their layers, saves
// them with an input batch and PyTorch's logits for it as raw float32.
const scriptModules = `
import sys, array, torch
import torch.nn as nn
import torch.nn.functional as F

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 16)
        self.fc2 = nn.Linear(16, 5)
    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))

class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.fc1 = nn.Linear(3 * 4 * 4, 6)
        self.fc2 = nn.Linear(6, 4)
    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))

class BN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 4)
    def forward(self, x):
        return self.fc(F.relu(self.bn1(self.conv1(x))).mean((2, 3)))

def dump(t, path):
    with open(path, "wb") as f:
        array.array("f", t.detach().flatten().tolist()).tofile(f)

torch.manual_seed(0)
out = sys.argv[1]
bn = BN()
bn(torch.randn(5, 1, 8, 8))  # a training-mode pass: non-trivial running statistics
for name, net, shape in (("mlp", MLP(), (7, 20)), ("cnn", CNN(), (3, 1, 8, 8)), ("bn", bn, (3, 1, 8, 8))):
    m = torch.jit.script(net.eval())
    m.save(f"{out}/{name}.pt")
    x = torch.randn(*shape)
    with torch.no_grad():
        y = m(x)
    dump(x, f"{out}/{name}.x")
    dump(y, f"{out}/{name}.y")
`

func readFloats(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func TestTorchScript(t *testing.T) {
	py := pythonTorch(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "script.py")
	if err := os.WriteFile(script, []byte(scriptModules), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, script, dir).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", py, script, err, out)
	}
	mlp, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{20}, Hidden: []int{16}, Classes: 5, Activation: model.KindTanh})
	if err != nil {
		t.Fatal(err)
	}
	cnn, err := model.CNN(model.CNNConfig{Name: "cnn", Input: []int{1, 8, 8}, Conv: []model.ConvBlock{{Channels: 3, Kernel: 3, Padding: 1, Pool: 2}}, Hidden: []int{6}, Classes: 4})
	if err != nil {
		t.Fatal(err)
	}
	b := openTest(t)
	for _, spec := range []model.Spec{mlp, cnn} {
		t.Run(spec.Name, func(t *testing.T) {
			x := readFloats(t, filepath.Join(dir, spec.Name+".x"))
			want := readFloats(t, filepath.Join(dir, spec.Name+".y"))
			n := len(x) / model.Numel(spec.Input)
			ts, err := LoadTorchScript(filepath.Join(dir, spec.Name+".pt"), spec, testDevice())
			if err != nil {
				t.Fatal(err)
			}
			defer ts.Close()
			got := make([]float32, n*spec.Classes)
			if err := ts.Forward(x, n, got); err != nil {
				t.Fatal(err)
			}
			if d, i := maxDiff(got, f64(want)); d > tol(1e-5) {
				t.Errorf("TorchScript logit %d = %v, PyTorch %v", i, got[i], want[i])
			}
			// Its parameters load into a spec model that computes the same.
			w, err := ts.Weights()
			if err != nil {
				t.Fatal(err)
			}
			m := load(t, b, spec, w)
			if err := m.Forward(x, n, got); err != nil {
				t.Fatal(err)
			}
			if d, i := maxDiff(got, f64(want)); d > tol(1e-5) {
				t.Errorf("spec model with the TorchScript weights: logit %d = %v, PyTorch %v", i, got[i], want[i])
			}
		})
	}
	// A module with buffers runs; its weights cannot be read through
	// gotch, and the error says how to get them.
	t.Run("buffers", func(t *testing.T) {
		spec := model.Spec{Name: "bn", Input: []int{1, 8, 8}, Classes: 4, Layers: []model.Layer{
			{Name: "conv1", Kind: model.KindConv2D, Out: 3, Kernel: 3, Padding: 1, NoBias: true},
			{Name: "bn1", Kind: model.KindBatchNorm},
			{Name: "act1", Kind: model.KindReLU},
			{Name: "pool", Kind: model.KindGlobalAvgPool},
			{Name: "fc", Kind: model.KindLinear, Out: 4},
		}}
		ts, err := LoadTorchScript(filepath.Join(dir, "bn.pt"), spec, testDevice())
		if err != nil {
			t.Fatal(err)
		}
		defer ts.Close()
		x := readFloats(t, filepath.Join(dir, "bn.x"))
		want := readFloats(t, filepath.Join(dir, "bn.y"))
		got := make([]float32, len(want))
		if err := ts.Forward(x, 3, got); err != nil {
			t.Fatal(err)
		}
		if d, i := maxDiff(got, f64(want)); d > tol(1e-5) {
			t.Errorf("TorchScript logit %d = %v, PyTorch %v", i, got[i], want[i])
		}
		if _, err := ts.Weights(); err == nil || !strings.Contains(err.Error(), "model.LoadSafetensorsWeights") {
			t.Errorf("Weights of a module with batchnorm buffers: err = %v, want the way to its state dict", err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		wrong := mlp
		wrong.Classes = 7
		wrong.Layers = nil
		if _, err := LoadTorchScript(filepath.Join(dir, "mlp.pt"), wrong, testDevice()); err == nil || !strings.Contains(err.Error(), "[1 5]") {
			t.Errorf("a spec with the wrong number of classes: err = %v", err)
		}
		if _, err := LoadTorchScript(filepath.Join(dir, "missing.pt"), mlp, testDevice()); err == nil {
			t.Error("a missing file: no error")
		}
		if err := os.WriteFile(filepath.Join(dir, "junk.pt"), []byte("not a module"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadTorchScript(filepath.Join(dir, "junk.pt"), mlp, testDevice()); err == nil {
			t.Error("a file that is not TorchScript: no error")
		}
		ts, err := LoadTorchScript(filepath.Join(dir, "mlp.pt"), mlp, testDevice())
		if err != nil {
			t.Fatal(err)
		}
		in, out := make([]float32, 2*20), make([]float32, 2*5)
		if err := ts.Forward(in, 0, out); err == nil || !strings.Contains(err.Error(), "Forward of 0 examples") {
			t.Errorf("Forward of 0 examples: err = %v", err)
		}
		if err := ts.Forward(in[:39], 2, out); err == nil || !strings.Contains(err.Error(), "needs 40 inputs and room for 10 logits, got 39 and 10") {
			t.Errorf("Forward with a short input: err = %v", err)
		}
		if err := ts.Forward(in, 2, out[:9]); err == nil || !strings.Contains(err.Error(), "got 40 and 9") {
			t.Errorf("Forward with short logits: err = %v", err)
		}
		if err := ts.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := ts.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}
