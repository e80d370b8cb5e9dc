//go:build torch

package pipeline_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/distill-dev/distill/backend/torch"
	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
)

// TestTorchScriptTeacher is the "teacher trained in PyTorch" case: a
// module trained and scripted by PyTorch is loaded as the teacher of a
// recipe (marked trusted) and a student is distilled from it.
func TestTorchScriptTeacher(t *testing.T) {
	py := ""
	for _, c := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(c, "-c", "import torch").Run() == nil {
			py = c
			break
		}
	}
	if py == "" {
		t.Skip("no Python with torch (apt-get install -y python3-torch)")
	}
	dir := t.TempDir()
	pt := filepath.Join(dir, "teacher.pt")
	// A synthetic-task MLP trained briefly in PyTorch on its own data: its
	// layers follow distill's naming (fc1, fc2) so model.MLP describes it.
	script := `
import sys, torch, torch.nn as nn
torch.manual_seed(0)
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 4)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))
torch.jit.script(MLP().eval()).save(sys.argv[1])
`
	// torch.jit.script reads the class's source: it must be in a file.
	src := filepath.Join(dir, "script.py")
	if err := os.WriteFile(src, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, src, pt).CombinedOutput(); err != nil {
		t.Fatalf("scripting the teacher: %v\n%s", err, out)
	}
	y := `
name: ts
backend: torch
device: cpu
data:
  dataset: synthetic
  synthetic: {train: 128, test: 64, shape: [16], classes: 4}
training: {epochs: 1, batch_size: 32}
teacher:
  model: {hidden: [32]}
  torchscript: ` + pt + `
  trusted: TRUSTED
students:
  - name: s
    model: {hidden: [8]}
    baseline: false
serving: {measure: false}
`
	if _, err := recipe.Parse([]byte(strings.Replace(y, "TRUSTED", "false", 1)), ""); err == nil || !strings.Contains(err.Error(), "trusted") {
		t.Fatalf("an untrusted TorchScript teacher was accepted: %v", err)
	}
	r, err := recipe.Parse([]byte(strings.Replace(y, "TRUSTED", "true", 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Models) != 2 || rep.Models[0].Name != "teacher" || rep.Models[1].Agreement <= 0 {
		t.Fatalf("report: %+v", rep.Models)
	}
}

// TestTorchScriptTeacherAnyArchitecture loads a TorchScript ResNet
// without describing it (no teacher.model): distill runs it for its
// logits only. Its accuracy and parameter count in the report are those
// of the same network loaded from its state_dict onto the described
// architecture, and a student is distilled from it.
func TestTorchScriptTeacherAnyArchitecture(t *testing.T) {
	fixtures, err := filepath.Abs(filepath.Join("..", "teacher", "testdata", "pytorch"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fixtures, "resnet.pt")); err != nil {
		t.Skipf("no PyTorch fixture: %v", err)
	}
	y := func(teacher string) string {
		return `
name: ts-any
backend: torch
device: cpu
seed: 4
data:
  dataset: synthetic
  synthetic: {train: 64, test: 64, shape: [1, 28, 28], classes: 10}
training: {epochs: 1, batch_size: 32}
teacher: ` + teacher + `
students:
  - name: s
    model: {hidden: [8]}
    baseline: false
serving: {measure: false}
quantize: {enabled: false}
`
	}
	run := func(teacher string) report.Model {
		t.Helper()
		r, err := recipe.Parse([]byte(y(teacher)), "")
		if err != nil {
			t.Fatal(err)
		}
		rep, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Models) != 2 || rep.Models[1].Method != "response" {
			t.Fatalf("report models %+v: want the teacher and a student distilled from it", rep.Models)
		}
		return rep.Models[0]
	}
	script := run("{torchscript: " + filepath.Join(fixtures, "resnet.pt") + ", trusted: true}")
	stateDict := run("{safetensors: " + filepath.Join(fixtures, "resnet.safetensors") + ", model: {type: resnet, stem: {channels: 8}, stages: [{channels: 8}, {channels: 16, stride: 2}]}}")
	if script.Accuracy != stateDict.Accuracy || script.Params != stateDict.Params || script.Params == 0 {
		t.Errorf("TorchScript teacher: accuracy %v, %d parameters; from its state_dict: %v, %d", script.Accuracy, script.Params, stateDict.Accuracy, stateDict.Params)
	}
	if !strings.HasSuffix(script.Path, "resnet.pt") {
		t.Errorf("TorchScript teacher's path %q: want its file", script.Path)
	}
}
