package compare

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/report"
)

// ReportFile is the name of the report in a run directory.
const ReportFile = "report.json"

// Names of the files Write writes.
const (
	MarkdownFile = "compare.md"
	HTMLFile     = "compare.html"
)

// Run is one run's report.
type Run struct {
	// Path is the run directory (or report file) as given.
	Path string
	// Name is how tables and charts call the run: the directory's base
	// name, or the whole path where two runs would share one.
	Name   string
	Report *report.Report
}

// Load reads the report of each run: path is a run directory holding
// report.json, or a report file itself. Reports of any backend or
// recipe mix; each must have schema distill.report/v1.
func Load(paths ...string) ([]Run, error) {
	if len(paths) == 0 {
		return nil, errors.New("compare: no runs given; name one or more run directories (each holding report.json)")
	}
	runs := make([]Run, 0, len(paths))
	for _, p := range paths {
		file := p
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			file = filepath.Join(p, ReportFile)
		} else if err != nil {
			return nil, fmt.Errorf("compare: run %s: %w", p, err)
		}
		r, err := report.ReadJSON(file)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("compare: run %s has no %s; is it a finished distill run directory? (%w)", p, ReportFile, err)
		}
		if err != nil {
			return nil, fmt.Errorf("compare: run %s: %w", p, err)
		}
		runs = append(runs, Run{Path: p, Report: r})
	}
	name(runs)
	return runs, nil
}

// name sets each run's Name: the base name of its directory, unless two
// runs share that, in which case their cleaned paths.
func name(runs []Run) {
	base := func(r Run) string {
		p := filepath.Clean(r.Path)
		if filepath.Base(p) == ReportFile {
			p = filepath.Dir(p)
		}
		return filepath.Base(p)
	}
	count := map[string]int{}
	for _, r := range runs {
		count[base(r)]++
	}
	for i := range runs {
		if runs[i].Name != "" {
			continue
		}
		runs[i].Name = base(runs[i])
		if count[runs[i].Name] > 1 || runs[i].Name == "." || runs[i].Name == string(filepath.Separator) {
			runs[i].Name = filepath.ToSlash(filepath.Clean(runs[i].Path))
		}
	}
}

// Options say how to compare runs.
type Options struct {
	// Baseline is the Path of the run whose teacher the savings are
	// relative to. "" means the first run with a priced teacher.
	Baseline string
	// Reprice, when set, prices every report anew with cost.Apply and
	// these options (another price table, machine or latency target)
	// instead of using the costs the reports carry. Reports without
	// serving measurements stay unpriced.
	Reprice *cost.Options
	// Title heads the page; "" means "Comparison of N runs".
	Title string
}

// Row is one model of one run.
type Row struct {
	Run   string // the run's Name
	Model report.Model
	// Savings is how much cheaper serving the model is than the baseline
	// teacher, in percent of the teacher's on-demand cost per million
	// requests; nil when either cost is unknown and for the baseline
	// teacher itself.
	Savings *float64
	// SavingsWithinNoise marks a saving not larger than the noise of the
	// two costs: the model's cost range overlaps the baseline teacher's
	// (report.CostWithinNoise).
	SavingsWithinNoise bool
	// Reference marks the baseline teacher's row.
	Reference bool
	// Pareto marks a model on the accuracy–cost Pareto frontier: no
	// other model is clearly better on one of accuracy and on-demand
	// cost per million requests without being clearly worse on the
	// other (see ParetoFrontier).
	Pareto bool
}

// USDPerMillion returns the row's on-demand cost per million requests,
// 0 when unknown.
func (r Row) USDPerMillion() float64 {
	if r.Model.Cost == nil {
		return 0
	}
	return r.Model.Cost.USDPerMillion.OnDemand
}

// Comparison is runs set side by side.
type Comparison struct {
	Title string
	Runs  []Run
	Rows  []Row
	// Baseline is the Name of the run savings are relative to, and
	// Reference the name of its teacher; both "" when no run has a
	// priced teacher.
	Baseline, Reference string
}

