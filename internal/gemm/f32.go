package gemm

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// f32Kernel computes one tile of r rows (r is fixed per function) and one
// packed panel of NR columns over k:
//
//	tile = A[r×k]·panel[k×NR] (+ tile if flags&1) (+ bias[0:NR] if flags&2)
//	tile = max(tile, 0) if flags&4
//
// A has row stride lda and the tile row stride ldc, both in elements.
type f32Kernel func(k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int)

const (
	flagAcc  = 1
	flagBias = 2
	flagReLU = 4
)

// f32Impl is one FP32 implementation: its micro-kernels and blocking.
type f32Impl struct {
	impl Impl
	mr   int // most rows per kernel call
	nr   int // columns per packed panel
	kc   int // most k per block (B sub-panel of kc×nr stays in L1)
	mc   int // rows per A block (mc×kc stays in L2)
	kern []f32Kernel
	// narrow, if not nil, is the same implementation with panels of
	// fewer columns, which products of at most narrow.nr columns use:
	// the output channels of a small convolution would leave most of a
	// wide panel multiplying padding.
	narrow *f32Impl
}

// f32Impls is filled by the per-architecture files.
var f32ImplTable = map[Impl]*f32Impl{
	Portable: {impl: Portable, mr: 4, nr: 16, kc: 256, mc: 64, kern: []f32Kernel{f32Port1, f32Port2, f32Port3, f32Port4}},
}

func f32Supported(i Impl) bool { return f32ImplTable[i] != nil }

// PackedF32 is a weight matrix B [N, K] (row-major, as a linear layer
// stores it: one row per output) packed once for repeated products
// C = A·Bᵀ. It is read-only after packing and safe for concurrent use.
type PackedF32 struct {
	n, k  int
	im    *f32Impl
	data  []float32 // panels of k×nr, columns ≥ n zero
	kcEff int       // k block actually used: K split evenly into ≤ kc blocks
}

// Bytes is the memory the packed panels hold.
func (p *PackedF32) Bytes() int64 { return int64(cap(p.data)) * 4 }

// PackF32 packs b, an [n, k] row-major matrix, for the best FP32
// implementation within the limit (see SetLimit).
func PackF32(b []float32, n, k int) *PackedF32 { return PackF32For(BestF32(), b, n, k) }

// PackF32For packs b for a given implementation; it panics if the CPU
// does not support it (see F32Impls).
func PackF32For(impl Impl, b []float32, n, k int) *PackedF32 {
	return packF32(nil, impl, b, k, n, k, false)
}

// PackF32Transposed packs B given as its transpose bt, a [k, n]
// row-major matrix (the layout of a gonum "NoTrans" right operand).
func PackF32Transposed(bt []float32, n, k int) *PackedF32 {
	return packF32(nil, BestF32(), bt, n, n, k, true)
}

// RepackF32 packs B for the best implementation into dst's storage when
// it is large enough (dst may be nil) and returns the packed matrix: b
// holds B [n, k] with row stride ld ≥ k, or, if transposed, Bᵀ [k, n]
// with row stride ld ≥ n. It is for callers that pack on every product
// (a BLAS-style Sgemm) and want neither the garbage nor a copy of
// strided operands. dst must not be in use by a concurrent product.
func RepackF32(dst *PackedF32, b []float32, ld, n, k int, transposed bool) *PackedF32 {
	return packF32(dst, BestF32(), b, ld, n, k, transposed)
}

