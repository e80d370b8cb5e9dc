package gorgonia

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"gorgonia.org/tensor"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/internal/vec"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

type trainer struct {
	m     *Model
	cfg   backend.TrainConfig
	st    *lossState      // nil without logit terms
	feats []*featureState // one per feature term
	all   *params         // the model's parameters, then the adapters
	gr    *graph
	opt   *hostOptimizer
	drops []model.Layer
}

func newTrainer(m *Model, cfg backend.TrainConfig) (*trainer, error) {
	if cfg.MaxBatch <= 0 {
		return nil, fmt.Errorf("gorgonia: TrainConfig.MaxBatch must be > 0, got %d", cfg.MaxBatch)
	}
	obj := cfg.Objective
	if err := obj.Validate(); err != nil {
		return nil, err
	}
	spec := m.p.spec
	t := &trainer{m: m, cfg: cfg}
	if obj.HasLogitTerms() {
		t.st = &lossState{
			obj:     obj,
			k:       spec.Classes,
			labels:  make([]int32, cfg.MaxBatch),
			teacher: make([]float32, cfg.MaxBatch*spec.Classes),
			grad:    make([]float32, cfg.MaxBatch*spec.Classes),
		}
	}
	var plans []loss.FeaturePlan
	if obj.NeedsTeacherFeatures() {
		if len(cfg.TeacherSpec.Layers) == 0 {
			return nil, errors.New("gorgonia: the objective has feature terms: set TrainConfig.TeacherSpec to the teacher's architecture")
		}
		var err error
		if plans, err = loss.ResolveFeatures(spec, cfg.TeacherSpec, obj.Features); err != nil {
			return nil, err
		}
	}
	for _, pl := range plans {
		if _, _, clash := spec.Layer(pl.AdapterName()); clash && pl.AdapterParams() != nil {
			return nil, fmt.Errorf("gorgonia: the student has a layer named %q, which is the name of feature term %d's adapter: rename the layer", pl.AdapterName(), pl.Index)
		}
		t.feats = append(t.feats, newFeatureState(pl, cfg.MaxBatch))
	}
	ad := newAdapterParams(plans)
	t.all = m.p.join(ad)
	var err error
	if t.gr, err = build(m.p, cfg.MaxBatch, nil, &trainSpec{obj: t.st, feats: t.feats, ad: ad}); err != nil {
		return nil, err
	}
	if t.drops, _, err = spec.DropoutLayers(); err != nil {
		return nil, err
	}
	if t.opt, err = newHostOptimizer(cfg.Optimizer, t.all, len(ad.list)); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *trainer) Step(b *backend.Batch) (loss.Value, error) {
	spec := t.m.p.spec
	in, k, B := model.Numel(spec.Input), spec.Classes, t.cfg.MaxBatch
	n := b.N
	if n <= 0 || n > B {
		return loss.Value{}, fmt.Errorf("gorgonia: batch of %d examples, trainer built for 1..%d", n, B)
	}
	if len(b.X) < n*in {
		return loss.Value{}, fmt.Errorf("gorgonia: batch of %d needs %d inputs, got %d", n, n*in, len(b.X))
	}
	if t.st != nil && len(b.Labels) < n {
		return loss.Value{}, fmt.Errorf("gorgonia: batch of %d needs %d labels, got %d", n, n, len(b.Labels))
	}
	if t.cfg.Objective.NeedsTeacher() && len(b.TeacherLogits) < n*k {
		return loss.Value{}, fmt.Errorf("gorgonia: the objective distils from a teacher but the batch has %d of %d teacher logits", len(b.TeacherLogits), n*k)
	}
	if len(t.feats) > 0 && len(b.TeacherFeatures) != len(t.feats) {
		return loss.Value{}, fmt.Errorf("gorgonia: the objective has %d feature terms but the batch has %d teacher features: set Batch.TeacherFeatures", len(t.feats), len(b.TeacherFeatures))
	}
	for i, fs := range t.feats {
		if len(b.TeacherFeatures[i]) < n*fs.tper {
			return loss.Value{}, fmt.Errorf("gorgonia: feature term %d (%s) needs %d teacher values (%d examples × layer %q's shape %v), got %d",
				i, fs.plan.Feature, n*fs.tper, n, fs.plan.Teacher, fs.plan.TeacherShape, len(b.TeacherFeatures[i]))
		}
	}
	if b.Masks != nil && len(b.Masks) != len(t.drops) {
		return loss.Value{}, fmt.Errorf("gorgonia: batch has %d dropout masks, the model has %d dropout layers", len(b.Masks), len(t.drops))
	}
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	t.m.changed()

	xd := t.gr.x.Data().([]float32)
	copy(xd, b.X[:n*in])
	clear(xd[n*in:])
	if t.st != nil {
		copy(t.st.labels, b.Labels[:n])
		clear(t.st.labels[n:])
		if t.st.obj.NeedsTeacher() {
			copy(t.st.teacher, b.TeacherLogits[:n*k])
			clear(t.st.teacher[n*k:])
		}
		t.st.n = n
	}
	for i, fs := range t.feats {
		copy(fs.teacher, b.TeacherFeatures[i][:n*fs.tper])
		clear(fs.teacher[n*fs.tper:])
		fs.n = n
	}
	for _, bn := range t.gr.bns {
		// PyTorch refuses too: the unbiased variance needs two values.
		if n*bn.st.per < 2 {
			return loss.Value{}, fmt.Errorf("gorgonia: batchnorm layer %q needs more than one value per channel in training, got a batch of %d: train with batches of 2 or more", bn.layer.Name, n)
		}
	}
	t.gr.rows = n
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
	err := t.gr.run()
	v := t.value()
	if err != nil {
		if t.st != nil && t.st.err != nil {
			return v, t.st.err
		}
		for _, fs := range t.feats {
			if fs.err != nil {
				return v, fs.err
			}
		}
		return loss.Value{}, fmt.Errorf("gorgonia: training step: %w", err)
	}
	t.updateRunningStats()
	// Parameters the objective does not depend on (without logit terms,
	// those of layers no feature layer reads) have no gradient and are
	// not updated, as torch.optim skips parameters whose .grad is None.
	grads := t.gr.grads
	err = t.opt.step(b.LR, grads)
	return v, err
}

