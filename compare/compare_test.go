package compare

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var fixed = []string{"testdata/mnist-cpu", "testdata/mnist-gpu", "testdata/synthetic-old"}

// golden compares got with the golden file, or rewrites it under -update.
func golden(t *testing.T, got []byte, path string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (run go test -update if the change is intended)", path)
		if len(got) < 20000 {
			t.Logf("got:\n%s", got)
		}
	}
}

func load(t *testing.T, paths ...string) []Run {
	t.Helper()
	runs, err := Load(paths...)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		paths []string
		o     Options
	}{
		{"three", fixed, Options{}},
		{"gpu-baseline", fixed, Options{Baseline: "testdata/mnist-gpu"}},
		{"old-only", []string{"testdata/synthetic-old"}, Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(load(t, tc.paths...), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, []byte(c.Markdown()), filepath.Join("testdata", tc.name+".md.golden"))
			page, err := c.HTML()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, page, filepath.Join("testdata", tc.name+".html.golden"))
			// Rendering is deterministic.
			again, _ := c.HTML()
			if string(again) != string(page) {
				t.Error("two renderings of the same comparison differ")
			}
		})
	}
}

func TestNew(t *testing.T) {
	c, err := New(load(t, fixed...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Baseline != "mnist-cpu" || c.Reference != "teacher" || c.Title != "Comparison of 3 runs" {
		t.Errorf("baseline %q/%q, title %q", c.Baseline, c.Reference, c.Title)
	}
	var got []string
	for _, r := range c.Rows {
		s := r.Run + "/" + r.Model.Name
		if r.Reference {
			s += " ref"
		}
		if r.Pareto {
			s += " ★"
		}
		if r.Savings != nil {
			s += " saves"
		}
		got = append(got, s)
	}
	// The CPU teacher is the reference, and is not on the frontier: the
	// GPU teacher is cheaper and more accurate. The INT8 student is
	// cheaper than the GPU student and less accurate, but only by 31
	// errors of 10,000, within noise (a 95% two-proportion test allows
	// about 47): it takes the GPU student's place. The old run has no
	// costs.
	want := []string{
		"mnist-cpu/teacher ref", "mnist-cpu/small saves", "mnist-cpu/small-baseline saves", "mnist-cpu/tiny ★ saves", "mnist-cpu/small-int8 ★ saves",
		"mnist-gpu/teacher ★ saves", "mnist-gpu/small saves",
		"synthetic-old/teacher", "synthetic-old/tiny",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows\n%q\nwant\n%q", got, want)
	}
	// Savings are against the baseline teacher's on-demand cost.
	ref := c.Rows[0].USDPerMillion()
	for _, r := range c.Rows {
		if r.Savings != nil {
			if want, _ := cost.SavingsPercent(ref, r.USDPerMillion()); *r.Savings != want {
				t.Errorf("%s/%s savings %v, want %v", r.Run, r.Model.Name, *r.Savings, want)
			}
		}
	}
}

func TestBaselineOption(t *testing.T) {
	c, err := New(load(t, fixed...), Options{Baseline: "mnist-gpu"}) // by name
	if err != nil {
		t.Fatal(err)
	}
	if c.Baseline != "mnist-gpu" || !c.Rows[5].Reference || c.Rows[0].Reference {
		t.Errorf("baseline %q", c.Baseline)
	}
	for _, tc := range []struct {
		baseline, want string
	}{
		{"testdata/synthetic-old", "baseline run synthetic-old has no teacher with a serving cost"},
		{"elsewhere", "baseline elsewhere is not one of the runs compared"},
	} {
		if _, err := New(load(t, fixed...), Options{Baseline: tc.baseline}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("baseline %s: error %v, want %q", tc.baseline, err, tc.want)
		}
	}
	// Without any priced teacher there are no savings, and no error.
	c, err = New(load(t, "testdata/synthetic-old"), Options{})
	if err != nil || c.Baseline != "" || c.Rows[1].Savings != nil {
		t.Errorf("no priced teacher: %v, %+v", err, c)
	}
}

func TestReprice(t *testing.T) {
	prices, err := cost.ParsePrices("mine", []byte("currency: USD\nmachines:\n  box:\n    on_demand: 3.6\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(load(t, fixed...), Options{Reprice: &cost.Options{Prices: prices, Machine: "box"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Rows[:7] {
		k := r.Model.Cost
		// $3.60 an hour is $1 per million requests at 1,000 requests/s.
		if want := 1000 / k.RequestsPerSecond; !near(k.USDPerMillion.OnDemand, want) || k.USDPerMillion.Spot != 0 {
			t.Errorf("%s/%s: %+v, want $%v per million", r.Run, r.Model.Name, k.USDPerMillion, want)
		}
	}
	if c.Runs[0].Report.Price.Machine != "box" || c.Rows[7].Model.Cost != nil {
		t.Error("not repriced")
	}
	if _, err := New(load(t, fixed...), Options{Reprice: &cost.Options{Prices: prices, Machine: "nope"}}); err == nil || !strings.Contains(err.Error(), `price run mnist-cpu: cost: price table mine has no machine "nope"`) {
		t.Errorf("unknown machine: %v", err)
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-12*b && -d < 1e-12*b }

// TestParetoFrontierNoise checks the frontier with noise: differences
// within the cost ranges or the accuracy test are ties, so neither of
// two models alike on both axes takes the ★ from the other, while a
// model clearly better on one axis and alike on the other still does.
func TestParetoFrontierNoise(t *testing.T) {
	const n = 10000
	// pt is a model of cost c ± 5% and the given errors of n.
	pt := func(c float64, errors int) Point {
		return Point{Cost: c, CostLow: c * 0.95, CostHigh: c * 1.05, Quality: 1 - float64(errors)/n, N: n}
	}
	for _, tc := range []struct {
		name   string
		points []Point
		want   []int
	}{
		// The twins: one teacher measured 2.6% cheaper by chance.
		{"twins within noise keep both", []Point{pt(1, 158), pt(0.974, 158)}, []int{1, 0}},
		{"cheaper within noise, accuracy within noise", []Point{pt(1, 158), pt(0.98, 170)}, []int{1, 0}},
		{"clearly cheaper, accuracy within noise", []Point{pt(1, 158), pt(0.5, 170)}, []int{1}},
		{"cost within noise, clearly more accurate", []Point{pt(1, 300), pt(1.02, 158)}, []int{1}},
		{"clearly cheaper and clearly less accurate", []Point{pt(1, 158), pt(0.5, 300)}, []int{1, 0}},
		// A third model beats both twins alike, or neither.
		{"twins dominated together", []Point{pt(1, 300), pt(0.5, 158), pt(1, 300)}, []int{1}},
		{"twins kept together", []Point{pt(1, 158), pt(2, 300), pt(1, 158)}, []int{0, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParetoFrontier(tc.points); !slices.Equal(got, tc.want) {
				t.Errorf("ParetoFrontier = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParetoFrontier(t *testing.T) {
	p := func(c, q float64) Point { return Point{Cost: c, Quality: q} }
	for _, tc := range []struct {
		name   string
		points []Point
		want   []int
	}{
		{"none", nil, nil},
		{"one", []Point{p(1, 0.5)}, []int{0}},
		{"chain", []Point{p(3, 0.99), p(1, 0.90), p(2, 0.95)}, []int{1, 2, 0}},
		{"dominated", []Point{p(1, 0.9), p(2, 0.8), p(3, 0.95)}, []int{0, 2}},
		{"cheaper and better wins", []Point{p(2, 0.9), p(1, 0.95)}, []int{1}},
		{"equal cost: the better", []Point{p(1, 0.8), p(1, 0.9)}, []int{1}},
		{"equal quality: the cheaper", []Point{p(2, 0.9), p(1, 0.9)}, []int{1}},
		{"duplicates: both", []Point{p(1, 0.9), p(1, 0.9)}, []int{0, 1}},
		{"duplicates dominated: neither", []Point{p(1, 0.9), p(0.5, 0.95), p(1, 0.9)}, []int{1}},
		{"unknown cost left out", []Point{p(0, 0.99), p(-1, 1), p(5, 0.5)}, []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParetoFrontier(tc.points); !slices.Equal(got, tc.want) {
				t.Errorf("ParetoFrontier = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	// A report file works as well as its directory.
	runs := load(t, "testdata/mnist-cpu/report.json", "testdata/mnist-gpu")
	if runs[0].Name != "mnist-cpu" || runs[1].Name != "mnist-gpu" || runs[0].Report.Recipe != "mnist-hinton" {
		t.Errorf("runs %q %q", runs[0].Name, runs[1].Name)
	}
	// Runs of the same base name are told apart by their paths.
	dir := t.TempDir()
	for _, d := range []string{"a/run", "b/run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile("testdata/mnist-gpu/report.json")
		os.WriteFile(filepath.Join(dir, d, "report.json"), b, 0o644)
	}
	runs = load(t, filepath.Join(dir, "a/run"), filepath.Join(dir, "b", "run"))
	if runs[0].Name == runs[1].Name || !strings.HasSuffix(runs[0].Name, "a/run") {
		t.Errorf("names %q, %q", runs[0].Name, runs[1].Name)
	}

	empty := t.TempDir()
	bad := filepath.Join(t.TempDir(), "report.json")
	os.WriteFile(bad, []byte(`{"schema":"distill.report/v9"}`), 0o644)
	for _, tc := range []struct {
		paths []string
		want  string
		is    error
	}{
		{nil, "no runs given", nil},
		{[]string{filepath.Join(empty, "missing")}, "missing", fs.ErrNotExist},
		{[]string{empty}, "has no report.json; is it a finished distill run directory?", fs.ErrNotExist},
		{[]string{bad}, `schema "distill.report/v9"`, nil},
	} {
		_, err := Load(tc.paths...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("Load(%v): %v, want %q", tc.paths, err, tc.want)
		}
	}
}

func TestWrite(t *testing.T) {
	c, err := New(load(t, fixed...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	md, page, err := Write(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	if string(b) != c.Markdown() {
		t.Error("compare.md differs from Markdown()")
	}
	h, _ := os.ReadFile(page)
	want, _ := c.HTML()
	if string(h) != string(want) {
		t.Error("compare.html differs from HTML()")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files in the output directory, want 2 (no temporary files left)", len(entries))
	}
	// An unwritable directory is an error naming it.
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	if _, _, err := Write(filepath.Join(blocker, "sub"), c); err == nil || !strings.Contains(err.Error(), blocker) {
		t.Errorf("unwritable: %v", err)
	}
}

func TestMarkdownEscapes(t *testing.T) {
	r := &report.Report{Recipe: "a|b", Models: []report.Model{{Name: "m|1\nx", Role: report.RoleStudent, Accuracy: 0.5}}}
	c, err := New([]Run{{Path: "p", Report: r}}, Options{Title: "T"})
	if err != nil {
		t.Fatal(err)
	}
	md := c.Markdown()
	if !strings.Contains(md, `| m\|1 x |`) || !strings.Contains(md, `| a\|b |`) {
		t.Errorf("cells not escaped:\n%s", md)
	}
	page, err := c.HTML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(page), "<script") {
		t.Error("the page has a script")
	}
}

func BenchmarkHTML(b *testing.B) {
	runs, err := Load(fixed...)
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(runs, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.HTML(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEngines checks that every model row names its engine and that a
// comparison mixing engines says that its savings compare them too,
// while one on a single engine does not.
func TestEngines(t *testing.T) {
	mixed, err := New(load(t, "testdata/mnist-cpu", "testdata/mnist-gpu"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	md := mixed.Markdown()
	for _, want := range []string{"| Engine |", "| infer (FP32) |", "| infer (INT8) |", "| torch cuda:0 (FP32) |", "Engines: the models were timed on infer, torch cuda:0"} {
		if !strings.Contains(md, want) {
			t.Errorf("comparison of a CPU and a GPU run lacks %q", want)
		}
	}
	page, err := mixed.HTML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "torch cuda:0 (FP32)") {
		t.Error("the HTML page does not show the engines")
	}
	one, err := New(load(t, "testdata/mnist-cpu"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(one.Markdown(), "Engines:") {
		t.Error("a comparison on one engine warns about mixed engines")
	}
}

// TestNewTwinTeachers is the case: the same teacher in two runs,
// timed 2.6% apart by chance. The twin's saving keeps its number but is
// within noise, and neither takes the ★ from the other; a student
// clearly cheaper at the same accuracy takes it from both, and says its
// saving plainly.
func TestNewTwinTeachers(t *testing.T) {
	const n = 10000
	priced := func(name string, role report.Role, errors int, usd, lo, hi float64) report.Model {
		return report.Model{Name: name, Role: role, Errors: errors, Accuracy: 1 - float64(errors)/n,
			Cost: &report.Cost{Batch: 32, RequestsPerSecond: 1, WithinTarget: true, USDPerMillion: report.TierPrices{OnDemand: usd}, USDPerMillionLow: lo, USDPerMillionHigh: hi}}
	}
	run := func(path string, models ...report.Model) Run {
		return Run{Path: path, Report: &report.Report{Dataset: report.Dataset{Name: "mnist", Test: n}, Models: models}}
	}
	for _, tc := range []struct {
		name    string
		runs    []Run
		want    []string
		noise   []bool
		cheaper bool
	}{
		{"twins", []Run{
			run("a", priced("teacher", report.RoleTeacher, 158, 0.000419, 0.000400, 0.000440)),
			run("b", priced("teacher", report.RoleTeacher, 158, 0.000408, 0.000390, 0.000430)),
		}, []string{"a/teacher ★", "b/teacher ★"}, []bool{false, true}, false},
		{"twins and a cheaper student", []Run{
			run("a", priced("teacher", report.RoleTeacher, 158, 0.000419, 0.000400, 0.000440)),
			run("b", priced("teacher", report.RoleTeacher, 158, 0.000408, 0.000390, 0.000430), priced("small", report.RoleStudent, 170, 0.0001, 0.000095, 0.000105)),
		}, []string{"a/teacher", "b/teacher", "b/small ★"}, []bool{false, true, false}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.runs, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var noise []bool
			for _, r := range c.Rows {
				s := r.Run + "/" + r.Model.Name
				if r.Pareto {
					s += " ★"
				}
				got = append(got, s)
				noise = append(noise, r.SavingsWithinNoise)
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(noise, tc.noise) {
				t.Errorf("rows %q, within noise %v; want %q, %v", got, noise, tc.want, tc.noise)
			}
			md := c.Markdown()
			if !strings.Contains(md, "+2.6% (within noise)") {
				t.Errorf("the twin's saving is not shown within noise:\n%s", md)
			}
			if tc.cheaper && !strings.Contains(md, "| +76.1% | ★ |") {
				t.Errorf("the student's clear saving is not shown plainly:\n%s", md)
			}
		})
	}
}
