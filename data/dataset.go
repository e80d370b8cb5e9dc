package data

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"

	"github.com/distill-dev/distill/model"
)

// maxElements bounds the number of values in one tensor that this package
// accepts or allocates: 1<<31 (about 45 times MNIST's training images), or
// the largest int on 32-bit platforms. Anything larger is treated as
// corrupt input rather than attempted.
const maxElements = min(1<<31, math.MaxInt)

// Dataset is an in-memory labelled classification dataset.
//
// Example i occupies X[i*Size() : (i+1)*Size()] and has label Y[i].
type Dataset struct {
	// Name identifies the dataset in reports, e.g. "mnist" or "synthetic".
	Name string
	// Shape is the per-example shape, e.g. [1, 28, 28] (channels, height,
	// width) for MNIST.
	Shape []int
	// Classes is the number of classes; labels lie in [0, Classes).
	Classes int
	// X holds Len() × Size() values, row-major. Pixel values are scaled to
	// [0, 1].
	X []float32
	// Y holds Len() labels in [0, Classes).
	Y []int32
}

// Len returns the number of examples, len(d.Y).
func (d *Dataset) Len() int { return len(d.Y) }

// Size returns the number of values in one example, the product of Shape.
func (d *Dataset) Size() int { return model.Numel(d.Shape) }

// Subset returns a dataset holding the first n examples of d. If n <= 0 or
// n >= d.Len() it returns d itself. The result shares X and Y with d (its
// slices are capped so that appending to them never overwrites d), so
// taking a subset costs no copy.
func (d *Dataset) Subset(n int) *Dataset {
	if n <= 0 || n >= d.Len() {
		return d
	}
	size := d.Size()
	return &Dataset{
		Name:    d.Name,
		Shape:   append([]int(nil), d.Shape...),
		Classes: d.Classes,
		X:       d.X[: n*size : n*size],
		Y:       d.Y[:n:n],
	}
}

// Tail returns the last n examples (n<=0 or n>=Len → d itself), sharing
// memory: a held-out slice for checks that must not see the test set.
func (d *Dataset) Tail(n int) *Dataset {
	if n <= 0 || n >= d.Len() {
		return d
	}
	size, from := d.Size(), d.Len()-n
	return &Dataset{
		Name:    d.Name,
		Shape:   append([]int(nil), d.Shape...),
		Classes: d.Classes,
		X:       d.X[from*size : d.Len()*size : d.Len()*size],
		Y:       d.Y[from:d.Len():d.Len()],
	}
}

// Gather copies the examples listed in idx, in that order, into x and
// their labels into y: example idx[k] goes to x[k*Size() : (k+1)*Size()]
// and y[k]. y may be nil when only inputs are needed. The buffers are
// typically reused across batches.
//
// Gather's arguments come from the program, not from its users, so a
// violated precondition is a bug and Gather panics with a message saying
// which: x shorter than len(idx)*Size(), y non-nil and shorter than
// len(idx), or an index outside [0, Len()).
func (d *Dataset) Gather(idx []int, x []float32, y []int32) {
	size := d.Size()
	if len(x) < len(idx)*size {
		panic(fmt.Sprintf("data: Gather of %d examples of size %d needs len(x) >= %d, have %d",
			len(idx), size, len(idx)*size, len(x)))
	}
	if y != nil && len(y) < len(idx) {
		panic(fmt.Sprintf("data: Gather of %d examples needs len(y) >= %d, have %d",
			len(idx), len(idx), len(y)))
	}
	n := d.Len()
	for k, i := range idx {
		if i < 0 || i >= n {
			panic(fmt.Sprintf("data: Gather index idx[%d] = %d out of range [0, %d)", k, i, n))
		}
		copy(x[k*size:(k+1)*size], d.X[i*size:(i+1)*size])
		if y != nil {
			y[k] = d.Y[i]
		}
	}
}

