package train

import (
	"strings"
	"testing"
)

// TestScheduleValidateKinds: every kind of the set validates (with the
// parameters it needs), so does the zero Schedule (the default kind), and
// an unknown kind is refused with every kind listed.
func TestScheduleValidateKinds(t *testing.T) {
	for _, k := range Schedules() {
		if err := (Schedule{Kind: k, StepEvery: 1, Gamma: 0.5}).Validate(); err != nil {
			t.Errorf("schedule %q: %v", k, err)
		}
	}
	if err := (Schedule{}).Validate(); err != nil {
		t.Errorf("the zero Schedule: %v", err)
	}
	err := Schedule{Kind: "linear"}.Validate()
	if err == nil {
		t.Fatal("schedule kind linear accepted")
	}
	for _, k := range Schedules() {
		if !strings.Contains(err.Error(), string(k)) {
			t.Errorf("%v; want it to list %q", err, k)
		}
	}
}
