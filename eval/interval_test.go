package eval

import (
	"math"
	"testing"
)

func TestWilson(t *testing.T) {
	for _, c := range []struct {
		correct, n int
		lo, hi     float64
	}{
		// Reference values worked out from Wilson's closed form
		// separately (Python, z = 1.959964).
		{9772, 10000, 0.974086, 0.979947},
		{50, 100, 0.403832, 0.596168},
		{100, 100, 0.963007, 1},
		{0, 10, 0, 0.277533},
	} {
		lo, hi := Wilson(c.correct, c.n)
		if math.Abs(lo-c.lo) > 1e-5 || math.Abs(hi-c.hi) > 1e-5 {
			t.Errorf("Wilson(%d, %d) = [%.6f, %.6f], want [%.6f, %.6f]", c.correct, c.n, lo, hi, c.lo, c.hi)
		}
		if p := float64(c.correct) / float64(c.n); lo > p || hi < p {
			t.Errorf("Wilson(%d, %d) = [%g, %g] does not hold the accuracy %g", c.correct, c.n, lo, hi, p)
		}
	}
	if lo, hi := Wilson(0, 0); lo != 0 || hi != 1 {
		t.Errorf("Wilson(0, 0) = [%g, %g], want [0, 1]", lo, hi)
	}
}

func TestSameAccuracy(t *testing.T) {
	const n = 10000
	acc := func(errors int) float64 { return 1 - float64(errors)/n }
	for _, c := range []struct {
		name   string
		a, b   float64
		na, nb int
		want   bool
	}{
		{"identical", acc(228), acc(228), n, n, true},
		// 228 vs 220 errors of 10,000: 8 errors apart, the 95% bound of
		// the difference is about 41 errors.
		{"8 errors apart", acc(228), acc(220), n, n, true},
		{"symmetric", acc(220), acc(228), n, n, true},
		{"clearly better", acc(164), acc(228), n, n, false},
		{"unknown size, different", acc(228), acc(220), 0, n, false},
		{"unknown size, equal", 0.9, 0.9, 0, 0, true},
	} {
		if got := SameAccuracy(c.a, c.na, c.b, c.nb); got != c.want {
			t.Errorf("%s: SameAccuracy(%g, %d, %g, %d) = %v, want %v", c.name, c.a, c.na, c.b, c.nb, got, c.want)
		}
	}
}
