package quantize

import "math"

// histogram is a streamed histogram of one tensor's values with bounded
// memory: 2·half bins of equal width w covering [−half·w, half·w),
// symmetric about zero so that bin edges always include 0. When a value
// falls outside, the width doubles (adjacent bins merge) until the range
// covers it. The exact minimum and maximum are kept besides.
type histogram struct {
	half     int
	width    float64
	counts   []float64 // 2·half bins; bin i covers [(i−half)·w, (i−half+1)·w)
	min, max float64
	n        float64
	zeros    float64 // values exactly 0 (in bin half too)
}

func newHistogram(half int) *histogram {
	return &histogram{half: half, counts: make([]float64, 2*half), min: math.Inf(1), max: math.Inf(-1)}
}

// add streams values into the histogram. NaNs are ignored; ±Inf clamp
// to the largest finite float32.
func (h *histogram) add(xs []float32) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range xs {
		x := float64(v)
		if x < lo {
			lo = x
		}
		if x > hi {
			hi = x
		}
	}
	if lo > hi { // empty or all NaN
		return
	}
	lo = max(lo, -math.MaxFloat32)
	hi = min(hi, math.MaxFloat32)
	h.min, h.max = min(h.min, lo), max(h.max, hi)
	r := max(-lo, hi)
	if h.width == 0 {
		if r == 0 {
			r = 1e-30
		}
		h.width = r / float64(h.half) * (1 + 1e-9)
	}
	for r >= h.width*float64(h.half) {
		h.grow()
	}
	inv := 1 / h.width
	for _, v := range xs {
		x := float64(v)
		if x != x {
			continue
		}
		if x == 0 {
			h.zeros++
		}
		i := int(math.Floor(x*inv)) + h.half
		i = min(max(i, 0), 2*h.half-1)
		h.counts[i]++
		h.n++
	}
}

// grow doubles the bin width, merging pairs of bins about zero.
func (h *histogram) grow() {
	c := h.counts
	nh := h.half
	next := make([]float64, len(c))
	for i, v := range c {
		// Bin i starts at (i−half)·w; in the new bins of width 2w it
		// falls in floor((i−half)/2) + half.
		j := floorDiv(i-nh, 2) + nh
		next[j] += v
	}
	h.counts = next
	h.width *= 2
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// edge is the lower edge of bin i.
func (h *histogram) edge(i int) float64 { return float64(i-h.half) * h.width }

// center is the middle of bin i.
func (h *histogram) center(i int) float64 { return (float64(i-h.half) + 0.5) * h.width }

// nonNegative reports whether no negative value was seen.
func (h *histogram) nonNegative() bool { return h.min >= 0 }

// magnitudes folds the histogram into one of |x|: half bins of width w
// over [0, half·w).
func (h *histogram) magnitudes() []float64 {
	m := make([]float64, h.half)
	for i := 0; i < h.half; i++ {
		m[i] = h.counts[h.half+i] + h.counts[h.half-1-i]
	}
	return m
}

// lastNonZero is the index of the last non-zero bin of c, or −1.
func lastNonZero(c []float64) int {
	for i := len(c) - 1; i >= 0; i-- {
		if c[i] != 0 {
			return i
		}
	}
	return -1
}

// firstNonZero is the index of the first non-zero bin of c, or len(c).
func firstNonZero(c []float64) int {
	for i, v := range c {
		if v != 0 {
			return i
		}
	}
	return len(c)
}
