package cost

import (
	"fmt"
	"math"
	"time"

	"github.com/distill-dev/distill/report"
)

// DefaultLatencyTarget is the p99 batch latency Apply keeps under when
// choosing a batch size, unless told otherwise.
const DefaultLatencyTarget = 100 * time.Millisecond

// PerMillion returns the cost of serving one million requests on a
// machine costing usdPerHour that answers requestsPerSecond:
// usdPerHour ÷ (3600 × requestsPerSecond) × 10⁶. It is 0 (unknown) when
// either is not positive.
func PerMillion(usdPerHour, requestsPerSecond float64) float64 {
	if !(usdPerHour > 0) || !(requestsPerSecond > 0) {
		return 0
	}
	return usdPerHour / (3600 * requestsPerSecond) * 1e6
}

// TrainingUSD returns the cost of seconds of machine time at usdPerHour.
func TrainingUSD(seconds, usdPerHour float64) float64 {
	if !(seconds > 0) || !(usdPerHour > 0) {
		return 0
	}
	return seconds / 3600 * usdPerHour
}

// SavingsPercent returns how much cheaper perMillion is than
// referencePerMillion, in percent of the reference: 100 × (reference −
// perMillion) ÷ reference, negative when it costs more. ok is false when
// either cost is unknown (not positive).
func SavingsPercent(referencePerMillion, perMillion float64) (pct float64, ok bool) {
	if !(referencePerMillion > 0) || !(perMillion > 0) {
		return 0, false
	}
	return 100 * (referencePerMillion - perMillion) / referencePerMillion, true
}

// BreakEven returns how many requests must be served at perMillion
// instead of referencePerMillion for the saving to pay back trainingUSD:
// trainingUSD ÷ ((referencePerMillion − perMillion) ÷ 10⁶). ok is false
// when there is no saving or the training cost is unknown (not
// positive): the model never pays off, or it cannot be said when.
func BreakEven(trainingUSD, referencePerMillion, perMillion float64) (requests float64, ok bool) {
	saving := (referencePerMillion - perMillion) / 1e6
	if !(trainingUSD > 0) || !(perMillion > 0) || !(saving > 0) {
		return 0, false
	}
	return trainingUSD / saving, true
}

// BestBatch returns the throughput point with the most requests per
// second among those whose p99 batch latency is at most targetMS, and
// true; when none is, it returns the point with the lowest p99 batch
// latency and false. It returns false and the zero point for no points.
func BestBatch(points []report.Throughput, targetMS float64) (report.Throughput, bool) {
	var best report.Throughput
	found := false
	for _, p := range points {
		if p.BatchLatencyMS.P99 <= targetMS && p.RequestsPerSecond > 0 && (!found || p.RequestsPerSecond > best.RequestsPerSecond) {
			best, found = p, true
		}
	}
	if found {
		return best, true
	}
	for i, p := range points {
		if i == 0 || p.BatchLatencyMS.P99 < best.BatchLatencyMS.P99 {
			best = p
		}
	}
	return best, false
}

// StageSeconds returns how long making m took, from the report's stage
// that made it (report.MadeBy): a teacher's, student's or baseline's own
// stage. An INT8 student's time is its quantize stage plus its source
// student's; an INT8 teacher's is its quantize stage alone, since the
// teacher exists either way. A model's train_seconds, when set, is used
// instead of its stage. It returns 0 when the time is unknown.
func StageSeconds(r *report.Report, m report.Model) float64 {
	id, ok := report.MadeBy(m)
	if !ok {
		return 0
	}
	if id.Kind == report.StageQuantize {
		secs, _ := r.StageSeconds(id)
		if m.Role == report.RoleStudentInt8 {
			for _, s := range r.Models {
				if s.Name == id.Model && s.Role != report.RoleStudentInt8 {
					secs += StageSeconds(r, s)
					break
				}
			}
		}
		return secs
	}
	if m.TrainSeconds > 0 {
		return m.TrainSeconds
	}
	secs, _ := r.StageSeconds(id)
	return secs
}

