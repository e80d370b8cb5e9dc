package gorgonia_test

import (
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// The shapes of ../shared/ref/torch/train_bench.py: Hinton's teacher
// 784-1200-1200-10 and student 784-800-800-10, batch 128, Adam. Compare
// samples/s with that script run in the same session (bench/ does both).

func mlp(b *testing.B, h int) model.Spec {
	s, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{784}, Hidden: []int{h, h}, Classes: 10})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchStep(b *testing.B, spec model.Spec, obj loss.Objective, teacher backend.Model) {
	be, _ := backend.Open("gorgonia", backend.Options{})
	w, _ := spec.Init(1)
	m, err := be.Load(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	const n = 128
	tr, err := be.NewTrainer(m, backend.TrainConfig{MaxBatch: n, Objective: obj, Optimizer: backend.Optimizer{Kind: backend.Adam}})
	if err != nil {
		b.Fatal(err)
	}
	x, y, _ := backendtest.Inputs(spec, n, 1)
	var soft []float32
	if teacher != nil {
		soft = make([]float32, n*10)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if teacher != nil {
			if err := teacher.Forward(x, n, soft); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := tr.Step(&backend.Batch{N: n, X: x, Labels: y, TeacherLogits: soft, LR: 1e-3}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkTeacherStep(b *testing.B) { benchStep(b, mlp(b, 1200), loss.CrossEntropyOnly, nil) }
func BenchmarkStudentStep(b *testing.B) { benchStep(b, mlp(b, 800), loss.CrossEntropyOnly, nil) }

func BenchmarkDistillStep(b *testing.B) {
	be, _ := backend.Open("gorgonia", backend.Options{})
	spec := mlp(b, 1200)
	w, _ := spec.Init(2)
	t, err := be.Load(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	benchStep(b, mlp(b, 800), loss.Hinton(0.9, 4), t)
}

// BenchmarkResNetStep is one Adam step of a small ResNet (basic blocks,
// stem 16, stages 16/32/64 with strides 1/2/2) on 128 1×28×28 images:
// convolutions, batchnorms in training mode and residual adds.
func BenchmarkResNetStep(b *testing.B) {
	spec, err := model.Blocks(model.BlocksConfig{Name: "resnet", Input: []int{1, 28, 28}, Classes: 10,
		Stem:   model.StemConfig{Channels: 16},
		Stages: []model.Stage{{Channels: 16}, {Channels: 32, Stride: 2}, {Channels: 64, Stride: 2}}})
	if err != nil {
		b.Fatal(err)
	}
	benchStep(b, spec, loss.CrossEntropyOnly, nil)
}

// BenchmarkMobileStep is the same with inverted residuals (depthwise
// convolutions, relu6), the grouped convolution's main use.
func BenchmarkMobileStep(b *testing.B) {
	spec, err := model.Blocks(model.BlocksConfig{Name: "mobile", Input: []int{1, 28, 28}, Classes: 10,
		Stem:   model.StemConfig{Channels: 16},
		Stages: []model.Stage{{Block: model.BlockInverted, Channels: 16, Expand: 1}, {Block: model.BlockInverted, Channels: 24, Stride: 2}, {Block: model.BlockInverted, Channels: 32, Stride: 2}}})
	if err != nil {
		b.Fatal(err)
	}
	benchStep(b, spec, loss.CrossEntropyOnly, nil)
}
