package gorgonia

import (
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// featureState carries one feature term's step inputs (the teacher's
// features, the number of real rows) into the graph, and the weighted
// loss and gradient its forward pass computed.
//
// Like the objective, each term is one fused op computed on the host by
// package loss in float64 rather than built from gorgonia primitives: the
// normalisations of cosine hints and attention maps need clamped norms
// that gorgonia has no op for, and package loss is the reference every
// backend is tested against.
type featureState struct {
	plan    loss.FeaturePlan
	n       int       // real rows; rows n..batch-1 are padding
	per     int       // student-side (adapted) values per example
	tper    int       // teacher values per example
	teacher []float32 // batch × tper, rows ≥ n zero
	grad    []float32 // batch × per, rows ≥ n zero
	value   float64   // Weight·loss
	err     error
}

func newFeatureState(plan loss.FeaturePlan, batch int) *featureState {
	per, tper := model.Numel(plan.InputShape()), model.Numel(plan.TeacherShape)
	return &featureState{
		plan:    plan,
		per:     per,
		tper:    tper,
		teacher: make([]float32, batch*tper),
		grad:    make([]float32, batch*per),
	}
}

func (st *featureState) gradient() []float32 { return st.grad }

// forward computes the term's weighted loss of the (adapted) student
// feature s [batch, ...] and its gradient.
func (st *featureState) forward(s []float32) (float64, error) {
	clear(st.grad)
	n := st.n
	st.value, st.err = st.plan.Compute(s[:n*st.per], st.teacher[:n*st.tper], n, st.grad[:n*st.per])
	return st.value, st.err
}

// newAdapterParams holds the feature terms' adapters as params, so that
// the optimizer, its state and the layout conversions treat them exactly
// as the model's own linear and conv parameters.
func newAdapterParams(plans []loss.FeaturePlan) *params {
	ad := &params{}
	for _, pl := range plans {
		ps := pl.AdapterParams()
		if ps == nil {
			continue
		}
		kind := model.KindLinear
		if pl.Adapter == loss.AdapterConv1x1 {
			kind = model.KindConv2D
		}
		ad.spec.Layers = append(ad.spec.Layers, model.Layer{Name: pl.AdapterName(), Kind: kind})
		init := pl.InitAdapter()
		for _, pr := range ps {
			ad.list = append(ad.list, pr)
			ad.values = append(ad.values, toInternal(ad.spec, pr, init[pr.Name]))
		}
	}
	return ad
}

// join returns the parameters of p followed by those of q, sharing their
// tensors. Its spec only serves transposed's look-ups.
func (p *params) join(q *params) *params {
	j := &params{spec: model.Spec{Name: p.spec.Name}}
	for _, x := range []*params{p, q} {
		j.spec.Layers = append(j.spec.Layers, x.spec.Layers...)
		j.list = append(j.list, x.list...)
		j.values = append(j.values, x.values...)
	}
	return j
}
