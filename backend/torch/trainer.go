//go:build torch

package torch

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// Trainer trains a Model in place: each Step is a forward pass in
// training mode (the batch's dropout masks, batchnorms on batch
// statistics, updating their running statistics), the objective (logit
// and feature terms) in libtorch ops, autograd, and the optimiser update
// in ATen's multi-tensor (_foreach_) ops, as torch.optim.Adam and
// torch.optim.SGD with foreach=True compute it. Buffers are not
// parameters: no gradient, no optimiser state, no weight decay.
type Trainer struct {
	m     *Model
	cfg   backend.TrainConfig
	opt   backend.Optimizer
	obj   loss.Objective
	feats *features
	// params and tensors are the model's parameters, then the feature
	// adapters'; trained marks those the objective reaches. Without
	// logit terms, the parameters of the layers that no feature term
	// reads, directly or not, get no gradient and, as torch.optim skips
	// parameters whose .grad is None, no update. Their batchnorms still
	// update their running statistics, as the student's whole forward
	// pass does in PyTorch: run marks the layers the objective or a
	// batchnorm needs, which give the same statistics as the whole pass.
	params  []model.Param
	tensors []ctensor
	trained []bool
	run     []bool
	bnPer   []bnCount // every batchnorm, for checkBatch
	step    int64
	slots   []string    // "m", "v" (Adam) or "momentum" (SGD with momentum)
	state   [][]ctensor // per slot, per param; zero-initialised
	masks   [][]int     // per dropout layer, the per-example mask shape
	sizes   []int       // per dropout layer, the per-example mask size
	// foreach selects the multi-tensor update (updateForeach); without
	// it, a libtorch that lacks those ops gets one op per tensor.
	foreach bool
	// foreachSqrt (on CUDA) builds Adam's denominator in multi-tensor ops
	// too, at the cost of more passes over memory.
	foreachSqrt bool
	// kept is the training set Keep copied to the device, if any.
	kept *keptSet
	// keepOnCPU makes KeepBudget unlimited on the CPU, where keeping
	// gains nothing, so that tests can check StepRows there.
	keepOnCPU bool
	closed    bool
}

// keptSet is a training set on the trainer's device: x [n, input...],
// y [n] (int64, nil without a hard term), teacher [n, classes] (nil
// without a soft term).
type keptSet struct {
	n             int
	x, y, teacher ctensor
}

var _ backend.ResidentTrainer = (*Trainer)(nil)