func packF32(dst *PackedF32, impl Impl, b []float32, ld, n, k int, transposed bool) *PackedF32 {
	im := f32ImplTable[impl]
	if im == nil {
		panic(fmt.Sprintf("gemm: FP32 implementation %v is not available on this CPU", impl))
	}
	if im.narrow != nil && n <= im.narrow.nr {
		im = im.narrow
	}
	rows, cols := n, k
	if transposed {
		rows, cols = k, n
	}
	if n < 0 || k < 0 || ld < cols || (rows > 0 && len(b) < (rows-1)*ld+cols) {
		panic(fmt.Sprintf("gemm: PackF32: bad shape n=%d k=%d ld=%d or short slice (%d)", n, k, ld, len(b)))
	}
	nr := im.nr
	np := (n + nr - 1) / nr
	size := np * k * nr
	if dst == nil {
		dst = new(PackedF32)
	}
	data := dst.data
	if cap(data) < size {
		data = make([]float32, size)
	} else {
		data = data[:size]
	}
	*dst = PackedF32{n: n, k: k, im: im, data: data}
	if k > 0 {
		blocks := (k + im.kc - 1) / im.kc
		dst.kcEff = (k + blocks - 1) / blocks
	}
	packPanels := func(p0, p1 int) {
		for pj := p0; pj < p1; pj++ {
			packPanel(data[pj*k*nr:(pj+1)*k*nr], b, ld, pj*nr, min(nr, n-pj*nr), nr, k, transposed)
		}
	}
	// Packing is a copy as large as the matrix: a training step packs
	// every weight matrix again after the optimizer changed it, so large
	// ones are packed on all threads, in parts of whole panels.
	if t := min(maxThreads(), size/packParMin); t > 1 && np > 1 {
		parts := min(np, t*partsPerThread)
		runParts(t, parts, func(i int) { packPanels(i*np/parts, (i+1)*np/parts) })
	} else {
		packPanels(0, np)
	}
	return dst
}

// packParMin is the packed size (values) per thread below which packing
// runs on fewer threads.
const packParMin = 1 << 17

// packPanel packs columns j0..j0+cnt of B (cnt ≤ nr; the rest of the
// panel is zero) into panel, k rows of nr.
func packPanel(panel, b []float32, ld, j0, cnt, nr, k int, transposed bool) {
	if transposed {
		// Row kk of Bᵀ holds the panel's row kk contiguously.
		for kk := 0; kk < k; kk++ {
			row := panel[kk*nr : (kk+1)*nr]
			copy(row, b[kk*ld+j0:kk*ld+j0+cnt])
			clear(row[cnt:])
		}
		return
	}
	for jj := 0; jj < cnt; jj++ {
		src := b[(j0+jj)*ld : (j0+jj)*ld+k]
		for kk, v := range src {
			panel[kk*nr+jj] = v
		}
	}
	if cnt < nr {
		for kk := 0; kk < k; kk++ {
			clear(panel[kk*nr+cnt : (kk+1)*nr])
		}
	}
}

// N is the number of output columns (rows of B).
func (p *PackedF32) N() int { return p.n }

// K is the inner dimension.
func (p *PackedF32) K() int { return p.k }

// Impl is the implementation the weights were packed for.
func (p *PackedF32) Impl() Impl { return p.im.impl }

// Gemm computes C = A·Bᵀ (+ bias) (then ReLU if relu) for the m rows of
// A ([m, K] with row stride lda ≥ K) into C ([m, N] with row stride
// ldc ≥ N). bias is nil or has N elements. Large products are split
// across goroutines (see SetThreads); small ones run on the caller's.
// It panics if the slices are too short for the given shapes.
func (p *PackedF32) Gemm(m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
	p.gemm(false, m, a, lda, c, ldc, bias, relu)
}

// GemmSerial is Gemm on the calling goroutine alone (for the parts of a
// Parallel call). Its sums are Gemm's, bit for bit.
func (p *PackedF32) GemmSerial(m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
	p.gemm(true, m, a, lda, c, ldc, bias, relu)
}

