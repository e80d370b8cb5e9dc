package infer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/model"
)

// convShapeSpecs are small networks whose convolutions cover the
// geometries the NHWC path special-cases: 1×1 at stride 1 (no patches)
// and 2, 3×3 and 5×5 with and without padding, strides 1–3, one input
// channel (a grey stem), odd widths, non-square inputs, windows that
// overhang the input on both sides. The first conv's output is uint8
// (read by the second), the second's float32 (read by the pooling).
func convShapeSpecs(t testing.TB) []model.Spec {
	type conv struct{ out, k, stride, pad int }
	cases := []struct {
		in     []int
		c1, c2 conv
	}{
		{[]int{1, 28, 28}, conv{8, 3, 1, 1}, conv{16, 3, 2, 1}},
		{[]int{8, 14, 14}, conv{16, 1, 1, 0}, conv{32, 1, 2, 0}},
		{[]int{3, 9, 13}, conv{5, 5, 1, 2}, conv{7, 3, 3, 0}},
		{[]int{4, 7, 5}, conv{12, 3, 2, 2}, conv{3, 1, 1, 0}},
		{[]int{16, 6, 6}, conv{33, 3, 1, 0}, conv{20, 2, 1, 1}},
		{[]int{2, 30, 3}, conv{9, 3, 1, 1}, conv{4, 5, 2, 2}},
	}
	var specs []model.Spec
	for i, c := range cases {
		s := model.Spec{Name: fmt.Sprintf("convs%d", i), Input: c.in, Classes: 5, Layers: []model.Layer{
			{Name: "c1", Kind: model.KindConv2D, Out: c.c1.out, Kernel: c.c1.k, Stride: c.c1.stride, Padding: c.c1.pad},
			{Name: "r1", Kind: model.KindReLU},
			{Name: "c2", Kind: model.KindConv2D, Out: c.c2.out, Kernel: c.c2.k, Stride: c.c2.stride, Padding: c.c2.pad},
			{Name: "gap", Kind: model.KindGlobalAvgPool},
			{Name: "fc", Kind: model.KindLinear, Out: 5},
		}}
		if err := s.Validate(); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		specs = append(specs, s)
	}
	return specs
}

// TestConvNHWCMatchesNCHW checks that INT8 convolutions run on an NHWC
// copy of their input (weights reordered, patches per band of output
// rows, parts on several threads) give the same bits as the NCHW im2col
// with one GEMM, over many geometries, batch sizes and thread counts,
// with the parallel threshold lowered so that even small layers split.
func TestConvNHWCMatchesNCHW(t *testing.T) {
	defer gemm.SetThreads(gemm.SetThreads(0))
	f32, i8 := gemm.SetParallelMin(1, 1)
	defer gemm.SetParallelMin(f32, i8)
	rng := rand.New(rand.NewPCG(7, 3))
	for _, spec := range append(convShapeSpecs(t), allGraphSpecs(t)...) {
		w := graphNet(t, spec, 5)
		in := model.Numel(spec.Input)
		calib := randInput(rng, 8*in)
		qm := calibrateMinMax(t, spec, w, calib, 8)
		compile := func(nhwc bool) *Program {
			defer func() { nhwcConv = true }()
			nhwcConv = nhwc
			p, err := CompileInt8(qm)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		nchw, nhwc := compile(false), compile(true)
		if !strings.Contains(nhwc.String(), "int8") {
			t.Fatalf("%s: nothing runs in INT8: %s", spec.Name, nhwc)
		}
		for _, n := range []int{1, 2, 5, 17} {
			x := randInput(rng, n*in)
			want := make([]float32, n*nchw.Classes())
			gemm.SetThreads(1)
			if err := nchw.Forward(x, n, want); err != nil {
				t.Fatal(err)
			}
			for _, threads := range []int{1, 2, 3} {
				gemm.SetThreads(threads)
				got := make([]float32, len(want))
				if err := nhwc.Forward(x, n, got); err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s n=%d threads=%d: logit %d is %v through NHWC, %v through NCHW\n%s", spec.Name, n, threads, i, got[i], want[i], nhwc)
					}
				}
			}
			// Observe reports every layer's output in NCHW order.
			seen := map[string][]float32{}
			if err := nchw.Observe(x, n, want, func(layer string, data []float32) { seen[layer] = slices.Clone(data) }); err != nil {
				t.Fatal(err)
			}
			steps := 0
			if err := nhwc.Observe(x, n, want, func(layer string, data []float32) {
				steps++
				if !slices.Equal(data, seen[layer]) {
					t.Fatalf("%s n=%d: Observe of %q differs between NHWC and NCHW", spec.Name, n, layer)
				}
			}); err != nil {
				t.Fatal(err)
			}
			if steps != len(seen) {
				t.Fatalf("%s: Observe reported %d steps through NHWC, %d through NCHW", spec.Name, steps, len(seen))
			}
		}
	}
}

