package compare

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/distill-dev/distill/report"
)

// table is a table's text, shared by the Markdown and HTML renderings.
type table struct {
	head  []string
	right []bool // right-aligned columns
	rows  [][]string
	// mark flags rows to emphasise (the baseline teacher).
	mark []bool
}

const none = "—"

// runsTable describes each run: what it is and what it assumed.
func (c *Comparison) runsTable() table {
	t := table{
		head:  []string{"Run", "Recipe", "Backend", "Dataset", "Measured on", "Priced as", "Latency target", "Run cost"},
		right: []bool{false, false, false, false, false, false, true, true},
	}
	for _, r := range c.Runs {
		rep := r.Report
		backend := rep.Backend
		if rep.Device != "" {
			backend += " on " + rep.Device
		}
		dataset := none
		if rep.Dataset.Name != "" {
			dataset = fmt.Sprintf("%s (%s test)", rep.Dataset.Name, report.FormatCount(float64(rep.Dataset.Test)))
		}
		measured, priced, target, runCost := none, none, none, none
		if m := rep.Machine; m != nil {
			cpu := m.CPU
			if cpu == "" {
				cpu = m.OS + "/" + m.Arch
			}
			measured = fmt.Sprintf("%s, %d CPUs", cpu, m.CPUs)
		}
		if p := rep.Price; p != nil {
			priced = fmt.Sprintf("%s (%s/h)", p.Machine, report.FormatUSD(p.USDPerHour.OnDemand))
			target = report.FormatMS(p.LatencyTargetMS)
		}
		if tc := rep.TrainingCost; tc != nil {
			runCost = fmt.Sprintf("%s (%.0f s)", report.FormatUSD(tc.USD.OnDemand), tc.Seconds)
		}
		t.rows = append(t.rows, []string{r.Name, orNone(rep.Recipe), orNone(backend), dataset, measured, priced, target, runCost})
		t.mark = append(t.mark, r.Name == c.Baseline)
	}
	return t
}

// modelsTable is the comparison proper: one row per model.
func (c *Comparison) modelsTable() table {
	savings := "Savings"
	if c.Reference != "" {
		savings = "Savings vs " + c.Baseline + "/" + c.Reference
	}
	t := table{
		head:  []string{"Run", "Model", "Role", "Engine", "Accuracy", "Size", "Latency p50", "Latency p99", "Throughput", "$/1M on-demand", "$/1M spot", "$/1M reserved", savings, "Pareto"},
		right: []bool{false, false, false, false, true, true, true, true, true, true, true, true, true, false},
	}
	for _, r := range c.Rows {
		m := r.Model
		// The engine is in every row: runs timed on different engines
		// compare the engines as much as the models.
		row := []string{r.Run, m.Name, string(m.Role), none, fmt.Sprintf("%.2f%%", 100*m.Accuracy), report.FormatBytes(m.Bytes), none, none, none, none, none, none, none, ""}
		if s := m.Serving; s != nil {
			if e := s.EngineLabel(); e != "" {
				row[3] = e
			}
			row[6], row[7] = report.FormatMS(s.LatencyMS.P50), report.FormatMS(s.LatencyMS.P99)
		}
		if k := m.Cost; k != nil {
			row[8] = report.FormatCount(k.RequestsPerSecond) + "/s"
			if sp := report.FormatSpread(k.RequestsPerSecond, k.RequestsPerSecondMin, k.RequestsPerSecondMax); sp != "" {
				row[8] += " (" + sp + ")"
			}
			if k.Scenario == report.ScenarioServer {
				row[8] += " served (batches ≤" + strconv.Itoa(k.Batch) + ")"
			} else {
				row[8] += " at batch " + strconv.Itoa(k.Batch)
			}
			if !k.WithinTarget {
				row[8] += " (over target)"
			}
			for i, tier := range report.Tiers {
				if v := k.USDPerMillion.Get(tier); v > 0 {
					row[9+i] = report.FormatUSD(v)
				}
			}
		}
		switch {
		case r.Reference:
			row[12] = "baseline"
		case r.Savings != nil:
			row[12] = report.FormatPercent(*r.Savings)
			if r.SavingsWithinNoise {
				row[12] += " (" + report.WithinNoise + ")"
			}
		}
		if r.Pareto {
			row[13] = "★"
		}
		t.rows = append(t.rows, row)
		t.mark = append(t.mark, r.Reference)
	}
	return t
}

// deploymentTable lists each model's cheapest deployment in every run
// whose report priced one (report.Deployment: the machines its
// measurement speaks for), with each run's traffic forecast answered as
// a monthly bill; ok is false when no run has one.
func (c *Comparison) deploymentTable() (t table, ok bool) {
	t.head = append([]string{"Run"}, report.DeploymentColumns...)
	t.head = slices.Insert(t.head, 1+report.DeploymentForecastColumn, "Forecast")
	for range t.head {
		t.right = append(t.right, len(t.right) > 2)
	}
	for _, r := range c.Runs {
		d := r.Report.Deployment
		if d == nil {
			continue
		}
		forecast := none
		if d.RequestsPerDay > 0 {
			forecast = report.FormatCount(d.RequestsPerDay) + "/day"
		}
		for _, o := range d.Options {
			if !o.Cheapest {
				continue
			}
			cells := r.Report.DeploymentCells(d, o)
			cells = slices.Insert(cells, report.DeploymentForecastColumn, forecast)
			t.rows = append(t.rows, append([]string{r.Name}, cells...))
			t.mark = append(t.mark, r.Name == c.Baseline && o.Model == c.Reference)
		}
	}
	return t, len(t.rows) > 0
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return none
	}
	return s
}