// New compares runs. It reprices their reports first if o.Reprice is
// set (changing them), works out each model's savings against the
// baseline run's teacher and marks the Pareto frontier. Rows list each
// run's teachers, then its other models, in report order.
func New(runs []Run, o Options) (*Comparison, error) {
	if len(runs) == 0 {
		return nil, errors.New("compare: no runs to compare")
	}
	name(runs)
	if o.Reprice != nil {
		for _, r := range runs {
			opts := *o.Reprice
			if d := r.Report.Deployment; opts.RequestsPerDay == 0 && d != nil {
				opts.RequestsPerDay = d.RequestsPerDay // keep the run's forecast
			}
			if err := cost.Apply(r.Report, opts); err != nil {
				return nil, fmt.Errorf("compare: price run %s: %w", r.Name, err)
			}
		}
	}
	c := &Comparison{Title: o.Title, Runs: runs}
	if c.Title == "" {
		c.Title = fmt.Sprintf("Comparison of %d runs", len(runs))
		if len(runs) == 1 {
			c.Title = "Comparison of 1 run"
		}
	}

	base := -1
	if o.Baseline != "" {
		for i, r := range runs {
			if r.Path == o.Baseline || filepath.Clean(r.Path) == filepath.Clean(o.Baseline) || r.Name == o.Baseline {
				base = i
				break
			}
		}
		if base < 0 {
			return nil, fmt.Errorf("compare: baseline %s is not one of the runs compared; add it to the runs", o.Baseline)
		}
		if pricedTeacher(runs[base].Report) < 0 {
			return nil, fmt.Errorf("compare: baseline run %s has no teacher with a serving cost; choose a run whose report has one (run it with serving measurement on)", runs[base].Name)
		}
	} else {
		for i, r := range runs {
			if pricedTeacher(r.Report) >= 0 {
				base = i
				break
			}
		}
	}
	var refCost float64
	var ref *report.Cost
	if base >= 0 {
		t := runs[base].Report.Models[pricedTeacher(runs[base].Report)]
		c.Baseline, c.Reference, refCost, ref = runs[base].Name, t.Name, t.Cost.USDPerMillion.OnDemand, t.Cost
	}
	tests := map[string]int{} // run name -> test-set size

	for i, r := range runs {
		models := slices.Clone(r.Report.Models)
		sort.SliceStable(models, func(a, b int) bool {
			return models[a].Role == report.RoleTeacher && models[b].Role != report.RoleTeacher
		})
		for _, m := range models {
			row := Row{Run: r.Name, Model: m}
			row.Reference = i == base && m.Name == c.Reference
			if !row.Reference {
				if s, ok := cost.SavingsPercent(refCost, row.USDPerMillion()); ok {
					row.Savings = &s
					row.SavingsWithinNoise = report.CostWithinNoise(m.Cost, ref)
				}
			}
			c.Rows = append(c.Rows, row)
		}
		tests[r.Name] = r.Report.Dataset.Test
	}
	points := make([]Point, len(c.Rows))
	for i, r := range c.Rows {
		points[i] = Point{Cost: r.USDPerMillion(), Quality: r.Model.Accuracy, N: tests[r.Run]}
		if r.Model.Cost != nil {
			points[i].CostLow, points[i].CostHigh = r.Model.Cost.Range()
		}
	}
	for _, i := range ParetoFrontier(points) {
		c.Rows[i].Pareto = true
	}
	return c, nil
}

// pricedTeacher returns the index of r's first teacher with a cost, or -1.
func pricedTeacher(r *report.Report) int {
	for i, m := range r.Models {
		if m.Role == report.RoleTeacher && m.Cost != nil && m.Cost.USDPerMillion.OnDemand > 0 {
			return i
		}
	}
	return -1
}

// Point is a model's cost (lower is better) and quality (an accuracy,
// higher is better), with the noise each is measured with.
type Point struct {
	Cost, Quality float64
	// CostLow and CostHigh bound the cost's noise (report.Cost.Range);
	// 0 means Cost alone.
	CostLow, CostHigh float64
	// N is the number of test examples Quality was measured on; 0
	// (unknown) makes only equal qualities alike.
	N int
}

// costRange returns p's cost range, Cost alone where none is known.
func (p Point) costRange() (lo, hi float64) {
	lo, hi = p.Cost, p.Cost
	if p.CostLow > 0 {
		lo = min(lo, p.CostLow)
	}
	if p.CostHigh > 0 {
		hi = max(hi, p.CostHigh)
	}
	return lo, hi
}

// dominates reports whether a beats b: a is clearly better on cost or
// quality and clearly worse on neither. Two costs are alike (neither
// clearly better) when their ranges overlap, two qualities when a
// two-proportion test cannot tell them apart (eval.SameAccuracy).
func dominates(a, b Point) bool {
	alo, ahi := a.costRange()
	blo, bhi := b.costRange()
	sameCost := alo <= bhi && blo <= ahi
	sameQuality := eval.SameAccuracy(a.Quality, a.N, b.Quality, b.N)
	cheaper := !sameCost && a.Cost < b.Cost
	dearer := !sameCost && a.Cost > b.Cost
	better := !sameQuality && a.Quality > b.Quality
	worse := !sameQuality && a.Quality < b.Quality
	return !dearer && !worse && (cheaper || better)
}

// ParetoFrontier returns the indexes of the points no other point
// dominates, in increasing cost (then decreasing quality, then input
// order). A point is dominated when another is clearly better on cost
// or quality and clearly worse on neither, differences within noise
// counting as ties (see Point). So a model within noise of another on
// both axes never takes the frontier from it: both stay on it or both
// leave it, and points with equal figures always share a verdict, since
// whether a point is dominated depends only on its figures. Without
// noise bounds this is the usual frontier, except that equal points
// are all kept. Points with an unknown (non-positive) cost are left
// out.
func ParetoFrontier(points []Point) []int {
	var idx []int
	for i, p := range points {
		if p.Cost > 0 {
			idx = append(idx, i)
		}
	}
	var front []int
	for _, i := range idx {
		dominated := false
		for _, j := range idx {
			if j != i && dominates(points[j], points[i]) {
				dominated = true
				break
			}
		}
		if !dominated {
			front = append(front, i)
		}
	}
	sort.SliceStable(front, func(a, b int) bool {
		pa, pb := points[front[a]], points[front[b]]
		if pa.Cost != pb.Cost {
			return pa.Cost < pb.Cost
		}
		return pa.Quality > pb.Quality
	})
	return front
}

// Write writes c.Markdown() to dir/compare.md and c.HTML() to
// dir/compare.html, each atomically, creating dir if needed, and returns
// their paths.
func Write(dir string, c *Comparison) (mdPath, htmlPath string, err error) {
	page, err := c.HTML()
	if err != nil {
		return "", "", err
	}
	mdPath, htmlPath = filepath.Join(dir, MarkdownFile), filepath.Join(dir, HTMLFile)
	if err := atomicfile.WriteFile(mdPath, []byte(c.Markdown()), 0o644); err != nil {
		return "", "", fmt.Errorf("compare: %w", err)
	}
	if err := atomicfile.WriteFile(htmlPath, page, 0o644); err != nil {
		return "", "", fmt.Errorf("compare: %w", err)
	}
	return mdPath, htmlPath, nil
}

// cell makes s safe in a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}
