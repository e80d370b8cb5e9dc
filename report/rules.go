package report

import "fmt"

// RuleOfThumb is a saving people quote from experience, beside what this
// run measured.
type RuleOfThumb struct {
	// Name says what saves: "distillation", "INT8", "spot", "caching".
	Name string
	// RulePercent is the usual figure.
	RulePercent float64
	// MeasuredPercent is this run's figure; nil when the run cannot say.
	MeasuredPercent *float64
	// Basis says what the measured figure compares.
	Basis string
}

// Usual savings (percent) the rules of thumb quote.
const (
	RuleDistillation = 60
	RuleInt8         = 50
	RuleSpot         = 70
	RuleCaching      = 30
)

// RulesOfThumb sets the usual savings beside this report's: the best
// float student against the reference teacher, the best INT8 model
// against the float model it was quantized from, spot against on-demand
// at the report's price, and what the transfer set saved in teacher
// passes (Transfer) against the run's stage time. Every figure follows
// from the report's own numbers.
func (r *Report) RulesOfThumb() []RuleOfThumb {
	pct := func(v float64) *float64 { return &v }
	rules := []RuleOfThumb{
		{Name: "distillation", RulePercent: RuleDistillation, Basis: "no float student with a cost"},
		{Name: "INT8", RulePercent: RuleInt8, Basis: "no INT8 model with a cost"},
		{Name: "spot", RulePercent: RuleSpot, Basis: "no spot price"},
		{Name: "caching", RulePercent: RuleCaching, Basis: "no transfer set"},
	}
	for _, m := range r.Models {
		c := m.Cost
		if m.Role != RoleStudent || c == nil || c.SavingsPercent == nil {
			continue
		}
		if best := rules[0].MeasuredPercent; best == nil || *c.SavingsPercent > *best {
			rules[0].MeasuredPercent = pct(*c.SavingsPercent)
			rules[0].Basis = fmt.Sprintf("%s vs %s, $/1M on-demand", m.Name, c.Reference)
		}
	}
	for _, m := range r.Models {
		src := r.cost(m.Source)
		if m.Source == "" || m.Cost == nil || src == nil || !(src.USDPerMillion.OnDemand > 0) {
			continue
		}
		s := 100 * (1 - m.Cost.USDPerMillion.OnDemand/src.USDPerMillion.OnDemand)
		if best := rules[1].MeasuredPercent; best == nil || s > *best {
			rules[1].MeasuredPercent = pct(s)
			rules[1].Basis = fmt.Sprintf("%s vs %s, $/1M on-demand", m.Name, m.Source)
		}
	}
	if p := r.Price; p != nil && p.USDPerHour.OnDemand > 0 && p.USDPerHour.Spot > 0 {
		rules[2].MeasuredPercent = pct(100 * (1 - p.USDPerHour.Spot/p.USDPerHour.OnDemand))
		rules[2].Basis = p.Machine + " spot vs on-demand, per hour"
	}
	if t := r.Transfer; t != nil && t.TeacherSecondsAvoided > 0 {
		var total float64
		for _, s := range r.Stages {
			total += s.Seconds
		}
		rules[3].MeasuredPercent = pct(100 * t.TeacherSecondsAvoided / (t.TeacherSecondsAvoided + total))
		rules[3].Basis = fmt.Sprintf("%s teacher passes (%.0f s) the transfer set saved, of the run's time with them", FormatCount(float64(t.TeacherExamplesAvoided)), t.TeacherSecondsAvoided)
	}
	return rules
}

// TransferUse is what the run's transfer set saved: every example a
// student trained on whose soft targets it read instead of running the
// teacher(s).
type TransferUse struct {
	// Rows is the transfer set's size.
	Rows int `json:"rows"`
	// TeacherExamplesAvoided counts teacher forward passes (one example
	// each, every teacher counted) the students' training did not run:
	// each student's epochs over the set.
	TeacherExamplesAvoided int64 `json:"teacher_examples_avoided"`
	// TeacherSecondsAvoided prices those passes at the teachers'
	// measured offline throughput; 0 when it was not measured.
	TeacherSecondsAvoided float64 `json:"teacher_seconds_avoided,omitempty"`
}
