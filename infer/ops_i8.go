package infer

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/model"
)

// quantizeOp converts float32 activations to uint8.
type quantizeOp struct {
	layer string // the tensor's producer ("input" for the network input)
	q     QParams
}

func (o *quantizeOp) name() string       { return o.layer }
func (o *quantizeOp) weightBytes() int64 { return 0 }
func (o *quantizeOp) describe() string {
	return fmt.Sprintf("quantize[%s s=%.4g z=%d]", o.layer, o.q.Scale, o.q.ZeroPoint)
}

func (o *quantizeOp) run(s *scratch, in []value, n int, buf int) value {
	x := in[0]
	dst := s.outU(buf, n*x.dim)
	gemm.QuantizeU8(dst[:n*x.dim], x.f[:n*x.dim], 1/o.q.Scale, o.q.ZeroPoint)
	return value{u: dst, q: o.q, dim: x.dim}
}

// dequantizeOp converts uint8 activations to float32.
type dequantizeOp struct {
	layer string
	q     QParams
}

func (o *dequantizeOp) name() string       { return o.layer }
func (o *dequantizeOp) weightBytes() int64 { return 0 }
func (o *dequantizeOp) describe() string   { return "dequantize[" + o.layer + "]" }

func (o *dequantizeOp) run(s *scratch, in []value, n int, buf int) value {
	x := in[0]
	dst := s.outF(buf, n*x.dim)
	dequantize(dst, x.u[:n*x.dim], x.q)
	return value{f: dst, dim: x.dim}
}

// dequantTable is the float32 value of each uint8 under q, as
// dequantize computes it.
func dequantTable(q QParams) *[256]float32 {
	var t [256]float32
	var all [256]uint8
	for i := range all {
		all[i] = uint8(i)
	}
	dequantize(t[:], all[:], q)
	return &t
}

// gapU8 is a dequantization and the global average pool that is its
// only reader in one pass over the uint8 activations (NCHW or NHWC, so
// no copy into NCHW either): each plane's sum adds the same float32
// values in the same order as globalAvgPoolOp does after dequantizeOp,
// so the same bits.
type gapU8 struct {
	gap *globalAvgPoolOp
	lut *[256]float32
}

func (o *gapU8) name() string       { return o.gap.name() }
func (o *gapU8) weightBytes() int64 { return int64(len(o.lut)) * 4 }
func (o *gapU8) describe() string {
	return fmt.Sprintf("globalavgpool[%s %d×%d u8→f32]", o.gap.layer, o.gap.c, o.gap.hw)
}
func (o *gapU8) readsNHWC() bool { return true }

func (o *gapU8) run(s *scratch, in []value, n int, buf int) value {
	x, c, hw := in[0], o.gap.c, o.gap.hw
	dst := s.outF(buf, n*c)
	inv := 1 / float32(hw)
	for b := range n {
		u, sums := x.u[b*x.dim:(b+1)*x.dim], dst[b*c:(b+1)*c]
		if x.nhwc {
			// Pixel by pixel, every channel's sum in step: each still
			// adds its values in pixel order.
			clear(sums)
			for i := range hw {
				for ch, q := range u[i*c : (i+1)*c] {
					sums[ch] += o.lut[q]
				}
			}
		} else {
			for ch := range sums {
				var sum float32
				for _, q := range u[ch*hw : (ch+1)*hw] {
					sum += o.lut[q]
				}
				sums[ch] = sum
			}
		}
		for ch := range sums {
			sums[ch] *= inv
		}
	}
	return value{f: dst, dim: c}
}

func dequantize(dst []float32, src []uint8, q QParams) {
	gemm.DequantizeU8(dst, src, q.Scale, q.ZeroPoint)
}

// linearI8 is a quantized linear layer: uint8 in, uint8 (requantized to
// outQ) or float32 out, ReLU fused into the epilogue.
type linearI8 struct {
	layer    string
	w        *gemm.PackedI8
	rq       gemm.Requant
	outFloat bool
	outQ     QParams
	in, out  int
}

func (o *linearI8) name() string { return o.layer }
func (o *linearI8) weightBytes() int64 {
	return o.w.Bytes() + requantBytes(&o.rq)
}

