package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// scanShapes give every kernel row count of every implementation (mr is
// 4, 6 or 12: m runs to 2·12+1 so that each remainder appears twice),
// full and partial panels, and k below, at and above the unroll factors
// and the FP32 k block (256). There are enough tiles that each kernel
// runs a few hundred times per scan: a wrong result that depends on
// state left by the caller (issue 15: flags) shows up in some calls only.
func scanShapes() [][3]int {
	ns := []int{160, 33, 224, 100, 300}
	ks := []int{1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 64, 100, 257}
	var out [][3]int
	for m := 1; m <= 25; m++ {
		out = append(out, [3]int{m, ns[m%len(ns)], ks[m%len(ks)]})
	}
	return out
}

// scanOffsets shift A, C and the bias inside larger buffers, so that the
// kernels see every alignment of their operands.
var scanOffsets = []int{0, 1, 2, 3, 5, 7, 8, 13}

// scanThreads are the goroutine caps of the scan; with the parallel
// thresholds at their minimum even small products are split.
var scanThreads = []int{1, 2, 3, 4}

// badTiles counts the mr×nr tiles of an m×n result in which bad(i, j)
// holds for some element, and describes the first bad element.
func badTiles(m, n, mr, nr int, bad func(i, j int) (string, bool)) (count int, first string) {
	for ti := 0; ti < m; ti += mr {
		for tj := 0; tj < n; tj += nr {
		tile:
			for i := ti; i < min(ti+mr, m); i++ {
				for j := tj; j < min(tj+nr, n); j++ {
					if msg, ok := bad(i, j); ok {
						if count == 0 {
							first = msg
						}
						count++
						break tile
					}
				}
			}
		}
	}
	return count, first
}

// TestKernelScan is the differential scan of issue 15: every
// implementation against the float64 / int32 reference over shapes ×
// threads × buffer offsets. It counts the wrong tiles rather than
// stopping at the first, so that a kernel that skips its k loop (and
// stores zeros) shows how much of a product it corrupts.
func TestKernelScan(t *testing.T) {
	prevF, prevI := SetParallelMin(1, 1)
	defer SetParallelMin(prevF, prevI)
	rng := rand.New(rand.NewPCG(15, 1))
	total := 0
	for _, s := range scanShapes() {
		m, n, k := s[0], s[1], s[2]
		lda, ldc := k+2, n+3
		for _, off := range scanOffsets {
			abuf := randF32(rng, off+(m-1)*lda+k)
			a := abuf[off:]
			b := randF32(rng, n*k)
			biasBuf := randF32(rng, off+n)
			bias := biasBuf[off:]
			want := refF32(m, n, k, a, lda, b, bias, true)
			wantNoBias := refF32(m, n, k, a, lda, b, nil, false)
			au := randU8(rng, off+(m-1)*lda+KPad(k))
			bi := randI8(rng, n*k)
			wantI := refI32(m, n, k, au[off:], lda, bi)
			for _, impl := range F32Impls() {
				p := PackF32For(impl, b, n, k)
				for _, th := range scanThreads {
					for _, epi := range []bool{true, false} {
						cbuf := make([]float32, off+(m-1)*ldc+n)
						c := cbuf[off:]
						ref := wantNoBias
						withThreads(th, func() {
							if epi {
								p.Gemm(m, a, lda, c, ldc, bias, true)
								ref = want
							} else {
								p.Gemm(m, a, lda, c, ldc, nil, false)
							}
						})
						bad, first := badTiles(m, n, p.im.mr, p.im.nr, func(i, j int) (string, bool) {
							got, w := c[i*ldc+j], ref[i*n+j]
							if math.Abs(float64(got)-w) <= 1e-5*(1+math.Sqrt(float64(k)))*(1+math.Abs(w)) {
								return "", false
							}
							return fmt.Sprintf("C[%d,%d] = %v, want %v", i, j, got, w), true
						})
						if bad > 0 {
							total += bad
							t.Errorf("f32 %v m%d n%d k%d threads %d offset %d bias+relu %v: %d bad tiles, first %s", impl, m, n, k, th, off, epi, bad, first)
						}
					}
				}
			}
			for _, impl := range I8Impls() {
				p := PackI8For(impl, bi, n, k)
				for _, th := range scanThreads {
					cbuf := make([]int32, off+(m-1)*ldc+n)
					c := cbuf[off:]
					withThreads(th, func() { p.GemmI32(m, au[off:], lda, c, ldc) })
					bad, first := badTiles(m, n, p.im.mr, p.im.nr, func(i, j int) (string, bool) {
						if got, w := c[i*ldc+j], wantI[i*n+j]; got != w {
							return fmt.Sprintf("C[%d,%d] = %d, want %d", i, j, got, w), true
						}
						return "", false
					})
					if bad > 0 {
						total += bad
						t.Errorf("i8 %v m%d n%d k%d threads %d offset %d: %d bad tiles, first %s", impl, m, n, k, th, off, bad, first)
					}
				}
			}
		}
	}
	if total > 0 {
		t.Errorf("%d bad tiles in all", total)
	}
}
