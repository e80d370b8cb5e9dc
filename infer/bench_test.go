package infer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distill-dev/distill/model"
)

// mnistStudent is the 784-800-800-10 MLP of the distillation examples.
func mnistStudent(t testing.TB) model.Spec {
	s, err := model.MLP(model.MLPConfig{Name: "student", Input: []int{784}, Hidden: []int{800, 800}, Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// BenchmarkMNISTStudent compares the FP32 and INT8 programs of the MNIST
// student (random weights) at batch 1 and 256. Run the two in the same
// invocation (and with -count) so that they see the same machine load.
func BenchmarkMNISTStudent(b *testing.B) {
	spec := mnistStudent(b)
	w, err := spec.Init(1)
	if err != nil {
		b.Fatal(err)
	}
	fp, err := Compile(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	q, err := CompileInt8(randQuant(b, spec, 1))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{1, 256} {
		x := randInput(rng, n*784)
		out := make([]float32, n*10)
		for _, p := range []struct {
			name string
			p    *Program
		}{{"fp32", fp}, {"int8", q}} {
			b.Run(fmt.Sprintf("%s/batch%d", p.name, n), func(b *testing.B) {
				for b.Loop() {
					if err := p.p.Forward(x, n, out); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}

// BenchmarkMNISTStudentInterleaved times FP32 and INT8 alternately
// (rounds of a few passes each), so that both see the same machine load,
// and reports the median throughput of each and their ratio.
func BenchmarkMNISTStudentInterleaved(b *testing.B) {
	spec := mnistStudent(b)
	w, err := spec.Init(1)
	if err != nil {
		b.Fatal(err)
	}
	fp, err := Compile(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	q, err := CompileInt8(randQuant(b, spec, 1))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{1, 256} {
		x := randInput(rng, n*784)
		out := make([]float32, n*10)
		passes := max(1, 2048/n) // ~ the same work per round
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			var tf, tq []float64
			for b.Loop() {
				for _, p := range []*Program{fp, q} {
					start := time.Now()
					for range passes {
						if err := p.Forward(x, n, out); err != nil {
							b.Fatal(err)
						}
					}
					s := float64(passes*n) / time.Since(start).Seconds()
					if p == fp {
						tf = append(tf, s)
					} else {
						tq = append(tq, s)
					}
				}
			}
			mf, mq := median(tf), median(tq)
			b.ReportMetric(mf, "fp32-samples/s")
			b.ReportMetric(mq, "int8-samples/s")
			b.ReportMetric(mq/mf, "int8/fp32")
			b.ReportMetric(1e6*float64(n)/mf, "fp32-µs/batch")
			b.ReportMetric(1e6*float64(n)/mq, "int8-µs/batch")
		})
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkMNISTStudentOps times each step of the FP32 and INT8 programs
// separately (median over rounds), to see where a forward pass goes.
func BenchmarkMNISTStudentOps(b *testing.B) {
	spec := mnistStudent(b)
	w, _ := spec.Init(1)
	fp, err := Compile(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	q, err := CompileInt8(randQuant(b, spec, 1))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{1, 256} {
		x := randInput(rng, n*784)
		for _, p := range []struct {
			name string
			p    *Program
		}{{"fp32", fp}, {"int8", q}} {
			b.Run(fmt.Sprintf("%s/batch%d", p.name, n), func(b *testing.B) {
				s := p.p.newScratch()
				times := make([][]float64, len(p.p.steps))
				reps := max(1, 256/n)
				for b.Loop() {
					s.vals[0] = value{f: x, dim: 784}
					for i := range p.p.steps {
						st := &p.p.steps[i]
						ins := slices.Clone(s.inputs(st, n))
						start := time.Now()
						for range reps {
							s.vals[st.out] = st.op.run(s, ins, n, st.buf)
						}
						times[i] = append(times[i], time.Since(start).Seconds()*1e6/float64(reps))
					}
				}
				for i, st := range p.p.steps {
					b.ReportMetric(median(times[i]), st.op.name()+"-µs")
				}
			})
		}
	}
}

// resnetStudent is a small ResNet for 1×28×28 inputs: a 16-channel stem
// and three stages of basic blocks (16, 32 and 64 channels, the last two
// at stride 2).
func resnetStudent(t testing.TB) model.Spec {
	s, err := model.Blocks(model.BlocksConfig{Name: "resnet-student", Input: []int{1, 28, 28}, Classes: 10,
		Stem:   model.StemConfig{Channels: 16},
		Stages: []model.Stage{{Channels: 16}, {Channels: 32, Stride: 2}, {Channels: 64, Stride: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// interleaved times programs alternately (rounds of passes over the
// same batch each), so that all see the same machine load, and returns
// the median throughput of each in samples/s.
func interleaved(b *testing.B, x []float32, n int, ps ...*Program) []float64 {
	out := make([]float32, n*ps[0].Classes())
	passes := max(1, 16/n) // short rounds: many of them for the median
	rates := make([][]float64, len(ps))
	for b.Loop() {
		for i, p := range ps {
			start := time.Now()
			for range passes {
				if err := p.Forward(x, n, out); err != nil {
					b.Fatal(err)
				}
			}
			rates[i] = append(rates[i], float64(passes*n)/time.Since(start).Seconds())
		}
	}
	med := make([]float64, len(ps))
	for i := range ps {
		med[i] = median(rates[i])
	}
	return med
}

// BenchmarkResNetStudent compares the FP32 and INT8 programs of a small
// ResNet student (random weights, batchnorms folded, calibrated on the
// batch it runs) at batch 1 and 64, interleaved; it reports the median
// throughput of each and their ratio (int8/fp32).
func BenchmarkResNetStudent(b *testing.B) {
	spec := resnetStudent(b)
	w := graphNet(b, spec, 1)
	fp, err := Compile(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	calib := randInput(rng, 64*784)
	q, err := CompileInt8(calibrateMinMax(b, spec, w, calib, 64))
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 64} {
		x := calib[:n*784]
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			r := interleaved(b, x, n, fp, q)
			b.ReportMetric(r[0], "fp32-samples/s")
			b.ReportMetric(r[1], "int8-samples/s")
			b.ReportMetric(r[1]/r[0], "int8/fp32")
		})
	}
}

// BenchmarkDepthwise compares the direct depthwise 3×3 convolution with
// one GEMM per channel (im2col of 9 columns), FP32 and INT8, on a
// MobileNet-sized layer (96 channels, 14×14, stride 1), interleaved; it
// reports each one's throughput and the ratio direct/gemm.
func BenchmarkDepthwise(b *testing.B) {
	spec := model.Spec{Name: "dw", Input: []int{96, 14, 14}, Classes: 10, Layers: []model.Layer{
		{Name: "dw", Kind: model.KindConv2D, Out: 96, Kernel: 3, Padding: 1, Groups: 96},
		{Name: "relu", Kind: model.KindReLU},
		{Name: "gap", Kind: model.KindGlobalAvgPool},
		{Name: "fc", Kind: model.KindLinear, Out: 10},
	}}
	w := graphNet(b, spec, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	in := model.Numel(spec.Input)
	calib := randInput(rng, 64*in)
	qm := calibrateMinMax(b, spec, w, calib, 64)
	compile := func(direct, int8 bool) *Program {
		defer func() { directDepthwise = true }()
		directDepthwise = direct
		var p *Program
		var err error
		if int8 {
			p, err = CompileInt8(qm)
		} else {
			p, err = Compile(spec, w)
		}
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	for _, int8 := range []bool{false, true} {
		direct, viaGemm := compile(true, int8), compile(false, int8)
		kind := "fp32"
		if int8 {
			kind = "int8"
		}
		for _, n := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/batch%d", kind, n), func(b *testing.B) {
				r := interleaved(b, calib[:n*in], n, direct, viaGemm)
				b.ReportMetric(r[0], "direct-samples/s")
				b.ReportMetric(r[1], "gemm-samples/s")
				b.ReportMetric(r[0]/r[1], "direct/gemm")
			})
		}
	}
}

// BenchmarkResNet8Int8 runs the INT8 program of recipes/fashion-resnet.yaml's
// student (stem 8, stages 8, 16 s2, 32 s2 on 1×28×28; random weights,
// min/max calibration) alone, at batch 1 and 64: the target for a CPU
// profile of the INT8 convolution path (docs/int8.md),
//
//	go test -run '^$' -bench ResNet8Int8/batch64 -cpuprofile cpu.prof ./infer
func BenchmarkResNet8Int8(b *testing.B) {
	spec, w, x := resnet8Half(b)
	q, err := CompileInt8(calibrateMinMax(b, spec, w, x, 64))
	if err != nil {
		b.Fatal(err)
	}
	benchAlone(b, q, x)
}

// BenchmarkResNet8F32 is BenchmarkResNet8Int8's FP32 twin: the target
// for a CPU profile of the FP32 convolution path,
//
//	go test -run '^$' -bench ResNet8F32/batch64 -cpuprofile cpu.prof ./infer
func BenchmarkResNet8F32(b *testing.B) {
	spec, w, x := resnet8Half(b)
	p, err := Compile(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	benchAlone(b, p, x)
}

// resnet8Half is recipes/fashion-resnet.yaml's student with random
// weights, and 64 random inputs.
func resnet8Half(b testing.TB) (model.Spec, model.Weights, []float32) {
	spec, err := model.Blocks(model.BlocksConfig{Name: "resnet8-half", Input: []int{1, 28, 28}, Classes: 10,
		Stem:   model.StemConfig{Channels: 8},
		Stages: []model.Stage{{Channels: 8}, {Channels: 16, Stride: 2}, {Channels: 32, Stride: 2}}})
	if err != nil {
		b.Fatal(err)
	}
	return spec, graphNet(b, spec, 1), randInput(rand.New(rand.NewPCG(1, 1)), 64*784)
}

// benchAlone times q alone at batch 1 and 64.
func benchAlone(b *testing.B, q *Program, x []float32) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			out := make([]float32, n*q.Classes())
			for b.Loop() {
				if err := q.Forward(x[:n*784], n, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkResNet8Int8Fusions times BenchmarkResNet8Int8's program
// compiled without the fusions and fast paths of fuse_test.go's
// fusions, with each alone and with all, interleaved, at batch 1 and 64;
// it reports each one's speed-up over none (median of the rounds).
//
//	go test -run '^$' -bench ResNet8Int8Fusions ./infer
func BenchmarkResNet8Int8Fusions(b *testing.B) {
	spec, w, x := resnet8Half(b)
	qm := calibrateMinMax(b, spec, w, x, 64)
	names := []string{"none"}
	for k := range fusions {
		names = append(names, k)
	}
	slices.Sort(names[1:])
	names = append(names, "all")
	var ps []*Program
	for _, name := range names {
		for k, v := range fusions {
			*v = name == "all" || name == k
		}
		p, err := CompileInt8(qm)
		if err != nil {
			b.Fatal(err)
		}
		ps = append(ps, p)
	}
	for _, v := range fusions {
		*v = true
	}
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			r := interleaved(b, x[:n*784], n, ps...)
			for i, name := range names[1:] {
				b.ReportMetric(r[i+1]/r[0], strings.ReplaceAll(name, " ", "-")+"/none")
			}
		})
	}
}
