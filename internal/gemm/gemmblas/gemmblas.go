// Package gemmblas exposes package gemm's FP32 GEMM as a gonum BLAS
// Sgemm, so that code written against gonum.org/v1/gonum/blas (and
// gorgonia, through gorgonia.Use) can use it.
//
// Implementation embeds gonum's pure-Go implementation for every other
// routine, so it satisfies gorgonia's BLAS interface (blas.Float32,
// blas.Float64, blas.Complex64 and blas.Complex128):
//
//	gorgonia.Use(gemmblas.Implementation{})
//
// which also calls tensor.Use, making gorgonia.org/tensor's float32
// matrix products (MatMul, and through them gorgonia's Mul of two
// matrices) call this Sgemm.
package gemmblas

import (
	"fmt"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/distill-dev/distill/internal/gemm"
)

// Implementation is gonum's BLAS with Sgemm replaced by package gemm's.
type Implementation struct {
	gonum.Implementation
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices,
// with op(A) m×k and op(B) k×n, as blas.Float32's Sgemm does. When beta
// is 0, C is not read (NaNs in it do not propagate).
//
// B is packed on every call (k·n copies, into recycled storage); for
// repeated products with the same weights, pack once with gemm.PackF32.
func (Implementation) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Sgemm is Implementation.Sgemm as a function.
func Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	transA, transB := tA != blas.NoTrans, tB != blas.NoTrans
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemmblas: Sgemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	if lda < max(1, colsA) || ldb < max(1, colsB) || ldc < max(1, n) {
		panic("gemmblas: Sgemm: bad leading dimension")
	}
	if (rowsA > 0 && len(a) < (rowsA-1)*lda+colsA) || (rowsB > 0 && len(b) < (rowsB-1)*ldb+colsB) || (m > 0 && len(c) < (m-1)*ldc+n) {
		panic("gemmblas: Sgemm: short slice")
	}
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	// op(A) as an m×k row-major matrix.
	aa, alda := a, lda
	if transA {
		aa, alda = make([]float32, m*k), k
		for i := 0; i < k; i++ {
			for j := 0; j < m; j++ {
				aa[j*k+i] = a[i*lda+j]
			}
		}
	}
	// gemm wants op(B)ᵀ, n×k: B itself when transposed, else packed
	// from its k×n layout.
	p, _ := packs.Get().(*gemm.PackedF32)
	p = gemm.RepackF32(p, b, ldb, n, k, !transB)
	defer packs.Put(p)
	if beta == 0 && alpha == 1 {
		p.Gemm(m, aa, alda, c, ldc, nil, false)
		return
	}
	t := make([]float32, m*n)
	p.Gemm(m, aa, alda, t, n, nil, false)
	for i := 0; i < m; i++ {
		row, tr := c[i*ldc:i*ldc+n], t[i*n:(i+1)*n]
		for j := range row {
			v := alpha * tr[j]
			if beta != 0 {
				v += beta * row[j]
			}
			row[j] = v
		}
	}
}

// packs recycles packed operands between calls.
var packs sync.Pool

func scale(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			if beta == 0 {
				row[j] = 0
			} else {
				row[j] *= beta
			}
		}
	}
}
