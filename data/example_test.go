package data_test

import (
	"bytes"
	"context"
	"fmt"
	"log"

	"github.com/distill-dev/distill/data"
)

// An epoch visits the examples in a seeded order, in batches; the last
// batch holds the remainder.
func ExampleBatches() {
	order := data.Order(10, 1, 0)
	for _, batch := range data.Batches(order, 4) {
		fmt.Println(batch)
	}
	// Output:
	// [0 1 5 8]
	// [2 4 7 6]
	// [3 9]
}

func ExampleOrder() {
	fmt.Println(data.Order(5, 42, 0))
	fmt.Println(data.Order(5, 42, 0)) // the same epoch: the same order
	fmt.Println(data.Order(5, 42, 1)) // the next epoch: another order
	// Output:
	// [1 4 2 3 0]
	// [1 4 2 3 0]
	// [4 2 1 0 3]
}

// A training loop gathers each batch into reused buffers.
func ExampleDataset_Gather() {
	train, _ := data.Synthetic(data.SyntheticConfig{
		Train: 10, Test: 0, Shape: []int{1, 2, 2}, Classes: 3, Seed: 1,
	})
	const batchSize = 4
	x := make([]float32, batchSize*train.Size())
	y := make([]int32, batchSize)
	for epoch := range 2 {
		for _, idx := range data.Batches(data.Order(train.Len(), 1, epoch), batchSize) {
			train.Gather(idx, x, y)
			// Train on x[:len(idx)*train.Size()] and y[:len(idx)].
			fmt.Printf("epoch %d: batch of %d\n", epoch, len(idx))
		}
	}
	// Output:
	// epoch 0: batch of 4
	// epoch 0: batch of 4
	// epoch 0: batch of 2
	// epoch 1: batch of 4
	// epoch 1: batch of 4
	// epoch 1: batch of 2
}

func ExampleSynthetic() {
	train, test := data.Synthetic(data.SyntheticConfig{
		Train: 2048, Test: 512, Shape: []int{1, 8, 8}, Classes: 4, Seed: 1,
	})
	fmt.Println(train.Len(), test.Len(), train.Shape, train.Size(), train.Classes)
	fmt.Println(train.Validate(), test.Validate())
	// Output:
	// 2048 512 [1 8 8] 64 4
	// <nil> <nil>
}

func ExampleReadIDX() {
	var buf bytes.Buffer
	labels := &data.IDX{Type: data.IDXUint8, Dims: []int{3}, Data: []byte{5, 0, 4}}
	if err := data.WriteIDX(&buf, labels); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("% x\n", buf.Bytes())

	x, err := data.ReadIDX(&buf) // gzipped input would be read the same way
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(x.Type == data.IDXUint8, x.Dims, x.Data)
	// Output:
	// 00 00 08 01 00 00 00 03 05 00 04
	// true [3] [5 0 4]
}

// LoadMNIST with no options finds MNIST in the user cache, the Go module
// cache, or downloads it through GOPROXY; Dir reads local files instead.
func ExampleLoadMNIST() {
	train, test, err := data.LoadMNIST(context.Background(), data.MNISTOptions{
		Progress: func(done, total int64) { fmt.Printf("\rdownloading MNIST: %d/%d bytes", done, total) },
	})
	if err != nil {
		log.Fatal(err)
	}
	train = train.Subset(1000) // the first 1000 examples, without copying
	fmt.Println(train.Len(), test.Len(), train.Shape)
}