// TestConvNHWCMatchesNCHWF32 checks that FP32 convolutions run on an
// NHWC copy of their input (weights reordered to (ky, kx, c), patches per
// band of output rows, parts on several threads, outputs kept NHWC
// through adds and activations) agree with the NCHW im2col within
// float32 rounding (the patch columns come in another order, so each sum
// adds the same products in another order), over many geometries, batch
// sizes and thread counts, every layer's output (Observe, NCHW) as well
// as the logits.
func TestConvNHWCMatchesNCHWF32(t *testing.T) {
	defer gemm.SetThreads(gemm.SetThreads(0))
	f32, i8 := gemm.SetParallelMin(1, 1)
	defer gemm.SetParallelMin(f32, i8)
	rng := rand.New(rand.NewPCG(7, 4))
	for _, spec := range append(convShapeSpecs(t), allGraphSpecs(t)...) {
		w := graphNet(t, spec, 5)
		in := model.Numel(spec.Input)
		compile := func(nhwc bool) *Program {
			defer func() { nhwcConv = true }()
			nhwcConv = nhwc
			p, err := Compile(spec, w)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		nchw, nhwc := compile(false), compile(true)
		for _, n := range []int{1, 2, 5, 17} {
			x := randInput(rng, n*in)
			gemm.SetThreads(1)
			want := map[string][]float32{}
			logits := make([]float32, n*nchw.Classes())
			if err := nchw.Observe(x, n, logits, func(layer string, data []float32) { want[layer] = slices.Clone(data) }); err != nil {
				t.Fatal(err)
			}
			want["logits"] = logits
			for _, threads := range []int{1, 2, 3} {
				gemm.SetThreads(threads)
				got := map[string][]float32{}
				out := make([]float32, len(logits))
				if err := nhwc.Observe(x, n, out, func(layer string, data []float32) { got[layer] = slices.Clone(data) }); err != nil {
					t.Fatal(err)
				}
				got["logits"] = out
				if len(got) != len(want) {
					t.Fatalf("%s: Observe reported %d steps through NHWC, %d through NCHW", spec.Name, len(got)-1, len(want)-1)
				}
				for layer, wv := range want {
					// Rounding differences of a few units in the last
					// place of the layer's largest values.
					scale := float32(1)
					for _, v := range wv {
						scale = max(scale, abs32(v))
					}
					for i, v := range got[layer] {
						if d := abs32(v - wv[i]); !(d <= 1e-5*scale) {
							t.Fatalf("%s n=%d threads=%d: %s[%d] is %v through NHWC, %v through NCHW (scale %v)\n%s", spec.Name, n, threads, layer, i, v, wv[i], scale, nhwc)
						}
					}
				}
			}
		}
	}
}

func abs32(v float32) float32 { return float32(math.Abs(float64(v))) }

// TestCopyRunsAndFill checks copyRuns against a copy run by run, one
// row of runs and three, and filler against a loop, for every size up to
// 300 values, uint8 and float32, at unaligned offsets, with the values
// around each run left alone.
func TestCopyRunsAndFill(t *testing.T) {
	testCopyRunsAndFill(t, func(i int) uint8 { return uint8(i*7 + 1) })
	testCopyRunsAndFill(t, func(i int) float32 { return float32(i) + 0.5 })
}

func testCopyRunsAndFill[T float32 | uint8](t *testing.T, val func(int) T) {
	const count = 5
	for size := 1; size <= 300; size++ {
		for _, off := range []int{0, 1, 3} {
			for _, rows := range []int{1, 3} {
				ds, ss := size+off+2, size+2*off+1
				srow := count*ss + off + 5
				src := make([]T, off+(rows-1)*srow+(count-1)*ss+size)
				for i := range src {
					src[i] = val(i)
				}
				n := off + (rows*count-1)*ds + size + 3
				got, want := make([]T, n), make([]T, n)
				copyRuns(got[off:], ds, src[off:], ss, size, count, rows, srow)
				for r := range rows {
					for i := range count {
						d := off + (r*count+i)*ds
						copy(want[d:d+size], src[off+r*srow+i*ss:])
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("copyRuns size %d offset %d rows %d: got %v, want %v", size, off, rows, got, want)
				}
			}
			got, want := make([]T, off+size+3), make([]T, off+size+3)
			v := val(size)
			newFiller(v).fill(got[off : off+size])
			for i := range size {
				want[off+i] = v
			}
			if !slices.Equal(got, want) {
				t.Fatalf("fill size %d offset %d: got %v, want %v", size, off, got, want)
			}
		}
	}
}
