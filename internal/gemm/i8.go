package gemm

import (
	"fmt"
	"sync"
	"unsafe"
)

// i8Kernel computes one int32 tile of r rows (fixed per function) and one
// packed panel of NR columns over kg groups of k:
//
//	c[r×NR] = A[r×(kg·group)]·panel
//
// a points at the (possibly widened) activations with row stride lda in
// elements of their type; c has row stride ldc in int32s.
type i8Kernel func(kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int)

// i8Impl is one INT8 implementation.
type i8Impl struct {
	impl  Impl
	mr    int  // most rows per kernel call
	nr    int  // columns per panel
	group int  // consecutive k per column in a panel: 2 (int16 pairs) or 4 (byte quads)
	widen bool // activations widened to int16 and weights stored as int16
	mc    int  // rows per block
	kern  []i8Kernel
	// asmEpi: the vectorised AVX2 epilogue helpers may be used.
	asmEpi bool
	// narrow, if not nil, is the same implementation with panels of
	// fewer columns, which products of at most narrow.nr columns use:
	// the output channels of a small convolution would leave most of a
	// wide panel multiplying padding.
	narrow *i8Impl
}

var i8ImplTable = map[Impl]*i8Impl{
	Portable: {impl: Portable, mr: 4, nr: 16, group: 4, mc: 32, kern: []i8Kernel{i8Port1, i8Port2, i8Port3, i8Port4}},
}

func i8Supported(i Impl) bool { return i8ImplTable[i] != nil }

// KPad is the padded inner dimension that INT8 products read from each
// row of A: K rounded up to a multiple of 4. The bytes of A past K in a
// row are multiplied by zero weights, so they may hold anything (the
// next row, say), but they must be readable: a slice passed as A must
// have at least (m−1)·lda + KPad(K) elements.
func KPad(k int) int { return (k + 3) &^ 3 }

// PackedI8 is an int8 weight matrix B [N, K] packed for products with
// uint8 activations: C = A·Bᵀ with exact int32 accumulation. It is
// read-only after packing and safe for concurrent use.
type PackedI8 struct {
	n, k int
	kg   int // k groups
	im   *i8Impl
	b8   []int8  // byte-quad panels (VNNI and portable layouts)
	b16  []int16 // int16-pair panels (AVX2 layout)
	sums []int32 // Σ_k B[j, k] per column
}

// Bytes is the memory the packed panels and column sums hold.
func (p *PackedI8) Bytes() int64 {
	return int64(cap(p.b8)) + int64(cap(p.b16))*2 + int64(cap(p.sums))*4
}

// PackI8 packs b, an [n, k] row-major int8 matrix, for the best INT8
// implementation within the limit (see SetLimit).
func PackI8(b []int8, n, k int) *PackedI8 { return PackI8For(BestI8(), b, n, k) }

// PackI8For packs b for a given implementation; it panics if the CPU
// does not support it (see I8Impls).
func PackI8For(impl Impl, b []int8, n, k int) *PackedI8 {
	im := i8ImplTable[impl]
	if im == nil {
		panic(fmt.Sprintf("gemm: INT8 implementation %v is not available on this CPU", impl))
	}
	if n < 0 || k < 0 || len(b) < n*k {
		panic(fmt.Sprintf("gemm: PackI8: bad shape n=%d k=%d or short slice (%d)", n, k, len(b)))
	}
	if im.narrow != nil && n <= im.narrow.nr {
		im = im.narrow
	}
	g, nr := im.group, im.nr
	kg := (k + g - 1) / g
	np := (n + nr - 1) / nr
	p := &PackedI8{n: n, k: k, kg: kg, im: im, sums: make([]int32, n)}
	size := np * kg * nr * g
	if im.widen {
		p.b16 = make([]int16, size)
	} else {
		p.b8 = make([]int8, size)
	}
	for j := 0; j < n; j++ {
		pj, jj := j/nr, j%nr
		base := pj * kg * nr * g
		var s int32
		for kk := 0; kk < k; kk++ {
			v := b[j*k+kk]
			s += int32(v)
			idx := base + ((kk/g)*nr+jj)*g + kk%g
			if im.widen {
				p.b16[idx] = int16(v)
			} else {
				p.b8[idx] = v
			}
		}
		p.sums[j] = s
	}
	return p
}

// N is the number of output columns (rows of B).
func (p *PackedI8) N() int { return p.n }

// K is the inner dimension.
func (p *PackedI8) K() int { return p.k }

// Impl is the implementation the weights were packed for.
func (p *PackedI8) Impl() Impl { return p.im.impl }

// ColSums returns Σ_k B[j, k] for each output column j: with activations
// quantized with zero point z, the product of the real values needs
// −z·ColSums()[j] added (see Requant.Offset). The slice must not be
// modified.
func (p *PackedI8) ColSums() []int32 { return p.sums }