func (p *PackedF32) gemm(serial bool, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
	n, k := p.n, p.k
	if m < 0 || lda < k || ldc < n {
		panic(fmt.Sprintf("gemm: Gemm: bad shape m=%d lda=%d (K=%d) ldc=%d (N=%d)", m, lda, k, ldc, n))
	}
	if m == 0 || n == 0 {
		return
	}
	if len(a) < (m-1)*lda+k || len(c) < (m-1)*ldc+n || (bias != nil && len(bias) < n) {
		panic("gemm: Gemm: slice too short")
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				v := float32(0)
				if bias != nil {
					v = bias[j]
				}
				if relu && !(v > 0) {
					v = 0
				}
				row[j] = v
			}
		}
		return
	}
	// K is blocked so that a panel's slice stays in L1 while several row
	// tiles reuse it; with one row tile (batch 1 in particular) nothing
	// reuses it, and one pass over K streams each panel straight through
	// instead of in kc-long pieces (and stores C once). The choice
	// depends on m alone, so every thread count sums in the same order.
	kc := p.kcEff
	if m <= p.im.mr {
		kc = k
	}
	if serial {
		p.run(0, m, 0, (n+p.im.nr-1)/p.im.nr, kc, a, lda, c, ldc, bias, relu)
		return
	}
	parallel(m, n, k, p.im.mr, p.im.nr, int(f32ParMin.Load()), func(m0, m1, p0, p1 int) {
		p.run(m0, m1, p0, p1, kc, a, lda, c, ldc, bias, relu)
	})
}

// run computes rows [m0, m1) and panels [p0, p1) of C, K in blocks of kc.
func (p *PackedF32) run(m0, m1, p0, p1, kc int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
	im := p.im
	n, k, nr, mr := p.n, p.k, im.nr, im.mr
	// A partial panel goes through a full-width tile and bias. Both come
	// from a pool: as locals their addresses, passed to a kernel through
	// a func value, made them escape, one allocation per call.
	var pt *partialTile
	defer func() {
		if pt != nil {
			partialTiles.Put(pt)
		}
	}()
	zero := &zeroBias[0]
	for pc := 0; pc < k; pc += kc {
		kb := min(kc, k-pc)
		flags := 0
		if pc > 0 {
			flags |= flagAcc
		}
		last := pc+kb == k
		if last && bias != nil {
			flags |= flagBias
		}
		if last && relu {
			flags |= flagReLU
		}
		for ic := m0; ic < m1; ic += im.mc {
			ie := min(ic+im.mc, m1)
			for pj := p0; pj < p1; pj++ {
				bp := &p.data[pj*k*nr+pc*nr]
				j0 := pj * nr
				cols := min(nr, n-j0)
				if cols < nr && pt == nil {
					pt = partialTiles.Get().(*partialTile)
				}
				bptr := zero
				if bias != nil {
					if cols == nr {
						bptr = &bias[j0]
					} else {
						copy(pt.bias[:], bias[j0:j0+cols])
						clear(pt.bias[cols:nr])
						bptr = &pt.bias[0]
					}
				}
				for ir := ic; ir < ie; ir += mr {
					r := min(mr, ie-ir)
					ap := &a[ir*lda+pc]
					if cols == nr {
						im.kern[r-1](kb, ap, lda, bp, &c[ir*ldc+j0], ldc, bptr, flags)
						continue
					}
					// Partial panel: go through a full-width tile.
					tile := pt.c[:]
					if flags&flagAcc != 0 {
						for i := 0; i < r; i++ {
							copy(tile[i*nr:i*nr+cols], c[(ir+i)*ldc+j0:])
						}
					}
					im.kern[r-1](kb, ap, lda, bp, &tile[0], nr, bptr, flags)
					for i := 0; i < r; i++ {
						copy(c[(ir+i)*ldc+j0:(ir+i)*ldc+j0+cols], tile[i*nr:i*nr+cols])
					}
				}
			}
		}
	}
}

// partialTile is a kernel's output tile and bias for a panel narrower
// than the kernel (the last one of a product whose N is not a multiple
// of NR).
type partialTile struct {
	c    [12 * 32]float32
	bias [32]float32
}

var partialTiles = sync.Pool{New: func() any { return new(partialTile) }}

// zeroBias is the bias a kernel is handed when the product has none (it
// reads it only with flagBias, but the pointer must be valid).
var zeroBias [32]float32

