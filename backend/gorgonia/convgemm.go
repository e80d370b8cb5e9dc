package gorgonia

import (
	"sync"

	"github.com/distill-dev/distill/internal/gemm"
)

// Dense convolutions (groups == 1) as one GEMM per example and pass,
// in NCHW as the tensors are: the example's unfolded input colT is
// [Cin·k·k, Ho·Wo] (one row per weight tap) and
//
//	forward:  y_b   = W·colT_b           (W [Cout, K], y_b [Cout, Ho·Wo])
//	dx:       dcol_b = Wᵀ·dy_b            then col2im into dx_b
//	dw:       dW    = Σ_b dy_b·colT_bᵀ
//
// Examples run in parallel, each worker with its own buffers. Unlike
// gorgonia's Conv2d (im2col of the whole batch to [N·Ho·Wo, K] on one
// core, its product, then a transpose of the [N, Ho, Wo, Cout] result to
// NCHW element by element on one core), nothing is transposed, and an
// example's unfolded input (a few hundred kilobytes) stays in the core's
// cache between its unfolding and its product instead of making a round
// trip through memory for the whole batch (tens of megabytes per layer
// here). The weight gradient unfolds the input again rather than keeping
// the forward pass's: that is cheaper than reading it back from memory.

// gemmTaps is K, the unfolded input's rows: one per weight.
func (c groupConv) gemmTaps() int { return c.cin * c.k * c.k }

// im2col writes colT [K, Ho·Wo] from one example's x [Cin, H, W]; taps
// that fall in the padding are zero.
func (c groupConv) im2col(x, col []float32) {
	hw, ohw := c.h*c.w, c.ho*c.wo
	for ci := 0; ci < c.cin; ci++ {
		in := x[ci*hw:][:hw]
		for kh := 0; kh < c.k; kh++ {
			ohLo, ohHi := c.span(kh, c.h, c.ho)
			for kw := 0; kw < c.k; kw++ {
				owLo, owHi := c.span(kw, c.w, c.wo)
				dst := col[((ci*c.k+kh)*c.k+kw)*ohw:][:ohw]
				clear(dst[:ohLo*c.wo])
				clear(dst[ohHi*c.wo:])
				if c.sameRows() && ohLo < ohHi {
					// One copy for all rows; the columns it wraps into
					// (taps in the left or right padding) are cleared.
					lo, hi, off := c.sameSpan(kh, kw, ohLo, ohHi)
					clear(dst[ohLo*c.wo : lo])
					if lo < hi {
						copy(dst[lo:hi], in[lo+off:hi+off])
					}
					clear(dst[hi : ohHi*c.wo])
					c.clearWrapped(dst, ohLo, ohHi, owLo, owHi)
					continue
				}
				for oh := ohLo; oh < ohHi; oh++ {
					d := dst[oh*c.wo:][:c.wo]
					for j := 0; j < owLo; j++ { // one or two values: see clearWrapped
						d[j] = 0
					}
					for j := owHi; j < len(d); j++ {
						d[j] = 0
					}
					row := in[(oh*c.stride-c.pad+kh)*c.w:]
					iw := owLo*c.stride - c.pad + kw
					if c.stride == 1 {
						copy(d[owLo:owHi], row[iw:])
						continue
					}
					gather(d[owLo:owHi], row[iw:], c.stride)
				}
			}
		}
	}
}

// gather sets d[i] = s[i·stride], with one bounds check per value
// instead of two.
func gather(d, s []float32, stride int) {
	if len(d) == 0 {
		return
	}
	s = s[:(len(d)-1)*stride+1]
	for i := range d {
		d[i] = s[i*stride]
	}
}

// sameRows says whether output rows line up with input rows (stride 1,
// Wo = W): then a tap's values for all output rows are one contiguous
// run of the input plane, shifted by a constant, except for the columns
// where the tap falls in the left or right padding.
func (c groupConv) sameRows() bool { return c.stride == 1 && c.wo == c.w }

// sameSpan returns, for tap (kh, kw) of a sameRows convolution and its
// output rows [ohLo, ohHi), the output indices [lo, hi) whose input
// index, output index + off, lies in the plane (possibly none).
func (c groupConv) sameSpan(kh, kw, ohLo, ohHi int) (lo, hi, off int) {
	off = (kh-c.pad)*c.w + kw - c.pad
	lo = min(max(ohLo*c.wo, -off), ohHi*c.wo)
	hi = max(lo, min(ohHi*c.wo, c.h*c.w-off))
	return lo, hi, off
}

// clearWrapped zeroes, in rows [ohLo, ohHi) of a [Ho, Wo] plane, the
// columns outside [owLo, owHi).
func (c groupConv) clearWrapped(p []float32, ohLo, ohHi, owLo, owHi int) {
	if owLo == 0 && owHi == c.wo {
		return
	}
	// Column by column: the columns are a tap's overhang into the
	// padding (one or two), and a call to memclr per row and side cost
	// as much as copying the whole plane.
	rows := p[ohLo*c.wo : ohHi*c.wo]
	for j := 0; j < owLo; j++ {
		for i := j; i < len(rows); i += c.wo {
			rows[i] = 0
		}
	}
	for j := owHi; j < c.wo; j++ {
		for i := j; i < len(rows); i += c.wo {
			rows[i] = 0
		}
	}
}

