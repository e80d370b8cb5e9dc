package infer

import (
	"unsafe"

	"github.com/distill-dev/distill/internal/gemm"
)

// nhwcPlan is how convNHWC cuts a layer's work: units (an example, or a
// band of bandRows output rows of one when the batch is smaller than the
// threads) in parts, each part a range of units run from patches to
// output with its own buffers, so that the patches stay in cache and
// every thread builds them. Each patch row covers px neighbouring output
// pixels of a row (see convI8.px; 1 but for narrow INT8 convolutions).
type nhwcPlan struct {
	threads, bands, bandRows, parts int
	px                              int
}

// planNHWC plans a batch of n on up to threads threads
// (scratch.threadsFor of g.work(n)), px output pixels per patch row (a
// divisor of ow).
func (g convGeom) planNHWC(n, threads, px int) nhwcPlan {
	bands := 1
	if threads > 1 && n < partsPerThread*threads {
		bands = min(g.oh, (partsPerThread*threads+n-1)/n)
	}
	bandRows := (g.oh + bands - 1) / bands
	bands = (g.oh + bandRows - 1) / bandRows
	parts := min(n*bands, partsPerThread*threads)
	if threads == 1 {
		parts = 1
	}
	return nhwcPlan{threads: threads, bands: bands, bandRows: bandRows, parts: parts, px: px}
}

// direct1x1 reports a 1×1 stride-1 convolution without padding: its
// NHWC input is its GEMM's A, with no patches.
func (g convGeom) direct1x1() bool { return g.k == 1 && g.stride == 1 && g.pad == 0 }

// nhwcBand multiplies the patch rows of one band of a convNHWC
// convolution: gemmBand(pi, b, p0, m, a) multiplies the m/px patch rows
// a (row stride kdimPx(px)) of the m output pixels of example b from p0
// on, in part pi, and writes their output.
type nhwcBand[T float32 | uint8] interface {
	gemmBand(pi, b, p0, m int, a []T)
}

// bandFunc is a function as an nhwcBand.
type bandFunc[T float32 | uint8] func(pi, b, p0, m int, a []T)

func (f bandFunc[T]) gemmBand(pi, b, p0, m int, a []T) { f(pi, b, p0, m, a) }

// convNHWC runs a single-group convolution of n examples on an NHWC
// copy of x (x itself when xNHWC), where a patch row is k runs of k·c
// contiguous values (one per kernel row) rather than c·k runs of k, as
// pl says. xh and col are the scratch buffers for the copy and each
// part's patches (grown here); band multiplies them.
func convNHWC[T float32 | uint8](g convGeom, pl nhwcPlan, x []T, xNHWC bool, n int, pad T, xh, col *[]T, band nhwcBand[T]) {
	kd, in := g.kdimPx(pl.px), g.in()
	// Each part's patches and padded rows, slack apart (INT8 kernels read
	// A rows up to gemm.KPad(K)).
	j := nhwcJob[T]{g: g, pl: pl, src: x, n: n, pad: pad, band: band, direct: g.direct1x1()}
	if !j.direct {
		j.padLen = g.paddedLen(pl.bandRows)
		j.colLen = pl.bandRows*g.ow/pl.px*kd + slack + j.padLen
	}
	*col = grow(*col, pl.parts*j.colLen)
	j.col = *col
	// One channel (a grey stem) is the same in both layouts.
	if !xNHWC && g.c > 1 {
		*xh = grow(*xh, n*in)
		j.src = *xh
		if pl.threads == 1 || n == 1 {
			for b := range n {
				j.toNHWC(x, b)
			}
		} else {
			jp := j // a copy for the threads, as below
			gemm.Parallel(pl.threads, n, func(b int) { jp.toNHWC(x, b) })
		}
	}
	if pl.parts == 1 {
		j.part(0)
		return
	}
	// A copy for the threads: j itself stays on the stack (no allocation
	// per layer when it runs on the calling goroutine alone).
	jp := new(nhwcJob[T])
	*jp = j
	gemm.Parallel(pl.threads, pl.parts, jp.part)
}

// nhwcJob is one convNHWC call: the NHWC input src, the parts' buffers
// (col, colLen apart, the last padLen values of each for padRows).
type nhwcJob[T float32 | uint8] struct {
	g              convGeom
	pl             nhwcPlan
	src, col       []T
	n              int
	colLen, padLen int
	pad            T
	direct         bool
	band           nhwcBand[T]
}

// toNHWC copies example b of the NCHW input x into src.
func (j *nhwcJob[T]) toNHWC(x []T, b int) {
	in, hw := j.g.in(), j.g.h*j.g.w
	transposeBand(x[b*in:], hw, 0, j.g.c, j.g.c, j.src[b*in:])
}

