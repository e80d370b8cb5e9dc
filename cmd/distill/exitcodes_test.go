package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exitCase is one way to reach an exit code through the built CLI.
type exitCase struct {
	name string
	// args builds the arguments, writing any files into dir.
	args    func(t *testing.T, dir string) []string
	code    int
	wantMsg string // a substring of stderr
}

var exitCases = []exitCase{
	{"version", func(*testing.T, string) []string { return []string{"version"} }, exitOK, ""},
	{"corrupt model to quantize", func(t *testing.T, d string) []string {
		return []string{"quantize", write(t, filepath.Join(d, "m.json"), "{not a model")}
	}, exitFailed, "m.json"},
	{"corrupt model to export", func(t *testing.T, d string) []string {
		return []string{"export", write(t, filepath.Join(d, "m.json"), "{not a model"), filepath.Join(d, "m.onnx")}
	}, exitFailed, "m.json"},
	{"corrupt report to compare", func(t *testing.T, d string) []string {
		write(t, filepath.Join(d, "run", "report.json"), "{not a report")
		return []string{"compare", filepath.Join(d, "run")}
	}, exitFailed, "report.json"},
	{"mistyped command", func(*testing.T, string) []string { return []string{"runn"} }, exitUsage, `did you mean "run"`},
	{"unknown flag", func(*testing.T, string) []string { return []string{"run", "--no-such-flag", "x.yaml"} }, exitUsage, "no-such-flag"},
	{"invalid recipe", func(t *testing.T, d string) []string {
		return recipeWith(t, d, strings.Replace(tinyRecipe, "epochs: 1", "epochs: 0", 1))
	}, exitUsage, "training.epochs"},
	{"unknown calibration method", func(t *testing.T, d string) []string {
		return []string{"quantize", write(t, filepath.Join(d, "m.json"), "{not a model"), "--method", "median"}
	}, exitUsage, `--method "median"`},
	{"percentile out of range", func(t *testing.T, d string) []string {
		return []string{"quantize", write(t, filepath.Join(d, "m.json"), "{not a model"), "--method", "percentile", "--percentile", "20"}
	}, exitUsage, "--percentile 20"},
	{"dataset that needs recipe files", func(t *testing.T, d string) []string {
		return []string{"quantize", write(t, filepath.Join(d, "m.json"), "{not a model"), "--dataset", "images"}
	}, exitUsage, `--dataset "images": want one of mnist, fashion-mnist, synthetic, idx`},
	{"idx without its directory", func(t *testing.T, d string) []string {
		return []string{"quantize", write(t, filepath.Join(d, "m.json"), "{not a model"), "--dataset", "idx"}
	}, exitUsage, "--dataset idx needs --data-dir"},
	{"missing model to quantize", func(t *testing.T, d string) []string {
		return []string{"quantize", filepath.Join(d, "nope.json")}
	}, exitUsage, "nope.json"},
	{"missing model to export", func(t *testing.T, d string) []string {
		return []string{"export", filepath.Join(d, "nope.json"), filepath.Join(d, "m.onnx")}
	}, exitUsage, "nope.json"},
}

// TestExitCodes runs the built CLI once per case and checks each row of
// README.md's exit-code list has a case and every case its documented
// code. Interruption (130) is covered by TestInterruptExitCode.
func TestExitCodes(t *testing.T) {
	documented := readmeExitCodes(t)
	covered := map[int]bool{exitInterrupted: true} // TestInterruptExitCode
	bin := buildCLI(t)
	for _, c := range exitCases {
		covered[c.code] = true
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(bin, c.args(t, dir)...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.code {
				t.Errorf("exit code %d, want %d\n%s", code, c.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.wantMsg) {
				t.Errorf("stderr lacks %q:\n%s", c.wantMsg, stderr.String())
			}
		})
	}
	for _, code := range documented {
		if !covered[code] {
			t.Errorf("README.md documents exit code %d, but no test case exits with it", code)
		}
	}
	for code := range covered {
		if !slices.Contains(documented, code) {
			t.Errorf("exit code %d is tested but not documented in README.md", code)
		}
	}
}

// readmeExitCodes returns the codes of README.md's "Exit codes: 0
// success, 1 …" sentence.
func readmeExitCodes(t *testing.T) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "\n", " ")
	i := strings.Index(s, "Exit codes:")
	if i < 0 {
		t.Fatal(`README.md has no "Exit codes:" sentence`)
	}
	s = s[i:]
	if j := strings.Index(s, "."); j >= 0 {
		s = s[:j]
	}
	var codes []int
	for _, m := range regexp.MustCompile(`(?:^|[:,] )(\d+) `).FindAllStringSubmatch(s[len("Exit codes"):], -1) {
		c, _ := strconv.Atoi(m[1])
		codes = append(codes, c)
	}
	if len(codes) < 3 {
		t.Fatalf("could not read the exit codes from README.md: %q gives %v", s, codes)
	}
	return codes
}

// TestInterruptExitCode sends SIGINT (Ctrl-C) to a training run: it must
// exit 130 and say where the run will resume from.
func TestInterruptExitCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI")
	}
	bin := buildCLI(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "run", filepath.Join("testdata", "faults.yaml"), "--out", dir, "--quiet")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
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
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("after SIGINT: %v, want exit code %d\n%s", err, exitInterrupted, stderr.String())
	}
	for _, want := range []string{"interrupted", "teacher", "checkpoint", ck} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestExitCodeAfterSignal: after SIGINT/SIGTERM most errors are an
// interruption to resume, but a server that could not finish its requests
// in time has failed, and there is nothing to resume.
func TestExitCodeAfterSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		err  error
		want int
	}{
		{"training stopped", fmt.Errorf("teacher: %w", context.Canceled), exitInterrupted},
		{"any error after the signal", errors.New("x"), exitInterrupted},
		{"server shutdown timed out", shutdownError{fmt.Errorf("shutdown: %w", context.DeadlineExceeded)}, exitFailed},
	} {
		if got := exitCode(ctx, c.err); got != c.want {
			t.Errorf("%s: exit %d, want %d", c.name, got, c.want)
		}
	}
	if got := exitCode(context.Background(), usageError{errors.New("bad flag")}); got != exitUsage {
		t.Errorf("usage error: exit %d, want %d", got, exitUsage)
	}
}
