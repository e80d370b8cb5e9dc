package eval

import "math"

// Z95 is the standard normal quantile of a two-sided 95% interval.
const Z95 = 1.959963984540054

// Wilson returns the 95% Wilson score interval of an accuracy measured
// as correct successes out of n test examples. Unlike the normal
// ("Wald") interval it stays inside [0, 1] and is not empty at 0 or n
// errors, which is where distilled models live. For n < 1 it returns
// [0, 1]: nothing is known.
func Wilson(correct, n int) (lo, hi float64) {
	if n < 1 {
		return 0, 1
	}
	correct = min(max(correct, 0), n)
	const z = Z95
	nf := float64(n)
	p := float64(correct) / nf
	den := 1 + z*z/nf
	mid := (p + z*z/(2*nf)) / den
	half := z / den * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf))
	return max(mid-half, 0), min(mid+half, 1)
}

// SameAccuracy reports whether accuracies a (on na test examples) and b
// (on nb) are within noise of each other: a two-sided two-proportion z
// test at the 5% level with the pooled proportion, |a − b| ≤ 1.96 ×
// √(p̄(1−p̄)(1/na + 1/nb)). Models scored on the same test set are
// paired, and a paired test (McNemar's) would be sharper, but reports
// keep only error counts, not which examples each model got wrong; the
// unpaired test errs towards "within noise". With an unknown test-set
// size (na or nb < 1) only equal accuracies are the same.
func SameAccuracy(a float64, na int, b float64, nb int) bool {
	if a == b {
		return true
	}
	if na < 1 || nb < 1 {
		return false
	}
	p := (a*float64(na) + b*float64(nb)) / float64(na+nb)
	se := math.Sqrt(p * (1 - p) * (1/float64(na) + 1/float64(nb)))
	if !(se > 0) {
		// Pooled accuracy 0 or 1 with a ≠ b cannot happen for counts;
		// for fractions that are not counts, compare them exactly.
		return false
	}
	return math.Abs(a-b) <= Z95*se
}
