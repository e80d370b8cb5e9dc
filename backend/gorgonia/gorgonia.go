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
	"github.com/distill-dev/distill/infer"
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
	return &Model{p: p, fwd: map[graphKey]*graph{}}, nil
}

func (engine) NewTrainer(m backend.Model, cfg backend.TrainConfig) (backend.Trainer, error) {
	gm, ok := m.(*Model)
	if !ok {
		return nil, fmt.Errorf("gorgonia: cannot train a %T from another backend", m)
	}
	return newTrainer(gm, cfg)
}

// Model is a network held as gorgonia tensors. It implements
// backend.FeatureModel.
type Model struct {
	mu  sync.Mutex
	p   *params
	fwd map[graphKey]*graph // inference graphs

	// A model whose weights stay put between Forward calls (a frozen
	// teacher) is run by package infer, compiled from its weights: packed
	// once, without graph bookkeeping. prog is nil while the weights
	// change (a trainer's Step calls changed); quiet counts the Forward
	// calls since the last change, and the program is compiled on the
	// second, so a model evaluated once between training steps does not
	// pay for compiling. noProg: the spec does not compile (a layer kind
	// infer lacks), so the graph always runs.
	prog   *infer.Program
	quiet  int
	noProg bool
}

// compileAfter is the number of Forward calls without a weight change
// after which Forward runs a compiled program.
const compileAfter = 2

// changed marks the weights as modified: the compiled program, if any,
// is stale. The caller holds m.mu.
func (m *Model) changed() {
	m.prog, m.quiet = nil, 0
}

// program returns the compiled program of the current weights, compiling
// it once the model has looked frozen for compileAfter calls, or nil to
// run the graph. The caller holds m.mu.
func (m *Model) program() *infer.Program {
	if m.prog != nil || m.noProg {
		return m.prog
	}
	if m.quiet++; m.quiet < compileAfter {
		return nil
	}
	p, err := infer.Compile(m.p.spec, m.weights())
	if err != nil {
		// Not an error for the caller: the graph computes the same.
		m.noProg = true
		return nil
	}
	m.prog = p
	return p
}

var _ backend.FeatureModel = (*Model)(nil)

// graphKey identifies an inference graph: its batch size and the layers
// it reads out, joined by newlines (which layer names cannot contain).
type graphKey struct {
	batch  int
	layers string
}

func (m *Model) Spec() model.Spec { return m.p.spec }

// maxInferenceGraphs bounds the cache of per-batch-size graphs of one
// layer list; beyond it a request is padded up to a cached size.
// maxLayerLists bounds the number of layer lists cached: a training loop
// asks for one (or two, with Forward's empty list), so an older list's
// graphs are dropped rather than kept forever.
const (
	maxInferenceGraphs = 8
	maxLayerLists      = 4
)

func (m *Model) Forward(x []float32, n int, out []float32) error {
	if k := m.p.spec.Classes; n > 0 && len(out) < n*k {
		return fmt.Errorf("gorgonia: forward of %d examples needs %d outputs, got %d", n, n*k, len(out))
	}
	if in := model.Numel(m.p.spec.Input); n > 0 && len(x) >= n*in {
		m.mu.Lock()
		p := m.program()
		m.mu.Unlock()
		if p != nil {
			// The program is immutable: it runs unlocked, and a
			// concurrent Step only drops it for later calls.
			if err := p.Forward(x, n, out); err != nil {
				return fmt.Errorf("gorgonia: forward: %w", err)
			}
			return nil
		}
	}
	return m.ForwardFeatures(x, n, nil, out, nil)
}

