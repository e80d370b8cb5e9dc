package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// shapes are (m, n, k) triples around and off the block sizes of every
// implementation (mr 4/6/12, nr 16/32, kc 256, mc 32..192, groups 2/4).
var shapes = [][3]int{
	{1, 1, 1}, {1, 10, 784}, {1, 800, 800}, {2, 3, 5}, {3, 17, 9}, {4, 16, 16},
	{5, 31, 33}, {6, 32, 64}, {7, 33, 255}, {11, 47, 257}, {12, 64, 3},
	{13, 65, 513}, {25, 7, 2}, {37, 100, 130}, {49, 15, 600}, {97, 33, 31},
	{100, 10, 800}, {193, 50, 70}, {256, 40, 784}, {300, 129, 11}, {7, 1, 1000},
	{1, 97, 1}, {64, 64, 0}, {0, 5, 5},
}

func randF32(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// refF32 is C = A·Bᵀ + bias (ReLU) in float64.
func refF32(m, n, k int, a []float32, lda int, b []float32, bias []float32, relu bool) []float64 {
	c := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for kk := 0; kk < k; kk++ {
				s += float64(a[i*lda+kk]) * float64(b[j*k+kk])
			}
			if bias != nil {
				s += float64(bias[j])
			}
			if relu && s < 0 {
				s = 0
			}
			c[i*n+j] = s
		}
	}
	return c
}

// withThreads runs f with SetThreads(t).
func withThreads(t int, f func()) {
	old := SetThreads(t)
	defer SetThreads(old)
	f()
}

func TestF32AllImplsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, impl := range F32Impls() {
		for _, s := range shapes {
			for _, threads := range []int{1, 3} {
				for _, variant := range []struct{ bias, relu bool }{{false, false}, {true, true}, {true, false}} {
					m, n, k := s[0], s[1], s[2]
					name := fmt.Sprintf("%v/m%d_n%d_k%d/t%d/bias%v_relu%v", impl, m, n, k, threads, variant.bias, variant.relu)
					lda, ldc := k+3, n+5
					a := randF32(rng, max(m*lda, 1))
					b := randF32(rng, n*k)
					var bias []float32
					if variant.bias {
						bias = randF32(rng, n)
					}
					c := make([]float32, max(m*ldc, 1))
					const sentinel = 12345
					for i := range c {
						c[i] = sentinel
					}
					p := PackF32For(impl, b, n, k)
					withThreads(threads, func() { p.Gemm(m, a, lda, c, ldc, bias, variant.relu) })
					want := refF32(m, n, k, a, lda, b, bias, variant.relu)
					for i := 0; i < m; i++ {
						for j := 0; j < ldc; j++ {
							got := c[i*ldc+j]
							if j >= n {
								if got != sentinel {
									t.Fatalf("%s: wrote outside C at (%d,%d)", name, i, j)
								}
								continue
							}
							w := want[i*n+j]
							if tol := 1e-5 * (1 + math.Sqrt(float64(k))) * (1 + math.Abs(w)); math.Abs(float64(got)-w) > tol {
								t.Fatalf("%s: C[%d,%d] = %v, want %v", name, i, j, got, w)
							}
						}
					}
				}
			}
		}
	}
}

func TestF32ImplsAgreeWithPortable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		a := randF32(rng, m*k)
		b := randF32(rng, n*k)
		bias := randF32(rng, n)
		want := make([]float32, m*n)
		PackF32For(Portable, b, n, k).Gemm(m, a, k, want, n, bias, true)
		for _, impl := range F32Impls()[1:] {
			got := make([]float32, m*n)
			PackF32For(impl, b, n, k).Gemm(m, a, k, got, n, bias, true)
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Sqrt(float64(k)))*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("%v m%d n%d k%d: element %d = %v, portable %v", impl, m, n, k, i, got[i], want[i])
				}
			}
		}
	}
}

func randU8(rng *rand.Rand, n int) []uint8 {
	x := make([]uint8, n)
	for i := range x {
		x[i] = uint8(rng.IntN(256))
	}
	return x
}

func randI8(rng *rand.Rand, n int) []int8 {
	x := make([]int8, n)
	for i := range x {
		x[i] = int8(rng.IntN(256) - 128)
	}
	return x
}

func refI32(m, n, k int, a []uint8, lda int, b []int8) []int32 {
	c := make([]int32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s int32
			for kk := 0; kk < k; kk++ {
				s += int32(a[i*lda+kk]) * int32(b[j*k+kk])
			}
			c[i*n+j] = s
		}
	}
	return c
}

// extremes fills a and b with the values that overflow a saturating
// 16-bit scheme (VPMADDUBSW): 255 × −128 everywhere.
func extremes(a []uint8, b []int8) {
	for i := range a {
		a[i] = 255
	}
	for i := range b {
		b[i] = -128
		if i%3 == 0 {
			b[i] = 127
		}
	}
}

