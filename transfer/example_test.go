package transfer_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/transfer"
)

// countingTeacher is a stand-in model: logit j of an example is j times
// the example's mean value. It counts the examples it sees.
type countingTeacher struct {
	size, classes, seen int
}

func (c *countingTeacher) Forward(x []float32, n int, out []float32) error {
	c.seen += n
	for r := range n {
		var mean float32
		for _, v := range x[r*c.size : (r+1)*c.size] {
			mean += v / float32(c.size)
		}
		for j := range c.classes {
			out[r*c.classes+j] = float32(j) * mean
		}
	}
	return nil
}

func ExampleCache_GetOrBuild() {
	dir, _ := os.MkdirTemp("", "transfer-example")
	defer os.RemoveAll(dir)

	// Eight 8×8 training images in two classes.
	train := &data.Dataset{Name: "tiny", Shape: []int{1, 8, 8}, Classes: 2,
		X: make([]float32, 8*64), Y: []int32{0, 1, 0, 1, 0, 1, 0, 1}}
	for i := range train.X {
		train.X[i] = float32(i%64) / 63
	}
	model := &countingTeacher{size: 64, classes: 2}
	teachers := []transfer.Teacher{{
		Name:   "teacher",
		SHA256: strings.Repeat("ab", 32), // use transfer.HashFiles(model.Paths(checkpoint)) for real weights
		Model:  model,
	}}
	spec := transfer.BuildSpec{
		Data:    train,
		Copies:  3, // each image plus 3 jittered, rotated copies
		Augment: augment.Config{Shift: 2, Rotate: 10},
		Seed:    1,
	}
	cache := transfer.Cache{Dir: dir}

	set, err := cache.GetOrBuild(context.Background(), spec, teachers, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("rows:", set.Len(), "teacher ran on:", model.seen)

	// A second run finds the set on disk and runs no teacher.
	set, err = cache.GetOrBuild(context.Background(), spec, teachers, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("rows:", set.Len(), "teacher ran on:", model.seen)

	// The set feeds train.Train: it is the Source, and its ensemble at
	// the distillation temperature is the Teacher.
	teacher, _ := set.Ensemble(4)
	logits := make([]float32, 2)
	_ = teacher.Logits([]int{13}, nil, 1, logits)
	x, y := make([]float32, 64), make([]int32, 1)
	set.Gather([]int{13}, x, y)
	fmt.Println("row 13 is copy", 13/set.Examples(), "of example", 13%set.Examples(), "with label", y[0])
	// Output:
	// rows: 32 teacher ran on: 32
	// rows: 32 teacher ran on: 32
	// row 13 is copy 1 of example 5 with label 1
}
