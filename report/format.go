package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The Format functions render the report's numbers the way report.md
// shows them, so that other renderers (distill compare) match it.

// FormatUSD formats an amount of US dollars with three significant
// digits below $100 and whole dollars with separators above:
// $0.00123, $0.0400, $1.23, $12.3, $1,235. Zero is "$0"; a negative
// amount gets a leading minus.
func FormatUSD(v float64) string {
	if v < 0 {
		return "-" + FormatUSD(-v)
	}
	switch {
	case v == 0:
		return "$0"
	case v >= 100:
		return "$" + thousands(int64(math.Round(v)))
	default:
		return "$" + sig3(v)
	}
}

// FormatMS formats a duration in milliseconds with three significant
// digits: 0.0123 ms, 1.23 ms, 123 ms, 1,235 ms.
func FormatMS(ms float64) string {
	if ms >= 1000 {
		return thousands(int64(math.Round(ms))) + " ms"
	}
	return sig3(ms) + " ms"
}

// FormatCount formats a count or rate compactly: 950, 12,345, 1.23M,
// 4.56B, 7.89T (three significant digits from a million up).
func FormatCount(n float64) string {
	if n < 0 {
		return "-" + FormatCount(-n)
	}
	switch {
	case n >= 1e12:
		return sig3(n/1e12) + "T"
	case n >= 1e9:
		return sig3(n/1e9) + "B"
	case n >= 1e6:
		return sig3(n/1e6) + "M"
	default:
		return thousands(int64(math.Round(n)))
	}
}

// FormatBytes formats a byte count in binary units: 512 B, 1.5 KiB,
// 4.6 MiB; "—" for 0 (unknown).
func FormatBytes(n int64) string { return size(n) }

// FormatDeviceMemory formats a device memory peak: the allocated bytes
// and, after them, the reserved ones ("12.0 MiB (reserved 20.0 MiB)"); "—"
// for nil.
func FormatDeviceMemory(d *DeviceMemory) string {
	if d == nil {
		return "—"
	}
	return FormatBytes(d.AllocatedPeakBytes) + " (reserved " + FormatBytes(d.ReservedPeakBytes) + ")"
}

// FormatPercent formats a percentage (not a fraction) with one decimal
// and its sign: +95.1%, -3.0%.
func FormatPercent(p float64) string { return fmt.Sprintf("%+.1f%%", p) }

// sig3 formats v > 0 with three significant digits, without exponent.
func sig3(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	// Round to three significant digits first, so that 99.96 becomes
	// 100 (no decimals) rather than 100.0.
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	e := int(math.Floor(math.Log10(math.Abs(r))))
	if e >= 3 {
		return thousands(int64(r))
	}
	return strconv.FormatFloat(r, 'f', max(2-e, 0), 64)
}

