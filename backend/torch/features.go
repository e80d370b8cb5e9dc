//go:build torch

package torch

import (
	"errors"
	"fmt"

	lib "github.com/sugarme/gotch/libtch"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// features holds a trainer's feature terms (loss.Feature, resolved into
// plans) and the adapters it trains for them: leaf tensors on the device
// that belong to the trainer, not to the model (backend.TrainConfig).
type features struct {
	plans   []loss.FeaturePlan
	layer   []int         // per plan, the student layer's index in the spec
	tsize   []int         // per plan, the teacher layer's per-example size
	first   []int         // per plan, the index in params of its adapter's weight (its bias follows)
	params  []model.Param // the adapters' parameters, in plan order
	tensors []ctensor     // the same, as tensors
}

// newFeatures resolves cfg's feature terms against the student and the
// teacher spec and creates their adapters from loss.FeaturePlan's
// InitAdapter, on the engine's thread.
func newFeatures(m *Model, cfg backend.TrainConfig) (*features, error) {
	f := &features{}
	fs := cfg.Objective.Features
	if len(fs) == 0 {
		return f, nil
	}
	if len(cfg.TeacherSpec.Layers) == 0 {
		return nil, errors.New("torch backend: the objective has feature terms: set TrainConfig.TeacherSpec to the teacher's architecture")
	}
	plans, err := loss.ResolveFeatures(m.spec, cfg.TeacherSpec, fs)
	if err != nil {
		return nil, fmt.Errorf("torch backend: %w", err)
	}
	f.plans = plans
	for _, p := range plans {
		_, li, _ := m.spec.Layer(p.Student)
		f.layer = append(f.layer, li)
		f.tsize = append(f.tsize, model.Numel(p.TeacherShape))
		ps := p.AdapterParams()
		if ps != nil {
			if _, _, clash := m.spec.Layer(p.AdapterName()); clash {
				return nil, fmt.Errorf("torch backend: the student has a layer named %q, which is the name of feature term %d's adapter: rename the layer", p.AdapterName(), p.Index)
			}
		}
		f.first = append(f.first, len(f.params))
		f.params = append(f.params, ps...)
	}
	err = m.do(func() error {
		s := newScope(m.b.device)
		for _, p := range plans {
			init := p.InitAdapter()
			for _, pr := range p.AdapterParams() {
				t := s.fromHost(init[pr.Name].Data, pr.Shape...)
				s.setRequiresGrad(t, true)
				if s.err == nil {
					f.tensors = append(f.tensors, s.keep(t))
				}
			}
		}
		if err := s.free(); err != nil {
			f.free()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("torch backend: creating the feature adapters: %w", err)
	}
	return f, nil
}

// checkBatch checks that b carries the teacher features of every term.
func (f *features) checkBatch(b *backend.Batch) error {
	if len(f.plans) == 0 {
		return nil
	}
	if len(b.TeacherFeatures) != len(f.plans) {
		return fmt.Errorf("torch backend: the objective has %d feature terms but the batch has %d teacher features: set Batch.TeacherFeatures", len(f.plans), len(b.TeacherFeatures))
	}
	for i, p := range f.plans {
		if len(b.TeacherFeatures[i]) < b.N*f.tsize[i] {
			return fmt.Errorf("torch backend: feature term %d (%s) needs %d teacher values (%d examples × layer %q's shape %v), got %d",
				i, p.Feature, b.N*f.tsize[i], b.N, p.Teacher, p.TeacherShape, len(b.TeacherFeatures[i]))
		}
	}
	return nil
}

// loss records the weighted sum of the feature terms on s, given the
// student layers' outputs captured by the forward pass (by layer index)
// and the batch's teacher features. It is nil without terms.
func (f *features) loss(s *scope, captured map[int]ctensor, teacher [][]float32, n int) ctensor {
	var total ctensor
	for i, p := range f.plans {
		st := captured[f.layer[i]]
		tt := s.fromHost(teacher[i][:n*f.tsize[i]], append([]int{n}, p.TeacherShape...)...)
		var term ctensor
		if p.Kind == loss.FeatureAttention {
			term = s.mseLoss(attentionMap(s, st, p.StudentShape[0], p.P, n), attentionMap(s, tt, p.TeacherShape[0], p.P, n))
		} else {
			term = f.hint(s, i, st, tt, n)
		}
		term = s.mulScalar(term, p.Weight)
		if total == nil {
			total = term
		} else {
			total = s.add(total, term)
		}
	}
	return total
}

// hint is the unweighted hint loss of term i between the adapted student
// layer st and the teacher layer tt, both flattened per example.
func (f *features) hint(s *scope, i int, st, tt ctensor, n int) ctensor {
	p := f.plans[i]
	a := st
	switch p.Adapter {
	case loss.AdapterLinear:
		a = s.linear(s.flatten(st), f.tensors[f.first[i]], f.tensors[f.first[i]+1])
	case loss.AdapterConv1x1:
		a = s.conv2d(st, f.tensors[f.first[i]], f.tensors[f.first[i]+1], 1, 0, 1)
	}
	a, tt = s.reshape(a, n, -1), s.reshape(tt, n, -1)
	if p.Distance == loss.DistanceCosine {
		// 1 − mean cos, each norm clamped at 1e-8 as F.cosine_similarity
		// does; norm's backward is 0 at a zero vector, so an all-zero
		// (dead ReLU) row gives a finite gradient.
		dot := s.sumDim(s.mul(a, tt), 1)
		na := s.clampMin(s.norm2(a, 1, false), 1e-8)
		nt := s.clampMin(s.norm2(tt, 1, false), 1e-8)
		cos := s.div(dot, s.mul(na, nt))
		return s.addScalar(s.mulScalar(s.mean(cos), -1), 1)
	}
	return s.mseLoss(a, tt)
}

// attentionMap is Zagoruyko & Komodakis' at(x) of [n, C, H, W] maps:
// mean over channels of |x|^p, L2-normalised per example (F.normalize,
// eps 1e-12), as [n, H·W].
func attentionMap(s *scope, x ctensor, channels int, pw float64, n int) ctensor {
	x = s.reshape(x, n, channels, -1)
	var q ctensor
	if pw == 2 {
		q = s.mul(x, x)
	} else {
		q = s.powScalar(s.abs(x), pw)
	}
	q = s.meanDim(q, 1)
	return s.div(q, s.clampMin(s.norm2(q, 1, true), 1e-12))
}

// free releases the adapters; it runs on the engine's thread.
func (f *features) free() {
	for _, t := range f.tensors {
		lib.AtFree(t)
	}
	f.tensors = nil
}
