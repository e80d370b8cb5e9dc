package main

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// buildCLI compiles the distill binary once for the tests that run it as
// a separate process.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "distill")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type metrics struct {
	Name      string
	Accuracy  float64
	Errors    int
	Agreement float64
	ECE       float64
	Params    int
}

func readMetrics(t *testing.T, dir string) []metrics {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ Models []metrics }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r.Models
}

// TestKillAndResume kills a real `distill run` with SIGKILL at random
// moments, resumes it each time, and checks the finished run reports
// exactly the metrics of an uninterrupted one.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI many times")
	}
	bin := buildCLI(t)
	recipe := filepath.Join("testdata", "faults.yaml")
	run := func(dir string) *exec.Cmd {
		return exec.Command(bin, "run", recipe, "--out", dir, "--quiet")
	}

	ref := t.TempDir()
	start := time.Now()
	if out, err := run(ref).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	full := time.Since(start)
	want := readMetrics(t, ref)

	rng := rand.New(rand.NewPCG(1, 2))
	// Each attempt lives a random slice of a full run's time, so most are
	// killed part-way through some stage and the run advances in small
	// steps. A run that finishes is checked and a fresh one started, until
	// there have been at least 10 kills.
	kills := 0
	for round := 0; kills < 10 && round < 10; round++ {
		dir := t.TempDir()
		finished := false
		for attempt := 0; attempt < 100 && !finished; attempt++ {
			cmd := run(dir)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Duration((0.05 + 0.25*rng.Float64()) * float64(full))):
				cmd.Process.Signal(syscall.SIGKILL)
				err = <-done
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
				kills++
				continue
			}
			if err != nil {
				t.Fatalf("attempt %d: %v", attempt, err)
			}
			finished = true
		}
		if !finished {
			// On a machine much busier than during the reference run, a
			// stage without checkpoints can outlast every slice; the
			// kills so far still count, and the run is finished whole.
			if out, err := run(dir).CombinedOutput(); err != nil {
				t.Fatalf("round %d, finishing after 100 kills: %v\n%s", round, err, out)
			}
		}
		got := readMetrics(t, dir)
		if len(got) != len(want) {
			t.Fatalf("resumed run reports %d models, uninterrupted %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("round %d, model %s: %+v; uninterrupted: %+v", round, want[i].Name, got[i], want[i])
			}
		}
	}
	if kills < 10 {
		t.Fatalf("only %d kills", kills)
	}
	t.Logf("%d kills; every resumed run matched the uninterrupted one", kills)
}

// TestSIGTERMLeavesCheckpoint checks that SIGTERM (a spot preemption
// notice) saves a checkpoint and exits with code 130.
func TestSIGTERMLeavesCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI")
	}
	bin := buildCLI(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "run", filepath.Join("testdata", "faults.yaml"), "--out", dir, "--quiet")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the teacher is training (its first checkpoint exists).
	ck := filepath.Join(dir, "checkpoints", "teacher.ckpt")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ck); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no checkpoint appeared within 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before, _ := os.Stat(ck)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("after SIGTERM: %v, want exit code %d", err, exitInterrupted)
	}
	after, err := os.Stat(ck)
	if err != nil {
		t.Fatalf("no checkpoint after SIGTERM: %v", err)
	}
	if !after.ModTime().After(before.ModTime()) && after.Size() == before.Size() {
		t.Log("SIGTERM arrived right after a periodic checkpoint")
	}
}