// updateRunningStats folds the step's batch statistics into the
// batchnorms' running ones as PyTorch does: running = (1−m)·running +
// m·batch, with the unbiased variance (n/(n−1)) for running_var.
func (t *trainer) updateRunningStats() {
	p := t.m.p
	for _, bn := range t.gr.bns {
		mom := bn.layer.BNMomentum()
		rm := p.bufVal[p.buffer(bn.layer.Name+".running_mean")].Data().([]float32)
		rv := p.bufVal[p.buffer(bn.layer.Name+".running_var")].Data().([]float32)
		cnt := float64(bn.st.count())
		for c := range rm {
			rm[c] = float32((1-mom)*float64(rm[c]) + mom*bn.st.mean[c])
			rv[c] = float32((1-mom)*float64(rv[c]) + mom*bn.st.variance[c]*cnt/(cnt-1))
		}
	}
}

// value collects the step's loss parts from the fused ops' states.
func (t *trainer) value() loss.Value {
	var v loss.Value
	if t.st != nil {
		v = t.st.value
	}
	for _, fs := range t.feats {
		v.Feature += fs.value
	}
	v.Total = v.Hard + v.Soft + v.Feature
	return v
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
	cfg backend.Optimizer
	p   *params
	// The last owned parameters of p belong to the trainer (feature
	// adapters) rather than to the model: no weights file holds them, so
	// their values are part of the state.
	owned int
	t     int64
	slots map[string][][]float32 // slot name -> per-param buffers (internal layout)
}

func newHostOptimizer(cfg backend.Optimizer, p *params, owned int) (*hostOptimizer, error) {
	cfg = cfg.WithDefaults()
	if !(cfg.MaxNorm >= 0) || math.IsInf(cfg.MaxNorm, 0) {
		return nil, fmt.Errorf("gorgonia: max-norm must be finite and >= 0 (0 = off), got %v", cfg.MaxNorm)
	}
	o := &hostOptimizer{cfg: cfg, p: p, owned: owned, slots: map[string][][]float32{}}
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
		if grads[i] == nil {
			continue // not in the graph: no gradient, no update
		}
		n := v.Shape().TotalSize()
		for lo := 0; lo < n; lo += chunk {
			work <- [3]int{i, lo, min(lo+chunk, n)}
		}
	}
	close(work)
	wg.Wait()
	if c.MaxNorm > 0 {
		o.maxNorm(grads)
	}
	return nil
}

