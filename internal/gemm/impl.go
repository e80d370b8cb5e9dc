package gemm

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
)

// Impl names one implementation of the kernels.
type Impl uint8

// Implementations, from the most portable to the fastest.
const (
	// Portable is plain Go; it runs everywhere and is the reference the
	// others are tested against.
	Portable Impl = iota
	// AVX2 uses AVX2 and FMA: a 6×16 FP32 kernel, and an INT8 kernel
	// that multiplies u8·s8 pairs widened to int16 with VPMADDWD, which
	// is exact for every input (VPMADDUBSW is not: it saturates).
	AVX2
	// AVXVNNI is INT8 only: VEX-encoded VPDPBUSD on ymm registers, 6×16.
	AVXVNNI
	// AVX512 uses AVX-512F for FP32 (12×32 kernel) and AVX-512 VNNI
	// (VPDPBUSD on zmm registers, 12×32) for INT8.
	AVX512
)

func (i Impl) String() string {
	switch i {
	case Portable:
		return "portable"
	case AVX2:
		return "avx2"
	case AVXVNNI:
		return "avxvnni"
	case AVX512:
		return "avx512"
	}
	return fmt.Sprintf("Impl(%d)", uint8(i))
}

// ParseImpl is the inverse of Impl.String.
func ParseImpl(s string) (Impl, error) {
	for i := Portable; i <= AVX512; i++ {
		if strings.EqualFold(s, i.String()) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("gemm: unknown implementation %q (want portable, avx2, avxvnni or avx512)", s)
}

// EnvVar names the environment variable that, read once at start-up,
// caps the implementation: DISTILL_GEMM=portable forces plain Go;
// avx2, avxvnni or avx512 allow at most that instruction set. Unset or
// "auto" picks the best the CPU supports.
const EnvVar = "DISTILL_GEMM"

// limit is the most capable Impl that New* may choose (see SetLimit).
var limit atomic.Uint32

func init() {
	limit.Store(uint32(AVX512))
	if v := os.Getenv(EnvVar); v != "" && !strings.EqualFold(v, "auto") {
		if i, err := ParseImpl(v); err == nil {
			limit.Store(uint32(i))
		} else {
			fmt.Fprintf(os.Stderr, "%s: %v; using auto\n", EnvVar, err)
		}
	}
}

// SetLimit caps the implementation that later calls to PackF32 and PackI8
// choose, and returns the previous cap. SetLimit(Portable) forces the
// plain-Go path (for tests); SetLimit(AVX512) restores automatic choice.
// Already packed weights keep the implementation they were packed for.
func SetLimit(i Impl) Impl { return Impl(limit.Swap(uint32(i))) }

// ForcePortable is SetLimit(Portable) when on, SetLimit(AVX512) when off.
func ForcePortable(on bool) {
	if on {
		SetLimit(Portable)
	} else {
		SetLimit(AVX512)
	}
}

// The accelerated implementations of each kind, in order of preference
// from the least.
var (
	f32Candidates = []Impl{AVX2, AVX512}
	i8Candidates  = []Impl{AVX2, AVXVNNI, AVX512}
)

// F32Impls lists the FP32 implementations this CPU can run, Portable
// first, regardless of the limit.
func F32Impls() []Impl { return supported(f32Candidates, f32Supported) }

// I8Impls lists the INT8 implementations this CPU can run, Portable
// first, regardless of the limit.
func I8Impls() []Impl { return supported(i8Candidates, i8Supported) }

func supported(candidates []Impl, ok func(Impl) bool) []Impl {
	out := []Impl{Portable}
	for _, i := range candidates {
		if ok(i) {
			out = append(out, i)
		}
	}
	return out
}

// BestF32 is the FP32 implementation PackF32 uses: the last of F32Impls
// within the limit.
func BestF32() Impl { return best(f32Candidates, f32Supported) }

// BestI8 is the INT8 implementation PackI8 uses.
func BestI8() Impl { return best(i8Candidates, i8Supported) }

// best does not build the list: it runs on every INT8 forward pass
// (QuantizeU8), which must not allocate.
func best(candidates []Impl, ok func(Impl) bool) Impl {
	l := Impl(limit.Load())
	b := Portable
	for _, i := range candidates {
		if i <= l && ok(i) {
			b = i
		}
	}
	return b
}

// threads caps the goroutines one GEMM call uses; 0 means GOMAXPROCS.
var threads atomic.Int32

// SetThreads caps the goroutines one GEMM call may use (n ≤ 0 restores
// the default, GOMAXPROCS) and returns the previous setting.
func SetThreads(n int) int {
	if n < 0 {
		n = 0
	}
	return int(threads.Swap(int32(n)))
}

func maxThreads() int {
	if t := int(threads.Load()); t > 0 {
		return t
	}
	return runtime.GOMAXPROCS(0)
}
