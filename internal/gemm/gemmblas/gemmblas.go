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
	"slices"
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
// One operand is packed on every call, into recycled storage: B (k·n
// copies), or op(A) when B is transposed and that is smaller (Cᵀ =
// B·op(A)ᵀ is computed and transposed back). For repeated products with
// the same weights, pack once with gemm.PackF32.
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
	if transB && m*(k+n) < n*k {
		// B is stored [n, k], which gemm packs element by element, n·k
		// of them: with few rows of A (a layer's input gradient, dY·W)
		// computing Cᵀ = B·op(A)ᵀ instead packs op(A), m·k values, and
		// transposes the m·n result back.
		p := gemm.RepackF32(packs.get(m, k), a, lda, m, k, transA)
		defer packs.put(p)
		t := scratch(n * m)
		defer bufs.put(t)
		p.Gemm(n, b, ldb, t, m, nil, false)
		transposeInto(c, ldc, t, m, m, n, alpha, beta)
		return
	}
	// op(A) as an m×k row-major matrix.
	aa, alda := a, lda
	if transA {
		t := scratch(m * k)
		defer bufs.put(t)
		aa, alda = t, k
		transposeInto(aa, k, a, lda, m, k, 1, 0)
	}
	// gemm wants op(B)ᵀ, n×k: B itself when transposed, else packed
	// from its k×n layout.
	// Products without scaling write C directly, others a scratch
	// result that is then scaled into C.
	out, ldo := c, ldc
	scaled := beta != 0 || alpha != 1
	if scaled {
		t := scratch(m * n)
		defer bufs.put(t)
		out, ldo = t, n
	}
	product(aa, alda, b, ldb, transB, m, n, k, out, ldo)
	if !scaled {
		return
	}
	for i := 0; i < m; i++ {
		row, tr := c[i*ldc:i*ldc+n], out[i*n:(i+1)*n]
		for j := range row {
			v := alpha * tr[j]
			if beta != 0 {
				v += beta * row[j]
			}
			row[j] = v
		}
	}
}

// product sets out (m×n, row stride ldo) to a·op(B), packing B: B [n, k]
// (transB), or B [k, n]. Packing and product both run on all threads
// when large enough.
func product(a []float32, lda int, b []float32, ldb int, transB bool, m, n, k int, out []float32, ldo int) {
	p := gemm.RepackF32(packs.get(n, k), b, ldb, n, k, !transB)
	p.Gemm(m, a, lda, out, ldo, nil, false)
	packs.put(p)
}

// transposeInto sets dst[i][j] (row stride ldd) to alpha·src[j][i] +
// beta·dst[i][j] for i < rows, j < cols, with src's rows ld apart;
// beta = 0 does not read dst.
func transposeInto(dst []float32, ldd int, src []float32, ld, rows, cols int, alpha, beta float32) {
	j := 0
	if alpha == 1 && beta == 0 {
		// The common case, eight source rows at a time: each row of dst
		// gets eight consecutive values per pass (2.5× faster than
		// square blocks of single elements).
		for ; j+8 <= cols; j += 8 {
			s0, s1, s2, s3 := src[j*ld:j*ld+rows], src[(j+1)*ld:(j+1)*ld+rows], src[(j+2)*ld:(j+2)*ld+rows], src[(j+3)*ld:(j+3)*ld+rows]
			s4, s5, s6, s7 := src[(j+4)*ld:(j+4)*ld+rows], src[(j+5)*ld:(j+5)*ld+rows], src[(j+6)*ld:(j+6)*ld+rows], src[(j+7)*ld:(j+7)*ld+rows]
			for i := range s0 {
				d := dst[i*ldd+j : i*ldd+j+8]
				d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = s0[i], s1[i], s2[i], s3[i], s4[i], s5[i], s6[i], s7[i]
			}
		}
	}
	for ; j < cols; j++ {
		for i := 0; i < rows; i++ {
			v := alpha * src[j*ld+i]
			if beta != 0 {
				v += beta * dst[i*ldd+j]
			}
			dst[i*ldd+j] = v
		}
	}
}

// freeList recycles storage between calls. A sync.Pool does not fit:
// one training step asks for several sizes, and a pool hands back any
// of them, so the large ones were reallocated (and cleared) on most
// calls. get returns the smallest free item of at least the size
// needed; the list keeps the largest few.
type freeList[T any] struct {
	mu    sync.Mutex
	items []T
	size  func(T) int
}

// maxFree bounds the list: a training step of a three-layer network
// packs about a dozen distinct sizes (column blocks included).
const maxFree = 16

func (l *freeList[T]) get(need int) (t T, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	best := -1
	for i, it := range l.items {
		if s := l.size(it); s >= need && (best < 0 || s < l.size(l.items[best])) {
			best = i
		}
	}
	if best < 0 {
		return t, false
	}
	t = l.items[best]
	l.items = slices.Delete(l.items, best, best+1)
	return t, true
}

func (l *freeList[T]) put(t T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, t)
	if len(l.items) > maxFree {
		small := 0
		for i, it := range l.items {
			if l.size(it) < l.size(l.items[small]) {
				small = i
			}
		}
		l.items = slices.Delete(l.items, small, small+1)
	}
}

// packList recycles packed operands.
type packList struct{ freeList[*gemm.PackedF32] }

var packs = packList{freeList[*gemm.PackedF32]{size: func(p *gemm.PackedF32) int { return int(p.Bytes() / 4) }}}

// get returns storage for packing B [n, k] (nil: RepackF32 allocates).
// Packing pads n up to the kernel's panel width, at most 32.
func (l *packList) get(n, k int) *gemm.PackedF32 {
	p, _ := l.freeList.get((n + 31) * k)
	return p
}

// bufList recycles scratch matrices.
type bufList struct{ freeList[[]float32] }

var bufs = bufList{freeList[[]float32]{size: func(b []float32) int { return cap(b) }}}

// scratch returns n values of scratch storage (contents undefined).
func scratch(n int) []float32 {
	if b, ok := bufs.freeList.get(n); ok {
		return b[:n]
	}
	return make([]float32, n)
}

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