// Validate reports whether d is internally consistent: a positive class
// count, a shape with positive dimensions, len(X) == Len()*Size(), every
// label in [0, Classes) and every value finite. It does not require values
// to lie in [0, 1], so normalised datasets validate too.
func (d *Dataset) Validate() error {
	if d == nil {
		return errors.New("data: dataset is nil")
	}
	if d.Classes <= 0 {
		return fmt.Errorf("data: dataset %q has %d classes; it needs at least 1", d.Name, d.Classes)
	}
	size, err := numel(d.Shape)
	if err != nil {
		return fmt.Errorf("data: dataset %q: %w", d.Name, err)
	}
	if len(d.X) != len(d.Y)*size {
		return fmt.Errorf("data: dataset %q has %d labels of shape %v (%d values each), so X should hold %d values, but it holds %d",
			d.Name, len(d.Y), d.Shape, size, len(d.Y)*size, len(d.X))
	}
	for i, y := range d.Y {
		if y < 0 || int(y) >= d.Classes {
			return fmt.Errorf("data: dataset %q: label %d of example %d is outside [0, %d)", d.Name, y, i, d.Classes)
		}
	}
	for i, v := range d.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("data: dataset %q: value %d of example %d is %v; values must be finite",
				d.Name, i%size, i/size, v)
		}
	}
	return nil
}

// numel returns the product of shape, or an error if shape is empty, has a
// non-positive dimension, or holds more than maxElements values.
func numel(shape []int) (int, error) {
	if len(shape) == 0 {
		return 0, errors.New("shape is empty; give at least one dimension, e.g. [1, 28, 28]")
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return 0, fmt.Errorf("shape %v has a dimension %d; every dimension must be positive", shape, d)
		}
		if n > maxElements/d {
			return 0, fmt.Errorf("shape %v has more than %d values per example", shape, maxElements)
		}
		n *= d
	}
	return n, nil
}

// Order returns a permutation of [0, n) to visit a dataset of n examples
// in during one epoch. The same (n, seed, epoch) always gives the same
// order, on every platform and Go version; different epochs give
// independent orders. n <= 0 gives an empty order.
//
// The permutation is a Fisher–Yates shuffle driven by a math/rand/v2 PCG
// generator whose two seed words are SplitMix64 hashes of seed and of
// epoch (each combined with a constant that separates this use from the
// other random streams of the package), and each swap index is drawn with
// Lemire's unbiased bounded-integer method.
func Order(n int, seed int64, epoch int) []int {
	if n <= 0 {
		return []int{}
	}
	r := newStream(seed, streamOrder, uint64(epoch))
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(r.uintn(uint64(i) + 1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// Batches splits order into consecutive batches of at most size indices.
// The last batch holds the remainder and is kept even when shorter than
// size, so every example is visited once per epoch. The batches share
// memory with order (capped, so appending to one never overwrites the
// next). size <= 0 puts the whole order in one batch; an empty order gives
// no batches.
func Batches(order []int, size int) [][]int {
	if len(order) == 0 {
		return nil
	}
	if size <= 0 || size > len(order) {
		size = len(order)
	}
	out := make([][]int, 0, (len(order)+size-1)/size)
	for lo := 0; lo < len(order); lo += size {
		hi := min(lo+size, len(order))
		out = append(out, order[lo:hi:hi])
	}
	return out
}

// Stream identifiers keep the random streams of different uses apart even
// when they share a user seed.
const (
	streamOrder uint64 = iota + 1
	streamPrototypes
	streamTrain
	streamTest
	streamSplit
)

// stream is a deterministic random source: PCG plus the derived draws this
// package needs, implemented here so that their algorithms are pinned.
type stream struct{ pcg *rand.PCG }

// newStream seeds a PCG from the user seed, a stream identifier and a
// sub-index (the epoch for Order).
func newStream(seed int64, id, sub uint64) stream {
	hi := splitmix64(uint64(seed) ^ splitmix64(id))
	lo := splitmix64(sub ^ splitmix64(id<<32|0x9e37))
	return stream{rand.NewPCG(hi, lo)}
}

// splitmix64 is the SplitMix64 output function, a bijective mixer that
// turns nearby seeds into unrelated ones.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// uintn returns a uniform integer in [0, n), n > 0, by Lemire's
// multiply-and-reject method (no modulo bias).
func (s stream) uintn(n uint64) uint64 {
	for {
		hi, lo := bits.Mul64(s.pcg.Uint64(), n)
		if lo >= n || lo >= (-n)%n {
			return hi
		}
	}
}

// float64 returns a uniform float in [0, 1) with 53 random bits.
func (s stream) float64() float64 {
	return float64(s.pcg.Uint64()>>11) * 0x1p-53
}

// normal returns a standard normal sample by the Box–Muller transform.
func (s stream) normal() float64 {
	u1 := 1 - s.float64() // (0, 1], so the logarithm is finite
	u2 := s.float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}
