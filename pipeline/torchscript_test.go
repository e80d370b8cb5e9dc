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
