package augment

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/distill-dev/distill/data"
)

// Rows writes rows idx of an augmented view of base into x: base holds n
// examples back to back (as data.Dataset.X), and row r is copy r / n of
// example r % n (copy 0 is the example itself, see Apply). If mixes is
// not nil, mixes[k] receives how row idx[k] was mixed. Rows are
// independent, so a large batch is computed on several cores without
// changing a bit. A violated precondition panics, as in Apply.
func (p *Pipeline) Rows(x, base []float32, idx []int, mixes []Mix) {
	n := len(base) / p.size
	if len(x) < len(idx)*p.size || (mixes != nil && len(mixes) < len(idx)) {
		panic(fmt.Sprintf("augment: Rows of %d rows needs len(x) >= %d and len(mixes) >= %d, have %d and %d", len(idx), len(idx)*p.size, len(idx), len(x), len(mixes)))
	}
	one := func(k int) {
		r := idx[k]
		m := p.Apply(x[k*p.size:(k+1)*p.size], base, r%n, r/n)
		if mixes != nil {
			mixes[k] = m
		}
	}
	// Below 16 rows a worker costs more than it saves.
	workers := min(runtime.GOMAXPROCS(0), len(idx)/16)
	if workers < 2 || !p.cfg.Enabled() {
		for k := range idx {
			one(k)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (len(idx) + workers - 1) / workers
	for lo := 0; lo < len(idx); lo += chunk {
		hi := min(lo+chunk, len(idx))
		wg.Go(func() {
			for k := lo; k < hi; k++ {
				one(k)
			}
		})
	}
	wg.Wait()
}

// Source is a training source (train.Source) over a dataset's examples
// followed by Copies augmented copies of each, made afresh from the seed
// whenever they are gathered, so nothing is stored: an epoch over it sees
// every example Copies+1 times, each time differently augmented but the
// same in every run. A mixed row (mixup) takes the label of the example
// with the larger share.
type Source struct {
	d      *data.Dataset
	copies int
	pipe   *Pipeline
}

// NewSource returns the Source of d with copies augmented copies of each
// example made by cfg from seed. copies must be >= 1 and cfg enabled.
func NewSource(d *data.Dataset, copies int, cfg Config, seed int64) (*Source, error) {
	if copies < 1 || !cfg.Enabled() {
		return nil, fmt.Errorf("augment: a source of augmented copies needs copies >= 1 and an augmentation turned on, got copies %d and augmentations %q", copies, cfg)
	}
	p, err := New(cfg, seed, d.Shape)
	if err != nil {
		return nil, err
	}
	return &Source{d: d, copies: copies, pipe: p}, nil
}

// Len is the number of rows, the dataset's examples × (copies + 1).
func (s *Source) Len() int { return s.d.Len() * (s.copies + 1) }

// Gather writes rows idx into x (len(idx) × the example size) and, if y is
// not nil, their labels into y.
func (s *Source) Gather(idx []int, x []float32, y []int32) {
	for k, r := range idx {
		if r < 0 || r >= s.Len() {
			panic(fmt.Sprintf("augment: Gather index idx[%d] = %d out of range [0, %d)", k, r, s.Len()))
		}
	}
	var mixes []Mix
	if y != nil {
		mixes = make([]Mix, len(idx))
	}
	s.pipe.Rows(x, s.d.X[:s.d.Len()*s.d.Size()], idx, mixes)
	if y == nil {
		return
	}
	n := s.d.Len()
	for k, r := range idx {
		y[k] = s.d.Y[mixes[k].Dominant(r%n)]
	}
}
