package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/reliability.md from the observed behaviour")

// badInput is one class of bad input: how to make it, and what the user
// must see.
type badInput struct {
	class string
	// setup writes files into dir and returns the CLI arguments.
	setup    func(t *testing.T, dir string) []string
	wantCode int
	wantMsg  string // a substring of stderr
}

const tinyRecipe = `name: r
serving: {measure: false}
data:
  dataset: synthetic
  synthetic: {train: 64, test: 32, shape: [4], classes: 2}
training: {epochs: 1, batch_size: 16}
teacher:
  model: {hidden: [4]}
students:
  - name: s
    model: {hidden: [2]}
`

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func recipeWith(t *testing.T, dir, content string) []string {
	return []string{"run", write(t, filepath.Join(dir, "recipe.yaml"), content), "--out", filepath.Join(dir, "out"), "--quiet"}
}

var badInputs = []badInput{
	{"malformed YAML", func(t *testing.T, d string) []string {
		return recipeWith(t, d, "name: r\nteacher: [unclosed\n")
	}, exitUsage, "recipe.yaml:2"},
	{"unknown key", func(t *testing.T, d string) []string {
		return recipeWith(t, d, strings.Replace(tinyRecipe, "training:", "trainig:", 1))
	}, exitUsage, "did you mean"},
	{"wrong type", func(t *testing.T, d string) []string {
		return recipeWith(t, d, strings.Replace(tinyRecipe, "epochs: 1", "epochs: three", 1))
	}, exitUsage, "training.epochs"},
	{"out-of-range value", func(t *testing.T, d string) []string {
		return recipeWith(t, d, tinyRecipe+"    distill: {temperature: -1}\n")
	}, exitUsage, "students[0].distill.temperature"},
	{"several problems at once", func(t *testing.T, d string) []string {
		return recipeWith(t, d, strings.Replace(strings.Replace(tinyRecipe, "epochs: 1", "epochs: 0", 1), "hidden: [2]", "hidden: [-2]", 1))
	}, exitUsage, "training.epochs"},
	{"missing recipe file", func(t *testing.T, d string) []string {
		return []string{"run", filepath.Join(d, "nope.yaml")}
	}, exitUsage, "nope.yaml"},
	{"missing dataset directory", func(t *testing.T, d string) []string {
		return recipeWith(t, d, "data: {dataset: mnist, dir: "+filepath.Join(d, "no-such-dir")+"}\nteacher: {model: {hidden: [4]}}\nstudents: [{name: s, model: {hidden: [2]}}]\n")
	}, exitUsage, "--data-dir"},
	{"corrupt dataset file", func(t *testing.T, d string) []string {
		for _, f := range []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"} {
			write(t, filepath.Join(d, "mnist", f), "garbage")
		}
		return recipeWith(t, d, "data: {dataset: mnist, dir: mnist}\nteacher: {model: {hidden: [4]}}\nstudents: [{name: s, model: {hidden: [2]}}]\n")
	}, exitFailed, "train-images-idx3-ubyte"},
	{"missing teacher checkpoint", func(t *testing.T, d string) []string {
		return recipeWith(t, d, strings.Replace(tinyRecipe, "  model: {hidden: [4]}\n", "  checkpoint: teacher.json\n", 1))
	}, exitUsage, "teacher.json"},
	{"corrupt teacher weights", func(t *testing.T, d string) []string {
		write(t, filepath.Join(d, "teacher.safetensors"), "\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
		return recipeWith(t, d, strings.Replace(tinyRecipe, "  model: {hidden: [4]}\n", "  checkpoint: teacher.safetensors\n", 1))
	}, exitUsage, "teacher.safetensors"},
	{"teacher that does not fit the dataset", func(t *testing.T, d string) []string {
		// Train a teacher on 4 inputs, then use it on a dataset of 9.
		out := filepath.Join(d, "first")
		if code, _, errOut := capture(t, "run", write(t, filepath.Join(d, "first.yaml"), tinyRecipe), "--out", out, "--quiet"); code != 0 {
			t.Fatalf("first run: %s", errOut)
		}
		r := strings.Replace(tinyRecipe, "shape: [4]", "shape: [9]", 1)
		r = strings.Replace(r, "  model: {hidden: [4]}\n", "  checkpoint: "+filepath.Join(out, "models", "teacher.json")+"\n", 1)
		return recipeWith(t, d, r)
	}, exitUsage, "shape"},
	{"loss becomes NaN/Inf", func(t *testing.T, d string) []string {
		return recipeWith(t, d, strings.Replace(tinyRecipe, "batch_size: 16}", "batch_size: 16, optimizer: sgd, lr: 1.0e+30}", 1))
	}, exitFailed, "not finite"},
	{"teacher whose outputs overflow float32", func(t *testing.T, d string) []string {
		return recipeWith(t, d, strings.Replace(tinyRecipe, "  model: {hidden: [4]}\n", "  checkpoint: "+hugeTeacher(t, d)+"\n", 1))
	}, exitFailed, "outputs must be finite"},
	{"run directory is a file", func(t *testing.T, d string) []string {
		args := recipeWith(t, d, tinyRecipe)
		write(t, filepath.Join(d, "out"), "a file, not a directory")
		return args
	}, exitFailed, "out"},
	{"unknown backend", func(t *testing.T, d string) []string {
		return append(recipeWith(t, d, tinyRecipe), "--backend", "tensorflow")
	}, exitUsage, "must be one of gorgonia, torch"},
	{"CUDA asked of the pure-Go backend", func(t *testing.T, d string) []string {
		return append(recipeWith(t, d, tinyRecipe), "--device", "cuda")
	}, exitFailed, "CPU only"},
}