func randRequant(rng *rand.Rand, n int) *Requant {
	rq := &Requant{Offset: make([]int32, n), Scale: make([]float32, n), ZeroPoint: int32(rng.IntN(256)), ReLU: rng.IntN(2) == 0}
	for j := range rq.Offset {
		rq.Offset[j] = int32(rng.IntN(200001) - 100000)
		rq.Scale[j] = float32(math.Exp(rng.NormFloat64()*2 - 8))
	}
	return rq
}

func TestI8AllImplsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, impl := range I8Impls() {
		for _, s := range shapes {
			for _, threads := range []int{1, 3} {
				for _, ext := range []bool{false, true} {
					m, n, k := s[0], s[1], s[2]
					name := fmt.Sprintf("%v/m%d_n%d_k%d/t%d/extreme%v", impl, m, n, k, threads, ext)
					lda := k + 1
					a := randU8(rng, max(m*lda+KPad(k), 1)) // slack for KPad
					b := randI8(rng, n*k)
					if ext {
						extremes(a, b)
					}
					want := refI32(m, n, k, a, lda, b)
					p := PackI8For(impl, b, n, k)
					p0 := PackI8For(Portable, b, n, k)
					ldc := n + 2
					c := make([]int32, max(m*ldc, 1))
					withThreads(threads, func() { p.GemmI32(m, a, lda, c, ldc) })
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							if c[i*ldc+j] != want[i*n+j] {
								t.Fatalf("%s: C[%d,%d] = %d, want %d", name, i, j, c[i*ldc+j], want[i*n+j])
							}
						}
					}
					for j := 0; j < n; j++ {
						var s int32
						for kk := 0; kk < k; kk++ {
							s += int32(b[j*k+kk])
						}
						if p.ColSums()[j] != s {
							t.Fatalf("%s: ColSums[%d] = %d, want %d", name, j, p.ColSums()[j], s)
						}
					}
					rq := randRequant(rng, n)
					u8 := make([]uint8, max(m*ldc, 1))
					u8p := make([]uint8, max(m*ldc, 1))
					f := make([]float32, max(m*ldc, 1))
					fp := make([]float32, max(m*ldc, 1))
					withThreads(threads, func() {
						p.GemmU8(m, a, lda, u8, ldc, rq)
						p.GemmF32(m, a, lda, f, ldc, rq)
					})
					p0.GemmU8(m, a, lda, u8p, ldc, rq)
					p0.GemmF32(m, a, lda, fp, ldc, rq)
					lo := int32(0)
					if rq.ReLU {
						lo = rq.ZeroPoint
					}
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							x := i*ldc + j
							wantU8 := requantOne(want[i*n+j], rq.Offset[j], rq.Scale[j], rq.ZeroPoint, lo)
							if u8[x] != wantU8 || u8p[x] != wantU8 {
								t.Fatalf("%s: U8[%d,%d] = %d (portable %d), want %d", name, i, j, u8[x], u8p[x], wantU8)
							}
							if math.Float32bits(f[x]) != math.Float32bits(fp[x]) {
								t.Fatalf("%s: F32[%d,%d] = %v, portable %v", name, i, j, f[x], fp[x])
							}
						}
					}
				}
			}
		}
	}
}

func TestQuantizeHelpersExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randF32(rng, 1003)
	for i := range x {
		x[i] *= float32(math.Exp(rng.NormFloat64() * 5))
	}
	x[0], x[1], x[2], x[3], x[4] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0.5, 1.5
	x[5], x[6], x[7] = 2.5, -0.5, 1e30
	for _, inv := range []float32{1, 0.01, 37.5, 1e-6} {
		for _, zp := range []int32{0, 3, 128, 255} {
			a := make([]uint8, len(x))
			b := make([]uint8, len(x))
			quantizeU8(false, a, x, inv, zp)
			quantizeU8(true, b, x, inv, zp)
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("inv %v zp %d: x=%v vector %d, portable %d", inv, zp, x[i], b[i], a[i])
				}
			}
		}
	}
	// Inputs large enough to be split across threads give the bits of
	// one serial pass, at every thread count.
	big := randF32(rng, 5*quantParMin+77)
	for i := range big {
		big[i] *= 100
	}
	want := make([]uint8, len(big))
	quantizeU8(true, want, big, 0.7, 128)
	for _, threads := range []int{1, 2, 3, 4} {
		withThreads(threads, func() {
			got := make([]uint8, len(big))
			QuantizeU8(got, big, 0.7, 128)
			if !slices.Equal(got, want) {
				t.Errorf("QuantizeU8 of %d values on %d threads differs from one pass", len(big), threads)
			}
		})
	}
	// Round half to even.
	q := make([]uint8, 8)
	quantizeU8(true, q, []float32{0.5, 1.5, 2.5, -0.5, 3.49, 254.5, 255.5, -3}, 1, 0)
	if want := []uint8{0, 2, 2, 0, 3, 254, 255, 0}; fmt.Sprint(q) != fmt.Sprint(want) {
		t.Fatalf("QuantizeU8 rounding = %v, want %v", q, want)
	}
	// Widening.
	src := randU8(rng, 77)
	dst := make([]int16, 77)
	widen(dst, src)
	for i := range src {
		if dst[i] != int16(src[i]) {
			t.Fatalf("widen[%d] = %d, want %d", i, dst[i], src[i])
		}
	}
}