// Options say how Apply prices a report.
type Options struct {
	// Prices is the price table; nil means DefaultPrices().
	Prices *Table
	// Machine is the table entry the models are priced at: the machine
	// type they would be served and trained on. "" means the entry that
	// matches the hardware the report was measured on (Table.Match; an
	// error wrapping ErrNoPriceMatch when none does), or, for a report
	// that does not record it, DefaultMachine(report's device).
	Machine string
	// LatencyTarget bounds the p99 batch latency of the batch size each
	// model is priced at; 0 means DefaultLatencyTarget.
	LatencyTarget time.Duration
	// Reference names the model savings are relative to; "" means the
	// report's first teacher.
	Reference string
	// RequestsPerDay is a traffic forecast the deployment options are
	// billed for (report.Deployment); 0 means none.
	RequestsPerDay float64
}

// chooseMachine returns the entry Apply prices r at and how it was
// chosen (see Options.Machine).
func chooseMachine(t *Table, r *report.Report, named string) (machine, chosen string, err error) {
	switch {
	case named != "":
		return named, "named by the user", nil
	case r.Machine != nil:
		return t.Match(*r.Machine)
	}
	m := DefaultMachine(r.Device)
	return m, "assumed: the report does not record the hardware it was measured on", nil
}

// Apply prices every model of r that has serving measurements and sets
// r.Price, r.TrainingCost and each such model's Cost (replacing earlier
// ones; a model without measurements gets none). It fills in a model's
// TrainSeconds from its stage when unset (see StageSeconds). The savings
// and break-even volumes are relative to the reference model (the first
// teacher by default); without one they are left out.
//
// Every number follows from r and o alone: Apply measures nothing.
func Apply(r *report.Report, o Options) error {
	t := o.Prices
	if t == nil {
		t = DefaultPrices()
	}
	machine, chosen, err := chooseMachine(t, r, o.Machine)
	if err != nil {
		return err
	}
	price, err := t.Lookup(machine)
	if err != nil {
		return err
	}
	target := o.LatencyTarget
	if target == 0 {
		target = DefaultLatencyTarget
	}
	if target < 0 {
		return fmt.Errorf("cost: latency target %v is negative; give a positive duration such as 100ms", target)
	}
	targetMS := ms(target)
	hourly := price.Hourly()

	ref := -1
	for i, m := range r.Models {
		if (o.Reference != "" && m.Name == o.Reference) || (o.Reference == "" && m.Role == report.RoleTeacher) {
			ref = i
			break
		}
	}
	if o.Reference != "" && ref < 0 {
		return fmt.Errorf("cost: reference model %q is not in the report; name one of its models", o.Reference)
	}

	r.Price = &report.Pricing{
		Machine: machine, Chosen: chosen, Description: price.Description, Currency: t.Currency,
		USDPerHour: hourly, Source: price.Source, AsOf: price.AsOf, Table: t.Name,
		LatencyTargetMS: targetMS,
	}
	var total float64
	for _, s := range r.Stages {
		total += s.Seconds
	}
	r.TrainingCost = &report.TrainingCost{Seconds: total, USD: perTier(hourly, func(usd float64) float64 { return TrainingUSD(total, usd) })}

	for i := range r.Models {
		m := &r.Models[i]
		m.Cost = nil
		if m.TrainSeconds == 0 {
			m.TrainSeconds = StageSeconds(r, *m)
		}
		if m.Serving == nil || len(m.Serving.Throughput) == 0 {
			continue
		}
		// The server scenario prices a model when it sustained some rate
		// under a bound at least as tight as the target (a looser one
		// says nothing about the target, e.g. after --latency-target).
		if sv := m.Serving.Server; sv != nil && sv.RequestsPerSecond > 0 && sv.LatencyBoundMS <= targetMS {
			m.Cost = serverCost(*sv, hourly, targetMS)
			m.Cost.TrainingUSD = TrainingUSD(m.TrainSeconds, hourly.OnDemand)
			continue
		}
		p, within := BestBatch(m.Serving.Throughput, targetMS)
		m.Cost = &report.Cost{
			Scenario: report.ScenarioOffline,
			Batch:    p.Batch, RequestsPerSecond: p.RequestsPerSecond, LatencyTargetMS: targetMS, WithinTarget: within,
			USDPerMillion: perTier(hourly, func(usd float64) float64 { return PerMillion(usd, p.RequestsPerSecond) }),
			TrainingUSD:   TrainingUSD(m.TrainSeconds, hourly.OnDemand),
			// The fastest window gives the low end of the cost, the
			// slowest the high end; 0 (unknown) without a spread.
			RequestsPerSecondMin: p.RequestsPerSecondMin,
			RequestsPerSecondMax: p.RequestsPerSecondMax,
			USDPerMillionLow:     PerMillion(hourly.OnDemand, p.RequestsPerSecondMax),
			USDPerMillionHigh:    PerMillion(hourly.OnDemand, p.RequestsPerSecondMin),
		}
	}
	if o.RequestsPerDay < 0 || math.IsNaN(o.RequestsPerDay) || math.IsInf(o.RequestsPerDay, 0) {
		return fmt.Errorf("cost: traffic forecast %v requests a day: give a number ≥ 0", o.RequestsPerDay)
	}
	r.Deployment = Deploy(r, t, o.RequestsPerDay)
	if u := r.Transfer; u != nil && ref >= 0 {
		// The passes the transfer set saved, at the reference teacher's
		// best offline throughput.
		u.TeacherSecondsAvoided = 0
		if best := r.Models[ref].Serving.BestThroughput(); best > 0 {
			u.TeacherSecondsAvoided = float64(u.TeacherExamplesAvoided) / best
		}
	}
	if ref < 0 || r.Models[ref].Cost == nil {
		return nil
	}
	refCost := r.Models[ref].Cost.USDPerMillion.OnDemand
	for i := range r.Models {
		c := r.Models[i].Cost
		if i == ref || c == nil {
			continue
		}
		c.Reference = r.Models[ref].Name
		if s, ok := SavingsPercent(refCost, c.USDPerMillion.OnDemand); ok {
			c.SavingsPercent = &s
		}
		if n, ok := BreakEven(c.TrainingUSD, refCost, c.USDPerMillion.OnDemand); ok {
			c.BreakEvenRequests = &n
		}
	}
	return nil
}

