package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/distill-dev/distill/report"
)

// runCompareCmd runs distill compare in-process (through newCompareCmd,
// so that it works before the command is registered on the root).
func runCompareCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := newCompareCmd()
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&errOut)
	c.SilenceUsage, c.SilenceErrors = true, true
	err = c.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

const fixedRuns = "../../compare/testdata/"

func TestCompareCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cmp")
	stdout, stderr, err := runCompareCmd(t, fixedRuns+"mnist-cpu", fixedRuns+"mnist-gpu", fixedRuns+"synthetic-old", "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	// The same comparison as the compare package's golden files.
	want, _ := os.ReadFile(fixedRuns + "three.md.golden")
	if stdout != string(want) {
		t.Errorf("stdout differs from %sthree.md.golden:\n%s", fixedRuns, stdout)
	}
	md, _ := os.ReadFile(filepath.Join(out, "compare.md"))
	page, _ := os.ReadFile(filepath.Join(out, "compare.html"))
	wantPage, _ := os.ReadFile(fixedRuns + "three.html.golden")
	if string(md) != string(want) || string(page) != string(wantPage) {
		t.Error("compare.md or compare.html differ from the golden files")
	}
	if !strings.Contains(stderr, "compare.html") {
		t.Errorf("stderr %q does not say where the page is", stderr)
	}
}

func TestCompareBaselineAndReprice(t *testing.T) {
	// A baseline not among the runs is added to them.
	stdout, _, err := runCompareCmd(t, fixedRuns+"mnist-cpu", "--baseline", fixedRuns+"mnist-gpu", "--title", "GPU vs CPU")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# GPU vs CPU", "Savings vs mnist-gpu/teacher", "| **mnist-gpu** | **teacher** |", "| mnist-cpu | teacher | teacher |"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	// Repricing with a table of one's own.
	prices := filepath.Join(t.TempDir(), "prices.yaml")
	os.WriteFile(prices, []byte("currency: USD\nmachines:\n  box:\n    description: my box\n    on_demand: 3.6\n"), 0o644)
	stdout, _, err = runCompareCmd(t, fixedRuns+"mnist-cpu", "--prices", prices, "--machine", "box", "--latency-target", "10ms")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "box ($3.60/h)") || !strings.Contains(stdout, "**10.0 ms**") {
		t.Errorf("not repriced:\n%s", stdout)
	}
}

func TestCompareUsageErrors(t *testing.T) {
	badPrices := filepath.Join(t.TempDir(), "prices.yaml")
	os.WriteFile(badPrices, []byte("currency: USD\nmachines:\n  box:\n    on_demand: 1\n    colour: red\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "at least one run directory"},
		{[]string{t.TempDir()}, "has no report.json"},
		{[]string{fixedRuns + "mnist-cpu", "--machine", "cray-1"}, `no machine "cray-1"`},
		{[]string{fixedRuns + "mnist-cpu", "--prices", badPrices}, "field colour not found"},
		{[]string{fixedRuns + "mnist-cpu", "--prices", filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
		{[]string{fixedRuns + "mnist-cpu", "--latency-target", "-1s"}, "negative"},
		{[]string{fixedRuns + "mnist-cpu", "--requests-per-day", "-5"}, "--requests-per-day -5 is negative"},
		{[]string{fixedRuns + "mnist-cpu", "--baseline", fixedRuns + "synthetic-old"}, "has no teacher with a serving cost"},
	} {
		_, _, err := runCompareCmd(t, tc.args...)
		var ue usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("compare %v: error %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestCompareRealRun checks the report a run of the pipeline just wrote
// against the schema, and compares it.
func TestCompareRealRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	if code, _, errOut := capture(t, "run", "../../recipes/synthetic-tiny.yaml", "--out", dir, "--quiet"); code != exitOK {
		t.Fatalf("run: exit %d\n%s", code, errOut)
	}
	// What the pipeline wrote matches report/schema.json.
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := report.CheckSchema(b); err != nil {
		t.Error(err)
	}
	out := filepath.Join(t.TempDir(), "cmp")
	stdout, _, err := runCompareCmd(t, dir, fixedRuns+"mnist-cpu", "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	// (Bold when the run is the baseline: once the pipeline measures
	// serving cost, its teacher is the first priced one.)
	row := regexp.MustCompile(`\| (\*\*)?tiny(\*\*)? \| (\*\*)?teacher(\*\*)? \|`)
	if !row.MatchString(stdout) || !strings.Contains(stdout, "synthetic-tiny") {
		t.Errorf("the new run is missing:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(out, "compare.html")); err != nil {
		t.Error(err)
	}
}