func TestSetLimit(t *testing.T) {
	old := SetLimit(Portable)
	defer SetLimit(old)
	if BestF32() != Portable || BestI8() != Portable {
		t.Fatalf("SetLimit(Portable): BestF32 %v BestI8 %v", BestF32(), BestI8())
	}
	if PackF32([]float32{1}, 1, 1).Impl() != Portable || PackI8([]int8{1}, 1, 1).Impl() != Portable {
		t.Fatal("Pack after SetLimit(Portable) did not pick Portable")
	}
	for _, s := range []string{"portable", "AVX2", "avxvnni", "avx512"} {
		if _, err := ParseImpl(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseImpl("sse9"); err == nil {
		t.Error("ParseImpl(sse9) succeeded")
	}
}

func TestShortSlicesPanic(t *testing.T) {
	p := PackI8([]int8{1, 2, 3}, 1, 3)
	defer func() {
		if recover() == nil {
			t.Fatal("GemmI32 with A shorter than KPad did not panic")
		}
	}()
	p.GemmI32(1, []uint8{1, 2, 3}, 3, make([]int32, 1), 1)
}

func FuzzGemmShapes(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint16(1), uint64(0), uint8(0))
	f.Add(uint8(13), uint8(33), uint16(257), uint64(7), uint8(1))
	f.Add(uint8(200), uint8(17), uint16(9), uint64(9), uint8(2))
	f.Fuzz(func(t *testing.T, m8, n8 uint8, k16 uint16, seed uint64, th uint8) {
		m, n, k := int(m8), int(n8), int(k16%1200)
		rng := rand.New(rand.NewPCG(seed, 1))
		a := randF32(rng, m*k)
		b := randF32(rng, n*k)
		bias := randF32(rng, n)
		want := refF32(m, n, k, a, k, b, bias, true)
		ai := randU8(rng, m*k+4)
		bi := randI8(rng, n*k)
		wantI := refI32(m, n, k, ai, k, bi)
		withThreads(int(th%4), func() {
			for _, impl := range F32Impls() {
				c := make([]float32, m*n)
				PackF32For(impl, b, n, k).Gemm(m, a, k, c, n, bias, true)
				for i := range c {
					if math.Abs(float64(c[i])-want[i]) > 1e-4*(1+math.Sqrt(float64(k)))*(1+math.Abs(want[i])) {
						t.Fatalf("%v m%d n%d k%d: [%d] = %v, want %v", impl, m, n, k, i, c[i], want[i])
					}
				}
			}
			for _, impl := range I8Impls() {
				c := make([]int32, m*n)
				PackI8For(impl, bi, n, k).GemmI32(m, ai, k, c, n)
				for i := range c {
					if c[i] != wantI[i] {
						t.Fatalf("%v m%d n%d k%d: [%d] = %d, want %d", impl, m, n, k, i, c[i], wantI[i])
					}
				}
			}
		})
	})
}

func TestReportImpls(t *testing.T) {
	t.Logf("FP32 implementations: %v (best %v); INT8: %v (best %v)", F32Impls(), BestF32(), I8Impls(), BestI8())
}

func TestRepackF32Reuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	var p *PackedF32
	for _, s := range [][3]int{{40, 70, 90}, {8, 17, 33}, {5, 50, 3}, {3, 5, 7}} {
		m, n, k := s[0], s[1], s[2]
		for _, trans := range []bool{false, true} {
			ld := k + 3
			rows := n
			if trans {
				ld, rows = n+2, k
			}
			b := randF32(rng, rows*ld)
			dense := make([]float32, n*k) // B as [n, k]
			for j := 0; j < n; j++ {
				for kk := 0; kk < k; kk++ {
					if trans {
						dense[j*k+kk] = b[kk*ld+j]
					} else {
						dense[j*k+kk] = b[j*ld+kk]
					}
				}
			}
			// Poison the storage a previous, larger pack left behind.
			if p != nil {
				for i := range p.data[:cap(p.data)] {
					p.data[:cap(p.data)][i] = float32(math.NaN())
				}
			}
			p = RepackF32(p, b, ld, n, k, trans)
			a := randF32(rng, m*k)
			got, want := make([]float32, m*n), make([]float32, m*n)
			p.Gemm(m, a, k, got, n, nil, false)
			PackF32(dense, n, k).Gemm(m, a, k, want, n, nil, false)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("m%d n%d k%d trans %v: [%d] = %v, want %v", m, n, k, trans, i, got[i], want[i])
				}
			}
		}
	}
}