// ForwardFeatures implements backend.FeatureModel: one inference pass
// yields the logits and the named layers' outputs, read out of the graph
// with G.Read because the tape machine reuses intermediate buffers.
func (m *Model) ForwardFeatures(x []float32, n int, layers []string, logits []float32, feats [][]float32) error {
	spec := m.p.spec
	in := model.Numel(spec.Input)
	if n <= 0 {
		return nil
	}
	if len(feats) != len(layers) {
		return fmt.Errorf("gorgonia: %d layers requested but %d feature buffers given", len(layers), len(feats))
	}
	if len(x) < n*in || (logits != nil && len(logits) < n*spec.Classes) {
		return fmt.Errorf("gorgonia: forward of %d examples needs %d inputs and %d outputs, got %d and %d", n, n*in, n*spec.Classes, len(x), len(logits))
	}
	shapes, err := spec.Shapes()
	if err != nil {
		return err
	}
	sizes := make([]int, len(layers))
	for i, name := range layers {
		_, li, ok := spec.Layer(name)
		if !ok {
			return fmt.Errorf("gorgonia: model %q has no layer %q", spec.Name, name)
		}
		sizes[i] = model.Numel(shapes[li])
		if len(feats[i]) < n*sizes[i] {
			return fmt.Errorf("gorgonia: the output of layer %q for %d examples needs %d values, the buffer has %d", name, n, n*sizes[i], len(feats[i]))
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	gr, err := m.graphFor(n, layers)
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
		if logits != nil {
			k := spec.Classes
			copy(logits[off*k:(off+rows)*k], gr.out.Data().([]float32)[:rows*k])
		}
		for i, sz := range sizes {
			copy(feats[i][off*sz:(off+rows)*sz], gr.feats[i].Data().([]float32)[:rows*sz])
		}
	}
	return nil
}

func (m *Model) graphFor(n int, layers []string) (*graph, error) {
	key := graphKey{n, strings.Join(layers, "\n")}
	if gr, ok := m.fwd[key]; ok {
		return gr, nil
	}
	sizes, lists := 0, map[string]bool{}
	for k := range m.fwd {
		lists[k.layers] = true
		if k.layers == key.layers {
			sizes++
		}
	}
	if sizes >= maxInferenceGraphs {
		// Prefer the smallest cached size that holds n; else the largest,
		// which ForwardFeatures then runs in chunks.
		fit, largest := 0, 0
		for k := range m.fwd {
			if k.layers != key.layers {
				continue
			}
			if k.batch >= n && (fit == 0 || k.batch < fit) {
				fit = k.batch
			}
			largest = max(largest, k.batch)
		}
		if fit == 0 {
			fit = largest
		}
		return m.fwd[graphKey{fit, key.layers}], nil
	}
	if !lists[key.layers] && len(lists) >= maxLayerLists {
		m.dropLayerList(key.layers)
	}
	gr, err := build(m.p, n, layers, nil)
	if err != nil {
		return nil, err
	}
	m.fwd[key] = gr
	return gr, nil
}

// dropLayerList closes the graphs of one cached layer list other than
// keep, preferring any list but Forward's (the empty one).
func (m *Model) dropLayerList(keep string) {
	victim, found := "", false
	for k := range m.fwd {
		if k.layers != keep && (!found || victim == "") {
			victim, found = k.layers, true
		}
	}
	for k, gr := range m.fwd {
		if k.layers == victim {
			gr.Close()
			delete(m.fwd, k)
		}
	}
}

func (m *Model) Weights() (model.Weights, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.weights(), nil
}

// weights is Weights for a caller that holds m.mu.
func (m *Model) weights() model.Weights {
	w := make(model.Weights, len(m.p.list)+len(m.p.bufs))
	for i, pr := range m.p.list {
		w[pr.Name] = m.p.canonical(i, m.p.values[i].Data().([]float32))
	}
	for i, b := range m.p.bufs {
		t := model.NewTensor(b.Shape...)
		copy(t.Data, m.p.bufVal[i].Data().([]float32))
		w[b.Name] = t
	}
	return w
}

func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, gr := range m.fwd {
		errs = append(errs, gr.Close())
	}
	m.fwd = map[graphKey]*graph{}
	m.changed()
	return errors.Join(errs...)
}
