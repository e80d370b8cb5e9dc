//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

//go:generate go run gen_kernels.go

// haveAVX2Epi reports whether the AVX2 helpers (requantization,
// quantization, widening) may run.
var haveAVX2Epi = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func init() {
	x := cpu.X86
	if !(x.HasAVX2 && x.HasFMA) {
		return
	}
	f32ImplTable[AVX2] = &f32Impl{impl: AVX2, mr: 6, nr: 16, kc: 256, mc: 96, kern: f32AVX2xKernels[:]}
	i8ImplTable[AVX2] = &i8Impl{impl: AVX2, mr: 6, nr: 16, group: 2, widen: true, mc: 48, kern: i8AVX2xKernels[:], asmEpi: true}
	if x.HasAVXVNNI {
		i8ImplTable[AVXVNNI] = &i8Impl{impl: AVXVNNI, mr: 6, nr: 16, group: 4, mc: 48, kern: i8AVXVNNIxKernels[:], asmEpi: true}
	}
	if x.HasAVX512F {
		f32ImplTable[AVX512] = &f32Impl{impl: AVX512, mr: 12, nr: 32, kc: 256, mc: 192, kern: f32AVX512xKernels[:],
			narrow: &f32Impl{impl: AVX512, mr: 12, nr: 16, kc: 256, mc: 192, kern: f32AVX512NxKernels[:]}}
		if x.HasAVX512VNNI {
			i8ImplTable[AVX512] = &i8Impl{impl: AVX512, mr: 12, nr: 32, group: 4, mc: 96, kern: i8VNNI512xKernels[:], asmEpi: true,
				narrow: &i8Impl{impl: AVX512, mr: 12, nr: 16, group: 4, mc: 96, kern: i8VNNI512NxKernels[:], asmEpi: true}}
		}
	}
}

func requantU8AsmImpl(n int, acc, off *int32, scale *float32, out *uint8, zp, lo int) {
	requantU8AVX2(n, acc, off, scale, out, zp, lo)
}

func requantU8RowsAsmImpl(rows, n int, acc *int32, accStride int, off *int32, scale *float32, out *uint8, outStride, zp, lo int) {
	requantU8RowsAVX2(rows, n, acc, accStride, off, scale, out, outStride, zp, lo)
}

func dequantF32AsmImpl(n int, acc, off *int32, scale *float32, out *float32, relu int) {
	dequantF32AVX2(n, acc, off, scale, out, relu)
}

func quantU8AsmImpl(n int, x *float32, inv float32, zp int, out *uint8) {
	quantU8AVX2(n, x, inv, zp, out)
}

func widenAsmImpl(n int, src *uint8, dst *int16) { widenU8AVX2(n, src, dst) }
