package gorgonia

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"gorgonia.org/tensor"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

type trainer struct {
	m     *Model
	cfg   backend.TrainConfig
	st    *lossState
	gr    *graph
	opt   *hostOptimizer
	drops []model.Layer
}

func newTrainer(m *Model, cfg backend.TrainConfig) (*trainer, error) {
	if cfg.MaxBatch <= 0 {
		return nil, fmt.Errorf("gorgonia: TrainConfig.MaxBatch must be > 0, got %d", cfg.MaxBatch)
	}
	if err := cfg.Objective.Validate(); err != nil {
		return nil, err
	}
	spec := m.p.spec
	st := &lossState{
		obj:     cfg.Objective,
		k:       spec.Classes,
		labels:  make([]int32, cfg.MaxBatch),
		teacher: make([]float32, cfg.MaxBatch*spec.Classes),
		grad:    make([]float32, cfg.MaxBatch*spec.Classes),
	}
	gr, err := build(m.p, cfg.MaxBatch, st)
	if err != nil {
		return nil, err
	}
	drops, _, err := spec.DropoutLayers()
	if err != nil {
		return nil, err
	}
	opt, err := newHostOptimizer(cfg.Optimizer, m.p)
	if err != nil {
		return nil, err
	}
	return &trainer{m: m, cfg: cfg, st: st, gr: gr, opt: opt, drops: drops}, nil
}

func (t *trainer) Step(b *backend.Batch) (loss.Value, error) {
	spec := t.m.p.spec
	in, k, B := model.Numel(spec.Input), spec.Classes, t.cfg.MaxBatch
	n := b.N
	if n <= 0 || n > B {
		return loss.Value{}, fmt.Errorf("gorgonia: batch of %d examples, trainer built for 1..%d", n, B)
	}
	if len(b.X) < n*in || len(b.Labels) < n {
		return loss.Value{}, fmt.Errorf("gorgonia: batch of %d needs %d inputs and %d labels, got %d and %d", n, n*in, n, len(b.X), len(b.Labels))
	}
	if t.st.obj.NeedsTeacher() && len(b.TeacherLogits) < n*k {
		return loss.Value{}, fmt.Errorf("gorgonia: the objective distils from a teacher but the batch has %d of %d teacher logits", len(b.TeacherLogits), n*k)
	}
	if b.Masks != nil && len(b.Masks) != len(t.gr.masks) {
		return loss.Value{}, fmt.Errorf("gorgonia: batch has %d dropout masks, the model has %d dropout layers", len(b.Masks), len(t.gr.masks))
	}
	t.m.mu.Lock()
	defer t.m.mu.Unlock()

	xd := t.gr.x.Data().([]float32)
	copy(xd, b.X[:n*in])
	clear(xd[n*in:])
	copy(t.st.labels, b.Labels[:n])
	clear(t.st.labels[n:])
	if t.st.obj.NeedsTeacher() {
		copy(t.st.teacher, b.TeacherLogits[:n*k])
		clear(t.st.teacher[n*k:])
	}
	for i, m := range t.gr.masks {
		md := m.Data().([]float32)
		if b.Masks == nil {
			for j := range md {
				md[j] = 1
			}
			continue
		}
		per := len(md) / B
		if len(b.Masks[i]) < n*per {
			return loss.Value{}, fmt.Errorf("gorgonia: dropout mask for layer %q has %d values, need %d", t.drops[i].Name, len(b.Masks[i]), n*per)
		}
		copy(md, b.Masks[i][:n*per])
		clear(md[n*per:])
	}
	t.st.n = n
	if err := t.gr.run(); err != nil {
		if t.st.err != nil {
			return t.st.value, t.st.err
		}
		return loss.Value{}, fmt.Errorf("gorgonia: training step: %w", err)
	}
	grads := make([]*tensor.Dense, len(t.gr.pnodes))
	for i, pn := range t.gr.pnodes {
		gv, err := pn.Grad()
		if err != nil {
			return loss.Value{}, fmt.Errorf("gorgonia: gradient of %s: %w", t.m.p.list[i].Name, err)
		}
		grads[i] = gv.(*tensor.Dense)
	}
	err := t.opt.step(b.LR, grads)
	// gorgonia accumulates into the gradient buffers: clear them for the
	// next step, as its own solvers do.
	for _, g := range grads {
		g.Zero()
	}
	return t.st.value, err
}

func (t *trainer) State() (backend.OptimizerState, error) {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	return t.opt.state(), nil
}

func (t *trainer) SetState(s backend.OptimizerState) error {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	return t.opt.setState(s)
}

func (t *trainer) Close() error { return t.gr.Close() }

// hostOptimizer updates gorgonia's parameter tensors in place with Adam
// or SGD. It is written here rather than using gorgonia's solvers so its
// state can be checkpointed by name, its arithmetic matches PyTorch's
// torch.optim exactly, and the learning rate can change every step.
type hostOptimizer struct {
	cfg   backend.Optimizer
	p     *params
	t     int64
	slots map[string][][]float32 // slot name -> per-param buffers (internal layout)
}

