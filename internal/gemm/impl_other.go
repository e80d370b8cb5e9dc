//go:build !amd64 || purego

package gemm

// Only the portable implementation exists on this platform.
const haveAVX2Epi = false

func requantU8AsmImpl(n int, acc, off *int32, scale *float32, out *uint8, zp, lo int) {
	panic("gemm: no vector epilogue")
}

func requantU8RowsAsmImpl(rows, n int, acc *int32, accStride int, off *int32, scale *float32, out *uint8, outStride, zp, lo int) {
	panic("gemm: no vector epilogue")
}

func dequantF32AsmImpl(n int, acc, off *int32, scale *float32, out *float32, relu int) {
	panic("gemm: no vector epilogue")
}

func quantU8AsmImpl(n int, x *float32, inv float32, zp int, out *uint8) {
	panic("gemm: no vector quantization")
}

func widenAsmImpl(n int, src *uint8, dst *int16) { panic("gemm: no vector widening") }
