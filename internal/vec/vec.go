// Package vec holds the optimizer's fused elementwise updates: one pass
// over a parameter tensor that reads the gradient, updates the weights
// and the optimizer's moments, and zeroes the gradient, so that a caller
// accumulating gradients across backward passes needs no clearing pass.
//
// Each update has a portable Go reference (AdamRef) and, on amd64,
// AVX-512 and AVX versions chosen at run time from the FP32
// implementation package gemm would use (gemm.BestF32), so the
// DISTILL_GEMM environment variable and gemm.SetLimit cap both. The
// vector versions perform the reference's operations in the same order
// with separate multiplies and adds (no FMA) and a correctly rounded
// square root, so their results are bit-identical to the reference's.
// The purego build tag leaves only the reference.
package vec

import (
	"fmt"
	"math"

	"github.com/distill-dev/distill/internal/gemm"
)

// Adam holds one Adam step's scalars, as torch.optim.Adam computes them
// (L2 weight decay added to the gradient). Build it with NewAdam.
type Adam struct {
	WD, B1, OneMinusB1, B2, OneMinusB2 float32
	// InvSqrtBC2 is 1/sqrt(1−β2^t), Eps the denominator's ε and
	// StepSize lr/(1−β1^t).
	InvSqrtBC2, Eps, StepSize float32
}

// NewAdam returns the scalars of step t (t ≥ 1) with learning rate lr.
func NewAdam(lr, beta1, beta2, eps, weightDecay float64, t int64) Adam {
	bc1 := 1 - math.Pow(beta1, float64(t))
	bc2 := 1 - math.Pow(beta2, float64(t))
	b1, b2 := float32(beta1), float32(beta2)
	return Adam{
		WD: float32(weightDecay), B1: b1, OneMinusB1: 1 - b1, B2: b2, OneMinusB2: 1 - b2,
		InvSqrtBC2: float32(1 / math.Sqrt(bc2)), Eps: float32(eps), StepSize: float32(lr / bc1),
	}
}

// Step applies one Adam update to w with gradient g and moments m and v
// (all the same length), and sets g to zero.
func (a *Adam) Step(w, g, m, v []float32) {
	n := len(w)
	if len(g) != n || len(m) != n || len(v) != n {
		panic(fmt.Sprintf("vec: Adam.Step: lengths %d, %d, %d, %d differ", len(w), len(g), len(m), len(v)))
	}
	done := adamAsm(a, w, g, m, v)
	a.ref(w[done:], g[done:], m[done:], v[done:])
}

// AdamRef is Step in plain Go: the reference the vector versions are
// tested against.
func (a *Adam) AdamRef(w, g, m, v []float32) {
	n := len(w)
	if len(g) != n || len(m) != n || len(v) != n {
		panic(fmt.Sprintf("vec: Adam.AdamRef: lengths %d, %d, %d, %d differ", len(w), len(g), len(m), len(v)))
	}
	a.ref(w, g, m, v)
}

// ref is the update. The explicit float32 conversions round every
// product before it is added, as the vector code does: they forbid the
// compiler's fusing a multiply and an add (it may, e.g. with GOAMD64=v3).
func (a *Adam) ref(w, g, m, v []float32) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for j := range w {
		gj := g[j] + float32(a.WD*w[j])
		m[j] = float32(a.B1*m[j]) + float32(a.OneMinusB1*gj)
		v[j] = float32(a.B2*v[j]) + float32(float32(a.OneMinusB2*gj)*gj)
		// float64's sqrt rounded to float32 is float32's correctly
		// rounded sqrt (53 ≥ 2·24+2 bits), which VSQRTPS computes.
		denom := float32(float32(math.Sqrt(float64(v[j])))*a.InvSqrtBC2) + a.Eps
		w[j] -= float32(a.StepSize*m[j]) / denom
		g[j] = 0
	}
}

// SGD holds one SGD step's scalars, as torch.optim.SGD computes them.
type SGD struct {
	LR, WD, Momentum float32
	Nesterov         bool
	// First is the first step: the momentum buffer starts at the
	// gradient.
	First bool
}

// Step applies one SGD update to w with gradient g and momentum buffer
// buf (nil without momentum), and sets g to zero.
func (s *SGD) Step(w, g, buf []float32) {
	g = g[:len(w)]
	if buf != nil {
		buf = buf[:len(w)]
	}
	for j := range w {
		gj := g[j] + float32(s.WD*w[j])
		if buf != nil {
			if s.First {
				buf[j] = gj
			} else {
				buf[j] = float32(s.Momentum*buf[j]) + gj
			}
			if s.Nesterov {
				gj += float32(s.Momentum * buf[j])
			} else {
				gj = buf[j]
			}
		}
		w[j] -= float32(s.LR * gj)
		g[j] = 0
	}
}

// Impl is the implementation Adam.Step uses now, for benchmarks and
// reports: "avx512", "avx" or "portable".
func Impl() string {
	switch level() {
	case lvlAVX512:
		return "avx512"
	case lvlAVX:
		return "avx"
	}
	return "portable"
}

const (
	lvlPortable = iota
	lvlAVX
	lvlAVX512
)

// level follows gemm's choice of FP32 implementation, which already
// reflects the CPU's features and the DISTILL_GEMM / SetLimit cap.
func level() int {
	switch gemm.BestF32() {
	case gemm.AVX512:
		if haveAVX512 {
			return lvlAVX512
		}
		fallthrough
	case gemm.AVX2:
		if haveAVX {
			return lvlAVX
		}
	}
	return lvlPortable
}
