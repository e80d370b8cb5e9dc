package backendtest

import (
	"math/rand/v2"
	"testing"

	"github.com/distill-dev/distill/model"
)

// GraphSpecs are the small graph networks every engine is checked on:
// between them they use every layer kind that reads named inputs or
// keeps running statistics.
//
//   - resnet: Blocks with basic blocks, an identity and a projection
//     shortcut (stride 2), bias-free convs with foldable batchnorms.
//   - mobile: Blocks with inverted residuals (expansion, depthwise
//     convolution, relu6) and a stage without a shortcut.
//   - mixed: written node by node: a grouped conv with bias, two
//     branches from the input joined by an add, a batchnorm after the add
//     (so not foldable), avgpool with padding, silu, a bias-free linear
//     and a batchnorm1d.
func GraphSpecs(t testing.TB) []model.Spec {
	resnet, err := model.Blocks(model.BlocksConfig{Name: "resnet", Input: []int{2, 8, 8}, Classes: 3,
		Stem:   model.StemConfig{Channels: 4},
		Stages: []model.Stage{{Channels: 4}, {Channels: 6, Stride: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	mobile, err := model.Blocks(model.BlocksConfig{Name: "mobile", Input: []int{3, 6, 6}, Classes: 4,
		Stem:   model.StemConfig{Channels: 4, Stride: 2},
		Stages: []model.Stage{{Block: model.BlockInverted, Channels: 4, Expand: 2, Repeat: 2}, {Block: model.BlockInverted, Channels: 5, Expand: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	mixed := model.Spec{Name: "mixed", Input: []int{4, 6, 6}, Classes: 3, Layers: []model.Layer{
		{Name: "gconv", Kind: model.KindConv2D, Out: 6, Kernel: 3, Padding: 1, Groups: 2},
		{Name: "act_g", Kind: model.KindReLU6},
		{Name: "side", Kind: model.KindConv2D, Out: 6, Kernel: 1, NoBias: true, Inputs: []string{model.InputName}},
		{Name: "sum", Kind: model.KindAdd, Inputs: []string{"act_g", "side"}},
		{Name: "bn_sum", Kind: model.KindBatchNorm, Momentum: 0.3},
		{Name: "pool", Kind: model.KindAvgPool, Kernel: 3, Stride: 2, Padding: 1},
		{Name: "act_p", Kind: model.KindSiLU},
		{Name: "flatten", Kind: model.KindFlatten},
		{Name: "fc1", Kind: model.KindLinear, Out: 5, NoBias: true},
		{Name: "bn1", Kind: model.KindBatchNorm, Eps: 1e-3},
		{Name: "act1", Kind: model.KindSiLU},
		{Name: "fc2", Kind: model.KindLinear, Out: 3},
	}}
	if err := mixed.Validate(); err != nil {
		t.Fatal(err)
	}
	return []model.Spec{resnet, mobile, mixed}
}

// RandomizeBatchNorm gives every batchnorm of spec in w non-trivial
// affine parameters and running statistics (γ in [0.5, 1.5], β and the
// mean in ±0.5, the variance in [0.5, 2]), so that eval-mode checks see
// the difference between running and batch statistics, and between
// folding and not.
func RandomizeBatchNorm(spec model.Spec, w model.Weights, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 13))
	for _, l := range spec.Layers {
		if l.Kind != model.KindBatchNorm {
			continue
		}
		for _, r := range []struct {
			suffix    string
			lo, width float64
		}{{".weight", 0.5, 1}, {".bias", -0.5, 1}, {".running_mean", -0.5, 1}, {".running_var", 0.5, 1.5}} {
			t := w[l.Name+r.suffix]
			for i := range t.Data {
				t.Data[i] = float32(r.lo + r.width*rng.Float64())
			}
		}
	}
}
