package vec

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/distill-dev/distill/internal/gemm"
)

// levels returns the gemm caps that select each update this CPU can run,
// with their names.
func levels() map[string]gemm.Impl {
	out := map[string]gemm.Impl{}
	for _, i := range gemm.F32Impls() {
		prev := gemm.SetLimit(i)
		out[Impl()] = i
		gemm.SetLimit(prev)
	}
	return out
}

// randVec fills n values with a mix of magnitudes, signs, exact zeros
// and negative zeros, and subnormals.
func randVec(r *rand.Rand, n int, nonneg bool) []float32 {
	out := make([]float32, n)
	for i := range out {
		var x float32
		switch r.IntN(10) {
		case 0:
			x = 0
		case 1:
			x = float32(math.Copysign(0, -1))
		case 2:
			x = math.Float32frombits(uint32(r.IntN(1 << 23))) // subnormal
		default:
			x = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(9)-6)))
		}
		if nonneg {
			x = float32(math.Abs(float64(x)))
		}
		out[i] = x
	}
	return out
}

func sameBits(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// oldAdam is the loop hostOptimizer used before package vec, verbatim
// (its arithmetic in float32, gradient left alone). Its results equal
// the reference's where the compiler does not fuse (oldLoopUnfused).
func oldAdam(lr float64, b1f, b2f, epsf, wdf float64, t int64, w, g, m, s []float32) {
	bc1 := 1 - math.Pow(b1f, float64(t))
	bc2 := 1 - math.Pow(b2f, float64(t))
	stepSize := float32(lr / bc1)
	b1, b2, wd := float32(b1f), float32(b2f), float32(wdf)
	eps := float32(epsf)
	invSqrtBC2 := float32(1 / math.Sqrt(bc2))
	for j := range w {
		gj := g[j] + wd*w[j]
		m[j] = b1*m[j] + (1-b1)*gj
		s[j] = b2*s[j] + (1-b2)*gj*gj
		denom := float32(math.Sqrt(float64(s[j])))*invSqrtBC2 + eps
		w[j] -= stepSize * m[j] / denom
	}
}

// TestAdamMatchesReference runs every implementation over lengths
// 0..80 plus a few long ones, at every offset 0..15 into the buffers
// (so each alignment and tail appears), for several steps, and requires
// bit-identical weights and moments and a zeroed gradient.
func TestAdamMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var lengths []int
	for n := 0; n <= 80; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 255, 256, 257, 1000, 4099)
	hyper := [][5]float64{{1e-3, 0.9, 0.999, 1e-8, 0}, {3e-2, 0.8, 0.99, 1e-6, 1e-2}}
	for name, impl := range levels() {
		t.Run(name, func(t *testing.T) {
			prev := gemm.SetLimit(impl)
			defer gemm.SetLimit(prev)
			if Impl() != name {
				t.Fatalf("limit %v selects %s, want %s", impl, Impl(), name)
			}
			for _, n := range lengths {
				for off := 0; off < 16; off++ {
					if n > 300 && off%5 != 0 {
						continue
					}
					h := hyper[(n+off)%len(hyper)]
					w := randVec(r, n+off, false)
					m := randVec(r, n+off, false)
					v := randVec(r, n+off, true)
					w2, m2, v2 := append([]float32(nil), w...), append([]float32(nil), m...), append([]float32(nil), v...)
					w3, m3, v3 := append([]float32(nil), w...), append([]float32(nil), m...), append([]float32(nil), v...)
					for step := int64(1); step <= 3; step++ {
						g := randVec(r, n+off, false)
						g2, g3 := append([]float32(nil), g...), append([]float32(nil), g...)
						a := NewAdam(h[0], h[1], h[2], h[3], h[4], step)
						a.Step(w[off:], g[off:], m[off:], v[off:])
						a.AdamRef(w2[off:], g2[off:], m2[off:], v2[off:])
						oldAdam(h[0], h[1], h[2], h[3], h[4], step, w3[off:], g3[off:], m3[off:], v3[off:])
						for j := off; j < n+off; j++ {
							if !sameBits(w[j], w2[j]) || !sameBits(m[j], m2[j]) || !sameBits(v[j], v2[j]) {
								t.Fatalf("n=%d off=%d step %d elem %d: got w,m,v %v %v %v, reference %v %v %v", n, off, step, j, w[j], m[j], v[j], w2[j], m2[j], v2[j])
							}
							if oldLoopUnfused && (!sameBits(w2[j], w3[j]) || !sameBits(m2[j], m3[j]) || !sameBits(v2[j], v3[j])) {
								t.Fatalf("n=%d off=%d step %d elem %d: reference w,m,v %v %v %v, old loop %v %v %v", n, off, step, j, w2[j], m2[j], v2[j], w3[j], m3[j], v3[j])
							}
							if math.Float32bits(g[j]) != 0 || math.Float32bits(g2[j]) != 0 {
								t.Fatalf("n=%d off=%d elem %d: gradient %v / %v not zeroed", n, off, j, g[j], g2[j])
							}
						}
						for j := 0; j < off; j++ {
							if !sameBits(g[j], g3[j]) {
								t.Fatalf("n=%d off=%d: element %d before the slice changed", n, off, j)
							}
						}
					}
				}
			}
		})
	}
}

func TestSGDMatchesOldLoop(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []SGD{{LR: 0.1}, {LR: 0.05, WD: 1e-3, Momentum: 0.9}, {LR: 0.05, Momentum: 0.9, Nesterov: true}} {
		n := 37
		w := randVec(r, n, false)
		w2 := append([]float32(nil), w...)
		var buf, buf2 []float32
		if c.Momentum > 0 {
			buf, buf2 = make([]float32, n), make([]float32, n)
		}
		for step := 1; step <= 3; step++ {
			g := randVec(r, n, false)
			g2 := append([]float32(nil), g...)
			c.First = step == 1
			c.Step(w, g, buf)
			// The old loop, verbatim.
			for j := range w2 {
				gj := g2[j] + c.WD*w2[j]
				if buf2 != nil {
					if c.First {
						buf2[j] = gj
					} else {
						buf2[j] = c.Momentum*buf2[j] + gj
					}
					if c.Nesterov {
						gj += c.Momentum * buf2[j]
					} else {
						gj = buf2[j]
					}
				}
				w2[j] -= c.LR * gj
			}
			for j := range w {
				if g[j] != 0 || oldLoopUnfused && (!sameBits(w[j], w2[j]) || (buf != nil && !sameBits(buf[j], buf2[j]))) {
					t.Fatalf("%+v step %d elem %d: w %v want %v, g %v", c, step, j, w[j], w2[j], g[j])
				}
			}
		}
	}
}

func TestAdamLengthMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on mismatched lengths")
		}
	}()
	a := NewAdam(1e-3, 0.9, 0.999, 1e-8, 0, 1)
	a.Step(make([]float32, 4), make([]float32, 3), make([]float32, 4), make([]float32, 4))
}

func BenchmarkAdam(b *testing.B) {
	const n = 1 << 15
	w, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for name, impl := range levels() {
		b.Run(name, func(b *testing.B) {
			prev := gemm.SetLimit(impl)
			defer gemm.SetLimit(prev)
			a := NewAdam(1e-3, 0.9, 0.999, 1e-8, 0, 1)
			b.SetBytes(n * 4 * 4)
			for i := 0; i < b.N; i++ {
				a.Step(w, g, m, v)
			}
		})
	}
}
