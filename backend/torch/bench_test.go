//go:build torch

package torch

import (
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// BenchmarkDistillStep times one distillation step as
// ../shared/ref/torch/train_bench.py --modes distill does: the frozen
// teacher 784-1200-1200-10 computes logits (Forward, no autograd), then the
// student 784-800-800-10 takes an Adam step on
// 0.9·T²·KL + 0.1·CE at T = 4, batch 128, on random data. It reports
// samples/s. The device is $DISTILL_TORCH_DEVICE (default auto); the
// intra-op threads are runtime.NumCPU(), as the reference's --threads 2 on
// a 2-vCPU machine (libtorch's own default can be 1 there).
func BenchmarkDistillStep(b *testing.B) {
	const batch, nb, ny = 128, 64, 1031
	dev := os.Getenv("DISTILL_TORCH_DEVICE")
	be, err := Open(backend.Options{Device: dev, Threads: runtime.NumCPU()})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	mlp := func(name string, h int) (model.Spec, model.Weights) {
		spec, err := model.MLP(model.MLPConfig{Name: name, Input: []int{784}, Hidden: []int{h, h}, Classes: 10})
		if err != nil {
			b.Fatal(err)
		}
		w, err := spec.Init(1)
		if err != nil {
			b.Fatal(err)
		}
		return spec, w
	}
	ts, tw := mlp("teacher", 1200)
	ss, sw := mlp("student", 800)
	teacher, err := be.Load(ts, tw)
	if err != nil {
		b.Fatal(err)
	}
	defer teacher.Close()
	student, err := be.Load(ss, sw)
	if err != nil {
		b.Fatal(err)
	}
	defer student.Close()
	tr, err := be.NewTrainer(student, backend.TrainConfig{MaxBatch: batch, Objective: loss.Hinton(0.9, 4), Optimizer: backend.Optimizer{Kind: backend.Adam}})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()

	// As in train_bench.py: a pool of input batches, and labels from a
	// larger pool indexed with another stride, so that the nets cannot
	// memorise the data (a collapsing loss brings subnormal slowdowns).
	rng := rand.New(rand.NewPCG(0, 0))
	xs := make([][]float32, nb)
	for i := range xs {
		xs[i] = randn(rng, batch*784, 1)
	}
	ys := make([][]int32, ny)
	for i := range ys {
		ys[i] = randLabels(rng, batch, 10)
	}
	tl := make([]float32, batch*10)
	step := func(k int) loss.Value {
		x := xs[k%nb]
		if err := teacher.Forward(x, batch, tl); err != nil {
			b.Fatal(err)
		}
		v, err := tr.Step(&backend.Batch{N: batch, X: x, Labels: ys[(k*7+k/nb)%ny], TeacherLogits: tl, LR: 1e-3})
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	for k := 0; k < 30; k++ { // warm-up, as the reference does
		step(k)
	}
	b.ResetTimer()
	var v loss.Value
	for k := 0; k < b.N; k++ {
		v = step(30 + k)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(v.Total, "final-loss")
}

// BenchmarkResNetStep times one training step of a small ResNet as
// bench/torchref/resnet_step.py does in PyTorch: model.Blocks with a
// 16-channel stem and one basic block per stage of 16, 32 (stride 2) and
// 64 (stride 2) channels on 1×28×28 inputs, 10 classes; batch 128,
// cross-entropy, SGD with momentum 0.9 and weight decay 5e-4, batchnorms
// in training mode; random data from a pool of batches. It reports
// samples/s. Device and threads as BenchmarkDistillStep.
func BenchmarkResNetStep(b *testing.B) {
	const batch, nb, ny = 128, 16, 13
	be, err := Open(backend.Options{Device: os.Getenv("DISTILL_TORCH_DEVICE"), Threads: runtime.NumCPU()})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	spec, err := model.Blocks(model.BlocksConfig{Name: "resnet", Input: []int{1, 28, 28}, Classes: 10,
		Stem:   model.StemConfig{Channels: 16},
		Stages: []model.Stage{{Channels: 16}, {Channels: 32, Stride: 2}, {Channels: 64, Stride: 2}}})
	if err != nil {
		b.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		b.Fatal(err)
	}
	m, err := be.Load(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	tr, err := be.NewTrainer(m, backend.TrainConfig{MaxBatch: batch, Objective: loss.CrossEntropyOnly,
		Optimizer: backend.Optimizer{Kind: backend.SGD, Momentum: 0.9, WeightDecay: 5e-4}})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	rng := rand.New(rand.NewPCG(0, 0))
	xs := make([][]float32, nb)
	for i := range xs {
		xs[i] = randn(rng, batch*28*28, 1)
	}
	ys := make([][]int32, ny)
	for i := range ys {
		ys[i] = randLabels(rng, batch, 10)
	}
	step := func(k int) loss.Value {
		v, err := tr.Step(&backend.Batch{N: batch, X: xs[k%nb], Labels: ys[k%ny], LR: 0.05})
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	for k := 0; k < 5; k++ { // warm-up
		step(k)
	}
	b.ResetTimer()
	var v loss.Value
	for k := 0; k < b.N; k++ {
		v = step(5 + k)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(v.Total, "final-loss")
}