// Requant is the fused epilogue of an INT8 product. For row i and output
// column j, with acc the exact int32 dot product of row i of A and row j
// of B (int32 arithmetic wraps),
//
//	v = float32(acc + Offset[j]) · Scale[j]      (each step rounded to float32)
//
// GemmF32 stores v, or max(v, 0) with ReLU (NaN and −0 become +0).
// GemmU8 stores
//
//	q = clamp(roundHalfEven(clamp(v, −32768, 32767)) + ZeroPoint, lo, 255)
//
// where lo = ZeroPoint with ReLU, else 0: the next layer's activation
// quantized with zero point ZeroPoint. All implementations produce the
// same bits.
type Requant struct {
	Offset    []int32   // N elements: folded bias minus zero-point correction
	Scale     []float32 // N elements
	ZeroPoint int32     // GemmU8 only, in [0, 255]
	ReLU      bool
}

type epiKind int

const (
	epiI32 epiKind = iota
	epiU8
	epiF32
)

// GemmI32 computes the raw products C = A·Bᵀ in int32 for the m rows of
// A (uint8, row stride lda ≥ K; see KPad for the length it needs) into
// C (row stride ldc ≥ N).
func (p *PackedI8) GemmI32(m int, a []uint8, lda int, c []int32, ldc int) {
	if len(c) < (m-1)*ldc+p.n && m > 0 {
		panic("gemm: GemmI32: C too short")
	}
	p.gemm(false, m, a, lda, ldc, epiI32, nil, unsafe.Pointer(unsafe.SliceData(c)))
}

// GemmU8 computes the products and requantizes them to uint8 (see
// Requant) into C (row stride ldc ≥ N).
func (p *PackedI8) GemmU8(m int, a []uint8, lda int, c []uint8, ldc int, rq *Requant) {
	p.gemmU8(false, m, a, lda, c, ldc, rq)
}

// GemmU8Serial is GemmU8 on the calling goroutine alone (for the parts
// of a Parallel call).
func (p *PackedI8) GemmU8Serial(m int, a []uint8, lda int, c []uint8, ldc int, rq *Requant) {
	p.gemmU8(true, m, a, lda, c, ldc, rq)
}

func (p *PackedI8) gemmU8(serial bool, m int, a []uint8, lda int, c []uint8, ldc int, rq *Requant) {
	if len(c) < (m-1)*ldc+p.n && m > 0 {
		panic("gemm: GemmU8: C too short")
	}
	if rq.ZeroPoint < 0 || rq.ZeroPoint > 255 {
		panic("gemm: GemmU8: zero point outside [0, 255]")
	}
	p.gemm(serial, m, a, lda, ldc, epiU8, rq, unsafe.Pointer(unsafe.SliceData(c)))
}

// GemmF32 computes the products and dequantizes them to float32 (see
// Requant) into C (row stride ldc ≥ N).
func (p *PackedI8) GemmF32(m int, a []uint8, lda int, c []float32, ldc int, rq *Requant) {
	p.gemmF32(false, m, a, lda, c, ldc, rq)
}

// GemmF32Serial is GemmF32 on the calling goroutine alone.
func (p *PackedI8) GemmF32Serial(m int, a []uint8, lda int, c []float32, ldc int, rq *Requant) {
	p.gemmF32(true, m, a, lda, c, ldc, rq)
}

func (p *PackedI8) gemmF32(serial bool, m int, a []uint8, lda int, c []float32, ldc int, rq *Requant) {
	if len(c) < (m-1)*ldc+p.n && m > 0 {
		panic("gemm: GemmF32: C too short")
	}
	p.gemm(serial, m, a, lda, ldc, epiF32, rq, unsafe.Pointer(unsafe.SliceData(c)))
}

func (p *PackedI8) gemm(serial bool, m int, a []uint8, lda, ldc int, kind epiKind, rq *Requant, c unsafe.Pointer) {
	n, k := p.n, p.k
	if m < 0 || lda < k || ldc < n {
		panic(fmt.Sprintf("gemm: INT8 Gemm: bad shape m=%d lda=%d (K=%d) ldc=%d (N=%d)", m, lda, k, ldc, n))
	}
	if m == 0 || n == 0 {
		return
	}
	if len(a) < (m-1)*lda+KPad(k) {
		panic(fmt.Sprintf("gemm: INT8 Gemm: A has %d elements, need (m-1)·lda+KPad(K) = %d", len(a), (m-1)*lda+KPad(k)))
	}
	if kind != epiI32 && (len(rq.Offset) < n || len(rq.Scale) < n) {
		panic("gemm: INT8 Gemm: Requant.Offset and Scale need N elements")
	}
	if serial {
		p.run(0, m, 0, (n+p.im.nr-1)/p.im.nr, a, lda, c, ldc, kind, rq)
		return
	}
	parallel(m, n, max(k, 1), p.im.mr, p.im.nr, int(i8ParMin.Load()), func(m0, m1, p0, p1 int) {
		p.run(m0, m1, p0, p1, a, lda, c, ldc, kind, rq)
	})
}

type i8Scratch struct {
	acc []int32
	w16 []int16
}

var i8Pool = sync.Pool{New: func() any { return new(i8Scratch) }}

