package gorgonia

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// naiveConv is the grouped convolution straight from its definition,
// bounds checked per tap, in float64.
func naiveConv(c groupConv, x, w []float32, n int) []float64 {
	cpg, opg := c.cin/c.groups, c.cout/c.groups
	y := make([]float64, n*c.cout*c.ho*c.wo)
	for b := 0; b < n; b++ {
		for o := 0; o < c.cout; o++ {
			g := o / opg
			for oh := 0; oh < c.ho; oh++ {
				for ow := 0; ow < c.wo; ow++ {
					var s float64
					for ic := 0; ic < cpg; ic++ {
						for kh := 0; kh < c.k; kh++ {
							for kw := 0; kw < c.k; kw++ {
								ih, iw := oh*c.stride-c.pad+kh, ow*c.stride-c.pad+kw
								if ih < 0 || ih >= c.h || iw < 0 || iw >= c.w {
									continue
								}
								s += float64(w[((o*cpg+ic)*c.k+kh)*c.k+kw]) * float64(x[((b*c.cin+g*cpg+ic)*c.h+ih)*c.w+iw])
							}
						}
					}
					y[((b*c.cout+o)*c.ho+oh)*c.wo+ow] = s
				}
			}
		}
	}
	return y
}

func dot(a []float32, b []float64) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * b[i]
	}
	return s
}

// TestGroupConv checks the forward pass against the definition, and the
// two gradients by the adjoint identities ⟨dy, conv(x, w)⟩ = ⟨dx(dy), x⟩
// = ⟨dw(dy), w⟩ (the convolution is linear in each argument), over
// kernels, strides, paddings and groups whose spans clip differently.
func TestGroupConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randv := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	for _, tc := range []struct{ cin, cout, groups, k, stride, pad, h, w int }{
		{3, 3, 3, 3, 1, 1, 5, 5}, // depthwise
		{4, 4, 4, 3, 2, 1, 7, 6}, // depthwise, stride 2, odd sizes
		{4, 6, 2, 3, 1, 1, 6, 6}, // grouped with a wider output
		{6, 3, 3, 2, 2, 0, 5, 7}, // kernel 2, nothing padded
		{2, 4, 2, 4, 3, 2, 9, 8}, // stride 3, padding 2
		{3, 3, 3, 5, 1, 2, 3, 4}, // kernel larger than the input
		{2, 2, 1, 1, 1, 0, 4, 4}, // one group, 1×1
		{8, 8, 8, 3, 2, 1, 2, 2}, // tiny plane
	} {
		c := newGroupConv([]int{tc.cin, tc.h, tc.w}, tc.cout, tc.groups, tc.k, tc.stride, tc.pad)
		const n = 3
		x := randv(n * tc.cin * tc.h * tc.w)
		w := randv(tc.cout * tc.cin / tc.groups * tc.k * tc.k)
		want := naiveConv(c, x, w, n)
		got := c.forward(x, w, n, nil)
		if len(got) != len(want) {
			t.Fatalf("%+v: %d outputs, want %d", tc, len(got), len(want))
		}
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 1e-4*(1+math.Abs(want[i])) {
				t.Fatalf("%+v: output %d = %v, want %v", tc, i, got[i], want[i])
			}
		}
		dy := randv(len(want))
		ref := dot(dy, want)
		dx, dw := c.dx(w, dy, n, nil), c.dw(x, dy, n, nil)
		x64, w64 := make([]float64, len(x)), make([]float64, len(w))
		for i, v := range x {
			x64[i] = float64(v)
		}
		for i, v := range w {
			w64[i] = float64(v)
		}
		if got := dot(dx, x64); math.Abs(got-ref) > 1e-3*(1+math.Abs(ref)) {
			t.Errorf("%+v: <dx, x> = %v, <dy, y> = %v", tc, got, ref)
		}
		if got := dot(dw, w64); math.Abs(got-ref) > 1e-3*(1+math.Abs(ref)) {
			t.Errorf("%+v: <dw, w> = %v, <dy, y> = %v", tc, got, ref)
		}
	}
}