func newHostOptimizer(cfg backend.Optimizer, p *params) (*hostOptimizer, error) {
	cfg = cfg.WithDefaults()
	o := &hostOptimizer{cfg: cfg, p: p, slots: map[string][][]float32{}}
	var names []string
	switch cfg.Kind {
	case backend.Adam:
		names = []string{"m", "v"}
	case backend.SGD:
		if cfg.Momentum > 0 {
			names = []string{"momentum"}
		}
	default:
		return nil, fmt.Errorf("gorgonia: unknown optimizer %q (want %q or %q)", cfg.Kind, backend.Adam, backend.SGD)
	}
	for _, s := range names {
		bufs := make([][]float32, len(p.values))
		for i, v := range p.values {
			bufs[i] = make([]float32, v.Shape().TotalSize())
		}
		o.slots[s] = bufs
	}
	return o, nil
}

func (o *hostOptimizer) step(lr float64, grads []*tensor.Dense) error {
	o.t++
	c := o.cfg
	update := o.sgd(lr, grads)
	if c.Kind == backend.Adam {
		update = o.adam(lr, grads)
	}
	// Updates are elementwise: split every tensor into chunks and run
	// them on all cores (the update is memory-bound and otherwise a fifth
	// of a step).
	const chunk = 1 << 15
	var wg sync.WaitGroup
	work := make(chan [3]int, 64)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range work {
				update(job[0], job[1], job[2])
			}
		}()
	}
	for i, v := range o.p.values {
		n := v.Shape().TotalSize()
		for lo := 0; lo < n; lo += chunk {
			work <- [3]int{i, lo, min(lo+chunk, n)}
		}
	}
	close(work)
	wg.Wait()
	return nil
}

// adam returns the update of elements lo..hi of parameter i, as
// torch.optim.Adam computes it (L2 weight decay added to the gradient).
func (o *hostOptimizer) adam(lr float64, grads []*tensor.Dense) func(i, lo, hi int) {
	c := o.cfg
	bc1 := 1 - math.Pow(c.Beta1, float64(o.t))
	bc2 := 1 - math.Pow(c.Beta2, float64(o.t))
	stepSize := float32(lr / bc1)
	b1, b2, wd := float32(c.Beta1), float32(c.Beta2), float32(c.WeightDecay)
	eps := float32(c.Eps)
	invSqrtBC2 := float32(1 / math.Sqrt(bc2))
	return func(i, lo, hi int) {
		w := o.p.values[i].Data().([]float32)[lo:hi]
		g := grads[i].Data().([]float32)[lo:hi]
		m, s := o.slots["m"][i][lo:hi], o.slots["v"][i][lo:hi]
		for j := range w {
			gj := g[j] + wd*w[j]
			m[j] = b1*m[j] + (1-b1)*gj
			s[j] = b2*s[j] + (1-b2)*gj*gj
			denom := float32(math.Sqrt(float64(s[j])))*invSqrtBC2 + eps
			w[j] -= stepSize * m[j] / denom
		}
	}
}

// sgd returns the update of elements lo..hi of parameter i, as
// torch.optim.SGD computes it (momentum buffer starts at the first
// gradient; optional Nesterov).
func (o *hostOptimizer) sgd(lr float64, grads []*tensor.Dense) func(i, lo, hi int) {
	c := o.cfg
	mom, wd, flr := float32(c.Momentum), float32(c.WeightDecay), float32(lr)
	first := o.t == 1
	return func(i, lo, hi int) {
		w := o.p.values[i].Data().([]float32)[lo:hi]
		g := grads[i].Data().([]float32)[lo:hi]
		var buf []float32
		if mom > 0 {
			buf = o.slots["momentum"][i][lo:hi]
		}
		for j := range w {
			gj := g[j] + wd*w[j]
			if buf != nil {
				if first {
					buf[j] = gj
				} else {
					buf[j] = mom*buf[j] + gj
				}
				if c.Nesterov {
					gj += mom * buf[j]
				} else {
					gj = buf[j]
				}
			}
			w[j] -= flr * gj
		}
	}
}

// state exports the slots in PyTorch's layout, named "<slot>/<param>".
func (o *hostOptimizer) state() backend.OptimizerState {
	s := backend.OptimizerState{Step: o.t, Tensors: model.Weights{}}
	for slot, bufs := range o.slots {
		for i, pr := range o.p.list {
			s.Tensors[slot+"/"+pr.Name] = o.p.canonical(i, bufs[i])
		}
	}
	return s
}

func (o *hostOptimizer) setState(s backend.OptimizerState) error {
	for slot, bufs := range o.slots {
		for i, pr := range o.p.list {
			name := slot + "/" + pr.Name
			t, ok := s.Tensors[name]
			if !ok {
				return fmt.Errorf("gorgonia: optimizer state lacks %q", name)
			}
			if len(t.Data) != len(bufs[i]) {
				return fmt.Errorf("gorgonia: optimizer state %q has %d values, want %d", name, len(t.Data), len(bufs[i]))
			}
			copy(bufs[i], toInternal(o.p.spec, pr, t).Data().([]float32))
		}
	}
	o.t = s.Step
	return nil
}
