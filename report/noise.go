package report

import (
	"fmt"
	"math"

	"github.com/distill-dev/distill/eval"
)

// Noise rules. A serving figure is the median of several timing windows
// and an accuracy is a count on a finite test set; both would come out
// differently if measured again. A verdict (a saving, "distillation
// added N errors", a place on the Pareto frontier) stands only when the
// difference is larger than that noise:
//
//   - Cost: two costs are within noise when their ranges overlap, each
//     range running from the cost at the fastest window's throughput to
//     the cost at the slowest (Cost.Range). Without a recorded spread a
//     range is the figure alone, so only equal costs are within noise.
//   - Accuracy: two accuracies are within noise when a two-proportion z
//     test at the 5% level does not tell them apart (eval.SameAccuracy).
//
// Both rules are symmetric and depend only on the two figures, so models
// with identical figures always get identical verdicts.

// Range returns the on-demand cost per million requests at the fastest
// and the slowest window's throughput; both are the figure itself when
// the spread was not recorded. The range always holds the figure.
func (c *Cost) Range() (lo, hi float64) {
	v := c.USDPerMillion.OnDemand
	lo, hi = v, v
	if c.USDPerMillionLow > 0 {
		lo = min(c.USDPerMillionLow, v)
	}
	if c.USDPerMillionHigh > 0 {
		hi = max(c.USDPerMillionHigh, v)
	}
	return lo, hi
}

// CostWithinNoise reports whether costs a and b are within noise of each
// other: whether their Ranges overlap. Unknown costs are never within
// noise.
func CostWithinNoise(a, b *Cost) bool {
	if a == nil || b == nil || !(a.USDPerMillion.OnDemand > 0) || !(b.USDPerMillion.OnDemand > 0) {
		return false
	}
	alo, ahi := a.Range()
	blo, bhi := b.Range()
	return alo <= bhi && blo <= ahi
}

// AccuracyWithinNoise reports whether models a and b, scored on test
// sets of na and nb examples, are equally accurate within noise (see
// eval.SameAccuracy).
func AccuracyWithinNoise(a Model, na int, b Model, nb int) bool {
	return eval.SameAccuracy(a.Accuracy, na, b.Accuracy, nb)
}

// FormatSpread formats the spread of a median between lo and hi as a
// share of the median: "±3%", "±0.4%"; "" when there is no spread to
// show (not recorded, or a median that is not positive).
func FormatSpread(median, lo, hi float64) string {
	if !(median > 0) || !(lo > 0) || !(hi > 0) {
		return ""
	}
	p := 100 * (hi - lo) / 2 / median
	switch {
	case math.IsNaN(p) || math.IsInf(p, 0) || p < 0:
		return ""
	case p < 10:
		return fmt.Sprintf("±%.1f%%", p)
	default:
		return fmt.Sprintf("±%.0f%%", p)
	}
}

// WithinNoise is the words verdicts add when a difference is not larger
// than the noise of the figures it is between.
const WithinNoise = "within noise"
