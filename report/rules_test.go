package report

import (
	"math"
	"testing"
)

func TestRulesOfThumb(t *testing.T) {
	sav := func(v float64) *float64 { return &v }
	cost := func(usd float64, s *float64) *Cost {
		return &Cost{USDPerMillion: TierPrices{OnDemand: usd}, SavingsPercent: s, Reference: "teacher"}
	}
	r := &Report{
		Models: []Model{
			{Name: "teacher", Role: RoleTeacher, Cost: cost(1, nil)},
			{Name: "a", Role: RoleStudent, Cost: cost(0.5, sav(50))},
			{Name: "b", Role: RoleStudent, Cost: cost(0.3, sav(70))},
			{Name: "b-baseline", Role: RoleBaseline, Cost: cost(0.1, sav(90))},
			{Name: "b-int8", Role: RoleStudentInt8, Source: "b", Cost: cost(0.12, sav(88))},
		},
		Price:    &Pricing{Machine: "m", USDPerHour: TierPrices{OnDemand: 1, Spot: 0.25}},
		Stages:   []Stage{{Name: "teacher", Seconds: 60}, {Name: "student:a", Seconds: 40}},
		Transfer: &TransferUse{TeacherExamplesAvoided: 1000, TeacherSecondsAvoided: 100},
	}
	got := r.RulesOfThumb()
	want := []float64{70, 60, 75, 50} // b; b-int8 vs b: 1 − 0.12/0.3; 1 − 0.25; 100 of 200 s
	for i, w := range want {
		if got[i].MeasuredPercent == nil || math.Abs(*got[i].MeasuredPercent-w) > 1e-9 {
			t.Errorf("%s: measured %v, want %v (%s)", got[i].Name, got[i].MeasuredPercent, w, got[i].Basis)
		}
	}
	// A baseline is not a distilled student, whatever it saves.
	if got[0].Basis != "b vs teacher, $/1M on-demand" {
		t.Errorf("distillation basis %q", got[0].Basis)
	}
	empty := (&Report{}).RulesOfThumb()
	for _, rule := range empty {
		if rule.MeasuredPercent != nil || rule.Basis == "" {
			t.Errorf("empty report: %+v", rule)
		}
	}
}

func TestModelBytesAt(t *testing.T) {
	s := &Serving{Throughput: []Throughput{{Batch: 1, ModelBytes: 10}, {Batch: 32, ModelBytes: 40}}}
	for batch, want := range map[int]int64{0: 40, 1: 10, 32: 40, 64: 40, 8: 10} {
		if got := s.ModelBytesAt(batch); got != want {
			t.Errorf("ModelBytesAt(%d) = %d, want %d", batch, got, want)
		}
	}
	if (*Serving)(nil).ModelBytesAt(1) != 0 {
		t.Error("nil serving")
	}
}
