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
	return encode(Float32, shape, data, 4, func(b []byte, v float32) { binary.LittleEndian.PutUint32(b, math.Float32bits(v)) })
}

// F64 makes a float64 tensor.
func F64(shape []int, data []float64) Tensor {
	return encode(Float64, shape, data, 8, func(b []byte, v float64) { binary.LittleEndian.PutUint64(b, math.Float64bits(v)) })
}

// F16 makes a half-precision tensor, rounding each value to the nearest
// half (ties to even, as PyTorch's .half() does). Values beyond ±65504
// become ±Inf; NaN stays NaN.
func F16(shape []int, data []float32) Tensor {
	return encode(Float16, shape, data, 2, func(b []byte, v float32) { binary.LittleEndian.PutUint16(b, f32ToF16(v)) })
}

// BF16 makes a bfloat16 tensor, rounding each value to the nearest
// bfloat16 (ties to even, as PyTorch's .bfloat16() does). NaN stays NaN.
func BF16(shape []int, data []float32) Tensor {
	return encode(BFloat16, shape, data, 2, func(b []byte, v float32) { binary.LittleEndian.PutUint16(b, f32ToBF16(v)) })
}

// I8 makes an int8 tensor.
func I8(shape []int, data []int8) Tensor {
	return encode(Int8, shape, data, 1, func(b []byte, v int8) { b[0] = byte(v) })
}

// U8 makes a uint8 tensor.
func U8(shape []int, data []uint8) Tensor {
	return Tensor{DType: Uint8, Shape: slices.Clone(shape), Data: slices.Clone(data)}
}

// I16 makes an int16 tensor.
func I16(shape []int, data []int16) Tensor {
	return encode(Int16, shape, data, 2, func(b []byte, v int16) { binary.LittleEndian.PutUint16(b, uint16(v)) })
}

// I32 makes an int32 tensor.
func I32(shape []int, data []int32) Tensor {
	return encode(Int32, shape, data, 4, func(b []byte, v int32) { binary.LittleEndian.PutUint32(b, uint32(v)) })
}

// I64 makes an int64 tensor.
func I64(shape []int, data []int64) Tensor {
	return encode(Int64, shape, data, 8, func(b []byte, v int64) { binary.LittleEndian.PutUint64(b, uint64(v)) })
}

// BOOL makes a boolean tensor (one byte per element, 0 or 1).
func BOOL(shape []int, data []bool) Tensor {
	return encode(Bool, shape, data, 1, func(b []byte, v bool) {
		if v {
			b[0] = 1
		}
	})
}

// encode lays data out as the elements of a dt tensor, size bytes each,
// put writing one element at the start of its bytes.
func encode[T any](dt DType, shape []int, data []T, size int, put func([]byte, T)) Tensor {
	b := make([]byte, size*len(data))
	for i, v := range data {
		put(b[size*i:], v)
	}
	return Tensor{DType: dt, Shape: slices.Clone(shape), Data: b}
}

// decode reads b as elements of size bytes each, get reading one from the
// start of its bytes. Callers check b first (Tensor.check).
func decode[T any](b []byte, size int, get func([]byte) T) []T {
	out := make([]T, len(b)/size)
	for i := range out {
		out[i] = get(b[size*i:])
	}
	return out
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
	switch t.DType {
	case Float32:
		return decode(t.Data, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }), nil
	case Float16:
		return decode(t.Data, 2, func(b []byte) float32 { return f16ToF32(binary.LittleEndian.Uint16(b)) }), nil
	case BFloat16:
		return decode(t.Data, 2, func(b []byte) float32 { return math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16) }), nil
	default: // Float64
		return decode(t.Data, 8, func(b []byte) float32 { return float32(math.Float64frombits(binary.LittleEndian.Uint64(b))) }), nil
	}
}

// Float64 decodes a F64, F32, F16 or BF16 tensor to float64, exactly.
func (t Tensor) Float64() ([]float64, error) {
	if t.DType == Float64 {
		if err := t.check(Float64); err != nil {
			return nil, err
		}
		return decode(t.Data, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }), nil
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
	return decode(t.Data, 1, func(b []byte) int8 { return int8(b[0]) }), nil
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
	return decode(t.Data, 2, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) }), nil
}

// Int32 decodes an I32 tensor.
func (t Tensor) Int32() ([]int32, error) {
	if err := t.check(Int32); err != nil {
		return nil, err
	}
	return decode(t.Data, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) }), nil
}

// Int64 decodes an I64 tensor.
func (t Tensor) Int64() ([]int64, error) {
	if err := t.check(Int64); err != nil {
		return nil, err
	}
	return decode(t.Data, 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) }), nil
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
