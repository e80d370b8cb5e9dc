package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// The resnet mode (issue 12): one training step of a ResNet basic-block
// stack, as bench/torchref/resnet_step.py runs it in PyTorch and as the
// backends' BenchmarkResNetStep: a 16-channel stem, one basic block per
// stage of 16, 32 (stride 2) and 64 (stride 2) channels, 1×28×28 inputs,
// batch 128, cross-entropy, SGD with momentum 0.9 and weight decay
// 5e-4, batchnorms in training mode.
//
//	go run ./bench/train -modes resnet
const resnetMode = "resnet"

// resnetScript is the PyTorch side of the resnet mode; -ref names the
// MLP modes' script.
const resnetScript = "bench/torchref/resnet_step.py"

func resnetSpec() (model.Spec, error) {
	return model.Blocks(model.BlocksConfig{Name: "resnet", Input: []int{1, 28, 28}, Classes: 10,
		Stem:   model.StemConfig{Channels: 16},
		Stages: []model.Stage{{Channels: 16}, {Channels: 32, Stride: 2}, {Channels: 64, Stride: 2}}})
}

// resnetFLOPs counts per sample the convolutions' and linear layers'
// multiply-adds (two FLOPs each) forward, for the weight gradients and
// for the input gradients but the first layer's, which no step needs.
func resnetFLOPs() float64 {
	spec, err := resnetSpec()
	if err != nil {
		return 0
	}
	shapes, err := spec.Shapes()
	if err != nil {
		return 0
	}
	var all, first float64
	for i, l := range spec.Layers {
		in, out := spec.InputShape(shapes, i), shapes[i]
		var macs float64
		switch l.Kind {
		case model.KindConv2D:
			macs = float64(l.Out * in[0] / l.ConvGroups() * l.Kernel * l.Kernel * out[1] * out[2])
		case model.KindLinear:
			macs = float64(model.Numel(in) * l.Out)
		}
		if i == 0 {
			first = 2 * macs
		}
		all += 2 * macs
	}
	return 3*all - first
}

// measureResNet returns samples/s of the resnet step after 5 warm-up
// steps, over a pool of batches as the reference's.
func measureResNet(b backend.Backend, steps int) (float64, error) {
	const n = 128
	spec, err := resnetSpec()
	if err != nil {
		return 0, err
	}
	w, err := spec.Init(1)
	if err != nil {
		return 0, err
	}
	m, err := b.Load(spec, w)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	tr, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: n, Objective: loss.CrossEntropyOnly,
		Optimizer: backend.Optimizer{Kind: backend.SGD, Momentum: 0.9, WeightDecay: 5e-4}})
	if err != nil {
		return 0, err
	}
	defer tr.Close()
	var xs [][]float32
	var ys [][]int32
	for i := 0; i < 8; i++ {
		x, y, _ := backendtest.Inputs(spec, n, uint64(i))
		xs, ys = append(xs, x), append(ys, y)
	}
	step := func(i int) error {
		_, err := tr.Step(&backend.Batch{N: n, X: xs[i%len(xs)], Labels: ys[(i/len(xs)+i)%len(ys)], LR: 0.05})
		return err
	}
	return samplesPerSecond(step, n, steps)
}

// resnetRef runs resnetScript once on the CPU with threads intra-op
// threads, in referenceEnv (OMP_WAIT_POLICY=PASSIVE, so that its idle
// OpenMP threads do not spin against ours, and the torch backend's malloc
// settings).
func resnetRef(python string, steps, threads int) (refResult, error) {
	cmd := exec.Command(python, resnetScript, "--threads", fmt.Sprint(threads), "--steps", fmt.Sprint(steps), "--runs", "1", "--warmup", "5")
	cmd.Env = referenceEnv()
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return refResult{}, fmt.Errorf("%s: %w", resnetScript, err)
	}
	var r struct {
		SamplesPerS float64 `json:"samples_per_s"`
		Torch       string  `json:"torch"`
		Threads     int     `json:"threads"`
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return refResult{}, fmt.Errorf("%s output %q: %w", resnetScript, out, err)
	}
	return refResult{r.SamplesPerS, fmt.Sprintf("torch %s, %d intra-op thread(s)", r.Torch, r.Threads)}, nil
}
