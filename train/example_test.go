package train_test

import (
	"context"
	"fmt"
	"math"

	"github.com/distill-dev/distill/backend"
	_ "github.com/distill-dev/distill/backend/gorgonia"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/train"
)

// points is a user's own data source: 2-D points labelled by which side
// of the line y = x they lie on. Any type with Len and Gather will do.
type points struct{ n int }

func (p points) Len() int { return p.n }

func (p points) Gather(idx []int, x []float32, y []int32) {
	for i, j := range idx {
		a := float32(math.Sin(float64(j) * 1.7))
		b := float32(math.Cos(float64(j) * 2.3))
		x[2*i], x[2*i+1] = a, b
		y[i] = 0
		if b > a {
			y[i] = 1
		}
	}
}

// Train a model of your own design on your own data, without a recipe.
func ExampleTrain() {
	b, _ := backend.Open("gorgonia", backend.Options{})
	spec, _ := model.MLP(model.MLPConfig{Name: "mine", Input: []int{2}, Hidden: []int{16}, Classes: 2})
	w, _ := spec.Init(1)
	m, _ := b.Load(spec, w)
	defer m.Close()

	data := points{n: 512}
	res, err := train.Train(context.Background(), b, m, data, train.Config{
		Epochs: 20, BatchSize: 64, LR: 0.01, Seed: 1,
		Objective: loss.CrossEntropyOnly,
		Optimizer: backend.Optimizer{Kind: backend.Adam},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	logits, _ := eval.Logits(context.Background(), m, data, 2, 2, 128)
	y := make([]int32, data.n)
	idx := make([]int, data.n)
	for i := range idx {
		idx[i] = i
	}
	data.Gather(idx, make([]float32, 2*data.n), y)
	met, _ := eval.Compute(logits, y, nil, 2, 10)
	fmt.Printf("%d steps, accuracy above 95%%: %v\n", res.Steps, met.Accuracy > 0.95)
	// Output: 160 steps, accuracy above 95%: true
}