func newTrainer(m *Model, cfg backend.TrainConfig) (*Trainer, error) {
	if err := cfg.Objective.Validate(); err != nil {
		return nil, fmt.Errorf("torch backend: objective: %w", err)
	}
	if !cfg.Objective.HasLogitTerms() && !cfg.Objective.NeedsTeacherFeatures() {
		return nil, errors.New("torch backend: the objective has no term: give it a hard, soft or feature term")
	}
	if cfg.MaxBatch <= 0 {
		return nil, fmt.Errorf("torch backend: TrainConfig.MaxBatch must be > 0, got %d", cfg.MaxBatch)
	}
	opt := cfg.Optimizer.WithDefaults()
	var slots []string
	switch opt.Kind {
	case backend.Adam:
		if !(opt.Beta1 >= 0 && opt.Beta1 < 1 && opt.Beta2 >= 0 && opt.Beta2 < 1 && opt.Eps > 0) {
			return nil, fmt.Errorf("torch backend: Adam needs 0 <= beta1, beta2 < 1 and eps > 0, got %v, %v, %v", opt.Beta1, opt.Beta2, opt.Eps)
		}
		slots = []string{"m", "v"}
	case backend.SGD:
		if !(opt.Momentum >= 0) {
			return nil, fmt.Errorf("torch backend: SGD momentum must be >= 0, got %v", opt.Momentum)
		}
		if opt.Nesterov && opt.Momentum == 0 {
			return nil, errors.New("torch backend: Nesterov SGD needs a momentum > 0")
		}
		if opt.Momentum > 0 {
			slots = []string{"momentum"}
		}
	default:
		return nil, fmt.Errorf("torch backend: unknown optimizer %q: use %q or %q", opt.Kind, backend.Adam, backend.SGD)
	}
	if !(opt.WeightDecay >= 0) {
		return nil, fmt.Errorf("torch backend: weight decay must be >= 0, got %v", opt.WeightDecay)
	}
	if !(opt.MaxNorm >= 0) || math.IsInf(opt.MaxNorm, 0) {
		return nil, fmt.Errorf("torch backend: max-norm must be finite and >= 0 (0 = off), got %v", opt.MaxNorm)
	}
	feats, err := newFeatures(m, cfg)
	if err != nil {
		return nil, err
	}
	t := &Trainer{m: m, cfg: cfg, opt: opt, obj: cfg.Objective, feats: feats, slots: slots, masks: m.dropDim}
	targets := slices.Clone(feats.layer)
	if t.obj.HasLogitTerms() {
		targets = append(targets, len(m.spec.Layers)-1)
	}
	reached := m.ancestors(targets)
	for i, l := range m.spec.Layers {
		if l.Kind == model.KindBatchNorm {
			targets = append(targets, i)
			t.bnPer = append(t.bnPer, bnCount{l.Name, model.Numel(m.shapes[i][1:])})
		}
	}
	t.run = m.ancestors(targets)
	t.params = append(slices.Clone(m.params), feats.params...)
	t.tensors = append(slices.Clone(m.tensors), feats.tensors...)
	for _, p := range t.params {
		_, li, inModel := m.spec.Layer(p.Layer)
		t.trained = append(t.trained, !inModel || reached[li])
	}
	for _, sh := range m.dropDim {
		t.sizes = append(t.sizes, model.Numel(sh))
	}
	err = m.do(func() error {
		t.foreach = foreachMissing() == nil
		t.foreachSqrt = m.b.device >= 0
		s := newScope(m.b.device)
		for range slots {
			ts := make([]ctensor, len(t.tensors))
			for i := range t.tensors {
				z := s.call("zeros_like", func(o *ctensor) { lib.AtgZerosLike(o, t.tensors[i]) })
				if s.err == nil {
					ts[i] = s.keep(z)
				}
			}
			t.state = append(t.state, ts)
		}
		if err := s.free(); err != nil {
			t.freeState()
			return err
		}
		return nil
	})
	if err != nil {
		_ = m.b.eng.do(func() error { feats.free(); return nil })
		return nil, fmt.Errorf("torch backend: creating the optimizer state: %w", err)
	}
	return t, nil
}

// bnCount is a batchnorm layer and the number of values per channel one
// example gives it (H·W for 2d, 1 for 1d).
type bnCount struct {
	layer string
	per   int
}

