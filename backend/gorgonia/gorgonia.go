// Package gorgonia is distill's pure-Go CPU backend, built on
// gorgonia.org/gorgonia. It is the embedded default: importing it (the
// distill package does) registers the backend "gorgonia".
package gorgonia

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	G "gorgonia.org/gorgonia"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/internal/gemm/gemmblas"
	"github.com/distill-dev/distill/model"
)

// Name is the registered backend name.
const Name = "gorgonia"

func init() {
	backend.Register(Name, Open)
	// gorgonia's matrix products go through a process-wide BLAS, gonum's
	// pure-Go one by default. Ours (package gemm: AVX-512/AVX2 kernels
	// chosen at run time, with a portable fallback) is several times
	// faster and stays pure Go.
	G.Use(gemmblas.Implementation{})
}

// Open returns the backend. Only the CPU device exists.
func Open(opts backend.Options) (backend.Backend, error) {
	switch strings.ToLower(opts.Device) {
	case "", "auto", "cpu":
	default:
		return nil, fmt.Errorf("gorgonia backend runs on the CPU only, not on device %q: use backend torch for CUDA", opts.Device)
	}
	return engine{}, nil
}

type engine struct{}

func (engine) Name() string   { return Name }
func (engine) Device() string { return "cpu" }
func (engine) Close() error   { return nil }

func (engine) Load(spec model.Spec, w model.Weights) (backend.Model, error) {
	p, err := newParams(spec, w)
	if err != nil {
		return nil, err
	}
	return &Model{p: p, fwd: map[int]*graph{}}, nil
}

func (engine) NewTrainer(m backend.Model, cfg backend.TrainConfig) (backend.Trainer, error) {
	gm, ok := m.(*Model)
	if !ok {
		return nil, fmt.Errorf("gorgonia: cannot train a %T from another backend", m)
	}
	return newTrainer(gm, cfg)
}

// Model is a network held as gorgonia tensors.
type Model struct {
	mu  sync.Mutex
	p   *params
	fwd map[int]*graph // inference graphs by batch size
}

func (m *Model) Spec() model.Spec { return m.p.spec }

// maxInferenceGraphs bounds the cache of per-batch-size graphs; beyond it
// a request is padded up to a cached size.
const maxInferenceGraphs = 8

func (m *Model) Forward(x []float32, n int, out []float32) error {
	spec := m.p.spec
	in := model.Numel(spec.Input)
	if n <= 0 {
		return nil
	}
	if len(x) < n*in || len(out) < n*spec.Classes {
		return fmt.Errorf("gorgonia: forward of %d examples needs %d inputs and %d outputs, got %d and %d", n, n*in, n*spec.Classes, len(x), len(out))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	gr, err := m.graphFor(n)
	if err != nil {
		return err
	}
	for off := 0; off < n; off += gr.batch {
		rows := min(gr.batch, n-off)
		xd := gr.x.Data().([]float32)
		copy(xd, x[off*in:(off+rows)*in])
		clear(xd[rows*in:])
		if err := gr.run(); err != nil {
			return fmt.Errorf("gorgonia: forward: %w", err)
		}
		logits := gr.out.Data().([]float32)
		copy(out[off*spec.Classes:(off+rows)*spec.Classes], logits[:rows*spec.Classes])
	}
	return nil
}

func (m *Model) graphFor(n int) (*graph, error) {
	if gr, ok := m.fwd[n]; ok {
		return gr, nil
	}
	if len(m.fwd) >= maxInferenceGraphs {
		// Prefer the smallest cached size that holds n; else the largest,
		// which Forward then runs in chunks.
		fit, largest := 0, 0
		for b := range m.fwd {
			if b >= n && (fit == 0 || b < fit) {
				fit = b
			}
			largest = max(largest, b)
		}
		if fit == 0 {
			fit = largest
		}
		return m.fwd[fit], nil
	}
	gr, err := build(m.p, n, nil)
	if err != nil {
		return nil, err
	}
	m.fwd[n] = gr
	return gr, nil
}

func (m *Model) Weights() (model.Weights, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := make(model.Weights, len(m.p.list))
	for i, pr := range m.p.list {
		w[pr.Name] = m.p.canonical(i, m.p.values[i].Data().([]float32))
	}
	return w, nil
}

func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, gr := range m.fwd {
		errs = append(errs, gr.Close())
	}
	m.fwd = map[int]*graph{}
	return errors.Join(errs...)
}