// col2im adds dcol [K, Ho·Wo] into one example's dx [Cin, H, W], each
// tap onto the input value it read.
func (c groupConv) col2im(dcol, dx []float32) {
	hw, ohw := c.h*c.w, c.ho*c.wo
	for ci := 0; ci < c.cin; ci++ {
		d := dx[ci*hw:][:hw]
		for kh := 0; kh < c.k; kh++ {
			ohLo, ohHi := c.span(kh, c.h, c.ho)
			for kw := 0; kw < c.k; kw++ {
				owLo, owHi := c.span(kw, c.w, c.wo)
				src := dcol[((ci*c.k+kh)*c.k+kw)*ohw:][:ohw]
				if c.sameRows() && ohLo < ohHi {
					// One pass over all rows, once the taps that read
					// the padding are dropped from dcol (scratch).
					lo, hi, off := c.sameSpan(kh, kw, ohLo, ohHi)
					c.clearWrapped(src, ohLo, ohHi, owLo, owHi)
					if lo == hi {
						continue
					}
					dst := d[lo+off : hi+off]
					for i, v := range src[lo:hi] {
						dst[i] += v
					}
					continue
				}
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
	}
}

// perWorker returns one scratch buffer of size n for each of the
// workers parallelForWorker will start for jobs jobs, and a function
// that gives them back.
func perWorker(jobs, n int) ([][]float32, func()) {
	bufs := make([][]float32, workers(jobs))
	for i := range bufs {
		bufs[i] = scratch.get(n)
	}
	return bufs, func() {
		for _, b := range bufs {
			scratch.put(b)
		}
	}
}

// The products call package gemm directly, each worker repacking its
// examples' right operands into one PackedF32 of its own: through
// gemmblas.Sgemm every product took packed storage from a shared list
// that the two workers' alternating sizes kept emptying (an allocation
// per product), and the weight gradient's per-example result came back
// transposed element by element.

// gemmForward is forward for groups == 1: y_b = W·colT_b, colT_b packed
// as the right operand (it is Bᵀ of gemm's C = A·Bᵀ).
func (c groupConv) gemmForward(x, w []float32, n int, ob *outBuf) []float32 {
	k, hw, ohw := c.gemmTaps(), c.h*c.w, c.ho*c.wo
	y := ob.get(n * c.cout * ohw) // every value is written
	cols, done := perWorker(n, k*ohw)
	defer done()
	packs := make([]*gemm.PackedF32, len(cols))
	parallelForWorker(n, func(wk, b int) {
		col := cols[wk]
		c.im2col(x[b*c.cin*hw:], col)
		packs[wk] = gemm.RepackF32(packs[wk], col, ohw, ohw, k, true)
		packs[wk].Gemm(c.cout, w, k, y[b*c.cout*ohw:], ohw, nil, false)
	})
	return y
}

// gemmDx is dx for groups == 1. A stride-1 convolution's is the
// forward pass of its transpose on dy (transposeConv); others' is
// dcol_b = Wᵀ·dy_b, dy_b packed as the right operand, then folded into
// dx_b.
func (c groupConv) gemmDx(w, dy []float32, n int, ob *outBuf) []float32 {
	if t, ok := c.transposeConv(); ok {
		wf := scratch.get(len(w))
		defer scratch.put(wf)
		c.flipWeights(w, wf)
		return t.gemmForward(dy, wf, n, ob)
	}
	return c.gemmDxFold(w, dy, n, ob)
}

// gemmDxFold is dx as dcol_b = Wᵀ·dy_b folded into dx_b, for any
// stride.
func (c groupConv) gemmDxFold(w, dy []float32, n int, ob *outBuf) []float32 {
	k, hw, ohw := c.gemmTaps(), c.h*c.w, c.ho*c.wo
	dx := ob.getZero(n * c.cin * hw) // col2im adds into it
	wt := scratch.get(k * c.cout)    // Wᵀ [K, Cout]
	defer scratch.put(wt)
	for o := 0; o < c.cout; o++ {
		for t, v := range w[o*k : (o+1)*k] {
			wt[t*c.cout+o] = v
		}
	}
	dcols, done := perWorker(n, k*ohw)
	defer done()
	packs := make([]*gemm.PackedF32, len(dcols))
	parallelForWorker(n, func(wk, b int) {
		dcol := dcols[wk]
		packs[wk] = gemm.RepackF32(packs[wk], dy[b*c.cout*ohw:], ohw, ohw, c.cout, true)
		packs[wk].Gemm(k, wt, c.cout, dcol, ohw, nil, false)
		c.col2im(dcol, dx[b*c.cin*hw:])
	})
	return dx
}

// transposeConv returns, for a stride-1 convolution with pad < k, the
// convolution whose forward pass maps dy [Cout, Ho, Wo] to dx [Cin, H,
// W]: dx[ci, i, j] = Σ w[co, ci, kh, kw]·dy[co, i+pad−kh, j+pad−kw],
// which is a convolution of dy with the flipped kernel (flipWeights) and
// padding k−1−pad. Run as gemmForward it is one product per example
// with Cin rows and Cout·k·k terms, written straight into dx, where
// Wᵀ·dy_b has only Cout terms (too few for the micro-kernel to amortise
// loading and storing its tile) and its K×Ho·Wo result must be folded
// into dx by scattered additions.
func (c groupConv) transposeConv() (groupConv, bool) {
	if c.groups != 1 || c.stride != 1 || c.pad >= c.k {
		return groupConv{}, false
	}
	t := newGroupConv([]int{c.cout, c.ho, c.wo}, c.cin, 1, c.k, 1, c.k-1-c.pad)
	return t, t.ho == c.h && t.wo == c.w
}

// flipWeights writes w [Cout, Cin, k, k] as the transposed convolution's
// weights wf [Cin, Cout, k, k], each kernel rotated by 180°.
func (c groupConv) flipWeights(w, wf []float32) {
	kk := c.k * c.k
	for o := 0; o < c.cout; o++ {
		for i := 0; i < c.cin; i++ {
			src, dst := w[(o*c.cin+i)*kk:][:kk], wf[(i*c.cout+o)*kk:][:kk]
			for t, v := range src {
				dst[kk-1-t] = v
			}
		}
	}
}

// gemmDw is dw for groups == 1, computed transposed: dWᵀ = Σ_b
// colT_b·dy_bᵀ, whose right operand dy_b [Cout, Ho·Wo] is small.
// Examples are summed in float32 in fixed chunks of dwChunk, in order,
// and the chunks' sums added in float64, in order: which worker takes a
// chunk depends on the machine's load, and summing per worker made
// training results differ from run to run.
func (c groupConv) gemmDw(x, dy []float32, n int, ob *outBuf) []float32 {
	k, hw, ohw := c.gemmTaps(), c.h*c.w, c.ho*c.wo
	kc := k * c.cout
	chunks := (n + dwChunk - 1) / dwChunk
	cols, done := perWorker(chunks, k*ohw+kc)
	defer done()
	accs := scratch.get(chunks * kc)
	defer scratch.put(accs)
	clear(accs)
	packs := make([]*gemm.PackedF32, len(cols))
	parallelForWorker(chunks, func(wk, ch int) {
		col, prod := cols[wk][:k*ohw], cols[wk][k*ohw:]
		acc := accs[ch*kc : (ch+1)*kc]
		for b := ch * dwChunk; b < min(n, (ch+1)*dwChunk); b++ {
			c.im2col(x[b*c.cin*hw:], col)
			packs[wk] = gemm.RepackF32(packs[wk], dy[b*c.cout*ohw:], ohw, c.cout, ohw, false)
			packs[wk].Gemm(k, col, ohw, prod, c.cout, nil, false)
			for i, v := range prod {
				acc[i] += v
			}
		}
	})
	dw := ob.get(c.cout * k) // every value is written
	for t := 0; t < k; t++ {
		for o := 0; o < c.cout; o++ {
			var s float64
			for ch := 0; ch < chunks; ch++ {
				s += float64(accs[ch*kc+t*c.cout+o])
			}
			dw[o*k+t] = float32(s)
		}
	}
	return dw
}

// dwChunk is how many examples' weight gradients gemmDw sums in float32
// before the float64 sum: enough chunks for every core at batch 32 and
// up, few enough that their accumulators stay small.
const dwChunk = 4

// outBuf is an op's output storage in a training graph, kept from one
// step to the next: fresh outputs, tens of megabytes per step in a
// ResNet, were each cleared by the allocator and left to the collector.
// Reuse is safe because an op runs once per run of its graph, the graph
// runs under its model's lock, and nothing reads an op's output after
// the run (logits and features are copied out by G.Read, gradients by
// gradSink). A nil *outBuf allocates on every call (inference graphs,
// tests).
type outBuf struct{ data []float32 }

// get returns n values of storage with arbitrary contents, for outputs
// whose every value the op writes.
func (o *outBuf) get(n int) []float32 {
	if o == nil {
		return make([]float32, n)
	}
	if cap(o.data) < n {
		o.data = make([]float32, n)
	}
	return o.data[:n]
}

// getZero is get for outputs that the op accumulates into.
func (o *outBuf) getZero(n int) []float32 {
	if o == nil {
		return make([]float32, n)
	}
	d := o.get(n)
	clear(d)
	return d
}

// another returns storage of its own for an op derived from the one
// that owns o, or nil where o is nil (outside training graphs).
func (o *outBuf) another() *outBuf {
	if o == nil {
		return nil
	}
	return new(outBuf)
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
