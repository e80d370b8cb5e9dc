package pipeline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/recipe"
)

// smallRecipe trains a tiny teacher and student on synthetic data,
// without quantization or serving measurements.
const smallRecipe = `
data: {dataset: synthetic, synthetic: {train: 256, test: 128}}
training: {epochs: 1, batch_size: 64}
teacher:
  model: {hidden: [16]}
students:
  - name: s
    model: {hidden: [8]}
    baseline: false
serving: {measure: false}
`

// loadIn writes y as r.yaml in a new directory and loads it.
func loadIn(t *testing.T, y string) (*recipe.Recipe, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// runRefused runs r, which must be refused before any work: it returns
// the error, after checking that no progress was reported.
func runRefused(t *testing.T, r *recipe.Recipe, opts pipeline.Options) error {
	t.Helper()
	var events []pipeline.Event
	opts.Progress = func(e pipeline.Event) { events = append(events, e) }
	_, err := pipeline.Run(context.Background(), r, opts)
	if err == nil {
		t.Fatal("the run succeeded")
	}
	if len(events) > 0 {
		t.Errorf("the run started work before failing: first event %+v", events[0])
	}
	return err
}

// TestRunMissingCheckpoint checks that a teacher checkpoint that does not
// exist fails the run before the data is loaded and before the run
// directory is made, with the message of distill validate.
func TestRunMissingCheckpoint(t *testing.T) {
	r, dir := loadIn(t, strings.Replace(smallRecipe, "model: {hidden: [16]}", "checkpoint: ckpt/teacher.json", 1))
	out := filepath.Join(dir, "run")
	err := runRefused(t, r, pipeline.Options{OutDir: out})
	var re *recipe.Error
	if !errors.As(err, &re) || len(re.Problems) != 1 || re.Problems[0].Key != "teacher.checkpoint" {
		t.Fatalf("error %v, want one problem at teacher.checkpoint", err)
	}
	for _, w := range []string{`"ckpt/teacher.json"`, "the recipe's directory " + dir, filepath.Join(dir, "ckpt", "teacher.json"), "does not exist"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run directory was made (%v)", err)
	}
	if cerr := pipeline.Check(r, pipeline.Options{}); cerr == nil || cerr.Error() != err.Error() {
		t.Errorf("Check = %v, want the run's error", cerr)
	}
}

// TestRunSizes checks that sizes that cannot fit fail at once, with the
// memory budget of Options, and leave no run directory.
func TestRunSizes(t *testing.T) {
	mem := recipe.Memory{Bytes: 1 << 30, Source: "the test allows 1.0 GiB"}
	for _, tc := range []struct{ name, from, to, key string }{
		{"hidden", "model: {hidden: [16]}", "model: {hidden: [1000000000000]}", "teacher.model"},
		{"serving batch", "serving: {measure: false}", "serving: {seconds: 0.01, batches: [1, 1000000000000]}", "serving.batches[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, dir := loadIn(t, strings.Replace(smallRecipe, tc.from, tc.to, 1))
			out := filepath.Join(dir, "run")
			err := runRefused(t, r, pipeline.Options{OutDir: out, Memory: mem})
			var re *recipe.Error
			if !errors.As(err, &re) || len(re.Problems) != 1 || re.Problems[0].Key != tc.key || !strings.Contains(err.Error(), "the test allows 1.0 GiB") {
				t.Fatalf("error %v, want one problem at %s against the budget", err, tc.key)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the run directory was made (%v)", err)
			}
			if err := pipeline.Check(r, pipeline.Options{Memory: mem}); err == nil {
				t.Error("Check accepts the recipe")
			}
		})
	}
}

// TestRunEvalBatchLargerThanTestSet checks that an evaluation batch far
// larger than the test set evaluates the set in one batch instead of
// allocating the batch, which ended in Go's fatal out-of-memory error
// after every model had trained.
func TestRunEvalBatchLargerThanTestSet(t *testing.T) {
	r, dir := loadIn(t, smallRecipe+"eval: {batch_size: 1000000000000}\n")
	if err := pipeline.Check(r, pipeline.Options{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	rep, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Models) != 2 || rep.Dataset.Test != 128 {
		t.Errorf("report of %d models on %d test examples, want 2 on 128", len(rep.Models), rep.Dataset.Test)
	}
}

// readOnlyDir returns a directory in which files cannot be created. Tests
// often run as root, whom permission bits do not stop: then it falls
// back to /proc/self, a directory in which the kernel lets no one
// create files.
func readOnlyDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	writable := func(dir string) bool {
		f, err := os.CreateTemp(dir, "probe")
		if err != nil {
			return false
		}
		f.Close()
		os.Remove(f.Name())
		return true
	}
	if !writable(dir) {
		return dir // permission bits apply
	}
	if fi, err := os.Stat("/proc/self"); err == nil && fi.IsDir() && !writable("/proc/self") {
		return "/proc/self"
	}
	t.Skip("no read-only directory available: running with permission overrides and no /proc")
	return ""
}

// TestRunOutDirNotWritable checks that a run directory that cannot be
// written fails the run before the teacher trains, naming it.
func TestRunOutDirNotWritable(t *testing.T) {
	r, dir := loadIn(t, smallRecipe)
	// A run directory under a regular file cannot be created, whoever
	// runs the test.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(file, "run")
	err := runRefused(t, r, pipeline.Options{OutDir: out})
	if !strings.Contains(err.Error(), "cannot create the run directory "+out) {
		t.Errorf("under a file: %v", err)
	}

	ro := readOnlyDir(t)
	err = runRefused(t, r, pipeline.Options{OutDir: ro})
	if !strings.Contains(err.Error(), "the run directory "+ro+" is not writable") || !strings.Contains(err.Error(), "--out") {
		t.Errorf("read-only: %v", err)
	}
}
