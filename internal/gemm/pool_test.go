package gemm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunPartsRunsEachPartOnce checks that every part runs exactly once
// for part counts around the worker count, with products started
// concurrently (the pool serves one; the others spawn goroutines) and
// after pauses long enough for the workers to park.
func TestRunPartsRunsEachPartOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 5, 8, 17} {
		for _, pause := range []time.Duration{0, 2 * spinFor} {
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for rep := 0; rep < 20; rep++ {
						counts := make([]atomic.Int32, n)
						runParts(min(n, 3), n, func(i int) { counts[i].Add(1) })
						for i := range counts {
							if c := counts[i].Load(); c != 1 {
								t.Errorf("n=%d: part %d ran %d times", n, i, c)
								return
							}
						}
						if pause > 0 && rep%5 == 0 {
							time.Sleep(pause)
						}
					}
				}()
			}
			wg.Wait()
		}
	}
}

// TestParallelProductsMatchOneThread compares products split over 2–4
// threads, run from several goroutines at once (so that some go through
// the pool and some spawn), with the same products on one thread: the
// split changes which goroutine computes a tile, never its arithmetic,
// so FP32 and INT8 results must be the same bits.
func TestParallelProductsMatchOneThread(t *testing.T) {
	prevF, prevI := SetParallelMin(1, 1)
	defer SetParallelMin(prevF, prevI)
	rng := rand.New(rand.NewPCG(17, 1))
	type product struct {
		name string
		run  func() string // a fresh product, formatted
		want string
	}
	var prods []product
	for _, s := range [][3]int{{1, 800, 784}, {5, 70, 33}, {8, 800, 784}, {31, 100, 64}, {64, 96, 130}, {200, 47, 19}} {
		m, n, k := s[0], s[1], s[2]
		a := randF32(rng, m*k)
		b := randF32(rng, n*k)
		bias := randF32(rng, n)
		au := randU8(rng, m*k+4)
		bi := randI8(rng, n*k)
		rq := randRequant(rng, n)
		for _, impl := range F32Impls() {
			p := PackF32For(impl, b, n, k)
			run := func() string {
				c := make([]float32, m*n)
				p.Gemm(m, a, k, c, n, bias, true)
				return fmt.Sprint(c)
			}
			pr := product{name: fmt.Sprintf("f32 %v m%d n%d k%d", impl, m, n, k), run: run}
			withThreads(1, func() { pr.want = run() })
			prods = append(prods, pr)
		}
		for _, impl := range I8Impls() {
			p := PackI8For(impl, bi, n, k)
			run := func() string {
				c := make([]uint8, m*n)
				p.GemmU8(m, au, k, c, n, rq)
				return string(c)
			}
			pr := product{name: fmt.Sprintf("u8 %v m%d n%d k%d", impl, m, n, k), run: run}
			withThreads(1, func() { pr.want = run() })
			prods = append(prods, pr)
		}
	}
	for _, threads := range []int{2, 3, 4} {
		withThreads(threads, func() {
			for _, pr := range prods {
				var wg sync.WaitGroup
				got := make([]string, 3)
				for g := range got {
					wg.Add(1)
					go func() { defer wg.Done(); got[g] = pr.run() }()
				}
				wg.Wait()
				for g := range got {
					if got[g] != pr.want {
						t.Errorf("%s, %d threads, caller %d: differs from the one-thread product", pr.name, threads, g)
					}
				}
			}
		})
	}
}

// TestParallelPackingMatchesOneThread: weights large enough to be packed
// on several threads (both layouts, a partial last panel, the narrow
// panels) pack to the same values as on one thread, also while other
// goroutines pack at the same time (some through the pool, some
// spawning).
func TestParallelPackingMatchesOneThread(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 5))
	for _, s := range [][2]int{{800, 784}, {1201, 300}, {16, 9000}, {35, 4000}} {
		n, k := s[0], s[1]
		b := randF32(rng, n*k)
		for _, transposed := range []bool{false, true} {
			ld := k
			if transposed {
				ld = n
			}
			pack := func() []float32 { return RepackF32(nil, b, ld, n, k, transposed).data }
			var want []float32
			withThreads(1, func() { want = pack() })
			for _, threads := range []int{2, 3, 4} {
				withThreads(threads, func() {
					var wg sync.WaitGroup
					got := make([][]float32, 3)
					for g := range got {
						wg.Go(func() { got[g] = pack() })
					}
					wg.Wait()
					for g := range got {
						if !slices.Equal(got[g], want) {
							t.Errorf("n=%d k=%d transposed=%v, %d threads, caller %d: packed differently from one thread", n, k, transposed, threads, g)
						}
					}
				})
			}
		}
	}
}