// checkBatch validates b against the spec and the trainer's config; rows
// marks a batch of StepRows, whose examples are on the device already.
func (t *Trainer) checkBatch(b *backend.Batch, rows bool) error {
	if b == nil {
		return errors.New("torch backend: nil batch")
	}
	k, in := t.m.spec.Classes, t.m.inSize
	switch {
	case b.N <= 0 || b.N > t.cfg.MaxBatch:
		return fmt.Errorf("torch backend: batch of %d examples; the trainer was configured for 1..%d (TrainConfig.MaxBatch)", b.N, t.cfg.MaxBatch)
	case !rows && len(b.X) < b.N*in:
		return fmt.Errorf("torch backend: batch X has %d values, need %d (%d × %d)", len(b.X), b.N*in, b.N, in)
	case !rows && t.obj.HardWeight > 0 && len(b.Labels) < b.N:
		return fmt.Errorf("torch backend: batch has %d labels, need %d", len(b.Labels), b.N)
	case !rows && t.obj.NeedsTeacher() && len(b.TeacherLogits) < b.N*k:
		return fmt.Errorf("torch backend: the objective has a soft term and needs %d teacher logits, got %d", b.N*k, len(b.TeacherLogits))
	case b.Masks != nil && len(b.Masks) != len(t.masks):
		return fmt.Errorf("torch backend: batch has %d dropout masks, the spec has %d dropout layers", len(b.Masks), len(t.masks))
	case math.IsNaN(b.LR) || math.IsInf(b.LR, 0) || b.LR < 0:
		return fmt.Errorf("torch backend: learning rate %v must be finite and >= 0", b.LR)
	}
	for i := range b.Masks {
		if len(b.Masks[i]) < b.N*t.sizes[i] {
			return fmt.Errorf("torch backend: dropout mask %d has %d values, need %d (%d × %v)", i, len(b.Masks[i]), b.N*t.sizes[i], b.N, t.masks[i])
		}
	}
	if !rows {
		if err := t.feats.checkBatch(b); err != nil {
			return err
		}
	}
	for _, bn := range t.bnPer {
		if b.N*bn.per < 2 {
			return fmt.Errorf("torch backend: batchnorm layer %q needs more than one value per channel in training, a batch of %d gives %d (PyTorch refuses this too): train with batches of 2 or more", bn.layer, b.N, b.N*bn.per)
		}
	}
	if t.obj.HardWeight == 0 || rows {
		return nil // the labels are not read, or were checked by Keep
	}
	return checkLabels(b.Labels[:b.N], k)
}

func checkLabels(ys []int32, k int) error {
	for i, y := range ys {
		if y < 0 || int(y) >= k {
			return fmt.Errorf("torch backend: label %d of row %d is outside [0, %d)", y, i, k)
		}
	}
	return nil
}

// keepFraction is the share of the device's free memory a kept training
// set may take: the rest stays for the weights' copies, activations,
// gradients and libtorch's caching allocator, which grow with the model
// and the batch, not with the set.
const keepFraction = 4

// KeepBudget is a quarter of the CUDA device's free memory (cudaMemGetInfo)
// and 0 on the CPU, where the examples are in the device's memory already.
func (t *Trainer) KeepBudget() int64 {
	d := t.m.b.device
	if d < 0 {
		if t.keepOnCPU {
			return math.MaxInt64
		}
		return 0
	}
	var budget int64
	_ = t.do(func() error {
		if free, _, ok := cudaMemInfo(d); ok {
			budget = free / keepFraction
		}
		return nil
	})
	return budget
}

// Keep copies the training set to the device (backend.ResidentTrainer).
func (t *Trainer) Keep(set *backend.Batch) error {
	if set == nil || set.N <= 0 {
		return errors.New("torch backend: Keep of an empty set")
	}
	n, k, in := set.N, t.m.spec.Classes, t.m.inSize
	switch {
	case len(set.X) < n*in:
		return fmt.Errorf("torch backend: Keep: X has %d values, need %d (%d × %d)", len(set.X), n*in, n, in)
	case t.obj.HardWeight > 0 && len(set.Labels) < n:
		return fmt.Errorf("torch backend: Keep: %d labels, need %d", len(set.Labels), n)
	case t.obj.NeedsTeacher() && len(set.TeacherLogits) < n*k:
		return fmt.Errorf("torch backend: Keep: the objective has a soft term and needs %d teacher logits, got %d", n*k, len(set.TeacherLogits))
	}
	if t.obj.HardWeight > 0 {
		if err := checkLabels(set.Labels[:n], k); err != nil {
			return err
		}
	}
	err := t.do(func() error {
		t.freeKept()
		s := newScope(t.m.b.device)
		s.pageable = true // copied once
		ks := &keptSet{n: n, x: s.fromHost(set.X[:n*in], t.m.batchShape(n)...)}
		if t.obj.HardWeight > 0 {
			ks.y = s.labels(set.Labels[:n])
		}
		if t.obj.NeedsTeacher() {
			ks.teacher = s.fromHost(set.TeacherLogits[:n*k], n, k)
		}
		if s.err != nil {
			return s.free()
		}
		for _, p := range []*ctensor{&ks.x, &ks.y, &ks.teacher} {
			if *p != nil {
				*p = s.keep(*p)
			}
		}
		t.kept = ks
		return s.free()
	})
	if err != nil {
		return fmt.Errorf("torch backend: keeping the training set on %s: %w", deviceName(t.m.b.device), err)
	}
	return nil
}

