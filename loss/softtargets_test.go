package loss

import (
	"math"
	"testing"
)

func TestSoftTargets(t *testing.T) {
	st := SoftTargets{Temperature: 4, Alpha: 0.9}
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
	if o, h := st.Objective(), Hinton(0.9, 4); o.HardWeight != h.HardWeight || o.SoftWeight != h.SoftWeight || o.Temperature != h.Temperature || o.Features != nil {
		t.Errorf("Objective() = %+v, want Hinton(0.9, 4)", o)
	}
	for _, bad := range []SoftTargets{
		{Temperature: 0, Alpha: 0.5}, {Temperature: -1, Alpha: 0.5}, {Temperature: math.Inf(1), Alpha: 0.5},
		{Temperature: math.NaN(), Alpha: 0.5}, {Temperature: 2, Alpha: -0.1}, {Temperature: 2, Alpha: 1.5}, {Temperature: 2, Alpha: math.NaN()},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
	// The objective and the teacher mixing share the one check: a
	// temperature one accepts, the other does too.
	if err := Hinton(0.5, math.Inf(1)).Validate(); err == nil {
		t.Error("objective at infinite temperature validated")
	}
}