func (p *PackedI8) run(m0, m1, p0, p1 int, a []uint8, lda int, c unsafe.Pointer, ldc int, kind epiKind, rq *Requant) {
	im := p.im
	nr, g := im.nr, im.group
	ncols := (p1 - p0) * nr
	mc := min(im.mc, m1-m0)
	s := i8Pool.Get().(*i8Scratch)
	defer i8Pool.Put(s)
	if cap(s.acc) < mc*ncols {
		s.acc = make([]int32, mc*ncols)
	}
	acc := s.acc[:mc*ncols]
	kw := p.kg * g // widened row length (k rounded up to the group)
	if im.widen && cap(s.w16) < mc*kw {
		s.w16 = make([]int16, mc*kw)
	}
	j0, j1 := p0*nr, min(p1*nr, p.n)
	for ic := m0; ic < m1; ic += mc {
		rows := min(mc, m1-ic)
		if p.kg == 0 {
			clear(acc)
		} else {
			p.block(ic, rows, p0, p1, a, lda, s, acc, ncols)
		}
		if kind == epiU8 {
			off := ic*ldc + j0
			out := unsafe.Slice((*uint8)(c), off+(rows-1)*ldc+j1-j0)[off:]
			requantU8Rows(im.asmEpi, rows, acc, ncols, rq.Offset[j0:j1], rq.Scale[j0:j1], out, ldc, rq.ZeroPoint, rq.ReLU)
			continue
		}
		for i := 0; i < rows; i++ {
			row := acc[i*ncols : i*ncols+(j1-j0)]
			off := (ic+i)*ldc + j0
			switch kind {
			case epiI32:
				copy(unsafe.Slice((*int32)(c), off+len(row))[off:], row)
			case epiU8:
				out := unsafe.Slice((*uint8)(c), off+len(row))[off:]
				requantU8(im.asmEpi, row, rq.Offset[j0:j1], rq.Scale[j0:j1], out, rq.ZeroPoint, rq.ReLU)
			case epiF32:
				out := unsafe.Slice((*float32)(c), off+len(row))[off:]
				dequantF32(im.asmEpi, row, rq.Offset[j0:j1], rq.Scale[j0:j1], out, rq.ReLU)
			}
		}
	}
}

// block computes the int32 products of rows [ic, ic+rows) of A and
// panels [p0, p1) into acc (row stride ncols).
func (p *PackedI8) block(ic, rows, p0, p1 int, a []uint8, lda int, s *i8Scratch, acc []int32, ncols int) {
	im := p.im
	nr, mr := im.nr, im.mr
	panelSize := p.kg * nr * im.group
	var ap unsafe.Pointer
	alda, esize := lda, 1
	if im.widen {
		kw := p.kg * im.group // k rounded up to the group
		w := s.w16[:rows*kw]
		for i := 0; i < rows; i++ {
			widen(w[i*kw:(i+1)*kw], a[(ic+i)*lda:(ic+i)*lda+kw])
		}
		ap, alda, esize = unsafe.Pointer(&w[0]), kw, 2
	} else {
		ap = unsafe.Pointer(&a[ic*lda])
	}
	for pj := p0; pj < p1; pj++ {
		var bp unsafe.Pointer
		if im.widen {
			bp = unsafe.Pointer(&p.b16[pj*panelSize])
		} else {
			bp = unsafe.Pointer(&p.b8[pj*panelSize])
		}
		for ir := 0; ir < rows; ir += mr {
			r := min(mr, rows-ir)
			im.kern[r-1](p.kg, unsafe.Add(ap, ir*alda*esize), alda, bp, &acc[ir*ncols+(pj-p0)*nr], ncols)
		}
	}
}

// Portable micro-kernels (mr = 4, nr = 16, byte quads): the arithmetic
// of VPDPBUSD, in Go.

func i8Port1(kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int) {
	i8Port(1, kg, a, lda, b, c, ldc)
}
func i8Port2(kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int) {
	i8Port(2, kg, a, lda, b, c, ldc)
}
func i8Port3(kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int) {
	i8Port(3, kg, a, lda, b, c, ldc)
}
func i8Port4(kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int) {
	i8Port(4, kg, a, lda, b, c, ldc)
}

func i8Port(r, kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int) {
	const nr = 16
	A := unsafe.Slice((*uint8)(a), (r-1)*lda+kg*4)
	B := unsafe.Slice((*int8)(b), kg*nr*4)
	C := unsafe.Slice(c, (r-1)*ldc+nr)
	var acc [4][nr]int32
	for q := 0; q < kg; q++ {
		bq := (*[nr * 4]int8)(B[q*nr*4:])
		for i := 0; i < r; i++ {
			av := (*[4]uint8)(A[i*lda+q*4:])
			a0, a1, a2, a3 := int32(av[0]), int32(av[1]), int32(av[2]), int32(av[3])
			row := &acc[i]
			for j := range row {
				row[j] += a0*int32(bq[j*4]) + a1*int32(bq[j*4+1]) + a2*int32(bq[j*4+2]) + a3*int32(bq[j*4+3])
			}
		}
	}
	for i := 0; i < r; i++ {
		copy(C[i*ldc:i*ldc+nr], acc[i][:])
	}
}