// freeKept frees the kept set; it runs on the engine's thread.
func (t *Trainer) freeKept() {
	if t.kept == nil {
		return
	}
	for _, x := range []ctensor{t.kept.x, t.kept.y, t.kept.teacher} {
		if x != nil {
			lib.AtFree(x)
		}
	}
	t.kept = nil
}

// StepRows is Step on rows idx of the kept set
// (backend.ResidentTrainer): the batch is gathered on the device.
func (t *Trainer) StepRows(idx []int, b *backend.Batch) (loss.Value, error) {
	if err := t.checkBatch(b, true); err != nil {
		return loss.Value{}, err
	}
	if len(idx) != b.N {
		return loss.Value{}, fmt.Errorf("torch backend: StepRows of %d rows with a batch of %d", len(idx), b.N)
	}
	if len(t.feats.plans) > 0 {
		return loss.Value{}, errors.New("torch backend: StepRows cannot train feature terms: their teacher values are not kept; use Step")
	}
	return t.trainStep(b, func(s *scope) (x, y, teacher ctensor) {
		ks := t.kept
		if ks == nil {
			s.fail(errors.New("torch backend: StepRows before Keep"))
			return
		}
		for i, r := range idx {
			if r < 0 || r >= ks.n {
				s.fail(fmt.Errorf("torch backend: StepRows row idx[%d] = %d outside the kept set's [0, %d)", i, r, ks.n))
				return
			}
		}
		ix := s.indices(idx)
		x = s.indexSelect(ks.x, ix)
		if ks.y != nil {
			y = s.indexSelect(ks.y, ix)
		}
		if ks.teacher != nil {
			teacher = s.indexSelect(ks.teacher, ix)
		}
		return
	})
}

// Step runs one training step on b. If the loss is not finite it returns
// a *loss.NonFiniteError and leaves the weights and optimiser state as
// they were.
func (t *Trainer) Step(b *backend.Batch) (loss.Value, error) {
	if err := t.checkBatch(b, false); err != nil {
		return loss.Value{}, err
	}
	return t.trainStep(b, func(s *scope) (x, y, teacher ctensor) {
		n, k := b.N, t.m.spec.Classes
		x = s.fromHost(b.X[:n*t.m.inSize], t.m.batchShape(n)...)
		if t.obj.HardWeight > 0 {
			y = s.labels(b.Labels[:n])
		}
		if t.obj.NeedsTeacher() {
			teacher = s.fromHost(b.TeacherLogits[:n*k], n, k)
		}
		return
	})
}

