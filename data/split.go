package data

import (
	"fmt"
	"math"
	"slices"
)

// Split divides d into a training and a test set, for data that comes
// without a test split. Each class contributes round(fraction × its
// examples) to the test set, chosen by a shuffle seeded by seed, so the
// classes keep their proportions and the same seed gives the same
// split; a class with two or more examples keeps at least one on each
// side. Each side comes in an order shuffled by the seed, so that its
// first examples (data.train_limit) cover the classes even when d is
// sorted by class, as image folders are. It is an error if either side
// would be empty.
func Split(d *Dataset, fraction float64, seed int64) (train, test *Dataset, err error) {
	if !(fraction > 0 && fraction < 1) {
		return nil, nil, fmt.Errorf("split %s: the test fraction must be between 0 and 1, got %v", d.Name, fraction)
	}
	byClass := map[int32][]int{}
	for i, y := range d.Y {
		byClass[y] = append(byClass[y], i)
	}
	r := newStream(seed, streamSplit, 0)
	isTest := make([]bool, d.Len())
	for _, c := range slices.Sorted(func(yield func(int32) bool) {
		for c := range byClass {
			if !yield(c) {
				return
			}
		}
	}) {
		idx := byClass[c]
		k := int(math.Round(fraction * float64(len(idx))))
		if len(idx) >= 2 {
			k = min(max(k, 1), len(idx)-1)
		}
		r.shuffle(idx)
		for _, i := range idx[:k] {
			isTest[i] = true
		}
	}
	var trainIdx, testIdx []int
	for i, t := range isTest {
		if t {
			testIdx = append(testIdx, i)
		} else {
			trainIdx = append(trainIdx, i)
		}
	}
	if len(trainIdx) == 0 || len(testIdx) == 0 {
		return nil, nil, fmt.Errorf("split %s: %d examples leave %d for training and %d for testing with test fraction %v; add examples or change data.test_fraction",
			d.Name, d.Len(), len(trainIdx), len(testIdx), fraction)
	}
	r.shuffle(trainIdx)
	r.shuffle(testIdx)
	return d.pick(trainIdx), d.pick(testIdx), nil
}

// Shuffled returns a copy of d with its examples in an order shuffled by
// seed: for data stored sorted by class, whose first examples would
// otherwise all be of one class.
func (d *Dataset) Shuffled(seed int64) *Dataset {
	return d.pick(Order(d.Len(), seed, -1)) // epoch -1: no training epoch's order
}

// shuffle permutes p by Fisher–Yates with the package's pinned draws.
func (s stream) shuffle(p []int) {
	for i := len(p) - 1; i > 0; i-- {
		j := int(s.uintn(uint64(i) + 1))
		p[i], p[j] = p[j], p[i]
	}
}

// pick copies the listed examples into a new dataset.
func (d *Dataset) pick(idx []int) *Dataset {
	out := &Dataset{
		Name:    d.Name,
		Shape:   slices.Clone(d.Shape),
		Classes: d.Classes,
		X:       make([]float32, len(idx)*d.Size()),
		Y:       make([]int32, len(idx)),
	}
	d.Gather(idx, out.X, out.Y)
	return out
}
