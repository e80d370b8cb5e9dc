package gorgonia

import (
	"sync"

	"gonum.org/v1/gonum/blas"

	"github.com/distill-dev/distill/internal/gemm/gemmblas"
)

// Dense convolutions (groups == 1) as GEMMs over the whole batch, in a
// channel-major layout: the unfolded input colT is [Cin·k·k, N·Ho·Wo]
// (one row per weight tap, each row the batch's output planes end to
// end) and the output y' = W·colT is [Cout, N·Ho·Wo]. Unlike gorgonia's
// Conv2d (im2col to [N·Ho·Wo, Cin·k·k] on one core, then a transpose of
// the [N, Ho, Wo, Cout] product to NCHW, element by element, on one
// core), every copy here moves whole contiguous rows or planes and runs
// on all cores; the GEMMs' few rows (Cout) waste less of the kernel's
// tile than its few columns did.
//
//	forward:  y'   = W·colT                  (W [Cout, K])
//	dx:       dcol = Wᵀ·dy'                  then col2im
//	dw:       dW   = dy'·colᵀ
//
// where dy' is dy reordered from [N, Cout, Ho·Wo] to [Cout, N·Ho·Wo].

// gemmTaps is K, the unfolded input's rows: one per weight.
func (c groupConv) gemmTaps() int { return c.cin * c.k * c.k }

// im2col writes colT [K, n·Ho·Wo] from x [n, Cin, H, W]; taps that fall
// in the padding are zero.
func (c groupConv) im2col(x []float32, n int, col []float32) {
	hw, ohw := c.h*c.w, c.ho*c.wo
	ld := n * ohw
	parallelFor(n*c.cin, func(job int) {
		b, ci := job/c.cin, job%c.cin
		in := x[job*hw:][:hw]
		for kh := 0; kh < c.k; kh++ {
			ohLo, ohHi := c.span(kh, c.h, c.ho)
			for kw := 0; kw < c.k; kw++ {
				owLo, owHi := c.span(kw, c.w, c.wo)
				dst := col[((ci*c.k+kh)*c.k+kw)*ld+b*ohw:][:ohw]
				clear(dst[:ohLo*c.wo])
				clear(dst[ohHi*c.wo:])
				for oh := ohLo; oh < ohHi; oh++ {
					d := dst[oh*c.wo:][:c.wo]
					clear(d[:owLo])
					clear(d[owHi:])
					row := in[(oh*c.stride-c.pad+kh)*c.w:]
					iw := owLo*c.stride - c.pad + kw
					if c.stride == 1 {
						copy(d[owLo:owHi], row[iw:])
						continue
					}
					for ow := owLo; ow < owHi; ow++ {
						d[ow] = row[iw]
						iw += c.stride
					}
				}
			}
		}
	})
}

// col2im adds dcol [K, n·Ho·Wo] into dx [n, Cin, H, W], each tap onto
// the input value it read.
func (c groupConv) col2im(dcol []float32, n int, dx []float32) {
	hw, ohw := c.h*c.w, c.ho*c.wo
	ld := n * ohw
	parallelFor(n*c.cin, func(job int) {
		b, ci := job/c.cin, job%c.cin
		d := dx[job*hw:][:hw]
		for kh := 0; kh < c.k; kh++ {
			ohLo, ohHi := c.span(kh, c.h, c.ho)
			for kw := 0; kw < c.k; kw++ {
				owLo, owHi := c.span(kw, c.w, c.wo)
				src := dcol[((ci*c.k+kh)*c.k+kw)*ld+b*ohw:][:ohw]
				for oh := ohLo; oh < ohHi; oh++ {
					s := src[oh*c.wo:][:c.wo]
					row := d[(oh*c.stride-c.pad+kh)*c.w:]
					iw := owLo*c.stride - c.pad + kw
					if c.stride == 1 {
						row = row[iw:][:owHi-owLo]
						for i, v := range s[owLo:owHi] {
							row[i] += v
						}
						continue
					}
					for ow := owLo; ow < owHi; ow++ {
						row[iw] += s[ow]
						iw += c.stride
					}
				}
			}
		}
	})
}

// reorder moves between the batch-major [n, C, P] and the channel-major
// [C, n·P] layouts of c planes of p values: toChannels says which way.
func reorder(dst, src []float32, n, ch, p int, toChannels bool) {
	ld := n * p
	parallelFor(n, func(b int) {
		for o := 0; o < ch; o++ {
			bm, cm := (b*ch+o)*p, o*ld+b*p
			if toChannels {
				copy(dst[cm:cm+p], src[bm:bm+p])
			} else {
				copy(dst[bm:bm+p], src[cm:cm+p])
			}
		}
	})
}

