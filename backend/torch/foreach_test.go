//go:build torch

package torch

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// TestForeachUpdateMatchesPerTensor trains two copies of a model on the
// same batches, one updated with the multi-tensor ops (updateForeach), the
// other one op per tensor (updateEach, the path TestOptimizersMatchReference
// checked against torch.optim before the multi-tensor update existed), and
// compares the weights and optimizer state after several steps.
func TestForeachUpdateMatchesPerTensor(t *testing.T) {
	if err := foreachMissing(); err != nil {
		t.Skipf("multi-tensor update unavailable: %v", err)
	}
	b := openTest(t)
	const n, steps = 6, 5
	opts := []backend.Optimizer{
		{Kind: backend.Adam},
		{Kind: backend.Adam, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.01, MaxNorm: 0.5},
		{Kind: backend.SGD},
		{Kind: backend.SGD, Momentum: 0.9, WeightDecay: 1e-3},
		{Kind: backend.SGD, Momentum: 0.5, Nesterov: true, WeightDecay: 0.1},
	}
	for _, spec := range []model.Spec{tinyMLP(t), tinyCNN(t)} {
		for _, c := range []struct {
			opt         backend.Optimizer
			foreachSqrt bool // the CUDA variant of Adam's denominator
		}{{opts[0], false}, {opts[0], true}, {opts[1], false}, {opts[1], true}, {opts[2], false}, {opts[3], false}, {opts[4], false}} {
			opt := c.opt
			name := fmt.Sprintf("%s/%s_mom%v_nest%v_wd%v_maxnorm%v_sqrt%v", spec.Name, opt.Kind, opt.Momentum, opt.Nesterov, opt.WeightDecay, opt.MaxNorm, c.foreachSqrt)
			t.Run(name, func(t *testing.T) {
				w, err := spec.Init(3)
				if err != nil {
					t.Fatal(err)
				}
				cfg := backend.TrainConfig{MaxBatch: n, Objective: loss.Hinton(0.7, 2), Optimizer: opt}
				var trs [2]*Trainer
				var ms [2]*Model
				for i := range trs {
					ms[i] = load(t, b, spec, w)
					trs[i] = mustTrainer(t, b, ms[i], cfg).(*Trainer)
				}
				if !trs[0].foreach {
					t.Fatal("the trainer does not use the multi-tensor update although libtorch has its ops")
				}
				trs[0].foreachSqrt = c.foreachSqrt
				trs[1].foreach = false
				rng := rand.New(rand.NewPCG(5, 6))
				in := model.Numel(spec.Input)
				for step := 0; step < steps; step++ {
					bt := &backend.Batch{N: n, X: randn(rng, n*in, 1), Labels: randLabels(rng, n, spec.Classes),
						TeacherLogits: randn(rng, n*spec.Classes, 2), Masks: randMasks(rng, spec, n), LR: 0.05 / float64(step+1)}
					for _, tr := range trs {
						if _, err := tr.Step(bt); err != nil {
							t.Fatal(err)
						}
					}
				}
				var got, want model.Weights
				for i, dst := range []*model.Weights{&got, &want} {
					ws, err := ms[i].Weights()
					if err != nil {
						t.Fatal(err)
					}
					st, err := trs[i].State()
					if err != nil {
						t.Fatal(err)
					}
					for k, v := range st.Tensors {
						ws["state/"+k] = v
					}
					*dst = ws
				}
				if len(got) != len(want) {
					t.Fatalf("%d tensors, per-tensor path has %d", len(got), len(want))
				}
				for k, wv := range want {
					gv := got[k].Data
					for j, x := range wv.Data {
						d := math.Abs(float64(gv[j]) - float64(x))
						if d > 1e-5*math.Max(1, math.Abs(float64(x))) || math.IsNaN(d) {
							t.Fatalf("%s[%d] = %v, per-tensor update gives %v", k, j, gv[j], x)
						}
					}
				}
			})
		}
	}
}

// TestGradientsOwnTheirBuffers checks that the gradients the update
// writes into are distinct, writable buffers even where autograd hands
// one expanded tensor to two parameters: the gradient of mean(a + c).
func TestGradientsOwnTheirBuffers(t *testing.T) {
	b := openTest(t)
	err := b.eng.do(func() error {
		return withGrad(true, func() error {
			s := newScope(b.device)
			defer s.free()
			a := s.fromHost([]float32{1, 2, 3, 4}, 4)
			c := s.fromHost([]float32{5, 6, 7, 8}, 4)
			s.setRequiresGrad(a, true)
			s.setRequiresGrad(c, true)
			tr := &Trainer{tensors: []ctensor{a, c}, trained: []bool{true, true}}
			g := tr.gradients(s, s.mean(s.add(a, c)))
			if s.err != nil {
				return s.err
			}
			if s.dataPtr(g[0]) == s.dataPtr(g[1]) {
				return fmt.Errorf("both parameters' gradients are one buffer")
			}
			s.mulScalar_(g[0], 2) // as the update writes into them
			got := make([][]float32, 2)
			for i := range got {
				got[i] = make([]float32, 4)
				s.toHost(g[i], got[i])
			}
			if s.err != nil {
				return s.err
			}
			for j := range 4 {
				if got[0][j] != 0.5 || got[1][j] != 0.25 {
					return fmt.Errorf("gradients %v and %v after doubling the first, want all 0.5 and all 0.25", got[0], got[1])
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMallocEnv checks that the settings handed to a reference process are
// the backend's own, and that an environment configuring malloc itself is
// left to be inherited.
func TestMallocEnv(t *testing.T) {
	for _, v := range mallocVars {
		if _, ok := os.LookupEnv(v); ok {
			t.Skipf("%s is set in the test's environment", v)
		}
	}
	want := []string{fmt.Sprintf("MALLOC_MMAP_THRESHOLD_=%d", mmapThreshold), fmt.Sprintf("MALLOC_TRIM_THRESHOLD_=%d", trimThreshold)}
	if got := MallocEnv(); !slices.Equal(got, want) {
		t.Fatalf("MallocEnv() = %q, want %q", got, want)
	}
	for _, v := range mallocVars {
		t.Run(v, func(t *testing.T) {
			t.Setenv(v, "1")
			if got := MallocEnv(); got != nil {
				t.Fatalf("with %s set, MallocEnv() = %q, want nil", v, got)
			}
		})
	}
}