// trainStep is one training step on b's masks and learning rate, with the
// inputs, labels (nil without a hard term) and teacher logits (nil
// without a soft term) inputs puts on the device.
func (t *Trainer) trainStep(b *backend.Batch, inputs func(s *scope) (x, y, teacher ctensor)) (loss.Value, error) {
	var v loss.Value
	err := t.do(func() error {
		s := newScope(t.m.b.device)
		defer s.free()
		mixed := t.m.b.mixed()
		s.mixed = mixed
		n := b.N
		x, y, teacher := inputs(s)
		if s.err != nil {
			return s.err
		}
		p := &pass{train: true, stats: make([]ctensor, len(t.m.bufs))}
		if b.Masks != nil {
			p.masks = make([]ctensor, len(b.Masks))
			for i, mk := range b.Masks {
				p.masks[i] = s.fromHost(mk[:n*t.sizes[i]], append([]int{n}, t.masks[i]...)...)
			}
		}
		var grads []ctensor
		err := withGrad(true, func() error {
			var captured map[int]ctensor
			var capture func(int, ctensor)
			if len(t.feats.plans) > 0 {
				captured = map[int]ctensor{}
				capture = func(layer int, out ctensor) {
					if mixed {
						out = s.toFloat(out) // feature losses read float32
					}
					captured[layer] = out
				}
			}
			// Only the forward pass runs under autocast; the losses and the
			// backward pass run outside it, as PyTorch's AMP recipe has
			// them, on float32 logits and features.
			var outs []ctensor
			err := withAutocast(t.m.b.device, mixed, func() error {
				outs = t.m.forward(s, x, p, t.run, capture)
				return nil
			})
			if err != nil {
				return err
			}
			var total, hard, soft ctensor
			if t.obj.HasLogitTerms() && s.err == nil {
				logits := outs[len(outs)-1]
				if mixed {
					logits = s.toFloat(logits)
				}
				total, hard, soft = t.objective(s, logits, y, teacher, n)
			}
			feat := t.feats.loss(s, captured, b.TeacherFeatures, n)
			switch {
			case total == nil:
				total = feat
			case feat != nil:
				total = s.add(total, feat)
			}
			if s.err != nil {
				return s.err
			}
			var ceV, klV, featV float64
			if hard != nil {
				ceV = s.item(hard)
			}
			if soft != nil {
				klV = s.item(soft)
			}
			if feat != nil {
				featV = s.item(feat)
			}
			v = t.value(ceV, klV, featV, n)
			if s.err != nil {
				return s.err
			}
			if math.IsNaN(v.Total) || math.IsInf(v.Total, 0) {
				return &loss.NonFiniteError{Value: v}
			}
			grads = t.gradients(s, total)
			return s.err
		})
		if err != nil {
			return err
		}
		// The update runs without autograd (grad mode is off on the
		// engine's thread outside withGrad(true)).
		t.update(s, grads, b.LR)
		if s.err != nil {
			return fmt.Errorf("optimizer update (the weights may be partly updated): %w", s.err)
		}
		t.m.commitStats(s, p)
		// On CUDA the backward pass and the update are launched
		// asynchronously; waiting for them here makes a step's time (and
		// any timing around Step) cover its work, not its launches.
		if d := t.m.b.device; d >= 0 {
			lib.AtcSynchronize(int64(d))
		}
		t.step++
		return nil
	})
	if err != nil {
		var nf *loss.NonFiniteError
		if errors.As(err, &nf) {
			return v, err
		}
		return v, fmt.Errorf("torch backend: training step: %w", err)
	}
	return v, nil
}

// objective records the loss on s and returns the differentiable total and
// the raw CE and KL-sum scalars (nil when their weight is 0):
//
//	total = HardWeight·CE(s, y) + SoftWeight·T²·Σ KL(softmax(t/T) ‖ softmax(s/T)) / N
func (t *Trainer) objective(s *scope, logits, y, teacher ctensor, n int) (total, ce, kl ctensor) {
	o := t.obj
	if o.HardWeight > 0 {
		ce = s.crossEntropy(logits, y)
		total = s.mulScalar(ce, o.HardWeight)
	}
	if o.SoftWeight > 0 {
		T := o.Temperature
		ls := s.logSoftmax(s.divScalar(logits, T))
		lt := s.logSoftmax(s.divScalar(teacher, T))
		kl = s.klSum(ls, lt)
		st := s.mulScalar(kl, o.SoftWeight*T*T/float64(n))
		if total == nil {
			total = st
		} else {
			total = s.add(total, st)
		}
	}
	return total, ce, kl
}