// requantBytes is the memory a layer's requantization vectors hold.
func requantBytes(rq *gemm.Requant) int64 {
	return int64(cap(rq.Offset))*4 + int64(cap(rq.Scale))*4
}
func (o *linearI8) describe() string {
	return fmt.Sprintf("linear%s[%s %d→%d int8→%s]", reluSuffix(o.rq.ReLU), o.layer, o.in, o.out, outKind(o.outFloat))
}

func outKind(f bool) string {
	if f {
		return "f32"
	}
	return "u8"
}

func (o *linearI8) run(s *scratch, in []value, n int, buf int) value {
	x := in[0]
	serial := s.threadsFor(n*o.in*o.out, true) == 1
	if o.outFloat {
		dst := s.outF(buf, n*o.out)
		gemmI8F32(o.w, serial, n, x.u, o.in, dst, o.out, &o.rq)
		return value{f: dst, dim: o.out}
	}
	dst := s.outU(buf, n*o.out)
	gemmI8U8(o.w, serial, n, x.u, o.in, dst, o.out, &o.rq)
	return value{u: dst, q: o.outQ, dim: o.out}
}

// convI8 is a quantized conv2d layer: im2col on uint8 (padding with the
// input's zero point, which stands for 0.0) and one GEMM per group, or a
// direct loop for a depthwise one (dw holds its int8 weights, and
// rq.Offset its int32 bias alone: the loop subtracts the zero point
// from each input, which sums to the same exact int32 as the GEMM's
// zero-point correction).
type convI8 struct {
	layer    string
	g        convGeom
	w        []*gemm.PackedI8 // one per group
	dw       []int8
	rq       gemm.Requant
	outFloat bool
	outQ     QParams
	// nhwc: one group, weights in [o][ky][kx][c] order (kernelHWC), run
	// by runNHWC.
	nhwc bool
	// px: output pixels per GEMM row of an NHWC convolution (see
	// pixelsPerRow; w and rq are then packPixels').
	px int
}

func (o *convI8) name() string    { return o.layer }
func (o *convI8) readsNHWC() bool { return o.nhwc }
func (o *convI8) weightBytes() int64 {
	b := requantBytes(&o.rq) + int64(cap(o.dw))
	for _, w := range o.w {
		b += w.Bytes()
	}
	return b
}
func (o *convI8) describe() string {
	kind := "conv"
	if o.g.groups > 1 {
		kind = fmt.Sprintf("conv/%d", o.g.groups)
	}
	if o.dw != nil {
		kind = "dwconv"
	}
	px := ""
	if o.px > 1 {
		px = fmt.Sprintf(" %dpx", o.px)
	}
	return fmt.Sprintf("%s%s[%s %dx%dx%d→%dx%dx%d int8→%s%s]", kind, reluSuffix(o.rq.ReLU), o.layer,
		o.g.c, o.g.h, o.g.w, o.g.o, o.g.oh, o.g.ow, outKind(o.outFloat), px)
}

func (o *convI8) run(s *scratch, in []value, n int, buf int) value {
	g := o.g
	x := in[0]
	var fbuf []float32
	var ubuf []uint8
	if o.outFloat {
		fbuf = s.outF(buf, n*g.out())
	} else {
		ubuf = s.outU(buf, n*g.out())
	}
	if o.dw != nil {
		s.acc = growI32(s.acc, g.ow)
		for b := 0; b < n; b++ {
			var f []float32
			var u []uint8
			if o.outFloat {
				f = fbuf[b*g.out():]
			} else {
				u = ubuf[b*g.out():]
			}
			depthwiseI8(g, x.u[b*g.in():], x.q.ZeroPoint, o.dw, &o.rq, s.acc, f, u)
		}
	} else if o.nhwc {
		o.runNHWC(s, x, n, fbuf, ubuf)
		if !o.outFloat {
			return value{u: ubuf, q: o.outQ, dim: g.out(), nhwc: true, ch: g.o}
		}
	} else {
		o.gemmGroups(s, x, n, fbuf, ubuf)
	}
	if o.outFloat {
		return value{f: fbuf, dim: g.out()}
	}
	return value{u: ubuf, q: o.outQ, dim: g.out()}
}

