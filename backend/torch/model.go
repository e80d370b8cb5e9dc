//go:build torch

package torch

import (
	"errors"
	"fmt"
	"slices"

	lib "github.com/sugarme/gotch/libtch"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/model"
)

// Model is a network built from a model.Spec's graph, its parameters held
// as libtorch leaf tensors on the backend's device and its buffers (a
// batchnorm's running statistics) as plain tensors beside them.
type Model struct {
	b       *Backend
	spec    model.Spec
	params  []model.Param // spec.Params() order
	tensors []ctensor     // one per param, same order
	index   map[string]int
	buffers []model.Param // spec.Buffers() order
	bufs    []ctensor     // one per buffer, same order; replaced by each training step
	bufIdx  map[string]int
	ins     [][]int // per layer, the indices of the layers it reads (-1 = the input)
	inSize  int
	drop    []int // per layer: index into the batch's masks, or -1
	dropDim [][]int
	shapes  [][]int // per layer, the per-example output shape
	impls   []layerImpl

	closed bool
}

var (
	_ backend.Model        = (*Model)(nil)
	_ backend.FeatureModel = (*Model)(nil)
)

func newModel(b *Backend, spec model.Spec) (*Model, error) {
	params, err := spec.Params()
	if err != nil {
		return nil, fmt.Errorf("torch backend: %w", err)
	}
	dl, dropShapes, err := spec.DropoutLayers()
	if err != nil {
		return nil, fmt.Errorf("torch backend: %w", err)
	}
	shapes, err := spec.Shapes()
	if err != nil {
		return nil, fmt.Errorf("torch backend: %w", err)
	}
	buffers, err := spec.Buffers()
	if err != nil {
		return nil, fmt.Errorf("torch backend: %w", err)
	}
	ins, err := spec.InputIndices()
	if err != nil {
		return nil, fmt.Errorf("torch backend: %w", err)
	}
	m := &Model{b: b, spec: spec, params: params, index: map[string]int{}, buffers: buffers, bufIdx: map[string]int{},
		ins: ins, inSize: model.Numel(spec.Input), shapes: shapes}
	for i, p := range params {
		m.index[p.Name] = i
	}
	for i, p := range buffers {
		m.bufIdx[p.Name] = i
	}
	m.impls = make([]layerImpl, len(spec.Layers))
	for i, l := range spec.Layers {
		if m.impls[i], err = layers.Lookup(l.Kind); err != nil {
			return nil, fmt.Errorf("torch backend: layer %q: %w", l.Name, err)
		}
	}
	m.drop = make([]int, len(spec.Layers))
	for i, l := range spec.Layers {
		m.drop[i] = -1
		for j, d := range dl {
			if d.Name == l.Name {
				m.drop[i] = j
			}
		}
	}
	m.dropDim = dropShapes
	return m, nil
}

// Spec returns the model's spec.
func (m *Model) Spec() model.Spec { return m.spec }

// pass is the mode of one forward pass.
type pass struct {
	// masks, in training, holds one [N, shape...] tensor per dropout
	// layer (inverted-dropout scaling included), multiplied in as the
	// host drew them; nil at inference and without dropout.
	masks []ctensor
	// train makes batchnorms normalise with the batch's statistics and
	// compute updated running statistics into stats (per buffer, nil for
	// those of layers not run) instead of using the model's: the step
	// commits them only once it has succeeded.
	train bool
	stats []ctensor
}

// forward records the graph on s: x is [N, input...]. It runs the layers
// marked in run (every layer when run is nil; a layer's inputs must be run
// too) in order, and returns each layer's output by index (nil for those
// not run); the last layer's output is the logits. A layer may return its
// input itself (dropout at inference): outputs can alias each other.
// capture, when not nil, is called with each layer's index and output.
func (m *Model) forward(s *scope, x ctensor, p *pass, run []bool, capture func(layer int, out ctensor)) []ctensor {
	outs := make([]ctensor, len(m.spec.Layers))
	in := make([]ctensor, 0, 2)
	for i := range m.spec.Layers {
		if run != nil && !run[i] {
			continue
		}
		in = in[:0]
		for _, j := range m.ins[i] {
			if j < 0 {
				in = append(in, x)
			} else {
				in = append(in, outs[j])
			}
		}
		outs[i] = m.impls[i](m, s, i, in, p)
		if s.err != nil {
			return outs
		}
		if capture != nil {
			capture(i, outs[i])
		}
	}
	return outs
}

// ancestors marks the layers targets need: the targets and every layer
// they read, directly or not.
func (m *Model) ancestors(targets []int) []bool {
	need := make([]bool, len(m.spec.Layers))
	for _, i := range targets {
		need[i] = true
	}
	// Layers read only earlier layers: one backward sweep suffices.
	for i := len(need) - 1; i >= 0; i-- {
		if need[i] {
			for _, j := range m.ins[i] {
				if j >= 0 {
					need[j] = true
				}
			}
		}
	}
	return need
}

// logits runs the whole network at inference and returns its output.
func (m *Model) logits(s *scope, x ctensor, capture func(layer int, out ctensor)) ctensor {
	outs := m.forward(s, x, &pass{}, nil, capture)
	return outs[len(outs)-1]
}

