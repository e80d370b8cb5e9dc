package augment

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// Operation identifiers separate the random streams of the operations, so
// that turning one on or off leaves the others' draws unchanged.
const (
	opShift uint64 = iota + 1
	opRotate
	opElastic
	opMixup
	opNoise
	opCutout
	opFlip
)

// streamSalt separates this package's streams from other users of the
// same seed (data.Order, dropout masks): "augment" in ASCII.
const streamSalt = 0x61756775_6d656e74

// stream is a deterministic random source: a PCG generator plus the
// derived draws this package needs, implemented here so that their
// algorithms are pinned (see the package documentation).
type stream struct{ pcg rand.PCG }

// newStream seeds a stream from a hash of (seed, example, copy, op): a
// chain of SplitMix64 mixes, each absorbing one word.
func newStream(seed int64, example, cp int, op uint64) stream {
	h := splitmix64(uint64(seed) ^ streamSalt)
	h = splitmix64(h ^ uint64(example))
	h = splitmix64(h ^ uint64(cp))
	h = splitmix64(h ^ op)
	var s stream
	s.pcg.Seed(h, splitmix64(h^0x9e3779b97f4a7c15))
	return s
}

// splitmix64 is the SplitMix64 output function, a bijective mixer that
// turns nearby inputs into unrelated outputs.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// float64 returns a uniform float in [0, 1) with 53 random bits.
func (s *stream) float64() float64 {
	return float64(s.pcg.Uint64()>>11) * 0x1p-53
}

// uniform returns a uniform float in [lo, hi).
func (s *stream) uniform(lo, hi float64) float64 {
	return lo + (hi-lo)*s.float64()
}

// intn returns a uniform integer in [0, n), n > 0, by Lemire's
// multiply-and-reject method (no modulo bias).
func (s *stream) intn(n int) int {
	u := uint64(n)
	for {
		hi, lo := bits.Mul64(s.pcg.Uint64(), u)
		if lo >= u || lo >= (-u)%u {
			return int(hi)
		}
	}
}

// normal returns a standard normal sample by the Box–Muller transform.
func (s *stream) normal() float64 {
	u1 := 1 - s.float64() // (0, 1], so the logarithm is finite
	u2 := s.float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// logGamma returns the logarithm of a Gamma(a, 1) sample, a > 0, by
// Marsaglia and Tsang's (2000) method; for a < 1 it boosts a Gamma(a+1)
// sample by U^(1/a), in log space so that tiny a does not underflow.
func (s *stream) logGamma(a float64) float64 {
	if a < 1 {
		u := 1 - s.float64() // (0, 1]
		return s.logGamma(a+1) + math.Log(u)/a
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := s.normal()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := s.float64()
		if u < 1-0.0331*(x*x)*(x*x) || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return math.Log(d * v)
		}
	}
}

// beta returns a Beta(a, a) sample, a > 0, as X/(X+Y) with X and Y
// independent Gamma(a, 1) samples, computed from their logarithms.
func (s *stream) beta(a float64) float64 {
	lx, ly := s.logGamma(a), s.logGamma(a)
	return 1 / (1 + math.Exp(ly-lx))
}