// gradients returns d total / d each trained tensor, nil for the others.
func (t *Trainer) gradients(s *scope, total ctensor) []ctensor {
	var in []ctensor
	for i, x := range t.tensors {
		if t.trained[i] {
			in = append(in, x)
		}
	}
	g := s.grads(total, in)
	if g == nil {
		return nil
	}
	all := make([]ctensor, len(t.tensors))
	seen := map[unsafe.Pointer]bool{}
	for i := range t.tensors {
		if !t.trained[i] {
			continue
		}
		all[i], g = g[0], g[1:]
		// The update writes into the gradients, so each must be a buffer
		// of its own: autograd may hand one tensor to two inputs (an
		// addition passes its gradient through unchanged), or an
		// expanded one (a mean's gradient) whose elements share memory.
		p := s.dataPtr(all[i])
		if seen[p] || !s.contiguous(all[i]) {
			all[i] = s.clone(all[i])
		}
		seen[p] = true
	}
	return all
}

// value turns the CE, KL-sum and weighted feature loss read back from the
// device into loss parts the way loss.Objective.Compute and
// loss.FeaturePlan.Compute report them.
func (t *Trainer) value(ce, klSum, feature float64, n int) loss.Value {
	o := t.obj
	var v loss.Value
	if o.HardWeight > 0 {
		v.Hard = o.HardWeight * ce
	}
	if o.SoftWeight > 0 {
		v.Soft = o.SoftWeight * o.Temperature * o.Temperature * klSum / float64(n)
	}
	v.Feature = feature
	v.Total = v.Hard + v.Soft + v.Feature
	return v
}

// update applies one optimiser step with learning rate lr, as PyTorch's
// torch.optim.Adam and torch.optim.SGD (dampening 0) compute it; weight
// decay is L2 added to the gradient. A parameter without a gradient is
// left alone. The gradients are consumed (overwritten, then freed).
func (t *Trainer) update(s *scope, grads []ctensor, lr float64) {
	if t.foreach {
		t.updateForeach(s, grads, lr)
	} else {
		t.updateEach(s, grads, lr)
	}
	for i, g := range grads {
		if g == nil {
			continue
		}
		s.drop(g)
		if o := t.opt; o.MaxNorm > 0 && i < len(t.m.params) && backend.MaxNormed(t.m.spec, t.params[i]) {
			s.renorm_(t.tensors[i], o.MaxNorm) // each unit's incoming weights (dim 0)
		}
	}
}

// updateForeach is the update in ATen's multi-tensor ops, the calls of
// PyTorch 1.13's torch.optim.Adam(foreach=True) and SGD(foreach=True):
// each op covers every parameter, so the step costs a fixed number of
// calls (kernel launches on CUDA: 10 for Adam, 3 or 4 for SGD with
// momentum) rather than ~10 per parameter. On the CPU ATen runs each op
// tensor by tensor, with the single-tensor kernels. The denominator of
// Adam is built in the gradients' buffers, which are not read after the
// moments are updated; nothing is allocated.
func (t *Trainer) updateForeach(s *scope, grads []ctensor, lr float64) {
	o := t.opt
	var ps, gs []ctensor
	state := make([][]ctensor, len(t.state))
	for i, g := range grads {
		if g == nil {
			continue
		}
		ps, gs = append(ps, t.tensors[i]), append(gs, g)
		for j := range t.state {
			state[j] = append(state[j], t.state[j][i])
		}
	}
	if len(gs) == 0 {
		return
	}
	if o.WeightDecay != 0 {
		s.foreach(foreachAddList, gs, ps, nil, o.WeightDecay) // g += wd·p
	}
	switch o.Kind {
	case backend.Adam:
		m, v := state[0], state[1]
		step := float64(t.step + 1)
		bc1 := 1 - math.Pow(o.Beta1, step)
		bc2 := 1 - math.Pow(o.Beta2, step)
		s.foreach(foreachMulScalar, m, nil, nil, o.Beta1) // m = β1·m + (1−β1)·g
		s.foreach(foreachAddList, m, gs, nil, 1-o.Beta1)
		s.foreach(foreachMulScalar, v, nil, nil, o.Beta2) // v = β2·v + (1−β2)·g²
		s.foreach(foreachAddcmul, v, gs, gs, 1-o.Beta2)
		// denom = √v / √bc2 + eps. On CUDA, where every call is a
		// kernel launch, √v is built with three multi-tensor ops; on the
		// CPU, where calls are cheap and memory passes are not, one
		// sqrt_out per parameter reads v and writes the result once.
		if t.foreachSqrt {
			s.foreach(foreachZero, gs, nil, nil, 0)
			s.foreach(foreachAddList, gs, v, nil, 1)
			s.foreach(foreachSqrt, gs, nil, nil, 0)
		} else {
			for i := range gs {
				s.sqrtOut(gs[i], v[i])
			}
		}
		s.foreach(foreachDivScalar, gs, nil, nil, math.Sqrt(bc2))
		s.foreach(foreachAddScalar, gs, nil, nil, o.Eps)
		s.foreach(foreachAddcdiv, ps, m, gs, -lr/bc1) // p = p − (lr/bc1)·m / denom
	case backend.SGD:
		d := gs
		if o.Momentum != 0 {
			buf := state[0]
			s.foreach(foreachMulScalar, buf, nil, nil, o.Momentum) // buf = μ·buf + g (the
			s.foreach(foreachAddList, buf, gs, nil, 1)             // zero initial buf gives g)
			if o.Nesterov {
				s.foreach(foreachAddList, gs, buf, nil, o.Momentum) // d = g + μ·buf
			} else {
				d = buf
			}
		}
		s.foreach(foreachAddList, ps, d, nil, -lr) // p = p − lr·d
	}
}

