package train

import (
	"strings"
	"testing"
)

// TestSchedules checks the schedule vocabulary: the default first, each
// kind parses to itself and validates (with the parameters it needs), and
// an unknown kind is refused by ParseSchedule and Validate with every
// kind listed.
func TestSchedules(t *testing.T) {
	ks := Schedules()
	if len(ks) == 0 || ks[0] != DefaultSchedule {
		t.Fatalf("Schedules() = %v, want DefaultSchedule %q first", ks, DefaultSchedule)
	}
	for _, k := range ks {
		if got, err := ParseSchedule(string(k)); err != nil || got != k {
			t.Errorf("ParseSchedule(%q) = %q, %v", k, got, err)
		}
		if err := (Schedule{Kind: k, StepEvery: 1, Gamma: 0.5}).Validate(); err != nil {
			t.Errorf("schedule %q: %v", k, err)
		}
	}
	if err := (Schedule{}).Validate(); err != nil {
		t.Errorf("the zero Schedule (the default kind): %v", err)
	}
	for _, err := range []error{
		func() error { _, err := ParseSchedule("linear"); return err }(),
		Schedule{Kind: "linear"}.Validate(),
	} {
		if err == nil {
			t.Fatal("schedule kind linear accepted")
		}
		for _, k := range ks {
			if !strings.Contains(err.Error(), string(k)) {
				t.Errorf("%v; want it to list %q", err, k)
			}
		}
	}
}