func (o *convI8) gemmGroups(s *scratch, x value, n int, fbuf []float32, ubuf []uint8) {
	g := o.g
	ch := g.chunk(n)
	pos, kd, og := g.pos(), g.kdim(), g.og()
	rows := ch * pos
	s.colU = grow(s.colU, rows*kd)
	if o.outFloat {
		s.tmp = growF(s.tmp, rows*og)
	} else {
		s.tmpU = grow(s.tmpU, rows*og)
	}
	pad := uint8(x.q.ZeroPoint)
	for b0 := 0; b0 < n; b0 += ch {
		nb := min(ch, n-b0)
		m := nb * pos
		serial := s.threadsFor(g.work(nb), true) == 1
		for gi, w := range o.w {
			rq := o.rq
			if len(o.w) > 1 {
				rq.Offset, rq.Scale = rq.Offset[gi*og:(gi+1)*og], rq.Scale[gi*og:(gi+1)*og]
			}
			for b := 0; b < nb; b++ {
				im2col(g, x.u[(b0+b)*g.in()+gi*g.cg()*g.h*g.w:], s.colU[b*pos*kd:], pad)
			}
			if o.outFloat {
				gemmI8F32(w, serial, m, s.colU, kd, s.tmp, og, &rq)
				for b := 0; b < nb; b++ {
					transposeOut(g, s.tmp[b*pos*og:], fbuf[(b0+b)*g.out()+gi*og*pos:])
				}
			} else {
				gemmI8U8(w, serial, m, s.colU, kd, s.tmpU, og, &rq)
				for b := 0; b < nb; b++ {
					transposeOut(g, s.tmpU[b*pos*og:], ubuf[(b0+b)*g.out()+gi*og*pos:])
				}
			}
		}
	}
}

// runNHWC runs the convolution through convNHWC: patches (none for 1×1
// stride 1) and a Serial GEMM per band; a uint8 output stays NHWC (the
// GEMM's rows are its pixels), a float32 one is transposed to NCHW.
func (o *convI8) runNHWC(s *scratch, x value, n int, fbuf []float32, ubuf []uint8) {
	g := o.g
	pl := g.planNHWC(n, s.threadsFor(g.work(n), true), o.px)
	bd := &s.i8Band
	*bd = i8Band{o: o, tmpLen: pl.bandRows * g.ow * g.o, fbuf: fbuf, ubuf: ubuf}
	if o.outFloat {
		s.tmp = growF(s.tmp, pl.parts*bd.tmpLen)
		bd.tmp = s.tmp
	}
	convNHWC(g, pl, x.u, x.nhwc, n, uint8(x.q.ZeroPoint), &s.xh, &s.colU, bd)
}

// i8Band is runNHWC's nhwcBand, held in the scratch (an interface to
// it allocates nothing): a band's GEMM, each row px pixels, px·o outputs
// in the pixels' own NHWC order.
type i8Band struct {
	o      *convI8
	tmp    []float32 // the parts' float32 outputs before the transpose, tmpLen apart
	tmpLen int
	fbuf   []float32 // the output: float32 (NCHW) or uint8 (NHWC)
	ubuf   []uint8
}

func (bd *i8Band) gemmBand(pi, b, p0, m int, a []uint8) {
	o, g := bd.o, bd.o.g
	kd, ldc := g.kdimPx(o.px), o.px*g.o
	if o.outFloat {
		tmp := bd.tmp[pi*bd.tmpLen:]
		o.w[0].GemmF32Serial(m/o.px, a, kd, tmp, ldc, &o.rq)
		transposeBand(tmp, g.o, p0, m, g.pos(), bd.fbuf[b*g.out():])
		return
	}
	o.w[0].GemmU8Serial(m/o.px, a, kd, bd.ubuf[b*g.out()+p0*g.o:], ldc, &o.rq)
}

// packPixels lets px neighbouring output pixels of a row share each
// GEMM row of an NHWC convolution (see pixelsPerRow): a patch row is
// their joint window, widthPx(px) columns wide, and the weights
// (w: [o][ky][kx][c], kernelHWC's order) become px·o output columns,
// those of pixel p zero outside its own window (p·stride columns in).
// The zeros add nothing to the exact int32 sums and each column's sum
// of weights is its channel's, so the requantization vectors repeat
// per pixel and the output is the same bits as with one pixel per row.
func (o *convI8) packPixels(px int, w []int8) {
	g := o.g
	k, c, kw, kd := g.k, g.c, g.widthPx(px), g.kdimPx(px)
	wide := make([]int8, px*g.o*kd)
	for p := range px {
		for oc := range g.o {
			for ky := range k {
				for kx := range k {
					copy(wide[(p*g.o+oc)*kd+(ky*kw+p*g.stride+kx)*c:][:c], w[oc*g.kdim()+(ky*k+kx)*c:][:c])
				}
			}
		}
	}
	pw := gemm.PackI8(wide, px*g.o, kd)
	rq := o.rq
	rq.Offset, rq.Scale = nil, nil
	for p := range px {
		if !slices.Equal(pw.ColSums()[p*g.o:(p+1)*g.o], o.w[0].ColSums()) {
			panic("infer: packPixels: a pixel's weight sums differ from the channel's")
		}
		rq.Offset, rq.Scale = append(rq.Offset, o.rq.Offset...), append(rq.Scale, o.rq.Scale...)
	}
	o.w, o.rq, o.px = []*gemm.PackedI8{pw}, rq, px
}