// part runs the units (examples or bands) of part pi.
func (j *nhwcJob[T]) part(pi int) {
	g, pl, in := j.g, j.pl, j.g.in()
	units := j.n * pl.bands
	c := j.col[pi*j.colLen:]
	for u := pi * units / pl.parts; u < (pi+1)*units/pl.parts; u++ {
		b, band := u/pl.bands, u%pl.bands
		oy0, oy1 := band*pl.bandRows, min(g.oh, (band+1)*pl.bandRows)
		p0 := oy0 * g.ow
		a := c
		if j.direct {
			a = j.src[b*in+p0*g.c:]
		} else {
			im2colNHWC(g, pl.px, j.src[b*in:b*in+in], c[j.colLen-j.padLen:j.colLen], c, oy0, oy1, j.pad)
		}
		j.band.gemmBand(pi, b, p0, (oy1-oy0)*g.ow, a)
	}
}

// partsPerThread: as in package gemm, several parts per thread, so that
// a thread slowed by another process hands its share to the other.
const partsPerThread = 4

// grow returns b with room for n elements plus slack (INT8 products read
// each row of A up to gemm.KPad(K); FP32 ones do not need it).
func grow[T float32 | uint8](b []T, n int) []T {
	if cap(b) < n+slack {
		return make([]T, n+slack)
	}
	return b[:n+slack]
}

// widthPx is the width of the input window of px neighbouring output
// pixels of a row: their k-wide windows, stride apart.
func (g convGeom) widthPx(px int) int { return g.k + (px-1)*g.stride }

// kdimPx is the length of a patch row of px output pixels (kdim for 1).
func (g convGeom) kdimPx(px int) int { return g.k * g.widthPx(px) * g.c }

// im2colNHWC writes the patch rows of output rows [oy0, oy1) of one
// example (x: [h, w, c]) into col, [(oy1−oy0)·ow/px, kdimPx(px)] in
// (ky, kx, c) order, kx over the window of px pixels, with pad for the
// positions outside x. It first copies the input rows the band reads
// into padded, with the padding around them (see padRows), so that every
// patch row is k runs of widthPx(px)·c values with no bounds to check.
func im2colNHWC[T float32 | uint8](g convGeom, px int, x, padded, col []T, oy0, oy1 int, pad T) {
	c, k, st := g.c, g.k, g.stride
	kc := g.widthPx(px) * c
	kd := k * kc
	n := g.ow / px // patch rows per output row
	y0 := oy0*st - g.pad
	pw := (g.w + 2*g.pad) * c // padded row
	padRows(g, x, padded, y0, (oy1-1)*st-g.pad+k, pad)
	// One call per kernel row: its run of each patch row, output row
	// by output row (st padded rows apart).
	for ky := range k {
		copyRuns(col[ky*kc:], kd, padded[ky*pw:], px*st*c, kc, n, oy1-oy0, st*pw)
	}
}

// padRows copies input rows [y0, y1) of one example (x: [h, w, c]) into
// padded, each row with pad·c values of pad on both sides, rows outside
// [0, h) all pad. The right side of a row and the left side of the next
// are adjacent: one fill each.
func padRows[T float32 | uint8](g convGeom, x, padded []T, y0, y1 int, pad T) {
	c := g.c
	pw, side := (g.w+2*g.pad)*c, g.pad*c
	f := newFiller(pad)
	in0, in1 := max(y0, 0), min(y1, g.h) // the rows inside x
	if in0 >= in1 {
		f.fill(padded[:(y1-y0)*pw])
		return
	}
	// The rows above x and the first row's left side.
	f.fill(padded[:(in0-y0)*pw+side])
	for y := in0; y < in1; y++ {
		r := (y - y0) * pw
		copy(padded[r+side:r+pw-side], x[y*g.w*c:])
		end := r + pw + side // through the next row's left side
		if y == in1-1 {
			end = (y1 - y0) * pw // through the rows below x
		}
		f.fill(padded[r+pw-side : end])
	}
}

// paddedLen is the size of padRows' buffer for a band of rows output rows.
func (g convGeom) paddedLen(rows int) int {
	return ((rows-1)*g.stride + g.k) * (g.w + 2*g.pad) * g.c
}