// Products of fewer multiply-adds per goroutine than these run on fewer
// goroutines (below twice the threshold, on the calling one): under it,
// waking and joining a goroutine costs more than it saves, and batch-1
// latency matters. FP32 multiply-adds are several times slower than INT8
// ones (and a batch-1 FP32 layer streams 4 bytes of weights per
// multiply-add), hence the lower FP32 threshold.
var (
	f32ParMin atomic.Int64
	i8ParMin  atomic.Int64
)

func init() {
	f32ParMin.Store(1 << 17)
	i8ParMin.Store(1 << 19)
}

// SetParallelMin sets the number of multiply-adds per goroutine below
// which FP32 and INT8 products use fewer goroutines (values ≤ 0 keep
// the current setting) and returns the previous values. It is a tuning
// knob for benchmarks; the defaults are 1<<17 and 1<<19.
func SetParallelMin(f32, i8 int) (prevF32, prevI8 int) {
	prevF32, prevI8 = int(f32ParMin.Load()), int(i8ParMin.Load())
	if f32 > 0 {
		f32ParMin.Store(int64(f32))
	}
	if i8 > 0 {
		i8ParMin.Store(int64(i8))
	}
	return prevF32, prevI8
}

// partsPerThread is how many parts a product is cut into per thread:
// more than one, so that when one core is slowed (by another process, or
// a worker that wakes late) the others take over its share, and parts
// small enough that the last one to finish does not leave the other
// threads idle for long.
const partsPerThread = 4

// parallel splits an m×(panels of nr) product into parts and calls f for
// each, on the calling goroutine and the pool's workers (see runParts).
// Rows are split (in whole tiles of mr) when there are enough of them,
// else panels; either way into parts whose sizes differ by at most one
// unit, so that equal threads finish together.
func parallel(m, n, k, mr, nr, minWork int, f func(m0, m1, p0, p1 int)) {
	np := (n + nr - 1) / nr
	tiles := (m + mr - 1) / mr
	work := m * n * k
	t := min(maxThreads(), max(1, work/max(minWork, 1)), np*tiles)
	if t <= 1 {
		f(0, m, 0, np)
		return
	}
	if m >= t*mr*2 || np < t {
		parts := min(t*partsPerThread, tiles)
		runParts(t, parts, func(i int) {
			f(min(i*tiles/parts*mr, m), min((i+1)*tiles/parts*mr, m), 0, np)
		})
		return
	}
	parts := min(t*partsPerThread, np)
	runParts(t, parts, func(i int) {
		f(0, m, i*np/parts, (i+1)*np/parts)
	})
}

// Portable micro-kernels (mr = 4, nr = 16).

func f32Port1(k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int) {
	f32Port(1, k, a, lda, b, c, ldc, bias, flags)
}
func f32Port2(k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int) {
	f32Port(2, k, a, lda, b, c, ldc, bias, flags)
}
func f32Port3(k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int) {
	f32Port(3, k, a, lda, b, c, ldc, bias, flags)
}
func f32Port4(k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int) {
	f32Port(4, k, a, lda, b, c, ldc, bias, flags)
}

func f32Port(r, k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int) {
	const nr = 16
	A := unsafe.Slice(a, (r-1)*lda+k)
	B := unsafe.Slice(b, k*nr)
	C := unsafe.Slice(c, (r-1)*ldc+nr)
	var acc [4][nr]float32
	for kk := 0; kk < k; kk++ {
		bv := (*[nr]float32)(B[kk*nr:])
		for i := 0; i < r; i++ {
			av := A[i*lda+kk]
			row := &acc[i]
			for j := range row {
				row[j] += av * bv[j]
			}
		}
	}
	var bv *[nr]float32
	if flags&flagBias != 0 {
		bv = (*[nr]float32)(unsafe.Slice(bias, nr))
	}
	for i := 0; i < r; i++ {
		out := (*[nr]float32)(C[i*ldc:])
		for j := 0; j < nr; j++ {
			v := acc[i][j]
			if flags&flagAcc != 0 {
				v += out[j]
			}
			if bv != nil {
				v += bv[j]
			}
			if flags&flagReLU != 0 && !(v > 0) {
				v = 0
			}
			out[j] = v
		}
	}
}
