//go:build cgo

package onnx

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/model"
)

// BenchmarkResNetInt8 compares ONNX Runtime running the QDQ export of a
// small ResNet student (CIFAR-sized, three stages of basic blocks; ONNX
// Runtime fuses it into QLinearConv, QLinearAdd and QGemm) with distill's
// INT8 runtime, one thread each, at batch 1 and 64. Each iteration runs
// every engine once, in turn, so that both see the same load on a shared
// machine; the metrics are the mean latency per batch of each and the
// ratio ours/ORT (> 1: ONNX Runtime is faster). No threshold: the
// numbers are for reading.
//
//	ONNXRUNTIME_LIB=$(onnx/testdata/install-ort.sh) go test -run '^$' -bench ResNetInt8 ./onnx
func BenchmarkResNetInt8(b *testing.B) {
	needORT(b)
	spec, err := model.Blocks(model.BlocksConfig{Name: "resnet8", Input: []int{3, 32, 32}, Classes: 10,
		Stem:   model.StemConfig{Channels: 16},
		Stages: []model.Stage{{Channels: 16}, {Channels: 32, Stride: 2}, {Channels: 64, Stride: 2}}})
	if err != nil {
		b.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		b.Fatal(err)
	}
	backendtest.RandomizeBatchNorm(spec, w, 1)
	c := quantizeCase(b, testCase{name: spec.Name, spec: spec, w: w})
	qb, _ := c.exportInt8(b)
	prog, err := c.q.Compile()
	if err != nil {
		b.Fatal(err)
	}
	defer gemm.SetThreads(gemm.SetThreads(1))

	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			x := randNormal(rand.New(rand.NewPCG(uint64(n), 1)), n*model.Numel(spec.Input))
			ours := make([]float32, n*spec.Classes)
			engines := []struct {
				name string
				run  func() error
			}{{"ours", func() error { return prog.Forward(x, n, ours) }}}
			for _, exact := range []bool{false, true} {
				s, out := ortSession(b, qb, x, n, spec, exact)
				name := "ort"
				if exact {
					name = "ort-exact"
				}
				engines = append(engines, struct {
					name string
					run  func() error
				}{name, s.Run})
				for _, e := range engines {
					if err := e.run(); err != nil {
						b.Fatal(err)
					}
				}
				a := compare(out.GetData(), ours, spec.Classes)
				b.Logf("%s vs ours: argmax agreement %.3f, max |Δ| %.3g", name, a.argmax, a.maxDiff)
			}
			spent := make([]time.Duration, len(engines))
			for b.Loop() {
				for i, e := range engines {
					start := time.Now()
					if err := e.run(); err != nil {
						b.Fatal(err)
					}
					spent[i] += time.Since(start)
				}
			}
			for i, e := range engines {
				b.ReportMetric(float64(spent[i].Microseconds())/float64(b.N), e.name+"-µs/batch")
			}
			b.ReportMetric(float64(spent[0])/float64(spent[1]), "ours/ort")
			b.ReportMetric(float64(spent[0])/float64(spent[2]), "ours/ort-exact")
		})
	}
}

// ortSession opens a one-thread ONNX Runtime session of the model for
// batches of n examples of x; exact sets ExactU8S8Option.
func ortSession(b *testing.B, onnxModel []byte, x []float32, n int, spec model.Spec, exact bool) (*ort.AdvancedSession, *ort.Tensor[float32]) {
	b.Helper()
	shape := ort.Shape{int64(n)}
	for _, d := range spec.Input {
		shape = append(shape, int64(d))
	}
	in, err := ort.NewTensor(shape, x)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Destroy() })
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(spec.Classes)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { out.Destroy() })
	opts, err := ort.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		b.Fatal(err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		b.Fatal(err)
	}
	if exact {
		if err := opts.AddSessionConfigEntry(ExactU8S8Option, "1"); err != nil {
			b.Fatal(err)
		}
	}
	s, err := ort.NewAdvancedSessionWithONNXData(onnxModel, []string{InputName}, []string{OutputName},
		[]ort.Value{in}, []ort.Value{out}, opts)
	if err != nil {
		b.Fatalf("ONNX Runtime rejects the model: %v", err)
	}
	b.Cleanup(func() { s.Destroy() })
	return s, out
}