// pixelsPerRow is how many output pixels packPixels puts in a GEMM row:
// the fewest (a power of 2 dividing ow, at most 4) that give 32 output
// columns; 1 from 32 output channels on. The INT8 kernels compute 16
// columns at the narrowest (an 8-channel product pays for 16), and each
// doubling of px shares more of the neighbours' windows in the patches
// than its zero weights cost: on ResNet-8 at batch 1, 4 pixels for the
// 8-channel convolutions and 2 for the 16-channel ones took 4% off the
// forward against 16 columns (2 and 1 pixels).
func (g convGeom) pixelsPerRow() int {
	px := 1
	for px*g.o < 32 && px < 4 && g.ow%(2*px) == 0 {
		px *= 2
	}
	return px
}

// depthwiseI8 convolves one example (x: [c, h, w] uint8 with zero point
// zp) with one input channel per group, accumulating (q − zp)·w exactly
// in int32 per output row, and ends each row in the GEMMs' epilogue
// (gemm.Requant's formula): into f (float32) or u (uint8), whichever is
// not nil.
func depthwiseI8(g convGeom, x []uint8, zp int32, w []int8, rq *gemm.Requant, acc []int32, f []float32, u []uint8) {
	og, k := g.og(), g.k
	lo := int32(0)
	if rq.ReLU {
		lo = rq.ZeroPoint
	}
	for oc := 0; oc < g.o; oc++ {
		plane := x[(oc/og)*g.h*g.w:]
		wk := w[oc*k*k : (oc+1)*k*k]
		off, scale := rq.Offset[oc], rq.Scale[oc]
		for oy := 0; oy < g.oh; oy++ {
			clear(acc)
			for ky := 0; ky < k; ky++ {
				iy := oy*g.stride - g.pad + ky
				if iy < 0 || iy >= g.h {
					continue
				}
				row := plane[iy*g.w : (iy+1)*g.w]
				for kx := 0; kx < k; kx++ {
					wv := int32(wk[ky*k+kx])
					lo, hi := g.taps(kx)
					ix := lo*g.stride - g.pad + kx
					for ox := lo; ox < hi; ox++ {
						acc[ox] += (int32(row[ix]) - zp) * wv
						ix += g.stride
					}
				}
			}
			base := (oc*g.oh + oy) * g.ow
			if f != nil {
				dst := f[base : base+g.ow]
				for i, a := range acc {
					v := float32(a+off) * scale
					if rq.ReLU && !(v > 0) {
						v = 0
					}
					dst[i] = v
				}
				continue
			}
			dst := u[base : base+g.ow]
			for i, a := range acc {
				dst[i] = saturateU8(float32(a+off)*scale, rq.ZeroPoint, lo)
			}
		}
	}
}

// saturateU8 is gemm.Requant's uint8 rounding: clamp to the int16 range,
// round half to even, add zp, clamp to [lo, 255].
func saturateU8(v float32, zp, lo int32) uint8 {
	if !(v < 32767) {
		v = 32767
	}
	if !(v > -32768) {
		v = -32768
	}
	q := int32(math.RoundToEven(float64(v))) + zp
	return uint8(min(max(q, lo), 255))
}

func growI32(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}

