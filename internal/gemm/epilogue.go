package gemm

import "math"

// requantOne is the reference for one element of Requant's uint8 output.
func requantOne(acc, off int32, scale float32, zp, lo int32) uint8 {
	return saturateU8(float32(acc+off)*scale, zp, lo)
}

// saturateU8 rounds v half to even after clamping it to the int16 range,
// adds zp and clamps to [lo, 255], as VMINPS/VMAXPS, VCVTPS2DQ and the
// saturating packs do.
func saturateU8(v float32, zp, lo int32) uint8 {
	if !(v < 32767) { // VMINPS: NaN becomes the bound
		v = 32767
	}
	if !(v > -32768) {
		v = -32768
	}
	q := int32(math.RoundToEven(float64(v))) + zp
	if q < lo {
		q = lo
	}
	if q > 255 {
		q = 255
	}
	return uint8(q)
}

// requantU8 applies the uint8 epilogue to one row.
func requantU8(vec bool, acc, off []int32, scale []float32, out []uint8, zp int32, relu bool) {
	lo := int32(0)
	if relu {
		lo = zp
	}
	n := len(acc)
	i := 0
	if vec && n >= 8 {
		i = n &^ 7
		requantU8AsmImpl(i, &acc[0], &off[0], &scale[0], &out[0], int(zp), int(lo))
	}
	off, scale, out = off[:n], scale[:n], out[:n]
	for ; i < n; i++ {
		out[i] = requantOne(acc[i], off[i], scale[i], zp, lo)
	}
}

// requantU8Rows applies the uint8 epilogue to rows rows of len(off)
// columns: acc rows accStride apart, out rows outStride apart. It is
// requantU8 on each row, the vector part of all rows in one call.
func requantU8Rows(vec bool, rows int, acc []int32, accStride int, off []int32, scale []float32, out []uint8, outStride int, zp int32, relu bool) {
	n := len(off)
	if rows <= 0 || n == 0 {
		return
	}
	// The last row bounds all others.
	_, _ = acc[(rows-1)*accStride+n-1], out[(rows-1)*outStride+n-1]
	if !vec || n < 8 {
		for i := range rows {
			requantU8(false, acc[i*accStride:i*accStride+n], off, scale[:n], out[i*outStride:i*outStride+n], zp, relu)
		}
		return
	}
	lo := int32(0)
	if relu {
		lo = zp
	}
	n8 := n &^ 7
	requantU8RowsAsmImpl(rows, n8, &acc[0], accStride, &off[0], &scale[0], &out[0], outStride, int(zp), int(lo))
	for i := range rows {
		for j := n8; j < n; j++ {
			out[i*outStride+j] = requantOne(acc[i*accStride+j], off[j], scale[j], zp, lo)
		}
	}
}

// dequantF32 applies the float32 epilogue to one row.
func dequantF32(vec bool, acc, off []int32, scale []float32, out []float32, relu bool) {
	n := len(acc)
	i := 0
	if vec && n >= 8 {
		i = n &^ 7
		r := 0
		if relu {
			r = 1
		}
		dequantF32AsmImpl(i, &acc[0], &off[0], &scale[0], &out[0], r)
	}
	off, scale, out = off[:n], scale[:n], out[:n]
	for ; i < n; i++ {
		v := float32(acc[i]+off[i]) * scale[i]
		if relu && !(v > 0) {
			v = 0
		}
		out[i] = v
	}
}

// QuantizeU8 quantizes src into dst (same length) with an asymmetric
// uint8 scheme:
//
//	q = clamp(roundHalfEven(clamp(x·invScale, −32768, 32767)) + zeroPoint, 0, 255)
//
// (x·invScale rounded to float32; NaN maps to 255). It uses AVX2 where
// available and the limit allows; the result is the same bits either way.
// Large inputs (a batch's activations entering the first INT8 layer) are
// split across the GEMM threads: on one core this pass was 4% of an
// MNIST student's INT8 forward at batch 256, and it ran while the other
// core waited.
func QuantizeU8(dst []uint8, src []float32, invScale float32, zeroPoint int32) {
	vec := BestI8() != Portable
	n := len(src)
	t := min(maxThreads(), n/quantParMin)
	if t <= 1 {
		quantizeU8(vec, dst, src, invScale, zeroPoint)
		return
	}
	dst = dst[:n]
	parts := t * 2
	runParts(t, parts, func(i int) {
		// Part bounds on multiples of 64 values: whole vectors and
		// cache lines.
		lo, hi := i*n/parts&^63, (i+1)*n/parts&^63
		if i == parts-1 {
			hi = n
		}
		quantizeU8(vec, dst[lo:hi], src[lo:hi], invScale, zeroPoint)
	})
}

// quantParMin is the number of values per thread below which QuantizeU8
// uses fewer threads.
const quantParMin = 1 << 15

func quantizeU8(vec bool, dst []uint8, src []float32, inv float32, zp int32) {
	n := len(src)
	dst = dst[:n]
	i := 0
	if vec && n >= 8 && haveAVX2Epi {
		i = n &^ 7
		quantU8AsmImpl(i, &src[0], inv, int(zp), &dst[0])
	}
	for ; i < n; i++ {
		dst[i] = saturateU8(src[i]*inv, zp, 0)
	}
}

// DequantizeU8 writes scale·(q − zeroPoint) for each q of src into dst.
func DequantizeU8(dst []float32, src []uint8, scale float32, zeroPoint int32) {
	dst = dst[:len(src)]
	var lut [256]float32
	for q := range lut {
		lut[q] = float32(int32(q)-zeroPoint) * scale
	}
	for i, q := range src {
		dst[i] = lut[q]
	}
}

// widen zero-extends bytes to int16 (len(dst) == len(src)).
func widen(dst []int16, src []uint8) {
	n := len(src)
	i := 0
	if n >= 16 && haveAVX2Epi {
		i = n &^ 15
		widenAsmImpl(i, &src[0], &dst[0])
	}
	dst = dst[:n]
	for ; i < n; i++ {
		dst[i] = int16(src[i])
	}
}
