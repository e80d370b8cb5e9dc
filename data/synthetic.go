package data

import (
	"fmt"
	"math"

	"github.com/distill-dev/distill/model"
)

// DefaultSyntheticNoise is the standard deviation of the Gaussian noise
// that [Synthetic] adds when SyntheticConfig.Noise is 0.
const DefaultSyntheticNoise = 0.3

// SyntheticConfig sizes a generated dataset.
type SyntheticConfig struct {
	// Train and Test are the numbers of examples to generate (>= 0).
	Train, Test int
	// Shape is the per-example shape, e.g. [1, 8, 8]; every dimension > 0.
	Shape []int
	// Classes is the number of classes (>= 1).
	Classes int
	// Seed determines the whole dataset.
	Seed int64
	// Noise is the standard deviation of the Gaussian noise added to each
	// value, before clipping to [0, 1]. 0 means DefaultSyntheticNoise.
	Noise float64
}

// Validate reports whether cfg describes a dataset Synthetic can build,
// with a message naming the field to fix.
func (cfg SyntheticConfig) Validate() error {
	if cfg.Train < 0 || cfg.Test < 0 {
		return fmt.Errorf("data: synthetic dataset: train and test sizes must be >= 0, got %d and %d", cfg.Train, cfg.Test)
	}
	if cfg.Classes < 1 {
		return fmt.Errorf("data: synthetic dataset: classes is %d; it must be at least 1", cfg.Classes)
	}
	size, err := numel(cfg.Shape)
	if err != nil {
		return fmt.Errorf("data: synthetic dataset: %w", err)
	}
	if math.IsNaN(cfg.Noise) || math.IsInf(cfg.Noise, 0) || cfg.Noise < 0 {
		return fmt.Errorf("data: synthetic dataset: noise is %v; it must be a finite number >= 0 (0 = default %v)",
			cfg.Noise, DefaultSyntheticNoise)
	}
	for _, n := range []int{cfg.Train, cfg.Test, cfg.Classes} {
		if n > maxElements/size {
			return fmt.Errorf("data: synthetic dataset: %d examples of shape %v exceed the limit of %d values; make it smaller",
				n, cfg.Shape, maxElements)
		}
	}
	return nil
}

// Synthetic generates a learnable classification task, deterministic from
// cfg.Seed: each class has a prototype whose values are drawn uniformly
// from [0, 1), and an example is its class's prototype plus independent
// Gaussian noise of standard deviation cfg.Noise, clipped to [0, 1].
// Labels are drawn uniformly at random. Train and test examples come from
// the same distribution (the same prototypes) through different random
// streams, so changing cfg.Test does not change the training set (nor the
// reverse). The algorithm is fixed (PCG, Box–Muller), so a seed gives the
// same data on every platform and Go version.
//
// Synthetic panics if cfg is invalid (see [SyntheticConfig.Validate]), as
// regexp.MustCompile does for a bad pattern; use [NewSynthetic] when the
// configuration comes from a user.
func Synthetic(cfg SyntheticConfig) (train, test *Dataset) {
	train, test, err := NewSynthetic(cfg)
	if err != nil {
		panic(err)
	}
	return train, test
}

// NewSynthetic is [Synthetic] returning an error, instead of panicking,
// when cfg is invalid.
func NewSynthetic(cfg SyntheticConfig) (train, test *Dataset, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	noise := cfg.Noise
	if noise == 0 {
		noise = DefaultSyntheticNoise
	}
	size := model.Numel(cfg.Shape)

	protos := make([]float32, cfg.Classes*size)
	r := newStream(cfg.Seed, streamPrototypes, 0)
	for i := range protos {
		protos[i] = float32(r.float64())
	}

	gen := func(n int, id uint64) *Dataset {
		d := &Dataset{
			Name:    "synthetic",
			Shape:   append([]int(nil), cfg.Shape...),
			Classes: cfg.Classes,
			X:       make([]float32, n*size),
			Y:       make([]int32, n),
		}
		r := newStream(cfg.Seed, id, 0)
		for i := range n {
			c := int(r.uintn(uint64(cfg.Classes)))
			d.Y[i] = int32(c)
			p := protos[c*size : (c+1)*size]
			x := d.X[i*size : (i+1)*size]
			for j := range x {
				v := float64(p[j]) + noise*r.normal()
				x[j] = float32(min(max(v, 0), 1))
			}
		}
		return d
	}
	return gen(cfg.Train, streamTrain), gen(cfg.Test, streamTest), nil
}
