package pipeline_test

// The imports and the body of Example_library are README.md's library
// snippet (section "Using the library"), word for word: TestReadmeSnippet
// keeps the two the same, and go test runs this example, so the snippet
// compiles and works as written.

import (
	"context"
	"fmt"
	"log"

	"github.com/distill-dev/distill/backend"
	_ "github.com/distill-dev/distill/backend/gorgonia" // registers the "gorgonia" backend
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/student"
	"github.com/distill-dev/distill/teacher"
	"github.com/distill-dev/distill/train"
)

// Train a teacher and distil a student from it with the library alone,
// as README.md shows.
func Example_library() {
	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	ctx := context.Background()
	b, err := backend.Open("gorgonia", backend.Options{})
	check(err)
	defer b.Close()
	trainSet, testSet := data.Synthetic(data.SyntheticConfig{Train: 1024, Test: 256, Shape: []int{16}, Classes: 4, Seed: 1})
	cfg := train.Config{Epochs: 5, BatchSize: 64, LR: 1e-2, Seed: 1, Optimizer: backend.Optimizer{Kind: backend.Adam}}

	tSpec, err := model.MLP(model.MLPConfig{Name: "teacher", Input: []int{16}, Hidden: []int{64}, Classes: 4})
	check(err)
	tm, _, err := teacher.Train(ctx, b, tSpec, trainSet, cfg)
	check(err)
	defer tm.Close()
	sSpec, err := model.MLP(model.MLPConfig{Name: "student", Input: []int{16}, Hidden: []int{8}, Classes: 4})
	check(err)
	sm, _, err := student.Distill(ctx, b, sSpec, train.ModelTeacher(tm), 0.9, 4, trainSet, cfg)
	check(err)
	defer sm.Close()

	tl, err := eval.Logits(ctx, tm, testSet, 16, 4, 256)
	check(err)
	sl, err := eval.Logits(ctx, sm, testSet, 16, 4, 256)
	check(err)
	met, err := eval.Compute(sl, testSet.Y, tl, 4, 15)
	check(err)
	fmt.Printf("the student agrees with the teacher on over 90%% of test inputs: %v\n", met.Agreement > 0.9)
	// Output: the student agrees with the teacher on over 90% of test inputs: true
}
