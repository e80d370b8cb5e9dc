package gorgonia

import (
	"math"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The relu op replaces gorgonia's Rectify: same forward values, same
// gradient wherever x ≠ 0, and PyTorch's 0 at x = 0. The input is long
// enough to be split across cores.
func TestReLUOpMatchesRectify(t *testing.T) {
	const n = 40000
	xs, dys := make([]float32, n), make([]float32, n)
	for i := range xs {
		xs[i] = float32(i%7-3) * 0.5 // includes exact zeros
		dys[i] = float32(i%5) - 1.5
	}
	g := G.NewGraph()
	x := G.NewVector(g, tensor.Float32, G.WithShape(n), G.WithName("x"), G.WithValue(tensor.New(tensor.WithBacking(append([]float32(nil), xs...)))))
	dy := G.NewVector(g, tensor.Float32, G.WithShape(n), G.WithName("dy"), G.WithValue(tensor.New(tensor.WithBacking(append([]float32(nil), dys...)))))
	y, err := G.Rectify(x)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := G.HadamardProd(y, dy)
	if err != nil {
		t.Fatal(err)
	}
	cost, err := G.Sum(prod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.Grad(cost, x); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	wantY := y.Value().Data().([]float32)
	gv, _ := x.Grad()
	wantDX := gv.Data().([]float32)

	op := actOp{fn: actReLU, dims: 1}
	fy, err := op.Do(tensor.New(tensor.WithShape(n), tensor.WithBacking(xs)))
	if err != nil {
		t.Fatal(err)
	}
	gop := actOp{fn: actReLU, dims: 1, grad: true}
	fdx, err := gop.Do(tensor.New(tensor.WithShape(n), tensor.WithBacking(xs)), tensor.New(tensor.WithShape(n), tensor.WithBacking(dys)))
	if err != nil {
		t.Fatal(err)
	}
	gotY, gotDX := fy.Data().([]float32), fdx.Data().([]float32)
	for i := range xs {
		if gotY[i] != wantY[i] {
			t.Fatalf("relu(%v) = %v, Rectify %v", xs[i], gotY[i], wantY[i])
		}
		switch {
		case xs[i] == 0 && gotDX[i] != 0:
			t.Fatalf("relu'(0)·%v = %v, want 0 (PyTorch)", dys[i], gotDX[i])
		case xs[i] != 0 && gotDX[i] != wantDX[i]:
			t.Fatalf("relu'(%v)·%v = %v, Rectify %v", xs[i], dys[i], gotDX[i], wantDX[i])
		}
	}
	if v := actReLU.f(float32(math.NaN())); v == v {
		t.Fatalf("relu(NaN) = %v, want NaN as PyTorch", v)
	}
}
