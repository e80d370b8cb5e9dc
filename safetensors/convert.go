package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// The constructors below copy data into a new tensor's little-endian
// bytes. They do not check len(data) against the shape: a mismatch makes
// an invalid tensor, which Validate, Write and the accessors report.

// F32 makes a float32 tensor.
func F32(shape []int, data []float32) Tensor {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return Tensor{DType: Float32, Shape: slices.Clone(shape), Data: b}
}

// F64 makes a float64 tensor.
func F64(shape []int, data []float64) Tensor {
	b := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
	return Tensor{DType: Float64, Shape: slices.Clone(shape), Data: b}
}

// F16 makes a half-precision tensor, rounding each value to the nearest
// half (ties to even, as PyTorch's .half() does). Values beyond ±65504
// become ±Inf; NaN stays NaN.
func F16(shape []int, data []float32) Tensor {
	b := make([]byte, 2*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint16(b[2*i:], f32ToF16(v))
	}
	return Tensor{DType: Float16, Shape: slices.Clone(shape), Data: b}
}

// BF16 makes a bfloat16 tensor, rounding each value to the nearest
// bfloat16 (ties to even, as PyTorch's .bfloat16() does). NaN stays NaN.
func BF16(shape []int, data []float32) Tensor {
	b := make([]byte, 2*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint16(b[2*i:], f32ToBF16(v))
	}
	return Tensor{DType: BFloat16, Shape: slices.Clone(shape), Data: b}
}

// I8 makes an int8 tensor.
func I8(shape []int, data []int8) Tensor {
	b := make([]byte, len(data))
	for i, v := range data {
		b[i] = byte(v)
	}
	return Tensor{DType: Int8, Shape: slices.Clone(shape), Data: b}
}

// U8 makes a uint8 tensor.
func U8(shape []int, data []uint8) Tensor {
	return Tensor{DType: Uint8, Shape: slices.Clone(shape), Data: slices.Clone(data)}
}

// I16 makes an int16 tensor.
func I16(shape []int, data []int16) Tensor {
	b := make([]byte, 2*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return Tensor{DType: Int16, Shape: slices.Clone(shape), Data: b}
}

// I32 makes an int32 tensor.
func I32(shape []int, data []int32) Tensor {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return Tensor{DType: Int32, Shape: slices.Clone(shape), Data: b}
}

// I64 makes an int64 tensor.
func I64(shape []int, data []int64) Tensor {
	b := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return Tensor{DType: Int64, Shape: slices.Clone(shape), Data: b}
}

// BOOL makes a boolean tensor (one byte per element, 0 or 1).
func BOOL(shape []int, data []bool) Tensor {
	b := make([]byte, len(data))
	for i, v := range data {
		if v {
			b[i] = 1
		}
	}
	return Tensor{DType: Bool, Shape: slices.Clone(shape), Data: b}
}

// check validates t and that its type is one of want.
func (t Tensor) check(want ...DType) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if !slices.Contains(want, t.DType) {
		return fmt.Errorf("safetensors: %w: tensor of %s, want %v", ErrInvalid, t.DType, want)
	}
	return nil
}

// Float32 decodes a F32, F16, BF16 or F64 tensor to float32. F64 values
// are rounded to the nearest float32 (beyond its range, to ±Inf).
func (t Tensor) Float32() ([]float32, error) {
	if err := t.check(Float32, Float16, BFloat16, Float64); err != nil {
		return nil, err
	}
	b := t.Data
	switch t.DType {
	case Float32:
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return out, nil
	case Float16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = f16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return out, nil
	case BFloat16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
		return out, nil
	default: // Float64
		out := make([]float32, len(b)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
		return out, nil
	}
}

// Float64 decodes a F64, F32, F16 or BF16 tensor to float64, exactly.
func (t Tensor) Float64() ([]float64, error) {
	if t.DType == Float64 {
		if err := t.check(Float64); err != nil {
			return nil, err
		}
		out := make([]float64, len(t.Data)/8)
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
		}
		return out, nil
	}
	f, err := t.Float32()
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out, nil
}

// Int8 decodes an I8 tensor.
func (t Tensor) Int8() ([]int8, error) {
	if err := t.check(Int8); err != nil {
		return nil, err
	}
	out := make([]int8, len(t.Data))
	for i, v := range t.Data {
		out[i] = int8(v)
	}
	return out, nil
}

// Uint8 decodes a U8 tensor.
func (t Tensor) Uint8() ([]uint8, error) {
	if err := t.check(Uint8); err != nil {
		return nil, err
	}
	return slices.Clone(t.Data), nil
}

// Int16 decodes an I16 tensor.
func (t Tensor) Int16() ([]int16, error) {
	if err := t.check(Int16); err != nil {
		return nil, err
	}
	out := make([]int16, len(t.Data)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(t.Data[2*i:]))
	}
	return out, nil
}

// Int32 decodes an I32 tensor.
func (t Tensor) Int32() ([]int32, error) {
	if err := t.check(Int32); err != nil {
		return nil, err
	}
	out := make([]int32, len(t.Data)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// Int64 decodes an I64 tensor.
func (t Tensor) Int64() ([]int64, error) {
	if err := t.check(Int64); err != nil {
		return nil, err
	}
	out := make([]int64, len(t.Data)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out, nil
}

// Bools decodes a BOOL tensor; a byte other than 0 or 1 is an error.
func (t Tensor) Bools() ([]bool, error) {
	if err := t.check(Bool); err != nil {
		return nil, err
	}
	out := make([]bool, len(t.Data))
	for i, v := range t.Data {
		if v > 1 {
			return nil, fmt.Errorf("safetensors: %w: BOOL element %d is %d, not 0 or 1", ErrInvalid, i, v)
		}
		out[i] = v == 1
	}
	return out, nil
}

// f32ToF16 rounds f to the nearest IEEE 754 half, ties to even.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff { // Inf or NaN; a NaN stays a (quiet) NaN
		if man == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(man>>13)
	}
	e := exp - 127 + 15 // biased half exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// A half subnormal (or zero): m·2⁻²⁴ with m = full >> (14-e).
		if e < -10 {
			return sign // below half the smallest subnormal
		}
		full := man | 0x800000
		shift := uint(14 - e)
		m := full >> shift
		rem := full & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && m&1 == 1 {
			m++ // may carry into the smallest normal, which is right
		}
		return sign | uint16(m)
	}
	m := man >> 13
	rem := man & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && m&1 == 1 {
		m++
	}
	// A carry out of the mantissa bumps the exponent, up to Inf.
	return sign | uint16(uint32(e)<<10+m)
}

// f16ToF32 converts an IEEE 754 half to float32 exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		e := uint32(127 - 15 + 1)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}

// f32ToBF16 rounds f to the nearest bfloat16, ties to even.
func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: truncate, keep it quiet
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
