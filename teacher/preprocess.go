package teacher

import (
	"fmt"
	"sync"

	"github.com/distill-dev/distill/backend"
)

// Preprocess wraps teacher m so that every input it is given is first
// normalised per channel, x' = (x - mean[c]) / std[c]: a teacher trained
// on normalised images then teaches a student that reads the data as it
// is. shape is the per-example input shape; its first dimension is the
// channel count of a [C, H, W] example (a flat example has one channel).
// mean and std have one value or one per channel; an empty mean is 0 and
// an empty std 1. The result is a backend.FeatureModel when m is one.
// Closing it closes m.
func Preprocess(m backend.Model, shape []int, mean, std []float64) (backend.Model, error) {
	channels, plane := 1, 1
	for _, d := range shape {
		plane *= d
	}
	if len(shape) == 3 {
		channels, plane = shape[0], shape[1]*shape[2]
	}
	if plane <= 0 {
		return nil, fmt.Errorf("teacher: preprocess: examples of shape %v", shape)
	}
	expand := func(what string, v []float64, def float64) ([]float32, error) {
		out := make([]float32, channels)
		switch len(v) {
		case 0:
			for i := range out {
				out[i] = float32(def)
			}
		case 1, channels:
			for i := range out {
				out[i] = float32(v[i%len(v)])
			}
		default:
			return nil, fmt.Errorf("teacher: preprocess: %d %s values for examples of %d channel(s) (shape %v): give one, or one per channel", len(v), what, channels, shape)
		}
		return out, nil
	}
	mu, err := expand("mean", mean, 0)
	if err != nil {
		return nil, err
	}
	sd, err := expand("std", std, 1)
	if err != nil {
		return nil, err
	}
	inv := make([]float32, channels)
	for i, s := range sd {
		if !(s > 0) {
			return nil, fmt.Errorf("teacher: preprocess: std[%d] must be > 0, got %v", i, s)
		}
		inv[i] = 1 / s
	}
	p := &preprocessed{Model: m, mean: mu, inv: inv, plane: plane, size: channels * plane}
	if fm, ok := m.(backend.FeatureModel); ok {
		return &preprocessedFeatures{p, fm}, nil
	}
	return p, nil
}

// preprocessed normalises inputs into its own buffer (the caller's
// batch is shared with the student, which must see it unchanged); mu
// guards the buffer, so that it is as safe for concurrent use as the
// model it wraps.
type preprocessed struct {
	backend.Model
	mu          sync.Mutex
	mean, inv   []float32
	plane, size int
	buf         []float32
}

func (p *preprocessed) normalise(x []float32, n int) ([]float32, error) {
	if n < 0 || len(x) < n*p.size {
		return nil, fmt.Errorf("teacher: preprocess: %d inputs for %d examples of size %d", len(x), n, p.size)
	}
	if cap(p.buf) < n*p.size {
		p.buf = make([]float32, n*p.size)
	}
	out := p.buf[:n*p.size]
	for i := range out {
		c := (i / p.plane) % len(p.mean)
		out[i] = (x[i] - p.mean[c]) * p.inv[c]
	}
	return out, nil
}

func (p *preprocessed) Forward(x []float32, n int, out []float32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	xs, err := p.normalise(x, n)
	if err != nil {
		return err
	}
	return p.Model.Forward(xs, n, out)
}

type preprocessedFeatures struct {
	*preprocessed
	fm backend.FeatureModel
}

func (p *preprocessedFeatures) ForwardFeatures(x []float32, n int, layers []string, logits []float32, feats [][]float32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	xs, err := p.normalise(x, n)
	if err != nil {
		return err
	}
	return p.fm.ForwardFeatures(xs, n, layers, logits, feats)
}
