package infer

import (
	"fmt"
	"math/rand/v2"
	"slices"
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
					for i, st := range p.p.steps {
						var ins []value
						for _, id := range st.in {
							ins = append(ins, s.vals[id])
						}
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