// serverCost prices a model from its server scenario: the highest
// Poisson rate it sustained within the p99 bound (the median search's).
// The searches' lowest pass and highest rate tried bound the cost's
// range; a report from before searches were repeated has one search,
// whose pass and failure bound it.
func serverCost(sv report.ServerScenario, hourly report.TierPrices, targetMS float64) *report.Cost {
	lo, hi := sv.RequestsPerSecondLow, sv.RequestsPerSecondHigh
	if lo == 0 && hi == 0 {
		lo, hi = sv.RequestsPerSecond, sv.FailedRequestsPerSecond
	}
	c := &report.Cost{
		Scenario: report.ScenarioServer, Batch: sv.MaxBatch,
		RequestsPerSecond: sv.RequestsPerSecond, LatencyTargetMS: targetMS,
		WithinTarget:         true,
		USDPerMillion:        perTier(hourly, func(usd float64) float64 { return PerMillion(usd, sv.RequestsPerSecond) }),
		RequestsPerSecondMin: lo,
		RequestsPerSecondMax: hi,
		USDPerMillionHigh:    PerMillion(hourly.OnDemand, lo),
		USDPerMillionLow:     PerMillion(hourly.OnDemand, hi),
	}
	return c
}

// perTier applies f to each known tier price of hourly.
func perTier(hourly report.TierPrices, f func(usdPerHour float64) float64) report.TierPrices {
	var out report.TierPrices
	if hourly.OnDemand > 0 {
		out.OnDemand = f(hourly.OnDemand)
	}
	if hourly.Spot > 0 {
		out.Spot = f(hourly.Spot)
	}
	if hourly.Reserved > 0 {
		out.Reserved = f(hourly.Reserved)
	}
	return out
}