// addI8 adds two uint8 tensors into the add's own quantization:
//
//	out = clamp(round_half_even((s_a·(q_a−z_a) + s_b·(q_b−z_b)) / s_o) + z_o, 0, 255)
//
// every step in float32: each product s·(q−z) rounded to float32, their
// sum rounded to float32, the quotient by s_o rounded to float32 (a
// division, not a multiplication by 1/s_o, which can differ in the last
// bit), then rounded half to even. ONNX export mirrors it as
// DequantizeLinear → Add → QuantizeLinear, which rounds at the same
// places. The rule is tabulated for all 65536 pairs of inputs (64 KiB,
// which stays in L2), so that an add is one load per element.
type addI8 struct {
	layer string
	t     []uint8 // t[q_a<<8 | q_b]
	a, b  QParams // the inputs'
	outQ  QParams
}

func newAddI8(layer string, a, b, out QParams) *addI8 {
	o := &addI8{layer: layer, a: a, b: b, outQ: out, t: make([]uint8, 1<<16)}
	var ta, tb [256]float32
	for q := range 256 {
		ta[q] = float32(int32(q)-a.ZeroPoint) * a.Scale
		tb[q] = float32(int32(q)-b.ZeroPoint) * b.Scale
	}
	so, zo := out.Scale, float64(out.ZeroPoint)
	for qa := range 256 {
		for qb := range 256 {
			v := (ta[qa] + tb[qb]) / so
			r := math.RoundToEven(float64(v)) + zo
			o.t[qa<<8|qb] = uint8(min(max(r, 0), 255))
		}
	}
	return o
}

func (o *addI8) name() string       { return o.layer }
func (o *addI8) weightBytes() int64 { return int64(len(o.t)) }
func (o *addI8) describe() string   { return "add[" + o.layer + " u8]" }
func (o *addI8) inPlace() bool      { return true }

// readsNHWC: an add is elementwise; when one input is NHWC, the other
// is brought to that layout (a copy) and so is the output.
func (o *addI8) readsNHWC() bool { return true }

func (o *addI8) run(s *scratch, in []value, n int, buf int) value {
	return addByTable(s, in, n, buf, o.t, o.outQ)
}

// addByTable maps each pair of elements of the two uint8 inputs through
// t (t[q_a<<8 | q_b]) into buffer buf; the output has parameters outQ.
func addByTable(s *scratch, in []value, n int, buf int, t []uint8, outQ QParams) value {
	size := n * in[0].dim
	va, vb := sameLayout(s, in[0], in[1], n)
	dst := s.outU(buf, size)
	tableAdd(dst[:size], va.u[:size], vb.u[:size], (*[1 << 16]uint8)(t))
	return value{u: dst, q: outQ, dim: in[0].dim, nhwc: va.nhwc, ch: va.ch}
}

// tableAdd sets dst[i] = t[a[i]<<8 | b[i]], eight at a time: the
// lookups are a few instructions each, and the loop's own (counter,
// bounds) cost as much.
func tableAdd(dst, a, b []uint8, t *[1 << 16]uint8) {
	b, dst = b[:len(a)], dst[:len(a)]
	for len(a) >= 8 {
		a8, b8, d8 := (*[8]uint8)(a), (*[8]uint8)(b), (*[8]uint8)(dst)
		d8[0] = t[uint16(a8[0])<<8|uint16(b8[0])]
		d8[1] = t[uint16(a8[1])<<8|uint16(b8[1])]
		d8[2] = t[uint16(a8[2])<<8|uint16(b8[2])]
		d8[3] = t[uint16(a8[3])<<8|uint16(b8[3])]
		d8[4] = t[uint16(a8[4])<<8|uint16(b8[4])]
		d8[5] = t[uint16(a8[5])<<8|uint16(b8[5])]
		d8[6] = t[uint16(a8[6])<<8|uint16(b8[6])]
		d8[7] = t[uint16(a8[7])<<8|uint16(b8[7])]
		a, b, dst = a[8:], b[8:], dst[8:]
	}
	for i := range a {
		dst[i] = t[uint16(a[i])<<8|uint16(b[i])]
	}
}

// addLUT is an add whose only reader is a table (the relu after a
// residual add; relu6, tanh, sigmoid): one pass through the composition
// of the two tables, lut[add[q_a<<8 | q_b]], which is the same uint8 as
// the two passes by construction. Observe still reports the add's own
// output, through the add's table, built on first use (only calibration
// tools observe an INT8 program; Forward never needs it).
type addLUT struct {
	layer    string  // the add's
	a, b     QParams // the add's inputs'
	addQ     QParams // the add's output's
	lut      *lutU8
	t        []uint8
	addOnce  sync.Once
	addAlone *addI8
}

