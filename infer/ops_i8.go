package infer

import (
	"fmt"
	"math"

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

func (o *quantizeOp) run(s *scratch, in value, n int) value {
	buf, slot := s.outU(in, n*in.dim)
	gemm.QuantizeU8(buf[:n*in.dim], in.f[:n*in.dim], 1/o.q.Scale, o.q.ZeroPoint)
	return value{u: buf, q: o.q, dim: in.dim, slot: slot}
}

// dequantizeOp converts uint8 activations to float32.
type dequantizeOp struct{ layer string }

func (o *dequantizeOp) name() string       { return o.layer }
func (o *dequantizeOp) weightBytes() int64 { return 0 }
func (o *dequantizeOp) describe() string   { return "dequantize[" + o.layer + "]" }

func (o *dequantizeOp) run(s *scratch, in value, n int) value {
	buf, slot := s.outF(in, n*in.dim)
	dequantize(buf[:n*in.dim], in.u[:n*in.dim], in.q)
	return value{f: buf, dim: in.dim, slot: slot}
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

func (o *linearI8) run(s *scratch, in value, n int) value {
	if o.outFloat {
		buf, slot := s.outF(in, n*o.out)
		o.w.GemmF32(n, in.u, o.in, buf, o.out, &o.rq)
		return value{f: buf, dim: o.out, slot: slot}
	}
	buf, slot := s.outU(in, n*o.out)
	o.w.GemmU8(n, in.u, o.in, buf, o.out, &o.rq)
	return value{u: buf, q: o.outQ, dim: o.out, slot: slot}
}

// convI8 is a quantized conv2d layer (im2col on uint8, padding with the
// input's zero point, which stands for 0.0).
type convI8 struct {
	layer    string
	g        convGeom
	w        *gemm.PackedI8
	rq       gemm.Requant
	outFloat bool
	outQ     QParams
}

func (o *convI8) name() string { return o.layer }
func (o *convI8) weightBytes() int64 {
	return o.w.Bytes() + requantBytes(&o.rq)
}
func (o *convI8) describe() string {
	return fmt.Sprintf("conv%s[%s %dx%dx%d→%dx%dx%d int8→%s]", reluSuffix(o.rq.ReLU), o.layer,
		o.g.c, o.g.h, o.g.w, o.g.o, o.g.oh, o.g.ow, outKind(o.outFloat))
}

func (o *convI8) run(s *scratch, in value, n int) value {
	g := o.g
	ch := g.chunk(n)
	rows := ch * g.pos()
	s.colU = growU(s.colU, rows*g.kdim())
	pad := uint8(in.q.ZeroPoint)
	var fbuf []float32
	var ubuf []uint8
	var slot int
	if o.outFloat {
		fbuf, slot = s.outF(in, n*g.out())
		s.tmp = growF(s.tmp, rows*g.o)
	} else {
		ubuf, slot = s.outU(in, n*g.out())
		s.tmpU = growU(s.tmpU, rows*g.o)
	}
	for b0 := 0; b0 < n; b0 += ch {
		nb := min(ch, n-b0)
		for b := 0; b < nb; b++ {
			im2col(g, in.u[(b0+b)*g.in():], s.colU[b*g.pos()*g.kdim():], pad)
		}
		m := nb * g.pos()
		if o.outFloat {
			o.w.GemmF32(m, s.colU, g.kdim(), s.tmp, g.o, &o.rq)
			for b := 0; b < nb; b++ {
				transposeOut(g, s.tmp[b*g.pos()*g.o:], fbuf[(b0+b)*g.out():])
			}
		} else {
			o.w.GemmU8(m, s.colU, g.kdim(), s.tmpU, g.o, &o.rq)
			for b := 0; b < nb; b++ {
				transposeOut(g, s.tmpU[b*g.pos()*g.o:], ubuf[(b0+b)*g.out():])
			}
		}
	}
	if o.outFloat {
		return value{f: fbuf, dim: g.out(), slot: slot}
	}
	return value{u: ubuf, q: o.outQ, dim: g.out(), slot: slot}
}

// lutU8 maps uint8 activations through a 256-entry table: a ReLU that
// was not fused (max(q, zero point)), or tanh and sigmoid from the
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

func (o *lutU8) run(s *scratch, in value, n int) value {
	size := n * in.dim
	dst, slot := in.u, in.slot
	if in.slot < 0 {
		dst, slot = s.outU(in, size)
	}
	for i, q := range in.u[:size] {
		dst[i] = o.lut[q]
	}
	return value{u: dst, q: o.outQ, dim: in.dim, slot: slot}
}
