package cost

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/distill-dev/distill/report"
)

// HoursPerMonth is the month a monthly bill assumes: 365 × 24 ÷ 12.
const HoursPerMonth = 730

// Deploy prices every model of r that has a cost on every entry of t
// that its measurement speaks for, and answers a traffic forecast of
// requestsPerDay (0: none). It needs the hardware r was measured on
// (r.Machine) and returns nil without it.
//
// A measurement speaks for the entries of the same hardware: on a GPU,
// the entries matching its name (one per provider), at the measured
// rate; on a CPU, the entries of the same architecture and vendor, at
// the measured rate scaled by their vCPUs over the CPUs measured on. The
// scaling assumes throughput grows in proportion to cores, which a
// batched dense network roughly does and a server's fixed overheads do
// not; each option states its scale so a reader can tell.
func Deploy(r *report.Report, t *Table, requestsPerDay float64) *report.Deployment {
	if r.Machine == nil || t == nil {
		return nil
	}
	m := *r.Machine
	type entry struct {
		name  string
		scale float64
	}
	var entries []entry
	gpu := strings.HasPrefix(strings.ToLower(m.Device), "cuda")
	vendor := cpuVendor(m)
	for _, name := range t.Names() {
		mt := t.Machines[name].Match
		switch {
		case mt == nil:
		case gpu && mt.GPU != "" && m.GPU != "" && strings.Contains(strings.ToLower(m.GPU), strings.ToLower(mt.GPU)):
			entries = append(entries, entry{name, 1})
		case !gpu && mt.GPU == "" && mt.Arch == m.Arch && mt.CPU == vendor && m.CPUs > 0:
			entries = append(entries, entry{name, float64(mt.VCPUs) / float64(m.CPUs)})
		}
	}
	if len(entries) == 0 {
		return nil
	}
	d := &report.Deployment{RequestsPerDay: requestsPerDay}
	for _, mod := range r.Models {
		c := mod.Cost
		if c == nil || !(c.RequestsPerSecond > 0) {
			continue
		}
		var bytes int64
		if mod.Serving != nil {
			bytes = mod.Serving.ModelBytesAt(c.Batch)
		}
		first := len(d.Options)
		for _, e := range entries {
			p := t.Machines[e.name]
			hourly := p.Hourly()
			rate := c.RequestsPerSecond * e.scale
			o := report.DeploymentOption{
				Model: mod.Name, Machine: e.name, Scale: e.scale, RequestsPerSecond: rate,
				USDPerMillion: perTier(hourly, func(usd float64) float64 { return PerMillion(usd, rate) }),
				FitsMemory:    p.MemoryGiB == 0 || float64(bytes) <= p.MemoryGiB*(1<<30),
			}
			if requestsPerDay > 0 {
				o.Machines = MachinesFor(requestsPerDay, rate)
				o.MonthlyUSD = perTier(hourly, func(usd float64) float64 { return float64(o.Machines) * usd * HoursPerMonth })
			}
			d.Options = append(d.Options, o)
		}
		opts := d.Options[first:]
		// With a forecast the cheapest option is the smallest bill: a
		// machine is paid for by the hour, so for light traffic one
		// small machine beats a big one at the same $/1M. Without one,
		// the lowest $/1M; ties (machines of one family scaled by
		// vCPUs) go to the smaller machine.
		slices.SortStableFunc(opts, func(a, b report.DeploymentOption) int {
			if requestsPerDay > 0 {
				if c := cmp.Compare(a.MonthlyUSD.OnDemand, b.MonthlyUSD.OnDemand); c != 0 {
					return c
				}
			}
			if c := cmp.Compare(roundUSD(a.USDPerMillion.OnDemand), roundUSD(b.USDPerMillion.OnDemand)); c != 0 {
				return c
			}
			return cmp.Compare(a.Scale, b.Scale)
		})
		for i := range opts {
			if opts[i].FitsMemory {
				opts[i].Cheapest = true
				break
			}
		}
	}
	if len(d.Options) == 0 {
		return nil
	}
	how := fmt.Sprintf("the GPU entries matching %q, at the rate measured on it", m.GPU)
	if !gpu {
		how = fmt.Sprintf("the %s %s CPU entries, at the rate measured here on %d CPUs scaled by each entry's vCPUs (throughput assumed to grow in proportion to cores)", m.Arch, vendor, m.CPUs)
	}
	d.Method = "Each model's priced rate (its cost's scenario) on " + how + "."
	if requestsPerDay > 0 {
		d.Method += fmt.Sprintf(" The forecast of %s requests a day is served at its average rate by as many machines as it needs, at least one, each paid for %d hours a month.", report.FormatCount(requestsPerDay), HoursPerMonth)
	}
	return d
}

// roundUSD rounds a price to 6 significant digits, so that prices equal
// but for floating-point rounding compare equal.
func roundUSD(v float64) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	e := math.Pow(10, 5-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*e) / e
}

// MachinesFor returns how many machines sustaining rate requests per
// second serve requestsPerDay at its average rate: at least one.
func MachinesFor(requestsPerDay, rate float64) int {
	if !(rate > 0) {
		return 0
	}
	return max(1, int(math.Ceil(requestsPerDay/86400/rate)))
}