// updateEach is the update in gotch's single-tensor ops, for a libtorch
// without the ATen entry points updateForeach calls. It follows PyTorch's
// single-tensor torch.optim.Adam and torch.optim.SGD. The first moment is
// updated as β1·m + (1−β1)·g, as PyTorch 1.x does with mul_ and add_;
// 2.x's lerp_ gives the same values up to rounding (and lerp_ is ~7×
// slower than mul_ on the CPU in 1.13). Temporaries are freed per
// parameter.
func (t *Trainer) updateEach(s *scope, grads []ctensor, lr float64) {
	o := t.opt
	step := float64(t.step + 1)
	for i, p := range t.tensors {
		g := grads[i]
		if g == nil {
			continue
		}
		if o.WeightDecay != 0 {
			wd := s.mulScalar(p, o.WeightDecay)
			s.add_(g, wd) // grad = grad + wd·param
			s.drop(wd)
		}
		switch o.Kind {
		case backend.Adam:
			m, v := t.state[0][i], t.state[1][i]
			gs := s.mulScalar(g, 1-o.Beta1) // m = β1·m + (1−β1)·g
			s.mulScalar_(m, o.Beta1)
			s.add_(m, gs)
			s.drop(gs)
			s.mulScalar_(v, o.Beta2) // v = β2·v + (1−β2)·g²
			s.mul_(g, g)
			s.mulScalar_(g, 1-o.Beta2)
			s.add_(v, g)
			bc1 := 1 - math.Pow(o.Beta1, step)
			bc2 := 1 - math.Pow(o.Beta2, step)
			denom := s.sqrt(v) // denom = √v / √bc2 + eps
			s.divScalar_(denom, math.Sqrt(bc2))
			s.addScalar_(denom, o.Eps)
			num := s.mulScalar(m, -lr/bc1)
			s.addcdiv_(p, num, denom) // p = p − (lr/bc1)·m / denom
			s.drop(num)
			s.drop(denom)
		case backend.SGD:
			d := g
			if o.Momentum != 0 {
				buf := t.state[0][i]
				s.mulScalar_(buf, o.Momentum) // buf = μ·buf + g (the zero
				s.add_(buf, g)                // initial buf gives buf = g)
				if o.Nesterov {
					mb := s.mulScalar(buf, o.Momentum)
					s.add_(g, mb) // d = g + μ·buf
					s.drop(mb)
				} else {
					d = buf
				}
			}
			u := s.mulScalar(d, -lr)
			s.add_(p, u) // p = p − lr·d
			s.drop(u)
		}
	}
}

