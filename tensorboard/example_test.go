package tensorboard_test

import (
	"fmt"
	"log"
	"os"

	"github.com/distill-dev/distill/tensorboard"
)

func Example() {
	dir, err := os.MkdirTemp("", "tb")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// One writer per run (or per model) directory; tensorboard --logdir
	// dir then plots the curves.
	w, err := tensorboard.Create(dir)
	if err != nil {
		log.Fatal(err)
	}
	for step, loss := range []float64{2.3, 0.9, 0.4} {
		if err := w.Scalar("loss/train", int64(step), loss); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	f, err := os.Open(w.Path())
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	events, err := tensorboard.ReadEvents(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(events[0].FileVersion)
	for _, e := range events[1:] {
		fmt.Printf("step %d: %s = %.1f\n", e.Step, e.Values[0].Tag, e.Values[0].SimpleValue)
	}
	// Output:
	// brain.Event:2
	// step 0: loss/train = 2.3
	// step 1: loss/train = 0.9
	// step 2: loss/train = 0.4
}
