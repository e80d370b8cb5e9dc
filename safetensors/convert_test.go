package safetensors

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestF16Known(t *testing.T) {
	for _, tc := range []struct {
		f float32
		h uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                         // largest half
		{65519.996, 0x7bff},                     // just below the rounding point
		{65520, 0x7c00},                         // tie between 65504 and 65536: to even, Inf
		{1e9, 0x7c00},                           // overflow
		{float32(math.Inf(-1)), 0xfc00},         // -Inf
		{6.103515625e-05, 0x0400},               // smallest normal, 2⁻¹⁴
		{5.9604645e-08, 0x0001},                 // smallest subnormal, 2⁻²⁴
		{2.9802322e-08, 0x0000},                 // 2⁻²⁵: tie to even, zero
		{4.4703484e-08, 0x0001},                 // 1.5·2⁻²⁵ rounds up
		{8.940697e-08, 0x0002},                  // 1.5·2⁻²⁴: tie to even, 2
		{1e-10, 0x0000},                         // underflow
		{1 + 1.0/2048, 0x3c00},                  // tie to even (down)
		{1 + 3.0/2048, 0x3c02},                  // tie to even (up)
		{6.1035156e-05 - 5.9604645e-08, 0x03ff}, // largest subnormal
	} {
		if got := f32ToF16(tc.f); got != tc.h {
			t.Errorf("f32ToF16(%g) = %#04x, want %#04x", tc.f, got, tc.h)
		}
	}
	if h := f32ToF16(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("f32ToF16(NaN) = %#04x, not a NaN", h)
	}
}

// TestF16Exhaustive checks that every half survives a round trip through
// float32, and that f32ToF16 picks the nearest half for random floats.
func TestF16Exhaustive(t *testing.T) {
	for h := range 1 << 16 {
		f := f16ToF32(uint16(h))
		if f != f { // NaN
			if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
				t.Fatalf("half %#04x decodes to NaN", h)
			}
			if back := f32ToF16(f); back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x re-encodes as %#04x", h, back)
			}
			continue
		}
		if back := f32ToF16(f); back != uint16(h) {
			t.Fatalf("half %#04x -> %g -> %#04x", h, f, back)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		f := math.Float32frombits(rng.Uint32())
		if f != f || math.Abs(float64(f)) >= 65520 {
			continue
		}
		h := f32ToF16(f)
		got := float64(f16ToF32(h))
		// The neighbours of h are no closer to f.
		for _, n := range []uint16{h + 1, h - 1} {
			if n&0x7fff > 0x7bff {
				continue
			}
			other := float64(f16ToF32(n))
			if math.Abs(other-float64(f)) < math.Abs(got-float64(f)) {
				t.Fatalf("f32ToF16(%g) = %g, but %g is closer", f, got, other)
			}
		}
	}
}

func TestBF16(t *testing.T) {
	for _, tc := range []struct {
		bits uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even: down
		{0x3f818000, 0x3f82}, // tie, odd: up
		{0x3f808001, 0x3f81}, // above the tie
		{0x7f7fffff, 0x7f80}, // max float32 rounds to Inf
		{0xff800000, 0xff80}, // -Inf
		{0x80000000, 0x8000}, // -0
	} {
		if got := f32ToBF16(math.Float32frombits(tc.bits)); got != tc.want {
			t.Errorf("f32ToBF16(%#08x) = %#04x, want %#04x", tc.bits, got, tc.want)
		}
	}
	if h := f32ToBF16(math.Float32frombits(0x7f800001)); h&0x7f80 != 0x7f80 || h&0x7f == 0 {
		t.Errorf("signalling NaN became %#04x, not a NaN", h)
	}
}