// State returns the step count and host copies of the moments, named
// "<slot>/<param>": "m/…" and "v/…" for Adam, "momentum/…" for SGD with
// momentum; and the feature adapters' values as "param/adapter.<i>.…"
// (backend.OptimizerState).
func (t *Trainer) State() (backend.OptimizerState, error) {
	st := backend.OptimizerState{Tensors: model.Weights{}}
	err := t.do(func() error {
		st.Step = t.step
		s := newScope(t.m.b.device)
		for _, v := range t.stateTensors() {
			h := model.NewTensor(v.param.Shape...)
			s.toHost(v.tensor, h.Data)
			st.Tensors[v.name] = h
		}
		return s.free()
	})
	if err != nil {
		return backend.OptimizerState{}, fmt.Errorf("torch backend: reading the optimizer state: %w", err)
	}
	return st, nil
}

// SetState restores a state returned by State (of a trainer with the same
// spec and optimizer kind).
func (t *Trainer) SetState(st backend.OptimizerState) error {
	if st.Step < 0 {
		return fmt.Errorf("torch backend: optimizer state step %d < 0", st.Step)
	}
	var errs []error
	want := map[string]bool{}
	vs := t.stateTensors()
	for _, v := range vs {
		want[v.name] = true
		h, ok := st.Tensors[v.name]
		p := v.param
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("missing tensor %q", v.name))
		case len(h.Data) != model.Numel(p.Shape) || model.Numel(h.Shape) != len(h.Data) || len(h.Shape) != len(p.Shape):
			errs = append(errs, fmt.Errorf("tensor %q has shape %v, need %v", v.name, h.Shape, p.Shape))
		}
	}
	for name := range st.Tensors {
		if !want[name] {
			errs = append(errs, fmt.Errorf("unexpected tensor %q (this trainer's optimizer is %s with slots %s)", name, t.opt.Kind, strings.Join(t.slots, ", ")))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("torch backend: optimizer state does not fit: %w", errors.Join(errs...))
	}
	err := t.do(func() error {
		s := newScope(t.m.b.device)
		for _, v := range vs {
			h := s.fromHost(st.Tensors[v.name].Data, v.param.Shape...)
			s.copy_(v.tensor, h)
			s.drop(h)
		}
		if err := s.free(); err != nil {
			return err
		}
		t.step = st.Step
		return nil
	})
	if err != nil {
		return fmt.Errorf("torch backend: restoring the optimizer state: %w", err)
	}
	return nil
}

// stateTensor is one tensor of the optimizer state.
type stateTensor struct {
	name   string
	param  model.Param
	tensor ctensor
}

// stateTensors lists the tensors State returns: each slot of each
// parameter, then the adapters' values. Copying a value into an adapter
// (SetState) must not be recorded by autograd: it runs with grad mode
// off, as everything outside withGrad(true) does.
func (t *Trainer) stateTensors() []stateTensor {
	var r []stateTensor
	for j, slot := range t.slots {
		for i, p := range t.params {
			r = append(r, stateTensor{slot + "/" + p.Name, p, t.state[j][i]})
		}
	}
	for i, p := range t.feats.params {
		r = append(r, stateTensor{backend.AdapterValueSlot + "/" + p.Name, p, t.feats.tensors[i]})
	}
	return r
}

// do runs f on the engine's thread unless the trainer or its model is
// closed.
func (t *Trainer) do(f func() error) error {
	return t.m.b.eng.do(func() error {
		if t.closed || t.m.closed {
			return ErrClosed
		}
		return f()
	})
}

// Close frees the optimiser state. The model stays usable.
func (t *Trainer) Close() error {
	return t.m.b.eng.release(func() {
		if !t.closed {
			t.closed = true
			t.freeState()
			t.freeKept()
			t.feats.free()
		}
	})
}

func (t *Trainer) freeState() {
	for _, ts := range t.state {
		for _, x := range ts {
			if x != nil {
				lib.AtFree(x)
			}
		}
	}
	t.state = nil
}