// mdCostSection renders the serving and cost tables, or "" when no
// model was measured or priced.
func (r *Report) mdCostSection(rows []Model) string {
	measured := false
	for _, m := range rows {
		measured = measured || m.Serving != nil || m.Cost != nil
	}
	if !measured {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Serving cost\n\n")
	if mc := r.Machine; mc != nil {
		cpu := mc.CPU
		if cpu == "" {
			cpu = "unknown CPU"
		}
		fmt.Fprintf(&b, "- **Measured on:** %s, %d logical CPUs (GOMAXPROCS %d), %s/%s", inline(cpu), mc.CPUs, mc.GOMAXPROCS, inline(mc.OS), inline(mc.Arch))
		if mc.Device != "" {
			fmt.Fprintf(&b, ", device %s", inline(mc.Device))
		}
		if mc.GPU != "" {
			fmt.Fprintf(&b, " (%s", inline(mc.GPU))
			if mc.GPUMemoryMiB > 0 {
				fmt.Fprintf(&b, ", %d MiB", mc.GPUMemoryMiB)
			}
			if mc.GPUDriver != "" {
				fmt.Fprintf(&b, ", driver %s", inline(mc.GPUDriver))
			}
			if mc.CUDARuntime != "" {
				fmt.Fprintf(&b, ", CUDA runtime %s", inline(mc.CUDARuntime))
			}
			if mc.GPUMemoryInUseMiB > 0 {
				fmt.Fprintf(&b, ", %d MiB in use at the end of the run", mc.GPUMemoryInUseMiB)
			}
			b.WriteString(")")
		}
		if mc.Library != "" {
			fmt.Fprintf(&b, ", %s", inline(mc.Library))
		}
		b.WriteString("\n")
	}
	if p := r.Price; p != nil {
		var tiers []string
		for _, t := range Tiers {
			if v := p.USDPerHour.Get(t); v > 0 {
				tiers = append(tiers, FormatUSD(v)+"/h "+tierName(t))
			}
		}
		desc := ""
		if p.Description != "" {
			desc = " (" + inline(p.Description) + ")"
		}
		fmt.Fprintf(&b, "- **Priced as:** %s%s: %s", inline(p.Machine), desc, strings.Join(tiers, ", "))
		var src []string
		if p.Source != "" {
			src = append(src, "source: "+inline(p.Source))
		}
		if p.AsOf != "" {
			src = append(src, "as of "+inline(p.AsOf))
		}
		if p.Table != "" {
			src = append(src, "price table "+inline(p.Table))
		}
		if len(src) > 0 {
			fmt.Fprintf(&b, "; %s", strings.Join(src, "; "))
		}
		if p.Chosen != "" {
			fmt.Fprintf(&b, "; chosen: %s", inline(p.Chosen))
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "- **Latency target:** %s at p99; each model is priced from the server scenario's sustained rate where it was measured (requests within the target), else at the batch size with the highest offline throughput whose batch latency meets it\n", FormatMS(p.LatencyTargetMS))
	}
	if tc := r.TrainingCost; tc != nil {
		var tiers []string
		for _, t := range Tiers {
			if v := tc.USD.Get(t); v > 0 {
				tiers = append(tiers, FormatUSD(v)+" "+tierName(t))
			}
		}
		fmt.Fprintf(&b, "- **Run cost:** %.1f s of stages = %s\n", tc.Seconds, strings.Join(tiers, ", "))
	}

	ref := "teacher"
	for _, m := range rows {
		if m.Cost != nil && m.Cost.Reference != "" {
			ref = m.Cost.Reference
			break
		}
	}
	if r.EngineNote != "" {
		b.WriteString("- **Engines differ:** " + inline(r.EngineNote) + "\n")
	}
	// Model memory is the model's own (parameters + activation arena at
	// the priced batch); the process's peaks, dataset included, stay in
	// report.json only, labelled as process-wide.
	fmt.Fprintf(&b, "\n| Model | Engine | Latency p50 | p95 | p99 | Batch | Throughput | Model memory | $/1M on-demand | $/1M spot | $/1M reserved | Savings vs %s | Break-even |\n", cell(ref))
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	var methods []string
	for _, m := range rows {
		c := []string{cell(m.Name), "—", "—", "—", "—", "—", "—", "—", "—", "—", "—", "—", "—"}
		if s := m.Serving; s != nil {
			if e := s.EngineLabel(); e != "" {
				c[1] = cell(e)
			}
			c[2], c[3], c[4] = FormatMS(s.LatencyMS.P50), FormatMS(s.LatencyMS.P95), FormatMS(s.LatencyMS.P99)
			batch := 0
			if m.Cost != nil {
				batch = m.Cost.Batch
			}
			if b := s.ModelBytesAt(batch); s.DeviceMemory != nil && b == s.DeviceMemory.AllocatedPeakBytes {
				c[7] = FormatDeviceMemory(s.DeviceMemory) // the device's figure, reserved beside it
			} else {
				c[7] = FormatBytes(b)
			}
			if s.Method != "" && !slices.Contains(methods, s.Method) {
				methods = append(methods, s.Method)
			}
		}
		if k := m.Cost; k != nil {
			c[5] = strconv.Itoa(k.Batch)
			if k.Scenario == ScenarioServer {
				c[5] = "≤" + c[5] + " (server)"
			}
			if !k.WithinTarget {
				c[5] += " (over target)"
			}
			c[6] = FormatCount(k.RequestsPerSecond) + "/s"
			if sp := FormatSpread(k.RequestsPerSecond, k.RequestsPerSecondMin, k.RequestsPerSecondMax); sp != "" {
				c[6] += " (" + sp + ")"
			}
			for i, t := range Tiers {
				if v := k.USDPerMillion.Get(t); v > 0 {
					c[8+i] = FormatUSD(v)
				}
			}
			if k.SavingsPercent != nil {
				c[11] = FormatPercent(*k.SavingsPercent)
				if CostWithinNoise(k, r.cost(k.Reference)) {
					c[11] += " (" + WithinNoise + ")"
				}
			}
			switch {
			case k.BreakEvenRequests != nil:
				c[12] = FormatCount(*k.BreakEvenRequests) + " requests"
			case k.SavingsPercent != nil && *k.SavingsPercent <= 0:
				c[12] = "never"
			}
		}
		b.WriteString("| " + strings.Join(c, " | ") + " |\n")
	}

	// Throughput by batch size: one column per batch size measured.
	var batches []int
	for _, m := range rows {
		if m.Serving == nil {
			continue
		}
		for _, t := range m.Serving.Throughput {
			if !slices.Contains(batches, t.Batch) {
				batches = append(batches, t.Batch)
			}
		}
	}
	slices.Sort(batches)
	if len(batches) > 0 {
		b.WriteString("\n### Throughput by batch size (requests/s; p99 batch latency)\n\n| Model |")
		for _, n := range batches {
			fmt.Fprintf(&b, " %d |", n)
		}
		b.WriteString("\n|---|" + strings.Repeat("--:|", len(batches)) + "\n")
		for _, m := range rows {
			if m.Serving == nil {
				continue
			}
			b.WriteString("| " + cell(m.Name) + " |")
			for _, n := range batches {
				v := "—"
				for _, t := range m.Serving.Throughput {
					if t.Batch == n {
						v = FormatCount(t.RequestsPerSecond) + " (" + FormatMS(t.BatchLatencyMS.P99) + ")"
					}
				}
				b.WriteString(" " + v + " |")
			}
			b.WriteString("\n")
		}
	}
	methods = append(methods, scenarioTable(&b, rows)...)
	if d := r.Deployment; d != nil {
		r.deploymentTable(&b, d)
		methods = append(methods, d.Method)
	}
	b.WriteString("\n### Rules of thumb against this run\n\n| Saving | Rule of thumb | This run | Compares |\n|---|--:|--:|---|\n")
	for _, rule := range r.RulesOfThumb() {
		measured := "—"
		if rule.MeasuredPercent != nil {
			measured = FormatPercent(*rule.MeasuredPercent)
		}
		fmt.Fprintf(&b, "| %s | ≈%d%% | %s | %s |\n", rule.Name, int(rule.RulePercent), measured, cell(rule.Basis))
	}
	for _, m := range methods {
		b.WriteString("\nMethod: " + inline(m) + "\n")
	}
	return b.String()
}

// scenarioTable writes each model's figure in MLPerf Inference's three
// scenarios, when any model has the server one, and returns the server
// scenario's method descriptions.
func scenarioTable(b *strings.Builder, rows []Model) []string {
	has := false
	for _, m := range rows {
		has = has || (m.Serving != nil && m.Serving.Server != nil)
	}
	if !has {
		return nil
	}
	b.WriteString("\n### Scenarios (as MLPerf Inference defines them)\n\n")
	b.WriteString("| Model | Single-stream p50 | p99 | Offline | Server: sustained rate | Server p99 | Failed at | Priced from |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|---|\n")
	var methods []string
	for _, m := range rows {
		s := m.Serving
		if s == nil {
			continue
		}
		c := []string{cell(m.Name), FormatMS(s.LatencyMS.P50), FormatMS(s.LatencyMS.P99), "—", "—", "—", "—", "—"}
		if best := s.BestThroughput(); best > 0 {
			c[3] = FormatCount(best) + "/s"
		}
		if sv := s.Server; sv != nil {
			if sv.RequestsPerSecond > 0 {
				c[4] = FormatCount(sv.RequestsPerSecond) + "/s"
				if len(sv.Searches) > 1 && sv.RequestsPerSecondLow > 0 {
					c[4] += fmt.Sprintf(" (%s–%s, %d searches)", FormatCount(sv.RequestsPerSecondLow), FormatCount(sv.RequestsPerSecondHigh), len(sv.Searches))
				}
				c[5] = FormatMS(sv.LatencyMS.P99) + " (bound " + FormatMS(sv.LatencyBoundMS) + ")"
			} else {
				c[4] = "none passed"
			}
			if sv.FailedRequestsPerSecond > 0 {
				c[6] = FormatCount(sv.FailedRequestsPerSecond) + "/s"
			}
			if sv.Method != "" && !slices.Contains(methods, sv.Method) {
				methods = append(methods, sv.Method)
			}
		}
		if m.Cost != nil && m.Cost.Scenario != "" {
			c[7] = m.Cost.Scenario
		}
		b.WriteString("| " + strings.Join(c, " | ") + " |\n")
	}
	return methods
}

// cost returns the Cost of the model named name, nil if none has one.
func (r *Report) cost(name string) *Cost {
	for i := range r.Models {
		if r.Models[i].Name == name {
			return r.Models[i].Cost
		}
	}
	return nil
}

// tierName is how tables name a pricing tier.
func tierName(t string) string { return strings.ReplaceAll(t, "_", "-") }

// deploymentTable writes each model's cheapest deployment and, with a
// traffic forecast, its monthly bill and the days to break even.
func (r *Report) deploymentTable(b *strings.Builder, d *Deployment) {
	b.WriteString("\n### Cheapest deployment\n\n")
	forecast := d.RequestsPerDay > 0
	cols := len(DeploymentColumns)
	if forecast {
		fmt.Fprintf(b, "For a forecast of %s requests a day.\n\n", FormatCount(d.RequestsPerDay))
	} else {
		cols = DeploymentForecastColumn // the columns that answer a forecast would be empty
	}
	b.WriteString("| " + strings.Join(DeploymentColumns[:cols], " | ") + " |\n|---|---|")
	b.WriteString(strings.Repeat("--:|", cols-2) + "\n")
	for _, o := range d.Options {
		if !o.Cheapest {
			continue
		}
		c := r.DeploymentCells(d, o)[:cols]
		c[0], c[1] = cell(c[0]), inline(c[1])
		b.WriteString("| " + strings.Join(c, " | ") + " |\n")
	}
}

// DeploymentColumns heads the cells DeploymentCells returns; the columns
// from DeploymentForecastColumn on answer the traffic forecast.
var DeploymentColumns = []string{"Model", "Machine", "Scale", "Rate", "$/1M on-demand", "$/1M spot", "Machines", "Monthly on-demand", "Monthly spot", "Break-even"}

// DeploymentForecastColumn is the first of DeploymentColumns that only a
// traffic forecast fills.
const DeploymentForecastColumn = 6

// DeploymentCells returns the table cells of one deployment option of d,
// one of r's, as DeploymentColumns heads them, "—" where a value is
// unknown: the reports and the comparison of runs show the same figures.
// Break-even is the days of the forecast's traffic that pay back the
// model's training spend (Cost.BreakEvenRequests).
func (r *Report) DeploymentCells(d *Deployment, o DeploymentOption) []string {
	c := []string{o.Model, o.Machine, fmt.Sprintf("×%.2g", o.Scale), FormatCount(o.RequestsPerSecond) + "/s", "—", "—", "—", "—", "—", "—"}
	if v := o.USDPerMillion.OnDemand; v > 0 {
		c[4] = FormatUSD(v)
	}
	if v := o.USDPerMillion.Spot; v > 0 {
		c[5] = FormatUSD(v)
	}
	if d.RequestsPerDay > 0 {
		if o.Machines > 0 {
			c[6] = strconv.Itoa(o.Machines)
		}
		if v := o.MonthlyUSD.OnDemand; v > 0 {
			c[7] = FormatUSD(v)
		}
		if v := o.MonthlyUSD.Spot; v > 0 {
			c[8] = FormatUSD(v)
		}
		if k := r.cost(o.Model); k != nil && k.BreakEvenRequests != nil {
			c[9] = strconv.FormatFloat(*k.BreakEvenRequests/d.RequestsPerDay, 'g', 2, 64) + " days"
		}
	}
	return c
}