func TestTypedRoundTrips(t *testing.T) {
	fs := []float32{0, 1, -2.5, 0.1, 1e-3, 3.14159, -65504}
	for _, tc := range []struct {
		name string
		t    Tensor
		tol  float64 // relative
	}{
		{"F32", F32([]int{7}, fs), 0},
		{"F16", F16([]int{7}, fs), 1.0 / 2048},
		{"BF16", BF16([]int{7}, fs), 1.0 / 256},
	} {
		got, err := tc.t.Float32()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, v := range got {
			if d := math.Abs(float64(v - fs[i])); d > tc.tol*math.Abs(float64(fs[i])) {
				t.Errorf("%s[%d] = %g, want %g", tc.name, i, v, fs[i])
			}
		}
		f64, err := tc.t.Float64()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i := range got {
			if f64[i] != float64(got[i]) {
				t.Errorf("%s: Float64()[%d] = %g, Float32 %g", tc.name, i, f64[i], got[i])
			}
		}
	}

	ds := []float64{1.5, -1e300, 1e-300, math.Pi}
	d := F64([]int{2, 2}, ds)
	if got, err := d.Float64(); err != nil || !reflect.DeepEqual(got, ds) {
		t.Errorf("F64 Float64() = %v, %v", got, err)
	}
	if got, err := d.Float32(); err != nil || got[0] != 1.5 || !math.IsInf(float64(got[1]), -1) || got[2] != 0 || got[3] != float32(math.Pi) {
		t.Errorf("F64 Float32() = %v, %v", got, err)
	}

	i8 := []int8{-128, -1, 0, 127}
	if got, err := I8([]int{4}, i8).Int8(); err != nil || !reflect.DeepEqual(got, i8) {
		t.Errorf("Int8() = %v, %v", got, err)
	}
	u8 := []uint8{0, 1, 255}
	if got, err := U8([]int{3}, u8).Uint8(); err != nil || !reflect.DeepEqual(got, u8) {
		t.Errorf("Uint8() = %v, %v", got, err)
	}
	i16 := []int16{math.MinInt16, -1, 0, math.MaxInt16}
	if got, err := I16([]int{4}, i16).Int16(); err != nil || !reflect.DeepEqual(got, i16) {
		t.Errorf("Int16() = %v, %v", got, err)
	}
	i32 := []int32{math.MinInt32, -1, 0, math.MaxInt32}
	if got, err := I32([]int{2, 2}, i32).Int32(); err != nil || !reflect.DeepEqual(got, i32) {
		t.Errorf("Int32() = %v, %v", got, err)
	}
	i64 := []int64{math.MinInt64, -1, 0, math.MaxInt64}
	if got, err := I64([]int{4}, i64).Int64(); err != nil || !reflect.DeepEqual(got, i64) {
		t.Errorf("Int64() = %v, %v", got, err)
	}
	bs := []bool{true, false, true}
	if got, err := BOOL([]int{3}, bs).Bools(); err != nil || !reflect.DeepEqual(got, bs) {
		t.Errorf("Bools() = %v, %v", got, err)
	}
}

func TestConstructorsCopy(t *testing.T) {
	shape := []int{2}
	data := []uint8{1, 2}
	tt := U8(shape, data)
	shape[0], data[0] = 9, 9
	if tt.Shape[0] != 2 || tt.Data[0] != 1 {
		t.Errorf("U8 aliases its arguments: %v %v", tt.Shape, tt.Data)
	}
	out, _ := tt.Uint8()
	out[1] = 9
	if tt.Data[1] != 2 {
		t.Error("Uint8() aliases the tensor's data")
	}
}

func TestAccessorErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		get  func() error
	}{
		{"Float32 of I8", func() error { _, err := I8([]int{1}, []int8{1}).Float32(); return err }},
		{"Float64 of I32", func() error { _, err := I32([]int{1}, []int32{1}).Float64(); return err }},
		{"Int8 of U8", func() error { _, err := U8([]int{1}, []uint8{1}).Int8(); return err }},
		{"Uint8 of BOOL", func() error { _, err := BOOL([]int{1}, []bool{true}).Uint8(); return err }},
		{"Int16 of F16", func() error { _, err := F16([]int{1}, []float32{1}).Int16(); return err }},
		{"Int32 of F32", func() error { _, err := F32([]int{1}, []float32{1}).Int32(); return err }},
		{"Int64 of F64", func() error { _, err := F64([]int{1}, []float64{1}).Int64(); return err }},
		{"Bools of U8", func() error { _, err := U8([]int{1}, []uint8{1}).Bools(); return err }},
		{"Bools of 2", func() error { _, err := Tensor{DType: Bool, Shape: []int{1}, Data: []byte{2}}.Bools(); return err }},
		{"short F32", func() error { _, err := F32([]int{3}, []float32{1, 2}).Float32(); return err }},
		{"short F64", func() error {
			_, err := Tensor{DType: Float64, Shape: []int{1}, Data: make([]byte, 7)}.Float64()
			return err
		}},
		{"odd BF16", func() error {
			_, err := Tensor{DType: BFloat16, Shape: []int{1}, Data: make([]byte, 3)}.Float32()
			return err
		}},
		{"unknown dtype", func() error { _, err := Tensor{DType: "X", Data: []byte{1}}.Uint8(); return err }},
	} {
		if err := tc.get(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", tc.name, err)
		}
	}
}

func TestNumel(t *testing.T) {
	for _, tc := range []struct {
		shape []int
		want  int
		ok    bool
	}{
		{nil, 1, true},
		{[]int{2, 3}, 6, true},
		{[]int{0, 5}, 0, true},
		{[]int{1 << 40, 1 << 40, 0}, 0, true},
		{[]int{1 << 40, 1 << 40}, 0, false},
		{[]int{-1}, 0, false},
	} {
		got, err := Tensor{Shape: tc.shape}.Numel()
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Numel(%v) = %d, %v", tc.shape, got, err)
		}
	}
}

func TestDType(t *testing.T) {
	for _, tc := range []struct {
		d    DType
		size int
	}{{Bool, 1}, {Int8, 1}, {Float16, 2}, {BFloat16, 2}, {Float32, 4}, {Float64, 8}, {Int64, 8}, {"F128", 0}, {"f32", 0}} {
		if got := tc.d.Size(); got != tc.size {
			t.Errorf("%s.Size() = %d, want %d", tc.d, got, tc.size)
		}
		if tc.d.Valid() != (tc.size > 0) {
			t.Errorf("%s.Valid() = %v", tc.d, tc.d.Valid())
		}
	}
}
