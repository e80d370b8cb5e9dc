package student_test

import (
	"context"
	"fmt"

	"github.com/distill-dev/distill/backend"
	_ "github.com/distill-dev/distill/backend/gorgonia"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/student"
	"github.com/distill-dev/distill/teacher"
	"github.com/distill-dev/distill/train"
)

// Distil a small student from a teacher in a few lines of library code.
func ExampleDistill() {
	ctx := context.Background()
	b, _ := backend.Open("gorgonia", backend.Options{})
	trainSet, testSet := data.Synthetic(data.SyntheticConfig{Train: 1024, Test: 256, Shape: []int{16}, Classes: 4, Seed: 1})

	cfg := train.Config{Epochs: 5, BatchSize: 64, LR: 1e-2, Seed: 1, Optimizer: backend.Optimizer{Kind: backend.Adam}}
	tSpec, _ := model.MLP(model.MLPConfig{Name: "teacher", Input: []int{16}, Hidden: []int{64}, Classes: 4})
	tm, _, err := teacher.Train(ctx, b, tSpec, trainSet, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tm.Close()

	sSpec, _ := model.MLP(model.MLPConfig{Name: "student", Input: []int{16}, Hidden: []int{8}, Classes: 4})
	sm, _, err := student.Distill(ctx, b, sSpec, train.ModelTeacher(tm), 0.9, 4, trainSet, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sm.Close()

	tl, _ := eval.Logits(ctx, tm, testSet, 16, 4, 256)
	sl, _ := eval.Logits(ctx, sm, testSet, 16, 4, 256)
	met, _ := eval.Compute(sl, testSet.Y, tl, 4, 15)
	fmt.Printf("student agrees with the teacher on more than 90%% of test inputs: %v\n", met.Agreement > 0.9)
	// Output: student agrees with the teacher on more than 90% of test inputs: true
}
