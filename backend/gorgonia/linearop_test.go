package gorgonia

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestLinearOpMatchesGorgonia: the linear layer's op gives the bits of
// gorgonia's Mul and BroadcastAdd, forward and for every gradient (input,
// weight, bias), over shapes on both sides of the products' parallel and
// packing thresholds; in kept storage it stays right when the inputs
// change between runs.
func TestLinearOpMatchesGorgonia(t *testing.T) {
	for _, c := range []struct {
		n, in, out int
		bias       bool
	}{
		{1, 3, 2, true}, {5, 7, 3, true}, {3, 33, 130, false}, {128, 300, 70, true}, {64, 200, 600, true},
	} {
		t.Run(fmt.Sprintf("%d×%d→%d/bias=%v", c.n, c.in, c.out, c.bias), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(c.n), uint64(c.out)))
			randn := func(n int) []float32 {
				v := make([]float32, n)
				for i := range v {
					v[i] = float32(rng.NormFloat64())
				}
				return v
			}
			x, w, b, r := randn(c.n*c.in), randn(c.in*c.out), randn(c.out), randn(c.n*c.out)
			ref := newLinearGraph(t, c.n, c.in, c.out, c.bias, false, x, w, b, r)
			ours := newLinearGraph(t, c.n, c.in, c.out, c.bias, true, x, w, b, r)
			for run := 0; run < 3; run++ {
				want, got := ref.run(t), ours.run(t)
				for k, name := range []string{"y", "dx", "dW", "db"} {
					if !c.bias && name == "db" {
						continue
					}
					if len(got[k]) != len(want[k]) {
						t.Fatalf("run %d: %s has %d values, gorgonia's %d", run, name, len(got[k]), len(want[k]))
					}
					for i := range want[k] {
						if math.Float32bits(got[k][i]) != math.Float32bits(want[k][i]) {
							t.Fatalf("run %d: %s[%d] = %v, gorgonia's %v", run, name, i, got[k][i], want[k][i])
						}
					}
				}
				// New inputs for the next run, in place as a trainer binds
				// its batches.
				copy(x, randn(len(x)))
				copy(w, randn(len(w)))
				ref.setX(x, w)
				ours.setX(x, w)
			}
		})
	}
}

// linearGraph is cost = Σ r ⊙ linear(tanh(x)) with the gradients of x, W
// and b read out; tanh makes the layer's input an inner node, so that its
// input gradient is built.
type linearGraph struct {
	vm     G.VM
	xt, wt *tensor.Dense
	reads  []G.Value
}

func newLinearGraph(t *testing.T, n, in, out int, bias, ours bool, x, w, b, r []float32) *linearGraph {
	t.Helper()
	lg := &linearGraph{
		xt: tensor.New(tensor.WithShape(n, in), tensor.WithBacking(append([]float32(nil), x...))),
		wt: tensor.New(tensor.WithShape(in, out), tensor.WithBacking(append([]float32(nil), w...))),
	}
	g := G.NewGraph()
	xn := G.NodeFromAny(g, lg.xt, G.WithName("x"))
	wn := G.NodeFromAny(g, lg.wt, G.WithName("w"))
	bn := G.NodeFromAny(g, tensor.New(tensor.WithShape(1, out), tensor.WithBacking(b)), G.WithName("b"))
	rn := G.NodeFromAny(g, tensor.New(tensor.WithShape(n, out), tensor.WithBacking(r)), G.WithName("r"))
	h := G.Must(G.Tanh(xn))
	var y *G.Node
	if ours {
		op := linearOp{in: in, out: out, bias: bias, ob: new(outBuf), pack: new(packedWeights)}
		if bias {
			y = G.Must(G.ApplyOp(op, h, wn, bn))
		} else {
			y = G.Must(G.ApplyOp(op, h, wn))
		}
	} else {
		y = G.Must(G.Mul(h, wn))
		if bias {
			y = G.Must(G.BroadcastAdd(y, bn, nil, []byte{0}))
		}
	}
	cost := G.Must(G.Sum(G.Must(G.HadamardProd(y, rn))))
	wrt := G.Nodes{xn, wn}
	if bias {
		wrt = append(wrt, bn)
	}
	grads, err := G.Grad(cost, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	lg.reads = make([]G.Value, 4)
	G.Read(y, &lg.reads[0])
	for i, gn := range grads {
		G.Read(gn, &lg.reads[i+1])
	}
	lg.vm = G.NewTapeMachine(g)
	t.Cleanup(func() { lg.vm.Close() })
	return lg
}

func (lg *linearGraph) setX(x, w []float32) {
	copy(lg.xt.Data().([]float32), x)
	copy(lg.wt.Data().([]float32), w)
}

// run runs the graph and returns copies of y, dx, dW and db (nil without
// a bias).
func (lg *linearGraph) run(t *testing.T) [][]float32 {
	t.Helper()
	if err := lg.vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	defer lg.vm.Reset()
	out := make([][]float32, len(lg.reads))
	for i, v := range lg.reads {
		if v != nil {
			out[i] = append([]float32(nil), v.Data().([]float32)...)
		}
	}
	return out
}