// fuseAddLUT composes add's table with lut's.
func fuseAddLUT(add *addI8, lut *lutU8) *addLUT {
	o := &addLUT{layer: add.layer, a: add.a, b: add.b, addQ: add.outQ, lut: lut, t: make([]uint8, len(add.t))}
	for i, q := range add.t {
		o.t[i] = lut.lut[q]
	}
	return o
}

func (o *addLUT) name() string       { return o.lut.name() }
func (o *addLUT) weightBytes() int64 { return int64(len(o.t)) + o.lut.weightBytes() }
func (o *addLUT) describe() string {
	return fmt.Sprintf("add+%s[%s u8]", o.lut.kind, o.layer)
}
func (o *addLUT) inPlace() bool   { return true }
func (o *addLUT) readsNHWC() bool { return true }

func (o *addLUT) run(s *scratch, in []value, n int, buf int) value {
	return addByTable(s, in, n, buf, o.t, o.lut.outQ)
}

// runObserved runs the add and the table as two passes, reporting the
// add's output in between.
func (o *addLUT) runObserved(s *scratch, in []value, n int, buf int, report func(layer string, v value)) value {
	o.addOnce.Do(func() { o.addAlone = newAddI8(o.layer, o.a, o.b, o.addQ) })
	v := o.addAlone.run(s, in, n, buf)
	report(o.layer, v)
	return o.lut.run(s, []value{v}, n, buf)
}

// lutU8 maps uint8 activations through a 256-entry table: a ReLU that
// was not fused (max(q, zero point)), or relu6, tanh and sigmoid from the
// input's quantization to the output's.
type lutU8 struct {
	layer string
	kind  model.Kind
	lut   [256]uint8
	outQ  QParams
}

func (o *lutU8) name() string       { return o.layer }
func (o *lutU8) weightBytes() int64 { return int64(len(o.lut)) }
func (o *lutU8) describe() string   { return fmt.Sprintf("%s[%s u8 table]", o.kind, o.layer) }

// newReLULUT is a ReLU on uint8 activations: it keeps the input's
// parameters and clamps below at the zero point.
func newReLULUT(layer string, in QParams) *lutU8 {
	o := &lutU8{layer: layer, kind: model.KindReLU, outQ: in}
	for q := range 256 {
		o.lut[q] = uint8(max(int32(q), in.ZeroPoint))
	}
	return o
}

// newLUT tabulates f from the input's quantization to the output's.
func newLUT(layer string, kind model.Kind, f func(float64) float64, in, out QParams) *lutU8 {
	o := &lutU8{layer: layer, kind: kind, outQ: out}
	for q := range 256 {
		y := f(float64(in.Scale) * float64(int32(q)-in.ZeroPoint))
		v := math.RoundToEven(y/float64(out.Scale)) + float64(out.ZeroPoint)
		o.lut[q] = uint8(min(max(v, 0), 255))
	}
	return o
}

// newReLU6LUT is relu6 from the input's quantization to the output's,
// clamping at the quantized 0 and 6, in float32 step by step as ONNX's
// DequantizeLinear → Clip(0, 6) → QuantizeLinear computes it, so that
// an export rounds where the runtime does:
//
//	out = clamp(round_half_even(min(max(s_in·(q−z_in), 0), 6) / s_out) + z_out, 0, 255)
func newReLU6LUT(layer string, in, out QParams) *lutU8 {
	o := &lutU8{layer: layer, kind: model.KindReLU6, outQ: out}
	for q := range 256 {
		x := min(max(float32(int32(q)-in.ZeroPoint)*in.Scale, 0), 6)
		v := math.RoundToEven(float64(x/out.Scale)) + float64(out.ZeroPoint)
		o.lut[q] = uint8(min(max(v, 0), 255))
	}
	return o
}

func (o *lutU8) inPlace() bool { return true }

// readsNHWC: a table is elementwise; the output keeps the input's layout.
func (o *lutU8) readsNHWC() bool { return true }

func (o *lutU8) run(s *scratch, in []value, n int, buf int) value {
	size := n * in[0].dim
	dst := s.outU(buf, size)
	for i, q := range in[0].u[:size] {
		dst[i] = o.lut[q]
	}
	return value{u: dst, q: o.outQ, dim: in[0].dim, nhwc: in[0].nhwc, ch: in[0].ch}
}