// colCache keeps a training graph's unfolded input from a dense
// convolution's forward pass for its weight gradient, which would
// otherwise unfold the same input again. The buffer belongs to the
// cache (one per layer and graph) and is reused every step.
type colCache struct {
	col []float32
	x   *float32 // the input it was unfolded from, and its batch
	n   int
}

// gemmForward is forward for groups == 1; with a cache it leaves the
// unfolded input there.
func (c groupConv) gemmForward(x, w []float32, n int, cache *colCache) []float32 {
	k, ld := c.gemmTaps(), n*c.ho*c.wo
	var col []float32
	if cache != nil {
		if cap(cache.col) < k*ld {
			cache.col = make([]float32, k*ld)
		}
		col = cache.col[:k*ld]
		cache.x, cache.n = nil, 0 // invalid until filled
	} else {
		col = scratch.get(k * ld)
		defer scratch.put(col)
	}
	c.im2col(x, n, col)
	if cache != nil {
		cache.x, cache.n = &x[0], n
	}
	yc := scratch.get(c.cout * ld)
	defer scratch.put(yc)
	gemmblas.Sgemm(blas.NoTrans, blas.NoTrans, c.cout, ld, k, 1, w, k, col, ld, 0, yc, ld)
	y := make([]float32, c.cout*ld)
	reorder(y, yc, n, c.cout, c.ho*c.wo, false)
	return y
}

// gemmDx is dx for groups == 1.
func (c groupConv) gemmDx(w, dy []float32, n int) []float32 {
	k, ld := c.gemmTaps(), n*c.ho*c.wo
	dyc := scratch.get(c.cout * ld)
	defer scratch.put(dyc)
	reorder(dyc, dy, n, c.cout, c.ho*c.wo, true)
	dcol := scratch.get(k * ld)
	defer scratch.put(dcol)
	gemmblas.Sgemm(blas.Trans, blas.NoTrans, k, ld, c.cout, 1, w, k, dyc, ld, 0, dcol, ld)
	dx := make([]float32, n*c.cin*c.h*c.w)
	c.col2im(dcol, n, dx)
	return dx
}

// gemmDw is dw for groups == 1. It reads the unfolded input from the
// cache when the forward pass left it there for the same x (the graph
// runs the forward pass of a step before its gradients; a changed input
// slice or batch unfolds again).
func (c groupConv) gemmDw(x, dy []float32, n int, cache *colCache) []float32 {
	k, ld := c.gemmTaps(), n*c.ho*c.wo
	var col []float32
	if cache != nil && cache.x == &x[0] && cache.n == n {
		col = cache.col[:k*ld]
	} else {
		col = scratch.get(k * ld)
		defer scratch.put(col)
		c.im2col(x, n, col)
	}
	dyc := scratch.get(c.cout * ld)
	defer scratch.put(dyc)
	reorder(dyc, dy, n, c.cout, c.ho*c.wo, true)
	dw := make([]float32, c.cout*k)
	gemmblas.Sgemm(blas.NoTrans, blas.Trans, c.cout, k, ld, 1, dyc, ld, col, ld, 0, dw, k)
	return dw
}

// scratch recycles the convolutions' intermediate buffers: a step of a
// ResNet needs a few tens of megabytes of them per layer, which fresh
// allocations would clear and hand to the collector every time.
var scratch = &bufferList{}

// bufferList hands out the smallest free buffer that is large enough
// and keeps the largest maxFreeBuffers returned ones.
type bufferList struct {
	mu   sync.Mutex
	free [][]float32
}

const maxFreeBuffers = 8

// get returns a buffer of length n; its contents are arbitrary.
func (l *bufferList) get(n int) []float32 {
	l.mu.Lock()
	best := -1
	for i, b := range l.free {
		if cap(b) >= n && (best < 0 || cap(b) < cap(l.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := l.free[best]
		l.free = append(l.free[:best], l.free[best+1:]...)
		l.mu.Unlock()
		return b[:n]
	}
	l.mu.Unlock()
	return make([]float32, n)
}

func (l *bufferList) put(b []float32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.free = append(l.free, b)
	if len(l.free) > maxFreeBuffers {
		small := 0
		for i, f := range l.free {
			if cap(f) < cap(l.free[small]) {
				small = i
			}
		}
		l.free = append(l.free[:small], l.free[small+1:]...)
	}
}
