package loss

import (
	"math"
	"testing"
)

func TestSoftTargetsObjective(t *testing.T) {
	o, h := SoftTargets{Temperature: 4, Alpha: 0.9}.Objective(), Hinton(0.9, 4)
	if o.HardWeight != h.HardWeight || o.SoftWeight != h.SoftWeight || o.Temperature != h.Temperature || o.Features != nil {
		t.Errorf("Objective() = %+v, want Hinton(0.9, 4) = %+v", o, h)
	}
}

// The objective and the teacher mixing share one temperature check, so a
// temperature one rejects the other rejects too; infinity passed the
// objective's old check (T > 0).
func TestCheckTemperature(t *testing.T) {
	for _, T := range []float64{0.5, 1, 4, 100} {
		if err := CheckTemperature(T); err != nil {
			t.Errorf("CheckTemperature(%v) = %v", T, err)
		}
		if err := Hinton(0.5, T).Validate(); err != nil {
			t.Errorf("objective at T=%v: %v", T, err)
		}
	}
	for _, T := range []float64{0, -1, math.Inf(1), math.Inf(-1), math.NaN()} {
		if CheckTemperature(T) == nil {
			t.Errorf("CheckTemperature(%v) accepted", T)
		}
		if Hinton(0.5, T).Validate() == nil {
			t.Errorf("objective at T=%v validated", T)
		}
	}
}
