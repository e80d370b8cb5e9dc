package gorgonia

import (
	"math/rand/v2"
	"testing"
)

// The input gradient of the ResNet benchmark's widest convolution
// (16→16, 3×3, 28×28, batch 128) both ways: as the transposed
// convolution's forward pass, and as Wᵀ·dy folded into dx.
func benchDx(b *testing.B, fold bool) {
	c := newGroupConv([]int{16, 28, 28}, 16, 1, 3, 1, 1)
	const n = 128
	rng := rand.New(rand.NewPCG(1, 1))
	w := make([]float32, 16*16*9)
	dy := make([]float32, n*16*28*28)
	for _, v := range [][]float32{w, dy} {
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
	}
	for b.Loop() {
		if fold {
			c.gemmDxFold(w, dy, n, nil)
		} else {
			c.gemmDx(w, dy, n, nil)
		}
	}
}

func BenchmarkDxTransposed(b *testing.B) { benchDx(b, false) }
func BenchmarkDxFold(b *testing.B)       { benchDx(b, true) }