// TestBadInput runs every class of bad input through the CLI: each must
// exit with its documented code and a message that names the problem,
// never panic, and leave no report behind. With -update-docs it rewrites
// docs/reliability.md from what it saw.
func TestBadInput(t *testing.T) {
	var doc bytes.Buffer
	doc.WriteString(docHeader)
	for _, bi := range badInputs {
		t.Run(bi.class, func(t *testing.T) {
			dir := t.TempDir()
			args := bi.setup(t, dir)
			code, _, errOut := capture(t, args...)
			if strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine ") {
				t.Fatalf("panicked:\n%s", errOut)
			}
			if code != bi.wantCode {
				t.Errorf("exit code %d, want %d\n%s", code, bi.wantCode, errOut)
			}
			if !strings.Contains(errOut, bi.wantMsg) {
				t.Errorf("stderr lacks %q:\n%s", bi.wantMsg, errOut)
			}
			if _, err := os.Stat(filepath.Join(dir, "out", "report.json")); err == nil {
				t.Error("a failed run left a report.json")
			}
			msg := strings.TrimSpace(strings.ReplaceAll(errOut, dir, "…"))
			msg = strings.ReplaceAll(msg, "\n", "<br>")
			msg = strings.ReplaceAll(msg, "|", "\\|")
			fmt.Fprintf(&doc, "| %s | `%s` | %s |\n", bi.class, msg, codeName(code))
		})
	}
	doc.WriteString(docFooter)
	path := filepath.Join("..", "..", "docs", "reliability.md")
	if *updateDocs {
		if err := os.WriteFile(path, doc.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(old, doc.Bytes()) {
		t.Errorf("docs/reliability.md is out of date: run go test ./cmd/distill -run TestBadInput -update-docs")
	}
}

func codeName(c int) string {
	switch c {
	case exitUsage:
		return "2 (invalid input)"
	case exitFailed:
		return "1 (run failed)"
	case exitInterrupted:
		return "130 (interrupted)"
	}
	return fmt.Sprint(c)
}

const docHeader = `# Reliability

## Exit codes

| code | meaning |
|---|---|
| 0 | success |
| 1 | the run failed (bad data or model file, NaN loss, I/O error); finished stages are kept |
| 2 | invalid usage or recipe: nothing was run |
| 130 | interrupted by SIGINT or SIGTERM: a checkpoint was saved; run the same command to resume |

## Preemption and crashes

Every model's training saves a checkpoint (weights, optimizer state, position
in the data order, with a SHA-256) under ` + "`<run>/checkpoints/`" + ` every
` + "`checkpoint.every_seconds`" + ` (default 60) and/or ` + "`checkpoint.every_steps`" + `, and on
SIGINT/SIGTERM. Files are written atomically (temporary file, fsync, rename), the
previous checkpoint is kept, and a damaged newest one is detected by its checksum
(see Checkpoint integrity) and skipped with a warning. Finished models are
recorded in ` + "`<run>/stages/`" + ` with a key of everything that determined them; a
rerun skips them. Dropout masks and the data order are drawn from (seed, step)
and (seed, epoch), so a resumed run ends with exactly the metrics of an
uninterrupted one on the CPU:
` + "`TestKillAndResume`" + ` (cmd/distill) kills a real ` + "`distill run`" + ` with SIGKILL at
10+ random moments and compares the reports; ` + "`TestSIGTERMLeavesCheckpoint`" + `
checks the SIGTERM path.

## Bad input

Generated by ` + "`go test ./cmd/distill -run TestBadInput -update-docs`" + `, which
runs each case through the CLI and checks that it exits with the code shown,
prints the message shown, does not panic, and leaves no report behind.

| input | what the user sees | exit code |
|---|---|---|
`

const docFooter = `
## Files are never trusted

Recipes and model files never execute code: recipes are data (YAML decoded into
fixed types), models are safetensors (a JSON header and raw numbers) plus a JSON
spec. Every reader (IDX, safetensors, model files, INT8 model files, checkpoints,
transfer sets, recipes) bounds its allocations and is fuzzed (` + "`.ci/fuzz`" + ` runs
every fuzz target in CI). Student names are checked to be plain file names, so
every output stays under the run directory.

## Checkpoint integrity

A checkpoint (format ` + "`distill.checkpoint/v2`" + `) is a safetensors file whose
SHA-256 covers everything a resume reads: the position metadata exactly as stored
(run key, step, epoch, batch, the running loss sum of the current epoch, the
finished epochs' mean losses, the optimizer's step count) and every tensor's name,
dtype, shape and bytes (weights, optimizer moments). There is no other state to
cover: dropout masks and the data order are functions of (seed, step) and (seed,
epoch), and the seed is part of the run key. So an edited ` + "`\"batch\"`" + ` (one flipped
bit can turn 182 into 187) is caught like a flipped weight: the checkpoint is
skipped with a warning, the previous one is used, and if that fails too the model
trains from the start. Checkpoints of format v1, whose checksum covered the tensors
only, are skipped the same way with a warning naming the format: their position
cannot be trusted, and a checkpoint only ever saves one interrupted training run.
A checkpoint that passes its checksum but names a position the run never reaches
is an error asking to delete it, not a resume from somewhere else.

## Non-finite values

A NaN or infinity is reported where it arises, naming the model and the first bad
row, rather than surfacing later as a NaN loss blamed on the learning rate, as a
panic, or as a file of garbage. A teacher whose weights are finite but so large
that its activations overflow float32 is the usual cause.

- Training loop: the teacher's logits and layer outputs are checked every batch
  (` + "`teacher \"t\" gave logit 0 = +Inf for training example 42`" + `); an ensemble names
  the member at fault.
- Transfer sets: building refuses non-finite teacher outputs, and reading refuses
  stored ones even behind valid checksums, as corruption naming teacher and row.
- ` + "`loss.Objective.Compute`" + ` and feature terms return an error for a non-finite
  teacher value, naming its row, where PyTorch returns NaN: a library caller learns
  which input is bad. A non-finite loss from finite inputs is still
  ` + "`loss is not finite … lower the learning rate`" + `.
- Evaluation: non-finite logits are an error naming the model and the example;
  metrics never bin a NaN confidence.
- Quantization: calibration checks the inputs, every layer's output and the
  logits, and fails naming the model, example and layer before anything is
  written: ` + "`distill quantize`" + ` leaves no INT8 files behind.
`
