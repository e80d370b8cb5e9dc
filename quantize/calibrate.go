package quantize

import (
	"math"
	"slices"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/internal/vocab"
)

// Method is how the clipping range of an activation is chosen from its
// calibration histogram.
type Method string

// Calibration methods.
const (
	// MinMax uses the observed range.
	MinMax Method = "minmax"
	// Percentile clips to the Config.Percentile-th percentile (and, for
	// tensors with negative values, the 100−Percentile-th).
	Percentile Method = "percentile"
	// Entropy is TensorRT's calibration: the threshold whose quantized
	// distribution has the least Kullback-Leibler divergence from the
	// observed one (searched over the histogram's bins; 255 levels for
	// non-negative tensors, 128 per side for signed ones, which are
	// clipped symmetrically and then to their observed range).
	Entropy Method = "entropy"
	// MSE picks the range [a, b] (bin edges; a = 0 for non-negative
	// tensors) that minimises the expected squared quantization error:
	// rounding noise (b−a)²/255²/12 per value inside plus the squared
	// clipping error of the values outside.
	MSE Method = "mse"
)

// DefaultMethod is the one default of every caller: a zero Config, a
// recipe without quantize.method, and the CLI's and the benchmark's
// --method. It is the method the shipped recipes' reports were made with.
const DefaultMethod = Entropy

// DefaultPercentile is the percentile Percentile keeps when none is given.
const DefaultPercentile = 99.99

// methods lists every method, DefaultMethod first; recipe validation,
// the CLI's flags and completion, the recipe schema and the reference
// docs all derive from it.
var methods = vocab.Set[Method]{Entropy, MinMax, Percentile, MSE}

// Methods returns the calibration methods, DefaultMethod first, in the
// order documentation lists them. The slice is a copy.
func Methods() []Method { return methods.Values() }

// ParseMethod returns the method named s, or an error listing the valid
// names.
func ParseMethod(s string) (Method, error) { return methods.Parse("quantize", "calibration method", s) }

// clipRange returns the clipping range [a, b], a ≤ 0 ≤ b, chosen by the
// method from the histogram.
func clipRange(h *histogram, m Method, percentile float64) (a, b float64) {
	if h.n == 0 {
		return 0, 0
	}
	lo, hi := min(h.min, 0), max(h.max, 0)
	switch m {
	case Percentile:
		p := percentile / 100
		b = h.quantile(p)
		if !h.nonNegative() {
			a = h.quantile(1 - p)
		}
	case Entropy:
		// Exact zeros (ReLU outputs: often half the values) quantize
		// without error to the zero point; left in, their spike would
		// dominate the divergence and pull the threshold down.
		var hist []float64
		levels := 255
		if h.nonNegative() {
			hist = slices.Clone(h.counts[h.half:])
		} else {
			hist, levels = h.magnitudes(), 128
		}
		hist[0] -= h.zeros
		b = float64(klThreshold(hist, levels)) * h.width
		if !h.nonNegative() {
			a = -b
		}
	case MSE:
		a, b = h.mseRange()
	default:
		return lo, hi
	}
	return max(min(a, 0), lo), min(max(b, 0), hi)
}

// quantile returns the value below which a fraction p of the values lie,
// interpolating linearly inside a bin.
func (h *histogram) quantile(p float64) float64 {
	target := p * h.n
	var cum float64
	for i, c := range h.counts {
		if c > 0 && cum+c >= target {
			f := (target - cum) / c
			return h.edge(i) + f*h.width
		}
		cum += c
	}
	return h.max
}

