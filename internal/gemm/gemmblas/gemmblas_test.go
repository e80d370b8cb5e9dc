package gemmblas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// The BLAS interface gorgonia.Use takes: every precision of gonum's BLAS.
var _ interface {
	blas.Float32
	blas.Float64
	blas.Complex64
	blas.Complex128
} = Implementation{}

func TestSgemmMatchesGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	rnd := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	trans := []blas.Transpose{blas.NoTrans, blas.Trans}
	for _, s := range [][3]int{{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 40, 0}, {5, 0, 3}, {3, 40, 50}, {12, 100, 70}, {1, 64, 64}, {40, 129, 97}, {20, 300, 500}, {130, 450, 300}, {300, 380, 380}} {
		m, n, k := s[0], s[1], s[2]
		for _, tA := range trans {
			for _, tB := range trans {
				for i, ab := range [][2]float32{{1, 0}, {0.5, 2}, {0, 3}, {-1, 1}, {2, 0}, {1, 1}} {
					// C packed (ldc = n) and strided: a scaled
					// product goes through scratch either way.
					lda, ldb, ldc := k+2, n+1, max(n+3*(i%2), 1)
					ra, rb := m, k
					if tA == blas.Trans {
						ra, lda = k, m+2
					}
					if tB == blas.Trans {
						rb, ldb = n, k+1
					}
					a, b := rnd(max(ra*lda, 1)), rnd(max(rb*ldb, 1))
					c := rnd(max(m*ldc, 1))
					want := append([]float32(nil), c...)
					gonum.Implementation{}.Sgemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], want, ldc)
					Implementation{}.Sgemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
					for i := range c {
						if math.Abs(float64(c[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
							t.Fatalf("%v %v m%d n%d k%d α%v β%v: C[%d] = %v, gonum %v", tA, tB, m, n, k, ab[0], ab[1], i, c[i], want[i])
						}
					}
				}
			}
		}
	}
}

func ExampleSgemm() {
	a := []float32{1, 2, 3, 4, 5, 6} // 2×3
	b := []float32{1, 0, 0, 1, 1, 1} // 3×2
	c := make([]float32, 4)
	Sgemm(blas.NoTrans, blas.NoTrans, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)
	fmt.Println(c)
	// Output: [4 5 10 11]
}
