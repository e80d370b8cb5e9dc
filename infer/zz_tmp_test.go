package infer

import (
	"math/rand/v2"
	"testing"

	"github.com/distill-dev/distill/model"
)

func BenchmarkTmpInt8(b *testing.B) {
	spec, _ := model.Blocks(model.BlocksConfig{Name: "r8", Input: []int{1, 28, 28}, Classes: 10,
		Stem:   model.StemConfig{Channels: 8},
		Stages: []model.Stage{{Channels: 8}, {Channels: 16, Stride: 2}, {Channels: 32, Stride: 2}}})
	w := graphNet(b, spec, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	calib := randInput(rng, 64*784)
	q, err := CompileInt8(calibrateMinMax(b, spec, w, calib, 64))
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{64} {
		out := make([]float32, n*10)
		for b.Loop() {
			q.Forward(calib[:n*784], n, out)
		}
	}
}
