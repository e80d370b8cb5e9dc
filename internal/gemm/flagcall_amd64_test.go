//go:build amd64 && !purego

package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

// entryFlags are the two states the kernels are entered with: every
// arithmetic flag clear (ZF=0) and every one set (ZF=1).
var entryFlags = []struct {
	name   string
	status uintptr
}{{"flags clear (ZF=0)", 0}, {"flags set (ZF=1)", statusFlags}}

// flagKs are the trip counts of the flag test: zero, below, at and above
// every unroll factor (1, 2, 4).
var flagKs = []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 17}

func TestFlagTrampolineDeliversFlags(t *testing.T) {
	for _, e := range entryFlags {
		var got [1]int32
		callI8WithFlags(flagsProbePC(), e.status, 0, nil, 0, nil, &got[0], 0)
		if s := uintptr(uint32(got[0])) & statusFlags; s != e.status {
			t.Errorf("%s: kernel entered with arithmetic flags %#x, want %#x", e.name, s, e.status)
		}
	}
}

// TestKernelsIgnoreEntryFlags calls every kernel this CPU can run at its
// address, with the flags forced both ways, and compares each tile with
// the Go reference: a kernel that branches on flags it did not set
// (issue 15) fails one of the two.
func TestKernelsIgnoreEntryFlags(t *testing.T) {
	var pcs [len(asmKernels)]uintptr
	asmKernelPCs(&pcs)
	var ran, skipped []string
	for i, kern := range asmKernels {
		if !kern.ok {
			skipped = append(skipped, kern.name)
		} else {
			ran = append(ran, kern.name)
		}
		t.Run(kern.name, func(t *testing.T) {
			if !kern.ok {
				t.Skipf("this CPU lacks %s", kern.feature)
			}
			rng := rand.New(rand.NewPCG(uint64(i), 15))
			for _, e := range entryFlags {
				for _, k := range flagKs {
					var err error
					switch kern.scheme {
					case "f32":
						err = checkF32Kernel(rng, pcs[i], e.status, kern, k)
					case "i16", "u8":
						err = checkI8Kernel(rng, pcs[i], e.status, kern, k)
					default:
						t.Fatalf("unknown scheme %q", kern.scheme)
					}
					if err != nil {
						t.Errorf("%s, k %d: %v", e.name, k, err)
					}
				}
			}
		})
	}
	t.Logf("ran %d kernels: %s", len(ran), strings.Join(ran, " "))
	if len(skipped) > 0 {
		t.Logf("skipped %d kernels the CPU cannot run: %s", len(skipped), strings.Join(skipped, " "))
	}
}

// checkF32Kernel runs an FP32 kernel over k steps with each epilogue
// (accumulate, bias, ReLU) and compares the tile with float64 sums. The
// tile's row stride leaves gaps holding a sentinel, which must survive.
func checkF32Kernel(rng *rand.Rand, pc, status uintptr, kern asmKernel, k int) error {
	r, nr := kern.rows, kern.nr
	lda, ldc := k+3, nr+5
	a := randF32(rng, (r-1)*lda+k+1) // +1: &a[0] exists when k is 0
	b := randF32(rng, k*nr+1)
	bias := randF32(rng, nr)
	const sentinel = -777
	for _, flags := range []int{0, flagAcc, flagBias, flagReLU, flagAcc | flagBias | flagReLU} {
		old := randF32(rng, r*ldc)
		c := make([]float32, r*ldc)
		for i := range c {
			if i%ldc >= nr {
				old[i] = sentinel
			}
			c[i] = old[i]
		}
		callF32WithFlags(pc, status, k, &a[0], lda, &b[0], &c[0], ldc, &bias[0], flags)
		for i := 0; i < r; i++ {
			for j := 0; j < ldc; j++ {
				got := c[i*ldc+j]
				if j >= nr {
					if got != sentinel {
						return fmt.Errorf("flags %d: wrote %v outside the tile at (%d,%d)", flags, got, i, j)
					}
					continue
				}
				var s float64
				for kk := 0; kk < k; kk++ {
					s += float64(a[i*lda+kk]) * float64(b[kk*nr+j])
				}
				if flags&flagAcc != 0 {
					s += float64(old[i*ldc+j])
				}
				if flags&flagBias != 0 {
					s += float64(bias[j])
				}
				if flags&flagReLU != 0 && s < 0 {
					s = 0
				}
				if math.Abs(float64(got)-s) > 1e-5*(1+math.Sqrt(float64(k)))*(1+math.Abs(s)) {
					return fmt.Errorf("flags %d: C[%d,%d] = %v, want %v", flags, i, j, got, s)
				}
			}
		}
	}
	return nil
}

// checkI8Kernel runs an INT8 kernel over kg groups (int16 pairs or byte
// quads) and compares the tile with exact int32 sums.
func checkI8Kernel(rng *rand.Rand, pc, status uintptr, kern asmKernel, kg int) error {
	r, nr := kern.rows, kern.nr
	g := 4
	if kern.scheme == "i16" {
		g = 2
	}
	lda, ldc := kg*g+g, nr+3 // lda: a gap of one group between rows
	// A's values are u8 in both schemes (widened to int16 for "i16"), B's
	// s8, stored as the packing code does: panel[group][column][element].
	av := randU8(rng, (r-1)*lda+kg*g+1)
	bv := randI8(rng, kg*nr*g+1)
	var ap, bp unsafe.Pointer
	if kern.scheme == "i16" {
		a16, b16 := make([]int16, len(av)), make([]int16, len(bv))
		for i, v := range av {
			a16[i] = int16(v)
		}
		for i, v := range bv {
			b16[i] = int16(v)
		}
		ap, bp = unsafe.Pointer(&a16[0]), unsafe.Pointer(&b16[0])
	} else {
		ap, bp = unsafe.Pointer(&av[0]), unsafe.Pointer(&bv[0])
	}
	const sentinel = -777
	c := make([]int32, r*ldc)
	for i := range c {
		c[i] = sentinel
	}
	callI8WithFlags(pc, status, kg, ap, lda, bp, &c[0], ldc)
	for i := 0; i < r; i++ {
		for j := 0; j < ldc; j++ {
			got := c[i*ldc+j]
			if j >= nr {
				if got != sentinel {
					return fmt.Errorf("wrote %d outside the tile at (%d,%d)", got, i, j)
				}
				continue
			}
			var s int32
			for q := 0; q < kg; q++ {
				for e := 0; e < g; e++ {
					s += int32(av[i*lda+q*g+e]) * int32(bv[(q*nr+j)*g+e])
				}
			}
			if got != s {
				return fmt.Errorf("C[%d,%d] = %d, want %d", i, j, got, s)
			}
		}
	}
	return nil
}
