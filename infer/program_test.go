package infer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/model"
)

// testSpecs cover every layer kind, odd sizes, padding and strides.
func testSpecs(t testing.TB) []model.Spec {
	mlp, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{37}, Hidden: []int{33, 17}, Classes: 5, Dropout: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	cnn := model.Spec{Name: "cnn", Input: []int{2, 9, 9}, Classes: 3, Layers: []model.Layer{
		{Name: "conv1", Kind: model.KindConv2D, Out: 4, Kernel: 3, Padding: 1},
		{Name: "drop1", Kind: model.KindDropout, Rate: 0.2},
		{Name: "act1", Kind: model.KindReLU},
		{Name: "pool1", Kind: model.KindMaxPool, Kernel: 2},
		{Name: "conv2", Kind: model.KindConv2D, Out: 5, Kernel: 3, Stride: 2, Padding: 1},
		{Name: "act2", Kind: model.KindTanh},
		{Name: "flatten", Kind: model.KindFlatten},
		{Name: "fc1", Kind: model.KindLinear, Out: 7},
		{Name: "act3", Kind: model.KindSigmoid},
		{Name: "fc2", Kind: model.KindLinear, Out: 3},
	}}
	// A ReLU that cannot be fused (after a pool).
	cnn2 := model.Spec{Name: "cnn2", Input: []int{1, 8, 8}, Classes: 4, Layers: []model.Layer{
		{Name: "conv1", Kind: model.KindConv2D, Out: 3, Kernel: 2},
		{Name: "pool1", Kind: model.KindMaxPool, Kernel: 3, Stride: 2},
		{Name: "act1", Kind: model.KindReLU},
		{Name: "flatten", Kind: model.KindFlatten},
		{Name: "fc1", Kind: model.KindLinear, Out: 4},
	}}
	for _, s := range []model.Spec{cnn, cnn2} {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	return []model.Spec{mlp, cnn, cnn2}
}

func randInput(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func TestCompileMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, spec := range testSpecs(t) {
		w, err := spec.Init(7)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compile(spec, w)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 3, 17} {
			x := randInput(rng, n*p.InputSize())
			out := make([]float32, n*p.Classes())
			if err := p.Forward(x, n, out); err != nil {
				t.Fatal(err)
			}
			for b := 0; b < n; b++ {
				want := refForward(spec, w, nil, x[b*p.InputSize():(b+1)*p.InputSize()])
				for c, v := range want {
					if got := out[b*p.Classes()+c]; math.Abs(float64(got)-v) > 1e-4*(1+math.Abs(v)) {
						t.Fatalf("%s n=%d example %d logit %d = %v, want %v\n%s", spec.Name, n, b, c, got, v, p)
					}
				}
			}
		}
	}
}

func TestForwardDoesNotModifyInput(t *testing.T) {
	spec := model.Spec{Name: "act", Input: []int{4}, Classes: 4, Layers: []model.Layer{{Name: "a", Kind: model.KindTanh}}}
	p, err := Compile(spec, model.Weights{})
	if err != nil {
		t.Fatal(err)
	}
	x := []float32{-1, 0, 1, 2}
	out := make([]float32, 4)
	if err := p.Forward(x, 1, out); err != nil {
		t.Fatal(err)
	}
	if x[0] != -1 || x[3] != 2 || out[3] != float32(math.Tanh(2)) {
		t.Fatalf("x = %v, out = %v", x, out)
	}
}