// TestGemmConv checks the GEMM path of dense convolutions against the
// direct one (checked against the definition above), forward and both
// gradients, over kernels, strides and paddings that clip differently,
// and with the scratch buffers reused between calls (stale contents
// must not leak into results) and batches larger than the workers.
func TestGemmConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	randv := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	near := func(what string, got, want []float32) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
		}
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("%s: value %d = %v, want %v", what, i, got[i], want[i])
			}
		}
	}
	for _, tc := range []struct{ cin, cout, k, stride, pad, h, w, n int }{
		{1, 16, 3, 1, 1, 28, 28, 3},  // a stem
		{16, 32, 3, 2, 1, 28, 28, 2}, // stride 2
		{16, 32, 1, 2, 0, 28, 28, 2}, // a projection shortcut
		{3, 5, 3, 1, 0, 7, 6, 4},     // nothing padded
		{2, 3, 4, 3, 2, 9, 8, 3},     // stride 3, padding 2
		{3, 2, 5, 1, 2, 3, 4, 2},     // kernel larger than the input
		{4, 4, 3, 2, 1, 2, 2, 5},     // tiny plane
		{6, 7, 2, 2, 1, 5, 7, 1},     // even kernel, one example
		{5, 4, 3, 1, 1, 5, 7, 3},     // rows line up, odd sizes
		{2, 3, 5, 1, 2, 1, 9, 2},     // rows line up, one row
		{3, 3, 3, 1, 1, 1, 1, 2},     // rows line up, 1×1 plane
		{2, 2, 5, 1, 2, 9, 1, 2},     // rows line up, one column
		{16, 16, 3, 1, 1, 28, 28, 3}, // a basic block's convolution
		{3, 4, 1, 1, 0, 5, 6, 2},     // 1×1, stride 1
		{3, 4, 1, 1, 1, 5, 6, 2},     // padding ≥ kernel: dx not as a transposed convolution
	} {
		c := newGroupConv([]int{tc.cin, tc.h, tc.w}, tc.cout, 1, tc.k, tc.stride, tc.pad)
		// Output storage kept between the repetitions, as a training
		// graph keeps it between steps: stale values must not leak.
		var outs [6]outBuf
		for rep := 0; rep < 2; rep++ {
			x := randv(tc.n * tc.cin * tc.h * tc.w)
			w := randv(tc.cout * tc.cin * tc.k * tc.k)
			dy := randv(tc.n * tc.cout * c.ho * c.wo)
			near("forward", c.gemmForward(x, w, tc.n, &outs[0]), c.forward(x, w, tc.n, &outs[3]))
			near("dx", c.gemmDx(w, dy, tc.n, &outs[1]), c.dx(w, dy, tc.n, &outs[4]))
			near("dw", c.gemmDw(x, dy, tc.n, &outs[2]), c.dw(x, dy, tc.n, &outs[5]))
			if _, ok := c.transposeConv(); ok {
				// The folding path, which stride-1 convolutions no longer take.
				near("dx folded", c.gemmDxFold(w, dy, tc.n, nil), c.dx(w, dy, tc.n, nil))
			}
		}
	}
}

// TestGemmDwDeterministic: the weight gradient of a batch is the same
// bits every time and at every thread count, although the examples'
// products run on whichever core is free: training must not depend on
// the machine's load.
func TestGemmDwDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	c := newGroupConv([]int{8, 14, 14}, 16, 1, 3, 1, 1)
	const n = 37 // not a whole number of chunks
	x := make([]float32, n*8*14*14)
	dy := make([]float32, n*16*c.ho*c.wo)
	for _, v := range [][]float32{x, dy} {
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
	}
	want := c.gemmDw(x, dy, n, nil)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3, 8} {
		runtime.GOMAXPROCS(procs)
		for rep := 0; rep < 5; rep++ {
			got := c.gemmDw(x, dy, n, nil)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("GOMAXPROCS %d, run %d: dw[%d] = %v, first run %v", procs, rep, i, got[i], want[i])
				}
			}
		}
	}
}
