package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRecipe writes y as r.yaml in a new directory, with the files
// named in files (relative to it, empty), and loads it.
func writeRecipe(t *testing.T, y string, files ...string) (*Recipe, string) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Load(path)
	if err != nil {
		t.Fatalf("the recipe does not load: %v", err)
	}
	return r, dir
}

// oneProblem returns the only problem of err, failing otherwise.
func oneProblem(t *testing.T, err error) Problem {
	t.Helper()
	var re *Error
	if !errors.As(err, &re) || len(re.Problems) != 1 {
		t.Fatalf("got %v, want one problem", err)
	}
	return re.Problems[0]
}

func wantWords(t *testing.T, msg string, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
}

const checkpointRecipe = `
data: {dataset: synthetic}
teacher:
  checkpoint: ckpt/teacher.json
students:
  - model: {hidden: [16]}
`

// TestCheckFilesMissingCheckpoint is the case of a teacher checkpoint
// that does not exist: the problem names the key, the path as written,
// what it was resolved against and the absolute path.
func TestCheckFilesMissingCheckpoint(t *testing.T) {
	r, dir := writeRecipe(t, checkpointRecipe)
	p := oneProblem(t, r.CheckFiles())
	if p.Key != "teacher.checkpoint" || p.File != filepath.Join(dir, "r.yaml") {
		t.Errorf("problem at %q in %q, want teacher.checkpoint in the recipe file", p.Key, p.File)
	}
	wantWords(t, p.Message, `"ckpt/teacher.json"`, "resolved against the recipe's directory "+dir,
		filepath.Join(dir, "ckpt", "teacher.json"), "does not exist")
}

func TestCheckFilesCheckpointWeights(t *testing.T) {
	// The JSON file is there, its weights are not.
	r, dir := writeRecipe(t, checkpointRecipe, "ckpt/teacher.json")
	p := oneProblem(t, r.CheckFiles())
	wantWords(t, p.Message, filepath.Join(dir, "ckpt", "teacher.safetensors")+" does not exist")

	r, _ = writeRecipe(t, checkpointRecipe, "ckpt/teacher.json", "ckpt/teacher.safetensors")
	if err := r.CheckFiles(); err != nil {
		t.Errorf("both files there: %v", err)
	}
	// A .safetensors checkpoint carries its spec: no JSON file needed.
	r, _ = writeRecipe(t, strings.Replace(checkpointRecipe, "teacher.json", "teacher.safetensors", 1), "ckpt/teacher.safetensors")
	if err := r.CheckFiles(); err != nil {
		t.Errorf("a .safetensors checkpoint: %v", err)
	}
}

func TestCheckFilesOtherInputs(t *testing.T) {
	r, dir := writeRecipe(t, `
backend: torch
teacher:
  model: {hidden: [16]}
  torchscript: teacher.pt
  trusted: true
ensemble:
  - checkpoint: ens/t2
students:
  - model: {hidden: [16]}
data: {dir: idx}
serving: {prices: prices.yaml}
`)
	var re *Error
	if !errors.As(r.CheckFiles(), &re) {
		t.Fatal("no problems")
	}
	got := map[string]string{}
	for _, p := range re.Problems {
		got[p.Key] = p.Message
	}
	for key, words := range map[string][]string{
		"data.dir":               {`"idx"`, filepath.Join(dir, "idx"), "MNIST not found"},
		"teacher.torchscript":    {`"teacher.pt"`, "does not exist"},
		"ensemble[0].checkpoint": {`"ens/t2"`, filepath.Join(dir, "ens", "t2.json")},
		"serving.prices":         {`"prices.yaml"`, "does not exist"},
	} {
		msg, ok := got[key]
		if !ok {
			t.Errorf("no problem at %s; got %v", key, re.Problems)
			continue
		}
		wantWords(t, msg, words...)
	}
	if len(got) != 4 {
		t.Errorf("got %d problems, want 4: %v", len(got), re.Problems)
	}
}

func TestCheckFilesUnusedPrices(t *testing.T) {
	r, _ := writeRecipe(t, checkpointRecipe+"serving: {measure: false, prices: prices.yaml}\n", "ckpt/teacher.json", "ckpt/teacher.safetensors")
	if err := r.CheckFiles(); err != nil {
		t.Errorf("a price table that is not used: %v", err)
	}
}

func TestCheckFilesNotRegular(t *testing.T) {
	r, dir := writeRecipe(t, checkpointRecipe, "ckpt/teacher.json/x")
	p := oneProblem(t, r.CheckFiles())
	wantWords(t, p.Message, filepath.Join(dir, "ckpt", "teacher.json"), "is a directory, not a regular file")
}

// TestCheckFilesWorkingDirectory checks the message for paths that are
// not resolved against a recipe file: a recipe built in Go or parsed
// without a name.
func TestCheckFilesWorkingDirectory(t *testing.T) {
	r, err := Parse([]byte(checkpointRecipe), "")
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	p := oneProblem(t, r.CheckFiles())
	wantWords(t, p.Message, `"ckpt/teacher.json"`, "resolved against the working directory "+wd, filepath.Join(wd, "ckpt", "teacher.json"))

	// A path changed after Parse is no longer the recipe's.
	r, dir := writeRecipe(t, checkpointRecipe)
	r.Teacher.Checkpoint = "other.json"
	p = oneProblem(t, r.CheckFiles())
	wantWords(t, p.Message, "the working directory")
	if strings.Contains(p.Message, dir) {
		t.Errorf("message %q names the recipe's directory for a path set after Parse", p.Message)
	}

	abs := filepath.Join(dir, "abs.json")
	r.Teacher.Checkpoint = abs
	p = oneProblem(t, r.CheckFiles())
	wantWords(t, p.Message, `"`+abs+`"`, "does not exist")
}
