//go:build amd64 && !purego

package gemm

import (
	"testing"
	"unsafe"
)

func BenchmarkKernelF32AVX2x6(b *testing.B) {
	k := 256
	a := make([]float32, 6*k)
	bb := make([]float32, k*16)
	c := make([]float32, 6*16)
	for b.Loop() {
		f32AVX2x6(k, &a[0], k, &bb[0], &c[0], 16, &c[0], 0)
	}
	b.ReportMetric(2*6*16*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
func BenchmarkKernelI8AVX2x6(b *testing.B) {
	k := 256
	a := make([]int16, 6*k)
	bb := make([]int16, k*16)
	c := make([]int32, 6*16)
	for b.Loop() {
		i8AVX2x6(k/2, unsafePtr(&a[0]), k, unsafePtr(&bb[0]), &c[0], 16)
	}
	b.ReportMetric(2*6*16*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
}

func unsafePtr[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