// copyRuns copies rows·count runs of size values: run i of row r from
// src[r·srow + i·ss:] to dst[(r·count + i)·ds:] (a band's patch rows for
// one kernel row: a row of runs per output row). The runs of small
// convolutions (k·c values, or more for several pixels per patch row: 3
// or 4 bytes for a 3×3 stem on a grey image, 24 to 128 for 8 to 32
// channels) move in line as a few loads and stores: a call of memmove
// costs as much as such a run. A run moves in the widest units Go
// compiles to single moves (16 bytes: MOVUPS; a wider array assignment
// calls memmove), the last unit ending at the run's end and overlapping
// the one before where size is not a multiple of it: those bytes are
// written twice with the same values, and nothing outside the run is.
func copyRuns[T float32 | uint8](dst []T, ds int, src []T, ss, size, count, rows, srow int) {
	if count <= 0 || size <= 0 || rows <= 0 {
		return
	}
	// The bounds of the last run, checked here, bound all others.
	_, _ = dst[(rows*count-1)*ds+size-1], src[(rows-1)*srow+(count-1)*ss+size-1]
	d, s := unsafe.Pointer(unsafe.SliceData(dst)), unsafe.Pointer(unsafe.SliceData(src))
	// In bytes from here on.
	es := int(unsafe.Sizeof(dst[0]))
	ds, ss, size, srow = ds*es, ss*es, size*es, srow*es
	// One small function per run size (a row of runs per call): in one
	// large loop nest the compiler kept the loop variables on the stack.
	var move func(d, s unsafe.Pointer, ds, ss, size, count int)
	switch {
	case size == 1:
		move = moveRunsOf[uint8]
	case size < 4:
		move = moveRunsOverlapped[uint16]
	case size == 4:
		move = moveRunsOf[uint32]
	case size < 8:
		move = moveRunsOverlapped[uint32]
	case size == 8:
		move = moveRunsOf[uint64]
	case size < 16:
		move = moveRunsOverlapped[uint64]
	case size == 16:
		move = moveRunsOf[u128]
	case size <= 32:
		move = moveRunsOverlapped[u128]
	case size <= 256:
		move = moveRuns33to256
	default:
		move = moveRunsMemmove
	}
	for r := range rows {
		move(unsafe.Add(d, r*count*ds), unsafe.Add(s, r*srow), ds, ss, size, count)
	}
}

// The movers of copyRuns: count runs of size bytes, ds and ss apart.
// Run i's pointers are formed from the bases (d + i·ds), never by
// stepping past the last run: a pointer outside its allocation, even one
// never dereferenced, may point at memory the garbage collector does not
// know and crash it if it scans the stack then (checkptr, in race
// builds, rejects it).

// u128 is the widest value Go moves in one instruction (MOVUPS); a
// wider array assignment calls memmove.
type u128 = [16]byte

// moveRunsOf moves runs of exactly one T.
func moveRunsOf[T uint8 | uint32 | uint64 | u128](d, s unsafe.Pointer, ds, ss, _, count int) {
	for i := range count {
		*(*T)(unsafe.Add(d, i*ds)) = *(*T)(unsafe.Add(s, i*ss))
	}
}

// moveRunsOverlapped moves runs longer than one T and at most two as two
// T moves that overlap in the middle.
func moveRunsOverlapped[T uint16 | uint32 | uint64 | u128](d, s unsafe.Pointer, ds, ss, size, count int) {
	last := size - int(unsafe.Sizeof(*new(T)))
	for i := range count {
		dp, sp := unsafe.Add(d, i*ds), unsafe.Add(s, i*ss)
		a, b := *(*T)(sp), *(*T)(unsafe.Add(sp, last))
		*(*T)(dp), *(*T)(unsafe.Add(dp, last)) = a, b
	}
}

func moveRuns33to256(d, s unsafe.Pointer, ds, ss, size, count int) {
	last := size - 16
	for i := range count {
		dp, sp := unsafe.Add(d, i*ds), unsafe.Add(s, i*ss)
		for j := 0; j < last; j += 16 {
			*(*u128)(unsafe.Add(dp, j)) = *(*u128)(unsafe.Add(sp, j))
		}
		*(*u128)(unsafe.Add(dp, last)) = *(*u128)(unsafe.Add(sp, last))
	}
}

func moveRunsMemmove(d, s unsafe.Pointer, ds, ss, size, count int) {
	for i := range count {
		copy(unsafe.Slice((*uint8)(unsafe.Add(d, i*ds)), size), unsafe.Slice((*uint8)(unsafe.Add(s, i*ss)), size))
	}
}

// filler sets slices to one value, 8 bytes at a time: padding rows and
// their sides are a few to a few hundred bytes.
type filler[T float32 | uint8] struct {
	v T
	w uint64 // v repeated over 8 bytes
}

func newFiller[T float32 | uint8](v T) filler[T] {
	var pat [8]T // 8 bytes or more
	for i := range pat {
		pat[i] = v
	}
	return filler[T]{v: v, w: *(*uint64)(unsafe.Pointer(&pat))}
}

func (f filler[T]) fill(s []T) {
	per := 8 / int(unsafe.Sizeof(f.v))
	i := 0
	for ; i+per <= len(s); i += per {
		*(*uint64)(unsafe.Pointer(&s[i])) = f.w
	}
	for ; i < len(s); i++ {
		s[i] = f.v
	}
}
