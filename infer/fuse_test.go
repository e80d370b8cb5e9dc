package infer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/model"
)

// fusions are the switches of the INT8 program's fusions and fast paths
// that must give the unfused program's bits; the differential tests
// compile with each of them on and off.
var fusions = map[string]*bool{
	"add tables": &fuseAddTables,
	"gap u8":     &fuseGAPU8,
	"pixel rows": &packPixelRows,
}

// fusionSpecs are networks with the patterns the fusions rewrite: adds
// read by a relu alone (ResNet blocks of several widths, strides, odd and
// non-square sizes, one input channel), adds read by relu6, tanh and
// sigmoid, an add read twice (not fused), an add and relu that end the
// network, global average pools of NHWC and NCHW uint8 values, and the
// graph specs.
func fusionSpecs(t testing.TB) []model.Spec {
	var specs []model.Spec
	for _, c := range []model.BlocksConfig{
		{Name: "resnet8-half", Input: []int{1, 28, 28}, Classes: 10, Stem: model.StemConfig{Channels: 8},
			Stages: []model.Stage{{Channels: 8}, {Channels: 16, Stride: 2}, {Channels: 32, Stride: 2}}},
		{Name: "resnet-odd", Input: []int{3, 11, 9}, Classes: 4, Stem: model.StemConfig{Channels: 5},
			Stages: []model.Stage{{Channels: 5, Repeat: 2}, {Channels: 12, Stride: 2}, {Channels: 7, Stride: 3}}},
		{Name: "resnet-wide", Input: []int{2, 6, 7}, Classes: 3, Stem: model.StemConfig{Channels: 40},
			Stages: []model.Stage{{Channels: 40}, {Channels: 64, Stride: 2}}},
	} {
		s, err := model.Blocks(c)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	tables := model.Spec{Name: "tables", Input: []int{3, 5, 6}, Classes: 3, Layers: []model.Layer{
		{Name: "c0", Kind: model.KindConv2D, Out: 8, Kernel: 3, Padding: 1},
		{Name: "c1", Kind: model.KindConv2D, Out: 8, Kernel: 1},
		{Name: "a1", Kind: model.KindAdd, Inputs: []string{"c0", "c1"}},
		{Name: "r6", Kind: model.KindReLU6},
		{Name: "a2", Kind: model.KindAdd, Inputs: []string{"r6", "c1"}},
		{Name: "th", Kind: model.KindTanh},
		{Name: "a3", Kind: model.KindAdd, Inputs: []string{"th", "c0"}},
		{Name: "sg", Kind: model.KindSigmoid},
		{Name: "a4", Kind: model.KindAdd, Inputs: []string{"sg", "sg"}},
		{Name: "r4", Kind: model.KindReLU},
		{Name: "a5", Kind: model.KindAdd, Inputs: []string{"a4", "r4"}}, // a4 is read twice: not fused
		{Name: "r5", Kind: model.KindReLU},
		{Name: "c2", Kind: model.KindConv2D, Out: 4, Kernel: 3, Stride: 2},
		{Name: "flat", Kind: model.KindFlatten},
		{Name: "fc", Kind: model.KindLinear, Out: 3},
	}}
	last := model.Spec{Name: "add-last", Input: []int{6}, Classes: 6, Layers: []model.Layer{
		{Name: "fc", Kind: model.KindLinear, Out: 6},
		{Name: "add", Kind: model.KindAdd, Inputs: []string{"fc", "fc"}},
		{Name: "relu", Kind: model.KindReLU},
	}}
	// Global average pools of a max-pool's uint8 output (NCHW: max-pool
	// reads that order) and of a conv's float32 one.
	pools := model.Spec{Name: "pools", Input: []int{3, 9, 8}, Classes: 5, Layers: []model.Layer{
		{Name: "c0", Kind: model.KindConv2D, Out: 6, Kernel: 3, Padding: 1},
		{Name: "r0", Kind: model.KindReLU},
		{Name: "mp", Kind: model.KindMaxPool, Kernel: 2},
		{Name: "gap", Kind: model.KindGlobalAvgPool},
		{Name: "fc", Kind: model.KindLinear, Out: 5},
		{Name: "c1", Kind: model.KindConv2D, Out: 4, Kernel: 1, Inputs: []string{"mp"}},
		{Name: "gap1", Kind: model.KindGlobalAvgPool},
		{Name: "fc1", Kind: model.KindLinear, Out: 5},
		{Name: "sum", Kind: model.KindAdd, Inputs: []string{"fc", "fc1"}},
	}}
	for _, s := range []model.Spec{tables, last, pools} {
		if err := s.Validate(); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
	}
	return append(append(specs, tables, last, pools), allGraphSpecs(t)...)
}

// randomActParams returns a copy of qm with its activation parameters
// drawn at random around the calibrated ones (scales ×[1/4, 4], zero
// points anywhere in [0, 255], the input's too): a fusion must agree
// with the unfused ops for any parameters, including those that clamp.
func randomActParams(qm *QuantModel, rng *rand.Rand) *QuantModel {
	m := *qm
	m.Act = map[string]QParams{}
	draw := func(q QParams) QParams {
		return QParams{Scale: q.Scale * float32(math.Exp2(4*rng.Float64()-2)), ZeroPoint: rng.Int32N(256)}
	}
	for k, q := range qm.Act {
		m.Act[k] = draw(q)
	}
	m.Input = draw(qm.Input)
	return &m
}

type observed struct {
	layer string
	data  []float32
}

// runAll returns p's logits for x (n examples) from Forward and
// ForwardInline, and what Observe reports.
func runAll(t *testing.T, p *Program, x []float32, n int) ([2][]float32, []observed) {
	var logits [2][]float32
	for k, f := range []func([]float32, int, []float32) error{p.Forward, p.ForwardInline} {
		logits[k] = make([]float32, n*p.Classes())
		if err := f(x, n, logits[k]); err != nil {
			t.Fatal(err)
		}
	}
	var obs []observed
	err := p.Observe(x, n, make([]float32, n*p.Classes()), func(layer string, data []float32) {
		obs = append(obs, observed{layer, append([]float32(nil), data...)})
	})
	if err != nil {
		t.Fatal(err)
	}
	return logits, obs
}

// sameBits reports the first index where a and b differ in their bits,
// or -1.
func sameBits(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestFusionsMatchUnfused is the differential test of the INT8 fusions:
// for every spec of fusionSpecs, calibrated and with random activation
// parameters, the program with all fusions on, and with each alone, gives
// the bits of the program with none (logits of Forward and ForwardInline,
// and every layer's output as Observe reports it, in the same order under
// the same names) at batch sizes 1 to 64 on 1, 2 and 3 threads, with the
// parallel thresholds lowered so that small layers split too.
func TestFusionsMatchUnfused(t *testing.T) {
	defer gemm.SetThreads(gemm.SetThreads(0))
	rng := rand.New(rand.NewPCG(12, 1))
	draws := 6
	if testing.Short() {
		draws = 2
	}
	for _, spec := range fusionSpecs(t) {
		w := graphNet(t, spec, 7)
		in := model.Numel(spec.Input)
		calib := randInput(rng, 16*in)
		qm := calibrateMinMax(t, spec, w, calib, 16)
		for d := range draws {
			m := qm
			if d > 0 {
				m = randomActParams(qm, rng)
			}
			compile := func(on func(fusion string) bool) *Program {
				for k, v := range fusions {
					*v = on(k)
				}
				defer func() {
					for _, v := range fusions {
						*v = true
					}
				}()
				p, err := CompileInt8(m)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			ref := compile(func(string) bool { return false })
			variants := map[string]*Program{"all": compile(func(string) bool { return true })}
			for k := range fusions {
				variants[k] = compile(func(f string) bool { return f == k })
			}
			for _, n := range []int{1, 2, 5, 64} {
				x := randInput(rng, n*in)
				for i := range x {
					x[i] = x[i]*float32(1+d) + float32(d%3-1) // wider and shifted inputs: more clamping
				}
				for _, threads := range []int{1, 2, 3} {
					gemm.SetThreads(threads)
					f32, i8 := gemm.SetParallelMin(1, 1)
					wantLogits, wantObs := runAll(t, ref, x, n)
					for name, p := range variants {
						where := fmt.Sprintf("%s draw %d batch %d, %d threads, fusion %q: %s", spec.Name, d, n, threads, name, p)
						logits, obs := runAll(t, p, x, n)
						for k := range logits {
							if i := sameBits(logits[k], wantLogits[0]); i >= 0 {
								t.Fatalf("%s: logit %d (call %d) %v, unfused %v", where, i, k, logits[k][i], wantLogits[0][i])
							}
						}
						if len(obs) != len(wantObs) {
							t.Fatalf("%s: Observe reported %d outputs, unfused %d", where, len(obs), len(wantObs))
						}
						for j, o := range obs {
							if o.layer != wantObs[j].layer {
								t.Fatalf("%s: Observe's report %d is %q, unfused %q", where, j, o.layer, wantObs[j].layer)
							}
							if i := sameBits(o.data, wantObs[j].data); i >= 0 {
								t.Fatalf("%s: layer %q element %d observed %v, unfused %v", where, o.layer, i, o.data[i], wantObs[j].data[i])
							}
						}
					}
					gemm.SetParallelMin(f32, i8)
				}
			}
		}
	}
}

// TestFusionsApply checks that the fusions happen where they should: in
// ResNet-8, every add with its relu, the pool of the last block, 4 and 2
// pixels per GEMM row for the 8- and 16-channel convolutions; in the
// tables spec, each add read by a table alone, not the one read twice.
func TestFusionsApply(t *testing.T) {
	specs := fusionSpecs(t)
	for _, c := range []struct {
		spec      int
		want, not []string
	}{
		{0, []string{"add+relu[layer1.0.add ", "add+relu[layer2.0.add ", "add+relu[layer3.0.add ", "globalavgpool[avgpool 32×49 u8→f32]",
			"[conv1 1x28x28→8x28x28 int8→u8 4px]", "[layer2.0.conv2 16x14x14→16x14x14 int8→u8 2px]", "[layer3.0.conv2 32x7x7→32x7x7 int8→u8]"},
			[]string{"relu[layer1.0 u8 table]", "dequantize"}},
		{3, []string{"add+relu6[a1 ", "add+tanh[a2 ", "add+sigmoid[a3 ", "add+relu[a5 "}, []string{"add+relu[a4 "}},
		{4, []string{"add+relu[add "}, nil},
		{5, []string{"globalavgpool[gap 6×16 u8→f32]"}, []string{"dequantize"}},
	} {
		spec := specs[c.spec]
		w := graphNet(t, spec, 7)
		p, err := CompileInt8(calibrateMinMax(t, spec, w, randInput(rand.New(rand.NewPCG(1, 1)), 4*model.Numel(spec.Input)), 4))
		if err != nil {
			t.Fatal(err)
		}
		s := p.String()
		for _, want := range c.want {
			if !strings.Contains(s, want) {
				t.Errorf("%s: no %q in %s", spec.Name, want, s)
			}
		}
		for _, not := range c.not {
			if strings.Contains(s, not) {
				t.Errorf("%s: %q in %s", spec.Name, not, s)
			}
		}
	}
}

// TestAddLUTRule checks the fused add and table against the two ops run
// one after the other, on all 65536 input pairs, for random parameters
// and each kind of table.
func TestAddLUTRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var qa, qb []uint8
	for x := range 256 {
		for y := range 256 {
			qa, qb = append(qa, uint8(x)), append(qb, uint8(y))
		}
	}
	q := func() QParams {
		return QParams{Scale: float32(math.Exp2(8*rng.Float64() - 7)), ZeroPoint: rng.Int32N(256)}
	}
	for range 20 {
		a, b, o, lo := q(), q(), q(), q()
		add := newAddI8("add", a, b, o)
		for _, lut := range []*lutU8{
			newReLULUT("t", o), newReLU6LUT("t", o, lo),
			newLUT("t", model.KindTanh, math.Tanh, o, lo), newLUT("t", model.KindSigmoid, sigmoid64, o, lo),
		} {
			s := &scratch{u: make([][]uint8, 2)}
			in := []value{{u: qa, q: a, dim: len(qa)}, {u: qb, q: b, dim: len(qb)}}
			got := fuseAddLUT(add, lut).run(s, in, 1, 0)
			sum := add.run(s, in, 1, 1)
			want := lut.run(s, []value{sum}, 1, 1)
			if got.q != want.q {
				t.Fatalf("%s: parameters %v, want %v", lut.kind, got.q, want.q)
			}
			for i := range qa {
				if got.u[i] != want.u[i] {
					t.Fatalf("%s(add(%d, %d)) = %d, two passes %d (a %v, b %v, out %v)", lut.kind, qa[i], qb[i], got.u[i], want.u[i], a, b, o)
				}
			}
		}
	}
}
