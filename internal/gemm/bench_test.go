package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkGemm reports GFLOP/s (FP32) and GOP/s (INT8, 2 ops per
// multiply-add) for a layer of the MNIST student.
func BenchmarkGemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range [][3]int{{256, 800, 800}, {1, 800, 800}} {
		m, n, k := s[0], s[1], s[2]
		a := randF32(rng, m*k)
		w := randF32(rng, n*k)
		c := make([]float32, m*n)
		for _, impl := range F32Impls() {
			p := PackF32For(impl, w, n, k)
			b.Run(fmt.Sprintf("f32/%v/m%d_n%d_k%d", impl, m, n, k), func(b *testing.B) {
				for b.Loop() {
					p.Gemm(m, a, k, c, n, nil, true)
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		ai := randU8(rng, m*k+4)
		wi := randI8(rng, n*k)
		ci := make([]uint8, m*n)
		rq := randRequant(rng, n)
		for _, impl := range I8Impls() {
			p := PackI8For(impl, wi, n, k)
			b.Run(fmt.Sprintf("i8/%v/m%d_n%d_k%d", impl, m, n, k), func(b *testing.B) {
				for b.Loop() {
					p.GemmU8(m, ai, k, ci, n, rq)
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
			})
		}
	}
}

// BenchmarkGemmBlocking tries other block sizes for the best kernels on
// the MNIST student's 256×800×800 layer, to tune mc and kc.
func BenchmarkGemmBlocking(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	m, n, k := 256, 800, 800
	a := randF32(rng, m*k)
	w := randF32(rng, n*k)
	c := make([]float32, m*n)
	fi := f32ImplTable[BestF32()]
	orig := *fi
	defer func() { *fi = orig }()
	for _, kc := range []int{128, 256, 400, 800} {
		for _, mc := range []int{orig.mr * 4, orig.mr * 8, orig.mr * 16, orig.mr * 24} {
			fi.kc, fi.mc = kc, mc
			p := PackF32For(fi.impl, w, n, k)
			b.Run(fmt.Sprintf("f32/%v/kc%d_mc%d", fi.impl, kc, mc), func(b *testing.B) {
				for b.Loop() {
					p.Gemm(m, a, k, c, n, nil, true)
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
	ai := randU8(rng, m*k+4)
	wi := randI8(rng, n*k)
	ci := make([]uint8, m*n)
	rq := randRequant(rng, n)
	ii := i8ImplTable[BestI8()]
	origI := *ii
	defer func() { *ii = origI }()
	p := PackI8For(ii.impl, wi, n, k)
	for _, mc := range []int{origI.mr * 2, origI.mr * 4, origI.mr * 8, origI.mr * 16, origI.mr * 24} {
		ii.mc = mc
		b.Run(fmt.Sprintf("i8/%v/mc%d", ii.impl, mc), func(b *testing.B) {
			for b.Loop() {
				p.GemmU8(m, ai, k, ci, n, rq)
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
		})
	}
}