// TestRequantRowsMatchesRows checks the many-row uint8 epilogue against
// the one-row portable one, over row counts, widths with and without a
// tail, strides, extreme accumulators and both ReLU settings.
func TestRequantRowsMatchesRows(t *testing.T) {
	if !haveAVX2Epi {
		t.Skip("no vector epilogue on this CPU")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, rows := range []int{1, 2, 7, 12, 33} {
		for _, n := range []int{1, 7, 8, 13, 16, 32, 45} {
			for _, relu := range []bool{false, true} {
				accStride, outStride := n+rng.IntN(40), n+rng.IntN(9)
				acc := make([]int32, (rows-1)*accStride+n)
				for i := range acc {
					acc[i] = int32(rng.Uint32())
					if i%5 == 0 {
						acc[i] = int32(rng.IntN(2001) - 1000)
					}
				}
				rq := randRequant(rng, n)
				rq.ReLU = relu
				got := make([]uint8, (rows-1)*outStride+n)
				want := make([]uint8, len(got))
				requantU8Rows(true, rows, acc, accStride, rq.Offset, rq.Scale, got, outStride, rq.ZeroPoint, relu)
				for i := range rows {
					requantU8(false, acc[i*accStride:i*accStride+n], rq.Offset, rq.Scale, want[i*outStride:i*outStride+n], rq.ZeroPoint, relu)
				}
				for i := range rows {
					for j := range n {
						if x := i*outStride + j; got[x] != want[x] {
							t.Fatalf("rows %d n %d relu %v: [%d,%d] = %d, want %d", rows, n, relu, i, j, got[x], want[x])
						}
					}
				}
			}
		}
	}
}

// TestI8NarrowPanelsExact checks products of at most 16 columns, which
// AVX-512 VNNI packs in one-vector panels (i8Impl.narrow), at every row
// count of a tile and with K not a multiple of the group, against the
// reference on every implementation.
func TestI8NarrowPanelsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, impl := range I8Impls() {
		for _, n := range []int{1, 8, 15, 16, 17} {
			for _, k := range []int{1, 9, 72, 301} {
				for m := 1; m <= 26; m++ {
					a := randU8(rng, m*k+KPad(k))
					b := randI8(rng, n*k)
					if m%3 == 0 {
						extremes(a, b)
					}
					want := refI32(m, n, k, a, k, b)
					c := make([]int32, m*n)
					PackI8For(impl, b, n, k).GemmI32(m, a, k, c, n)
					for x := range c {
						if c[x] != want[x] {
							t.Fatalf("%v m%d n%d k%d: C[%d] = %d, want %d", impl, m, n, k, x, c[x], want[x])
						}
					}
				}
			}
		}
	}
}

// TestF32NarrowPanels checks products of at most 16 columns, which
// AVX-512 packs in one-vector panels (f32Impl.narrow), at every row
// count of a tile, with K blocked (301 > kc) and not, with bias and
// ReLU, against the reference on every implementation; and that
// GemmSerial gives Gemm's bits on several threads.
func TestF32NarrowPanels(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, impl := range F32Impls() {
		for _, n := range []int{1, 8, 15, 16, 17} {
			for _, k := range []int{1, 9, 72, 301} {
				for m := 1; m <= 26; m++ {
					a := randF32(rng, m*k)
					b := randF32(rng, n*k)
					bias := randF32(rng, n)
					relu := m%2 == 0
					want := refF32(m, n, k, a, k, b, bias, relu)
					p := PackF32For(impl, b, n, k)
					c := make([]float32, m*n)
					withThreads(3, func() { p.Gemm(m, a, k, c, n, bias, relu) })
					serial := make([]float32, m*n)
					p.GemmSerial(m, a, k, serial, n, bias, relu)
					for x := range c {
						w := want[x]
						if tol := 1e-5 * (1 + math.Sqrt(float64(k))) * (1 + math.Abs(w)); math.Abs(float64(c[x])-w) > tol {
							t.Fatalf("%v m%d n%d k%d: C[%d] = %v, want %v", impl, m, n, k, x, c[x], w)
						}
						if serial[x] != c[x] {
							t.Fatalf("%v m%d n%d k%d: GemmSerial C[%d] = %v, Gemm %v", impl, m, n, k, x, serial[x], c[x])
						}
					}
				}
			}
		}
	}
}
