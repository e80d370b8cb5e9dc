package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-dev/distill/recipe"
)

// capture runs the CLI in-process and returns its exit code, stdout and stderr.
func capture(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	outF, _ := os.Create(filepath.Join(dir, "out"))
	errF, _ := os.Create(filepath.Join(dir, "err"))
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outF, errF
	code := execute(context.Background(), args)
	os.Stdout, os.Stderr = oldOut, oldErr
	outF.Close()
	errF.Close()
	o, _ := os.ReadFile(outF.Name())
	e, _ := os.ReadFile(errF.Name())
	return code, string(o), string(e)
}

func TestVersion(t *testing.T) {
	code, out, _ := capture(t, "version")
	if code != exitOK || !strings.Contains(out, "gorgonia") {
		t.Fatalf("version: exit %d, output %q", code, out)
	}
}

func TestValidateShippedRecipes(t *testing.T) {
	all, _ := filepath.Glob("../../recipes/*.yaml")
	if len(all) == 0 {
		t.Fatal("no recipes found")
	}
	// A recipe whose teacher file a documented command makes
	// (fashion-onnx-teacher.yaml, fashion-statedict-teacher.yaml)
	// validates once it is made; before, its only problem is that file.
	var paths []string
	for _, p := range all {
		r, err := recipe.Load(p)
		key, file := "teacher.onnx", ""
		if err == nil {
			file = r.Teacher.ONNX
			if r.Teacher.Safetensors != "" {
				key, file = "teacher.safetensors", r.Teacher.Safetensors
			}
		}
		if file == "" {
			paths = append(paths, p)
			continue
		}
		if _, err := os.Stat(file); err == nil {
			paths = append(paths, p)
			continue
		}
		code, out, errOut := capture(t, "validate", p)
		if code != exitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, key+": ") || !strings.Contains(errOut, "does not exist") {
			t.Errorf("validate %s without its teacher file: exit %d, stdout %q, stderr %q; want only the missing %s", p, code, out, errOut, key)
		}
	}
	code, out, errOut := capture(t, append([]string{"validate"}, paths...)...)
	if code != exitOK {
		t.Errorf("validate: exit %d\n%s%s", code, out, errOut)
	}
	if n := strings.Count(out, ": ok"); n != len(paths) {
		t.Errorf("validate printed %d ok lines for %d recipes:\n%s", n, len(paths), out)
	}
}

func TestValidateBadRecipe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("name: bad\nteacher:\n  model:\n    hidden: [-3]\nstudents:\n  - name: s\n    distill:\n      temperature: -1\n    colour: blue\n"), 0o644)
	good := "../../recipes/synthetic-tiny.yaml"
	code, out, errOut := capture(t, "validate", p, good)
	if !strings.Contains(out, good+": ok") {
		t.Errorf("the valid recipe after a bad one is not reported ok: %q", out)
	}
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitUsage, errOut)
	}
	for _, want := range []string{"bad.yaml:4", "temperature", "colour"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not mention %q:\n%s", want, errOut)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"run"}, {"run", "/does/not/exist.yaml"}, {"run", "--no-such-flag", "x"}} {
		if code, _, _ := capture(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestRun(t *testing.T) {
	out := t.TempDir()
	code, stdout, errOut := capture(t, "run", "../../recipes/synthetic-tiny.yaml", "--out", out, "--quiet")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if !strings.Contains(stdout, "| teacher |") {
		t.Errorf("stdout lacks the report table:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(out, "report.json")); err != nil {
		t.Error(err)
	}
	if code, _, _ := capture(t, "run", "../../recipes/synthetic-tiny.yaml", "--out", out, "--backend", "nope"); code != exitUsage {
		t.Errorf("unknown backend: exit %d", code)
	}
}

func TestQuantizeCommand(t *testing.T) {
	out := t.TempDir()
	if code, _, errOut := capture(t, "run", "../../recipes/synthetic-tiny.yaml", "--out", out, "--quiet"); code != exitOK {
		t.Fatal(errOut)
	}
	code, stdout, errOut := capture(t, "quantize", filepath.Join(out, "models", "teacher.json"), "--dataset", "synthetic", "--method", "mse", "--max-drop", "0.01")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"float32  accuracy", "int8     accuracy", "teacher-int8.json"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "models", "teacher-int8.safetensors")); err != nil {
		t.Error(err)
	}
	for _, m := range []string{"teacher.json", "teacher-int8.json"} {
		dst := filepath.Join(out, m+".onnx")
		if code, stdout, errOut := capture(t, "export", filepath.Join(out, "models", m), dst); code != exitOK || !strings.Contains(stdout, "wrote") {
			t.Fatalf("export %s: exit %d %s %s", m, code, stdout, errOut)
		}
		if fi, err := os.Stat(dst); err != nil || fi.Size() == 0 {
			t.Errorf("export %s: %v", m, err)
		}
	}
}
