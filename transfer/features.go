package transfer

import (
	"fmt"
	"slices"

	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/train"
)

// FeatureTeacher returns a train.FeatureTeacher over the set for feature
// distillation (hints, attention transfer) without running a teacher:
// its logits are Ensemble(T)'s soft targets and its layer outputs are
// teacher t's stored features, one stored feature per layer, named as the
// layer. spec is teacher t's architecture; every stored feature of
// teacher t must be a layer of spec with the layer's per-example shape.
// Asking for a layer that was not stored is an error naming the layers
// that were.
func (s *Set) FeatureTeacher(T float64, t int, spec model.Spec) (train.FeatureTeacher, error) {
	if t < 0 || t >= s.st.nt {
		return nil, fmt.Errorf("transfer: teacher %d outside [0, %d)", t, s.st.nt)
	}
	ens, err := s.Ensemble(T)
	if err != nil {
		return nil, err
	}
	shapes, err := spec.Shapes()
	if err != nil {
		return nil, fmt.Errorf("transfer: teacher spec %q: %w", spec.Name, err)
	}
	stored := s.st.d.Teachers[t].Features
	for _, f := range stored {
		_, li, ok := spec.Layer(f.Name)
		if !ok {
			return nil, fmt.Errorf("transfer: the set stores feature %q of teacher %d, but spec %q has no such layer: the set was built for another teacher", f.Name, t, spec.Name)
		}
		if !slices.Equal(shapes[li], f.Shape) {
			return nil, fmt.Errorf("transfer: the set stores feature %q of teacher %d with shape %v, but layer %q of spec %q has shape %v: the set was built for another teacher", f.Name, t, f.Shape, f.Name, spec.Name, shapes[li])
		}
	}
	return &featureView{s: s, t: t, spec: spec, ens: ens, stored: stored}, nil
}

type featureView struct {
	s      *Set
	t      int
	spec   model.Spec
	ens    train.Teacher
	stored []FeatureSpec
}

func (v *featureView) Spec() model.Spec { return v.spec }

func (v *featureView) Logits(idx []int, x []float32, n int, out []float32) error {
	return v.ens.Logits(idx, x, n, out)
}

func (v *featureView) Features(idx []int, x []float32, n int, layers []string, logits []float32, feats [][]float32) error {
	if len(feats) != len(layers) {
		return fmt.Errorf("transfer: %d layer names and %d feature buffers", len(layers), len(feats))
	}
	if n < 0 || n > len(idx) {
		return fmt.Errorf("transfer: %d rows requested with %d indices", n, len(idx))
	}
	for i, name := range layers {
		j := slices.IndexFunc(v.stored, func(f FeatureSpec) bool { return f.Name == name })
		if j < 0 {
			names := make([]string, len(v.stored))
			for k, f := range v.stored {
				names[k] = f.Name
			}
			return fmt.Errorf("transfer: layer %q of teacher %d is not stored in the set (it stores %v): build the set with that feature", name, v.t, names)
		}
		size := model.Numel(v.stored[j].Shape)
		if len(feats[i]) < n*size {
			return fmt.Errorf("transfer: feature buffer %d for layer %q has %d values, need %d", i, name, len(feats[i]), n*size)
		}
		if err := v.s.Features(v.t, name, idx[:n], feats[i][:n*size]); err != nil {
			return err
		}
	}
	if logits != nil {
		return v.ens.Logits(idx, x, n, logits)
	}
	return nil
}

// LayerForwarder is a model that returns its intermediate layers'
// outputs, as backend.FeatureModel does.
type LayerForwarder interface {
	ForwardFeatures(x []float32, n int, layers []string, logits []float32, feats [][]float32) error
}

// LayerFeatures returns the Features and FeatureFn of a Teacher that
// stores the outputs of the given layers of spec, computed by m, so that
// FeatureTeacher can serve them by layer name.
func LayerFeatures(m LayerForwarder, spec model.Spec, layers []string) ([]FeatureSpec, FeatureFn, error) {
	shapes, err := spec.Shapes()
	if err != nil {
		return nil, nil, fmt.Errorf("transfer: teacher spec %q: %w", spec.Name, err)
	}
	var fs []FeatureSpec
	for _, name := range layers {
		if slices.ContainsFunc(fs, func(f FeatureSpec) bool { return f.Name == name }) {
			continue
		}
		_, li, ok := spec.Layer(name)
		if !ok {
			return nil, nil, fmt.Errorf("transfer: teacher %q has no layer %q", spec.Name, name)
		}
		fs = append(fs, FeatureSpec{Name: name, Shape: slices.Clone(shapes[li])})
	}
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	fn := func(x []float32, n int, out map[string][]float32) error {
		bufs := make([][]float32, len(names))
		for i, name := range names {
			bufs[i] = out[name]
		}
		return m.ForwardFeatures(x, n, names, nil, bufs)
	}
	return fs, fn, nil
}
