package safetensors

// DType is the element type of a tensor, spelled as in the file header
// ("F32", "BF16", ...).
type DType string

// Element types. The set is the one the reference implementation
// (huggingface/safetensors) writes for PyTorch, NumPy and JAX tensors,
// less the sub-byte float types. Tensors of every type listed here can
// be read and written as raw bytes; typed constructors (F32, BF16, I8,
// ...) and accessors ([Tensor.Float32], [Tensor.Int8], ...) cover the
// common ones.
const (
	Bool       DType = "BOOL"    // 1 byte, 0 or 1
	Uint8      DType = "U8"      // uint8
	Int8       DType = "I8"      // int8
	Float8E5M2 DType = "F8_E5M2" // 8-bit float, 5-bit exponent (raw bytes only)
	Float8E4M3 DType = "F8_E4M3" // 8-bit float, 4-bit exponent (raw bytes only)
	Int16      DType = "I16"     // int16
	Uint16     DType = "U16"     // uint16 (raw bytes only)
	Float16    DType = "F16"     // IEEE 754 half precision
	BFloat16   DType = "BF16"    // bfloat16: the upper half of a float32
	Int32      DType = "I32"     // int32
	Uint32     DType = "U32"     // uint32 (raw bytes only)
	Float32    DType = "F32"     // IEEE 754 single precision
	Float64    DType = "F64"     // IEEE 754 double precision
	Int64      DType = "I64"     // int64
	Uint64     DType = "U64"     // uint64 (raw bytes only)
)

// dtypes lists the known types in the reference implementation's order,
// which is by increasing alignment. Write lays tensors out in the reverse
// of this order so that every tensor starts at a multiple of its element
// size, as the reference writer does.
var dtypes = [...]struct {
	t    DType
	size int
}{
	{Bool, 1}, {Uint8, 1}, {Int8, 1}, {Float8E5M2, 1}, {Float8E4M3, 1},
	{Int16, 2}, {Uint16, 2}, {Float16, 2}, {BFloat16, 2},
	{Int32, 4}, {Uint32, 4}, {Float32, 4},
	{Float64, 8}, {Int64, 8}, {Uint64, 8},
}

// Size is the number of bytes of one element, or 0 for an unknown type.
func (d DType) Size() int {
	if i := d.rank(); i >= 0 {
		return dtypes[i].size
	}
	return 0
}

// Valid reports whether d is a known element type.
func (d DType) Valid() bool { return d.rank() >= 0 }

// rank is d's position in dtypes (-1 if unknown); Write orders tensors by it.
func (d DType) rank() int {
	for i, e := range dtypes {
		if e.t == d {
			return i
		}
	}
	return -1
}

// String returns the header spelling of d.
func (d DType) String() string { return string(d) }
