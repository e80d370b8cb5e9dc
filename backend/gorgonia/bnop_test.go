package gorgonia

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestBatchNormTrainFloat64 checks the training batchnorm's statistics,
// output and parameter gradients against the definitions in float64, on
// planes of several sizes (partial 4-wide blocks included), values far
// from zero (where cancellation in the variance shows) and a padded
// batch, whose padding rows must not count.
func TestBatchNormTrainFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct{ rows, batch, c, per int }{
		{128, 128, 16, 784}, // a 28×28 stem's
		{5, 8, 3, 49},       // padding rows, odd planes
		{7, 7, 4, 6},
		{9, 12, 5, 1}, // BatchNorm1d
	} {
		st := &bnState{gr: &graph{rows: tc.rows, batch: tc.batch}, c: tc.c, per: tc.per, eps: 1e-5,
			mean: make([]float64, tc.c), variance: make([]float64, tc.c), invStd: make([]float64, tc.c),
			xhat: make([]float32, tc.batch*tc.c*tc.per)}
		n := tc.batch * tc.c * tc.per
		x, dy := make([]float32, n), make([]float32, n)
		gamma, beta := make([]float32, tc.c), make([]float32, tc.c)
		for i := range x {
			c := i / tc.per % tc.c
			x[i] = float32(50*float64(c) + 3*rng.NormFloat64())
			dy[i] = float32(rng.NormFloat64())
		}
		for c := range gamma {
			gamma[c], beta[c] = float32(1+rng.NormFloat64()/4), float32(rng.NormFloat64())
		}
		y := st.forward(x, gamma, beta)
		dgamma := st.sums(dy)
		dbeta := st.dbeta
		near := func(what string, c int, got, want, tol float64) {
			t.Helper()
			if math.Abs(got-want) > tol*(1+math.Abs(want)) {
				t.Fatalf("%+v channel %d: %s = %v, want %v", tc, c, what, got, want)
			}
		}
		m := float64(tc.rows * tc.per)
		for c := 0; c < tc.c; c++ {
			var s, ss float64
			plane := func(b int) []float32 { return x[(b*tc.c+c)*tc.per:][:tc.per] }
			for b := 0; b < tc.rows; b++ {
				for _, v := range plane(b) {
					s += float64(v)
				}
			}
			mean := s / m
			for b := 0; b < tc.rows; b++ {
				for _, v := range plane(b) {
					ss += (float64(v) - mean) * (float64(v) - mean)
				}
			}
			variance := ss / m
			near("mean", c, st.mean[c], mean, 1e-6)
			near("variance", c, st.variance[c], variance, 1e-5)
			inv := 1 / math.Sqrt(variance+1e-5)
			// x̂ is float32 (v − mean)·invStd, with the mean rounded to
			// float32: up to half its ulp off, which the output scales.
			am := float32(math.Abs(mean))
			yTol := float64(math.Nextafter32(am, float32(math.Inf(1)))-am) * inv * math.Abs(float64(gamma[c]))
			var db, dg float64
			for b := 0; b < tc.rows; b++ {
				off := (b*tc.c + c) * tc.per
				for i, v := range plane(b) {
					xh := (float64(v) - mean) * inv
					if want := xh*float64(gamma[c]) + float64(beta[c]); math.Abs(float64(y[off+i])-want) > yTol+1e-5*(1+math.Abs(want)) {
						t.Fatalf("%+v channel %d: y[%d] = %v, want %v", tc, c, off+i, y[off+i], want)
					}
					db += float64(dy[off+i])
					dg += float64(dy[off+i]) * xh
				}
			}
			near("dβ", c, float64(dbeta[c]), db, 1e-4)
			near("dγ", c, float64(dgamma[c]), dg, 1e-4)
		}
	}
}