func TestForwardConcurrent(t *testing.T) {
	spec := testSpecs(t)[1]
	w, _ := spec.Init(3)
	p, err := Compile(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	const n = 9
	x := randInput(rng, n*p.InputSize())
	// Results may depend on the batch size in the last bits (the kernels
	// tile rows differently), so each size is checked against itself.
	want := make([][]float32, n+1)
	for m := 1; m <= n; m++ {
		want[m] = make([]float32, m*p.Classes())
		if err := p.Forward(x, m, want[m]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := 1 + g%n
			out := make([]float32, m*p.Classes())
			for range 20 {
				if err := p.Forward(x[:m*p.InputSize()], m, out); err != nil {
					errs <- err
					return
				}
				for i := range out {
					if out[i] != want[m][i] {
						errs <- fmt.Errorf("goroutine %d: out[%d] = %v, want %v", g, i, out[i], want[m][i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestForwardShapeErrors(t *testing.T) {
	spec := testSpecs(t)[0]
	w, _ := spec.Init(1)
	p, _ := Compile(spec, w)
	for _, tc := range []struct {
		name    string
		n, x, o int
	}{
		{"short x", 2, 37, 10},
		{"short out", 2, 74, 9},
		{"negative n", -1, 0, 0},
	} {
		err := p.Forward(make([]float32, tc.x), tc.n, make([]float32, tc.o))
		if !errors.Is(err, ErrShape) {
			t.Errorf("%s: err = %v, want ErrShape", tc.name, err)
		}
	}
	if err := p.Forward(nil, 0, nil); err != nil {
		t.Errorf("n=0: %v", err)
	}
}

func TestCompileErrors(t *testing.T) {
	spec := testSpecs(t)[0]
	w, _ := spec.Init(1)
	bad := w.Clone()
	delete(bad, "fc2.bias")
	if _, err := Compile(spec, bad); err == nil {
		t.Error("Compile with a missing tensor succeeded")
	}
	bad = w.Clone()
	bad["fc1.weight"].Data[3] = float32(math.NaN())
	if _, err := Compile(spec, bad); err == nil {
		t.Error("Compile with NaN weights succeeded")
	}
	if _, err := Compile(model.Spec{Name: "empty"}, nil); err == nil {
		t.Error("Compile of an empty spec succeeded")
	}
}

// randQuant builds a random but plausible quantized model for spec: the
// layers in float stay in float32.
func randQuant(t testing.TB, spec model.Spec, seed uint64, float ...string) *QuantModel {
	rng := rand.New(rand.NewPCG(seed, 9))
	w, err := spec.Init(seed)
	if err != nil {
		t.Fatal(err)
	}
	params, _ := spec.Params()
	qm := &QuantModel{Spec: spec, Input: QParams{Scale: 0.03, ZeroPoint: 128}, Act: map[string]QParams{},
		Layers: map[string]QLayer{}, Float: model.Weights{}}
	isFloat := map[string]bool{}
	for _, f := range float {
		isFloat[f] = true
	}
	for _, p := range params {
		if isFloat[p.Layer] {
			qm.Float[p.Name] = w[p.Name]
			continue
		}
		ql := qm.Layers[p.Layer]
		out := p.Shape[0]
		if len(p.Shape) > 1 {
			ql.Weight = make([]int8, model.Numel(p.Shape))
			for i := range ql.Weight {
				ql.Weight[i] = int8(rng.IntN(255) - 127)
			}
			ql.Scale = make([]float32, out)
			for c := range ql.Scale {
				ql.Scale[c] = float32((0.5 + rng.Float64()) / 127 / math.Sqrt(float64(p.FanIn)) * 2)
			}
		} else {
			ql.Bias = make([]int32, out)
			for c := range ql.Bias {
				ql.Bias[c] = int32(rng.IntN(2001) - 1000)
			}
		}
		qm.Layers[p.Layer] = ql
	}
	for _, l := range spec.Layers {
		switch l.Kind {
		case model.KindLinear, model.KindConv2D, model.KindTanh, model.KindSigmoid:
			qm.Act[l.Name] = QParams{Scale: float32(0.01 + 0.03*rng.Float64()), ZeroPoint: int32(rng.IntN(200))}
		}
	}
	return qm
}

func TestCompileInt8Exact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, spec := range testSpecs(t) {
		qm := randQuant(t, spec, 11)
		for _, impl := range gemm.I8Impls() {
			old := gemm.SetLimit(impl)
			p, err := CompileInt8(qm)
			gemm.SetLimit(old)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 2, 33} {
				x := randInput(rng, n*p.InputSize())
				out := make([]float32, n*p.Classes())
				if err := p.Forward(x, n, out); err != nil {
					t.Fatal(err)
				}
				for b := 0; b < n; b++ {
					want := refForward(spec, nil, qm, x[b*p.InputSize():(b+1)*p.InputSize()])
					for c, v := range want {
						if got := out[b*p.Classes()+c]; got != float32(v) {
							t.Fatalf("%s %v n=%d example %d logit %d = %v, want exactly %v\n%s", spec.Name, impl, n, b, c, got, v, p)
						}
					}
				}
			}
		}
	}
}

func TestCompileInt8Mixed(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 4))
	specs := testSpecs(t)
	for _, tc := range []struct {
		spec  model.Spec
		float []string
	}{
		{specs[0], []string{"fc1"}},
		{specs[0], []string{"fc2"}},
		{specs[0], []string{"fc3"}},
		{specs[0], []string{"fc1", "fc2", "fc3"}},
		{specs[1], []string{"conv2"}},
		{specs[1], []string{"conv1", "fc2"}},
		{specs[2], []string{"conv1"}},
	} {
		qm := randQuant(t, tc.spec, 5, tc.float...)
		p, err := CompileInt8(qm)
		if err != nil {
			t.Fatal(err)
		}
		n := 5
		x := randInput(rng, n*p.InputSize())
		out := make([]float32, n*p.Classes())
		if err := p.Forward(x, n, out); err != nil {
			t.Fatal(err)
		}
		for b := 0; b < n; b++ {
			want := refForward(tc.spec, qm.Float, qm, x[b*p.InputSize():(b+1)*p.InputSize()])
			for c, v := range want {
				// Float layers sum in another order than the reference,
				// which can move a later rounding by one step.
				if got := out[b*p.Classes()+c]; math.Abs(float64(got)-v) > 0.05*(1+math.Abs(v)) {
					t.Fatalf("%s float %v: example %d logit %d = %v, want %v\n%s", tc.spec.Name, tc.float, b, c, got, v, p)
				}
			}
		}
	}
}

func TestQuantModelValidate(t *testing.T) {
	spec := testSpecs(t)[0]
	for _, tc := range []struct {
		name   string
		mutate func(m *QuantModel)
	}{
		{"zero input scale", func(m *QuantModel) { m.Input.Scale = 0 }},
		{"zero point too large", func(m *QuantModel) { m.Act["fc1"] = QParams{Scale: 1, ZeroPoint: 256} }},
		{"missing activation", func(m *QuantModel) { delete(m.Act, "fc2") }},
		{"short weights", func(m *QuantModel) { l := m.Layers["fc1"]; l.Weight = l.Weight[1:]; m.Layers["fc1"] = l }},
		{"NaN weight scale", func(m *QuantModel) { m.Layers["fc2"].Scale[0] = float32(math.NaN()) }},
		{"short bias", func(m *QuantModel) { l := m.Layers["fc3"]; l.Bias = l.Bias[:2]; m.Layers["fc3"] = l }},
		{"layer neither quantized nor float", func(m *QuantModel) { delete(m.Layers, "fc2") }},
		{"unknown quantized layer", func(m *QuantModel) { m.Layers["fc9"] = QLayer{} }},
	} {
		m := randQuant(t, spec, 1)
		tc.mutate(m)
		if _, err := CompileInt8(m); err == nil {
			t.Errorf("%s: CompileInt8 succeeded", tc.name)
		}
	}
}

func TestObserve(t *testing.T) {
	spec := testSpecs(t)[1]
	w, _ := spec.Init(2)
	p, _ := Compile(spec, w)
	x := randInput(rand.New(rand.NewPCG(1, 1)), 2*p.InputSize())
	out := make([]float32, 2*p.Classes())
	var names []string
	err := p.Observe(x, 2, out, func(layer string, data []float32) {
		names = append(names, fmt.Sprintf("%s:%d", layer, len(data)))
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[conv1:648 pool1:128 conv2:40 act2:40 fc1:14 act3:14 fc2:6]"
	if fmt.Sprint(names) != want {
		t.Fatalf("observed %v, want %s", names, want)
	}
}

// TestBytesMatchesHeap checks Bytes against the heap bytes compiling a
// program and running one Forward allocate, loosely (the runtime rounds
// allocations up to size classes). It counts allocations rather than
// live bytes after a GC because a GC may empty the program's sync.Pool
// of its arena.
func TestBytesMatchesHeap(t *testing.T) {
	spec, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{784}, Hidden: []int{512, 256}, Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	const batch = 128
	x := make([]float32, batch*784)
	out := make([]float32, batch*10)
	allocated := func() int64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.TotalAlloc)
	}
	before := allocated()
	p, err := Compile(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Forward(x, batch, out); err != nil {
		t.Fatal(err)
	}
	measured := allocated() - before
	got, err := p.Bytes(batch)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Bytes(%d) = %d, allocated %d", batch, got, measured)
	if float64(got) < 0.8*float64(measured) || float64(got) > 1.25*float64(measured) {
		t.Errorf("Bytes(%d) = %d, but compiling and one Forward allocated %d bytes", batch, got, measured)
	}
	small, err := p.Bytes(1)
	if err != nil {
		t.Fatal(err)
	}
	// The arena grows with the batch: 2 ping-pong buffers of up to 512
	// values per example.
	if small >= got {
		t.Errorf("Bytes(1) = %d, not below Bytes(%d) = %d", small, batch, got)
	}
	if _, err := p.Bytes(0); err == nil {
		t.Error("Bytes(0) succeeded, want an error")
	}
}

// TestForwardInlineMatchesForward: ForwardInline gives Forward's logits,
// FP32 and INT8, for an MLP and a ResNet (single-group convolutions
// through the NHWC path) and a grouped convolution (im2col), at batches
// that run inline and batches that split, on 1–4 threads. INT8 programs
// and linear layers give the same bits; an FP32 convolution cut into
// bands by thread count sums in another order (Forward's own logits
// differ in the same way between thread counts), so FP32 convolutional
// nets agree to float32 rounding.
func TestForwardInlineMatchesForward(t *testing.T) {
	defer gemm.SetThreads(gemm.SetThreads(0))
	grouped := model.Spec{Name: "grouped", Input: []int{8, 10, 10}, Classes: 5, Layers: []model.Layer{
		{Name: "conv", Kind: model.KindConv2D, Out: 16, Kernel: 3, Padding: 1, Groups: 2},
		{Name: "relu", Kind: model.KindReLU},
		{Name: "flat", Kind: model.KindFlatten},
		{Name: "fc", Kind: model.KindLinear, Out: 5},
	}}
	rng := rand.New(rand.NewPCG(5, 9))
	for _, spec := range []model.Spec{mnistStudent(t), resnetStudent(t), grouped} {
		w := graphNet(t, spec, 3)
		fp, err := Compile(spec, w)
		if err != nil {
			t.Fatal(err)
		}
		in := model.Numel(spec.Input)
		q, err := CompileInt8(calibrateMinMax(t, spec, w, randInput(rng, 16*in), 16))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*Program{fp, q} {
			exact := p == q || spec.Name == "student"
			for _, n := range []int{1, 3, 40} {
				x := randInput(rng, n*in)
				for _, threads := range []int{1, 2, 4} {
					gemm.SetThreads(threads)
					want := make([]float32, n*spec.Classes)
					got := make([]float32, n*spec.Classes)
					if err := p.Forward(x, n, want); err != nil {
						t.Fatal(err)
					}
					if err := p.ForwardInline(x, n, got); err != nil {
						t.Fatal(err)
					}
					for i := range want {
						same := math.Float32bits(got[i]) == math.Float32bits(want[i])
						if !same && (exact || math.Abs(float64(got[i]-want[i])) > 1e-5*(1+math.Abs(float64(want[i])))) {
							t.Fatalf("%s %s batch %d, %d threads: logit %d inline %v, Forward %v", spec.Name, p, n, threads, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// TestForwardInlineDoesNotAllocate: a server's batch-1 call of an MLP,
// FP32 or INT8, or of an INT8 ResNet, allocates nothing once its scratch
// is warm (the GEMM's partial-panel tile and the implementation lookup
// used to, and each NHWC convolution's closures).
func TestForwardInlineDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (sync.Pool drops items)")
	}
	spec := mnistStudent(t)
	w := graphNet(t, spec, 3)
	fp, err := Compile(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	q, err := CompileInt8(calibrateMinMax(t, spec, w, randInput(rng, 16*784), 16))
	if err != nil {
		t.Fatal(err)
	}
	rs, rw, rx := resnet8Half(t)
	rq, err := CompileInt8(calibrateMinMax(t, rs, rw, rx, 16))
	if err != nil {
		t.Fatal(err)
	}
	x := randInput(rng, 784)
	out := make([]float32, 10)
	for _, p := range []*Program{fp, q, rq} {
		if err := p.ForwardInline(x, 1, out); err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(50, func() { _ = p.ForwardInline(x, 1, out) }); a != 0 {
			t.Errorf("%s: %v allocations per batch-1 call", p, a)
		}
	}
}