// checkForward checks the sizes a forward call (op names it) was given: n
// examples, x with n·inSize inputs and out with room for n·k logits, or out
// nil where noOut allows it.
func checkForward(op string, n int, x []float32, inSize int, out []float32, k int, noOut bool) error {
	if n <= 0 {
		return fmt.Errorf("torch backend: %s of %d examples", op, n)
	}
	if len(x) < n*inSize || (!noOut && len(out) < n*k) {
		return fmt.Errorf("torch backend: %s of %d examples needs %d inputs and room for %d logits, got %d and %d", op, n, n*inSize, n*k, len(x), len(out))
	}
	return nil
}

// batchShape is [n, input...].
func (m *Model) batchShape(n int) []int {
	return append([]int{n}, m.spec.Input...)
}

// Forward computes inference logits (dropout off, no autograd) of n
// examples of x into out.
func (m *Model) Forward(x []float32, n int, out []float32) error {
	k := m.spec.Classes
	if err := checkForward("Forward", n, x, m.inSize, out, k, false); err != nil {
		return err
	}
	return infer(m.do, m.b.device, m.b.mixed(), x[:n*m.inSize], m.batchShape(n), out[:n*k], func(s *scope, xt ctensor) ctensor {
		return m.logits(s, xt, nil)
	})
}

// infer is the frame of every inference call: on the engine's thread
// (through do, which also refuses a closed model), without autograd, under
// bf16 autocast if mixed, and in a fresh scope on device, f maps x, of the
// given shape, to the logits, which are copied into out unless out is nil.
func infer(do func(func() error) error, device int, mixed bool, x []float32, shape []int, out []float32, f func(s *scope, x ctensor) ctensor) error {
	return do(func() error {
		return withGrad(false, func() error {
			s := newScope(device)
			s.mixed = mixed
			err := withAutocast(device, mixed, func() error {
				y := f(s, s.fromHost(x, shape...))
				if out != nil {
					s.toHost(y, out)
				}
				return nil // s.err is returned by s.free
			})
			return errors.Join(err, s.free())
		})
	})
}

// ForwardFeatures is Forward that also copies the output of each named
// layer into feats[i] (n × the layer's per-example size, row-major, as
// model.Spec.Shapes gives it). logits may be nil.
func (m *Model) ForwardFeatures(x []float32, n int, layers []string, logits []float32, feats [][]float32) error {
	k := m.spec.Classes
	if err := checkForward("ForwardFeatures", n, x, m.inSize, logits, k, logits == nil); err != nil {
		return err
	}
	if len(feats) != len(layers) {
		return fmt.Errorf("torch backend: ForwardFeatures got %d layer names and %d feature buffers", len(layers), len(feats))
	}
	want := make(map[int][]int, len(layers)) // layer index -> positions in layers
	sizes := make([]int, len(layers))
	for i, name := range layers {
		_, j, ok := m.spec.Layer(name)
		if !ok {
			return fmt.Errorf("torch backend: spec %q has no layer %q", m.spec.Name, name)
		}
		sizes[i] = model.Numel(m.shapes[j])
		if len(feats[i]) < n*sizes[i] {
			return fmt.Errorf("torch backend: feature buffer %d for layer %q has %d values, need %d (%d × %v)", i, name, len(feats[i]), n*sizes[i], n, m.shapes[j])
		}
		want[j] = append(want[j], i)
	}
	if logits != nil {
		logits = logits[:n*k]
	}
	return infer(m.do, m.b.device, m.b.mixed(), x[:n*m.inSize], m.batchShape(n), logits, func(s *scope, xt ctensor) ctensor {
		return m.logits(s, xt, func(layer int, out ctensor) {
			for _, i := range want[layer] {
				s.toHost(out, feats[i][:n*sizes[i]])
			}
		})
	})
}

// Weights copies the current parameters and buffers (the running
// statistics as the last training step left them) to the host.
func (m *Model) Weights() (model.Weights, error) {
	w := make(model.Weights, len(m.params)+len(m.buffers))
	err := m.do(func() error {
		s := newScope(m.b.device)
		for i, p := range m.params {
			t := model.NewTensor(p.Shape...)
			s.toHost(m.tensors[i], t.Data)
			w[p.Name] = t
		}
		for i, p := range m.buffers {
			t := model.NewTensor(p.Shape...)
			s.toHost(m.bufs[i], t.Data)
			w[p.Name] = t
		}
		return s.free()
	})
	if err != nil {
		return nil, fmt.Errorf("torch backend: copying weights of %q: %w", m.spec.Name, err)
	}
	return w, nil
}

// do runs f on the backend's thread unless the model is closed. The
// model's state is only touched on that thread.
func (m *Model) do(f func() error) error {
	return m.b.eng.do(func() error {
		if m.closed {
			return ErrClosed
		}
		return f()
	})
}

// Close frees the model's tensors; trainers of the model stop working.
// After the backend is closed it is a no-op.
func (m *Model) Close() error {
	return m.b.eng.release(func() {
		if !m.closed {
			m.closed = true
			m.freeTensors()
		}
	})
}

// freeTensors runs on the engine's thread.
func (m *Model) freeTensors() {
	for _, t := range slices.Concat(m.tensors, m.bufs) {
		lib.AtFree(t)
	}
	m.tensors, m.bufs = nil, nil
}

// commitStats makes the running statistics a training pass computed (p.stats,
// owned by s) the model's buffers, freeing the ones they replace.
func (m *Model) commitStats(s *scope, p *pass) {
	if s.err != nil {
		return
	}
	for k, t := range p.stats {
		if t != nil {
			lib.AtFree(m.bufs[k])
			m.bufs[k] = s.keep(t)
			p.stats[k] = nil
		}
	}
}
