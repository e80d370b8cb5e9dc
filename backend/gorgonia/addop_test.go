package gorgonia

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

// TestAddOpMatchesGorgonia: the residual Add gives the bits of gorgonia's
// Add (tensor.Add), also into storage kept from a previous call, and
// refuses mismatched shapes.
func TestAddOpMatchesGorgonia(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	shape := tensor.Shape{3, 5, 70, 80} // several of the op's chunks
	n := shape.TotalSize()
	op := addOp{dims: 4, out: new(outBuf)}
	for rep := 0; rep < 2; rep++ {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		ta := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(a))
		tb := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(b))
		got, err := op.Do(ta, tb)
		if err != nil {
			t.Fatal(err)
		}
		want, err := tensor.Add(ta, tb) // what gorgonia's Add runs
		if err != nil {
			t.Fatal(err)
		}
		g, w := got.Data().([]float32), want.Data().([]float32)
		for i := range w {
			if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				t.Fatalf("run %d: value %d = %v, gorgonia's Add %v", rep, i, g[i], w[i])
			}
		}
	}
	if _, err := op.InferShape(tensor.Shape{2, 3}, tensor.Shape{3, 2}); err == nil {
		t.Error("shapes [2 3] and [3 2] added without an error")
	}
}