// maxNorm applies the max-norm constraint (backend.Optimizer.MaxNorm) to
// the updated weights of the model's linear and conv layers. A linear
// weight is held [in, out] here, so a unit's incoming weights are a
// column; a conv weight is [out, in, kh, kw], so they are a contiguous
// block.
func (o *hostOptimizer) maxNorm(grads []*tensor.Dense) {
	for i := 0; i < len(o.p.list)-o.owned; i++ {
		pr := o.p.list[i]
		if grads[i] == nil || !backend.MaxNormed(o.p.spec, pr) {
			continue
		}
		w := o.p.values[i].Data().([]float32)
		out := pr.Shape[0]
		per := len(w) / out
		stride, step := per, 1 // PyTorch layout: unit u is w[u*per : (u+1)*per]
		if transposed(o.p.spec, pr.Layer) {
			stride, step = 1, out // [in, out]: unit u is w[u], w[u+out], …
		}
		for u := 0; u < out; u++ {
			var ss float64
			for k := 0; k < per; k++ {
				v := float64(w[u*stride+k*step])
				ss += v * v
			}
			if f := o.cfg.MaxNormScale(math.Sqrt(ss)); f != 1 {
				for k := 0; k < per; k++ {
					w[u*stride+k*step] *= float32(f)
				}
			}
		}
	}
}

// adam returns the update of elements lo..hi of parameter i, as
// torch.optim.Adam computes it (L2 weight decay added to the gradient),
// fused with clearing the gradient (package vec).
func (o *hostOptimizer) adam(lr float64, grads []*tensor.Dense) func(i, lo, hi int) {
	c := o.cfg
	a := vec.NewAdam(lr, c.Beta1, c.Beta2, c.Eps, c.WeightDecay, o.t)
	return func(i, lo, hi int) {
		w := o.p.values[i].Data().([]float32)[lo:hi]
		g := grads[i].Data().([]float32)[lo:hi]
		a.Step(w, g, o.slots["m"][i][lo:hi], o.slots["v"][i][lo:hi])
	}
}

// sgd returns the update of elements lo..hi of parameter i, as
// torch.optim.SGD computes it (momentum buffer starts at the first
// gradient; optional Nesterov), fused with clearing the gradient.
func (o *hostOptimizer) sgd(lr float64, grads []*tensor.Dense) func(i, lo, hi int) {
	c := o.cfg
	s := vec.SGD{LR: float32(lr), WD: float32(c.WeightDecay), Momentum: float32(c.Momentum), Nesterov: c.Nesterov, First: o.t == 1}
	return func(i, lo, hi int) {
		w := o.p.values[i].Data().([]float32)[lo:hi]
		g := grads[i].Data().([]float32)[lo:hi]
		var buf []float32
		if s.Momentum > 0 {
			buf = o.slots["momentum"][i][lo:hi]
		}
		s.Step(w, g, buf)
	}
}

// state exports the slots in PyTorch's layout, named "<slot>/<param>",
// and the owned parameters' values as "param/<param>".
func (o *hostOptimizer) state() backend.OptimizerState {
	s := backend.OptimizerState{Step: o.t, Tensors: model.Weights{}}
	for slot, bufs := range o.slots {
		for i, pr := range o.p.list {
			s.Tensors[slot+"/"+pr.Name] = o.p.canonical(i, bufs[i])
		}
	}
	for i := len(o.p.list) - o.owned; i < len(o.p.list); i++ {
		s.Tensors[backend.AdapterValueSlot+"/"+o.p.list[i].Name] = o.p.canonical(i, o.p.values[i].Data().([]float32))
	}
	return s
}

func (o *hostOptimizer) setState(s backend.OptimizerState) error {
	// Check everything before changing anything, so that a bad state
	// leaves the optimizer as it was.
	type restore struct {
		dst []float32
		t   model.Tensor
		i   int
	}
	var todo []restore
	need := func(name string, i int, dst []float32) error {
		t, ok := s.Tensors[name]
		if !ok {
			return fmt.Errorf("gorgonia: optimizer state lacks %q: it was saved by a trainer with another optimizer or objective", name)
		}
		if len(t.Data) != len(dst) {
			return fmt.Errorf("gorgonia: optimizer state %q has %d values, want %d", name, len(t.Data), len(dst))
		}
		todo = append(todo, restore{dst, t, i})
		return nil
	}
	for slot, bufs := range o.slots {
		for i, pr := range o.p.list {
			if err := need(slot+"/"+pr.Name, i, bufs[i]); err != nil {
				return err
			}
		}
	}
	for i := len(o.p.list) - o.owned; i < len(o.p.list); i++ {
		if err := need(backend.AdapterValueSlot+"/"+o.p.list[i].Name, i, o.p.values[i].Data().([]float32)); err != nil {
			return err
		}
	}
	for _, r := range todo {
		copy(r.dst, toInternal(o.p.spec, o.p.list[r.i], r.t).Data().([]float32))
	}
	o.t = s.Step
	return nil
}