// markdown renders t as a Markdown table; marked rows are bold.
func (t table) markdown() string {
	var b strings.Builder
	b.WriteString("|")
	for _, h := range t.head {
		b.WriteString(" " + cell(h) + " |")
	}
	b.WriteString("\n|")
	for _, r := range t.right {
		if r {
			b.WriteString("--:|")
		} else {
			b.WriteString("---|")
		}
	}
	b.WriteString("\n")
	for i, row := range t.rows {
		b.WriteString("|")
		for _, v := range row {
			v = cell(v)
			if t.mark[i] && v != "" && v != none {
				v = "**" + v + "**"
			}
			b.WriteString(" " + v + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// intro explains the savings and the frontier, for both renderings.
func (c *Comparison) intro() []string {
	var out []string
	if c.Reference != "" {
		out = append(out, fmt.Sprintf("Savings are relative to %s/%s, the teacher of run %s (in bold), at on-demand prices: the share of its cost per million requests that each model saves.", c.Baseline, c.Reference, c.Baseline))
	} else {
		out = append(out, "No run has a teacher with a measured serving cost, so there are no savings to show.")
	}
	out = append(out, "★ marks the Pareto frontier: the models that no other model beats on accuracy or on-demand cost per million requests while doing no worse on the other. Differences within noise are ties: costs whose ranges over the timing windows overlap (the ± after a throughput), and accuracies a two-proportion test at 95% cannot tell apart; a saving within noise says so.")
	out = append(out, "Each run is priced at its own machine's prices (see Runs); costs are at the rate each model sustained in the server scenario (\"served\": Poisson requests through distill's HTTP server, p99 within the run's latency target) where it was measured, else at the batch size with the highest offline throughput whose p99 batch latency meets the target.")
	return out
}

// deploymentIntro explains the deployment table, for both renderings.
const deploymentIntro = "Each model's cheapest machine that fits it, among those its run's measurement speaks for (the GPU it ran on at each provider, or CPU machines of its architecture and vendor, the rate scaled by vCPUs as the Scale column says), with the monthly bill for the run's traffic forecast and the days of that traffic that pay back its training."

// Markdown renders the comparison as Markdown: one table of every model
// with its quality, size, latency, throughput, cost at each pricing tier
// and savings, then each model's cheapest deployment, then a table of the runs (what each is, what machine it
// was measured on and priced as), then the methods and price sources.
// It depends only on c.
func (c *Comparison) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", strings.Join(strings.Fields(c.Title), " "))
	for _, s := range c.intro() {
		b.WriteString(s + "\n")
	}
	b.WriteString("\n## Models\n\n")
	b.WriteString(c.modelsTable().markdown())
	if t, ok := c.deploymentTable(); ok {
		b.WriteString("\n## Cheapest deployment\n\n")
		b.WriteString(deploymentIntro + "\n\n")
		b.WriteString(t.markdown())
	}
	b.WriteString("\n## Runs\n\n")
	b.WriteString(c.runsTable().markdown())
	if notes := c.notes(); len(notes) > 0 {
		b.WriteString("\n## Method and prices\n\n")
		for _, n := range notes {
			b.WriteString("- " + strings.Join(strings.Fields(n), " ") + "\n")
		}
	}
	return b.String()
}

// notes lists each run's measurement method and price source, once each.
func (c *Comparison) notes() []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, r := range c.Runs {
		if p := r.Report.Price; p != nil {
			src := p.Machine + ": prices from " + p.Source
			if p.Source == "" {
				src = p.Machine + ": prices with no source given"
			}
			if p.AsOf != "" {
				src += ", as of " + p.AsOf
			}
			if p.Table != "" {
				src += " (price table " + p.Table + ")"
			}
			add(src)
		}
	}
	// Measurement methods, each once, with the runs that used it.
	var methods []string
	runsOf := map[string][]string{}
	for _, r := range c.Runs {
		for _, m := range r.Report.Models {
			if m.Serving != nil && m.Serving.Method != "" {
				if runsOf[m.Serving.Method] == nil {
					methods = append(methods, m.Serving.Method)
				}
				runsOf[m.Serving.Method] = append(runsOf[m.Serving.Method], r.Name)
				break
			}
		}
	}
	for _, m := range methods {
		add("Measurement (" + strings.Join(runsOf[m], ", ") + "): " + m)
	}
	// Savings between models timed on different engines measure the
	// engines as much as the models: say so whenever the rows mix them.
	var engines []string
	for _, r := range c.Rows {
		if s := r.Model.Serving; s != nil && s.Engine != "" && !slices.Contains(engines, s.Engine) {
			engines = append(engines, s.Engine)
		}
	}
	if len(engines) > 1 {
		add("Engines: the models were timed on " + strings.Join(engines, ", ") + "; savings between models on different engines compare the engines as well as the models.")
	}
	for _, r := range c.Runs {
		if n := strings.TrimSpace(r.Report.EngineNote); n != "" {
			add("Engines of " + r.Name + ": " + n)
		}
	}
	return out
}