// klThreshold returns the number of bins of hist to keep (≥ levels)
// whose quantization to levels levels diverges least from the clipped
// histogram, as TensorRT's entropy calibration does.
func klThreshold(hist []float64, levels int) int {
	last := lastNonZero(hist)
	if last < levels {
		return max(last+1, 1)
	}
	best, bestKL := last+1, math.Inf(1)
	p := make([]float64, len(hist))
	q := make([]float64, len(hist))
	var tail float64
	for _, v := range hist[levels:] {
		tail += v
	}
	for i := levels; i <= last+1; i++ {
		// Reference distribution: the first i bins, outliers folded into
		// the last one.
		copy(p, hist[:i])
		p[i-1] += tail
		if i < len(hist) {
			tail -= hist[i]
		}
		// Candidate: hist[:i] merged into levels groups, each group's
		// mass spread over its non-empty bins.
		merged := float64(i) / float64(levels)
		for j := 0; j < levels; j++ {
			start := int(float64(j) * merged)
			stop := int(float64(j+1) * merged)
			if j == levels-1 {
				stop = i
			}
			var total, nz float64
			for k := start; k < stop; k++ {
				total += hist[k]
				if hist[k] != 0 {
					nz++
				}
			}
			for k := start; k < stop; k++ {
				q[k] = 0
				if hist[k] != 0 {
					q[k] = total / nz
				}
			}
		}
		if kl := klDivergence(p[:i], q[:i]); kl < bestKL {
			best, bestKL = i, kl
		}
	}
	return best
}

// klDivergence is KL(p‖q) of two unnormalised histograms; bins where q
// is empty but p is not get a small smoothing mass.
func klDivergence(p, q []float64) float64 {
	var sp, sq float64
	for i := range p {
		sp += p[i]
		sq += q[i]
	}
	if sp == 0 || sq == 0 {
		return math.Inf(1)
	}
	const eps = 1e-4
	var kl float64
	for i := range p {
		if p[i] == 0 {
			continue
		}
		pi := p[i] / sp
		qi := q[i] / sq
		if qi == 0 {
			qi = eps / sq
		}
		kl += pi * math.Log(pi/qi)
	}
	return kl
}

// mseRange searches bin edges for the range of least expected squared
// quantization error, using prefix sums of the bins' counts, Σx and Σx²
// (values at bin centres).
func (h *histogram) mseRange() (float64, float64) {
	nb := len(h.counts)
	s0 := make([]float64, nb+1)
	s1 := make([]float64, nb+1)
	s2 := make([]float64, nb+1)
	for i, c := range h.counts {
		x := h.center(i)
		s0[i+1] = s0[i] + c
		s1[i+1] = s1[i] + c*x
		s2[i+1] = s2[i] + c*x*x
	}
	first, last := firstNonZero(h.counts), lastNonZero(h.counts)
	// err(a = edge(j), b = edge(k)): bins [j, k) inside.
	cost := func(j, k int) float64 {
		a, b := h.edge(j), h.edge(k)
		s := (b - a) / 255
		inside := s0[k] - s0[j]
		e := inside * s * s / 12
		// Above b: Σ (x − b)².
		c0, c1, c2 := s0[nb]-s0[k], s1[nb]-s1[k], s2[nb]-s2[k]
		e += c2 - 2*b*c1 + b*b*c0
		// Below a: Σ (a − x)².
		c0, c1, c2 = s0[j], s1[j], s2[j]
		e += c2 - 2*a*c1 + a*a*c0
		return e
	}
	half := h.half
	bestJ, bestK := min(first, half), max(last+1, half)
	best := math.Inf(1)
	jLo := min(first, half)
	for k := half; k <= max(last+1, half); k++ {
		if k == half && jLo == half {
			continue // empty range
		}
		for j := jLo; j <= half; j++ {
			if j == k {
				continue
			}
			if e := cost(j, k); e < best {
				best, bestJ, bestK = e, j, k
			}
		}
	}
	return h.edge(bestJ), h.edge(bestK)
}

// actParams turns a clipping range into uint8 quantization parameters:
// scale = (b−a)/255 and the zero point that represents 0.0 exactly.
func actParams(a, b float64) infer.QParams {
	if !(b > a) {
		return infer.QParams{Scale: 1, ZeroPoint: 0}
	}
	s := float32((b - a) / 255)
	if !(s > 0) || math.IsInf(float64(s), 0) {
		s = max(math.SmallestNonzeroFloat32*1e6, min(s, math.MaxFloat32/1e3))
	}
	zp := math.RoundToEven(-a / float64(s))
	return infer.QParams{Scale: s, ZeroPoint: int32(min(max(zp, 0), 255))}
}
