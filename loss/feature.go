package loss

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/distill-dev/distill/internal/vocab"
	"github.com/distill-dev/distill/model"
)

// FeatureKind names a kind of intermediate-layer distillation term.
type FeatureKind string

// Feature-term kinds.
const (
	// FeatureHint is FitNets' hint loss (Romero et al. 2015): a student
	// layer, passed through a trainable adapter (their "regressor"), is
	// pulled towards a teacher layer.
	FeatureHint FeatureKind = "hint"
	// FeatureAttention is attention transfer (Zagoruyko & Komodakis
	// 2017): the student's spatial attention map, the channel mean of
	// |x|^p normalised per example, is pulled towards the teacher's.
	FeatureAttention FeatureKind = "attention"
)

// featureKinds lists every term kind; the docs derive from it.
var featureKinds = vocab.Set[FeatureKind]{FeatureHint, FeatureAttention}

// FeatureKinds returns the feature-term kinds. The slice is a copy.
func FeatureKinds() []FeatureKind { return featureKinds.Values() }

// DefaultAttentionWeight is the weight of an attention term when a recipe
// gives none. It is the β of Zagoruyko & Komodakis' code, term for term:
// their cifar.py and imagenet.py add opt.beta·Σ_groups at_loss(s, t) with
// at_loss = (at(s) − at(t)).pow(2).mean(), at(x) = F.normalize(
// x.pow(2).mean(1).view(N, −1)), and run with --beta 1e+3. That mean over
// N·H·W is our term's, so their β weighs it unchanged. The paper's eq. 2
// writes β/2, but in front of the unsquared p-norm of the difference
// (with β = 10³/(H·W·N)): another form, whose ½ the code does not apply
// to its squared mean. (On several GPUs the code sums the per-GPU means,
// so it weighs the mean by β times the GPU count.)
const DefaultAttentionWeight = 1000

// Distance is how a hint compares the adapted student layer with the
// teacher layer.
type Distance string

// Hint distances.
const (
	DistanceMSE    Distance = "mse"    // mean over batch and elements of (a−t)², as F.mse_loss
	DistanceCosine Distance = "cosine" // mean over the batch of 1 − cos(a_b, t_b)
)

// DefaultDistance is a hint's distance when none is given.
const DefaultDistance = DistanceMSE

// distances lists every hint distance, DefaultDistance first; recipe
// validation, its schema and the reference docs derive from it.
var distances = vocab.Set[Distance]{DistanceMSE, DistanceCosine}

// Distances returns the hint distances, DefaultDistance first. The slice
// is a copy.
func Distances() []Distance { return distances.Values() }

// Adapter is how a hint maps the student layer onto the teacher layer's
// shape (FitNets' regressor).
type Adapter string

// Hint adapters.
const (
	// AdapterAuto picks none when the two shapes are equal, linear when
	// both are vectors and conv1x1 when both are [C,H,W] maps of equal
	// H×W. Any other pairing is an error: the choice must be explicit.
	AdapterAuto Adapter = "auto"
	// AdapterNone compares the student layer as it is; the two layers
	// must hold the same number of elements (compared in row-major order,
	// so a [C,H,W] map pairs with its flattened form).
	AdapterNone Adapter = "none"
	// AdapterLinear flattens both sides and maps the student's D_s values
	// to the teacher's D_t with y = x·Wᵀ + b (W is [D_t, D_s]).
	AdapterLinear Adapter = "linear"
	// AdapterConv1x1 maps [C_s,H,W] to [C_t,H,W] with a 1×1 convolution
	// (W is [C_t, C_s, 1, 1]); H×W must be equal.
	AdapterConv1x1 Adapter = "conv1x1"
)

// DefaultAdapter is a hint's adapter when none is given.
const DefaultAdapter = AdapterAuto

// adapters lists every hint adapter, DefaultAdapter first; recipe
// validation, its schema and the reference docs derive from it.
var adapters = vocab.Set[Adapter]{AdapterAuto, AdapterNone, AdapterLinear, AdapterConv1x1}

// Adapters returns the hint adapters, DefaultAdapter first. The slice is
// a copy.
func Adapters() []Adapter { return adapters.Values() }

// Feature is one intermediate-layer distillation term, added to the
// objective with weight Weight. Student and Teacher name layers of the two
// specs (model.Spec layer names, e.g. "act1" or "pool2"); the term reads
// each layer's output.
type Feature struct {
	Kind     FeatureKind
	Student  string // student layer name
	Teacher  string // teacher layer name
	Weight   float64
	Distance Distance // hint only: "" means DefaultDistance
	Adapter  Adapter  // hint only: "" means DefaultAdapter
	P        float64  // attention only: the power p of |x|^p, default 2; must be >= 1
}

// String names the term in messages, e.g. `hint act1→fc1`.
func (f Feature) String() string {
	return fmt.Sprintf("%s %s→%s", f.Kind, f.Student, f.Teacher)
}

// WithDefaults fills the zero Distance, Adapter and P of f's kind.
func (f Feature) WithDefaults() Feature {
	switch f.Kind {
	case FeatureHint:
		if f.Distance == "" {
			f.Distance = DefaultDistance
		}
		if f.Adapter == "" {
			f.Adapter = DefaultAdapter
		}
	case FeatureAttention:
		if f.P == 0 {
			f.P = 2
		}
	}
	return f
}

// Validate reports a term that cannot be computed whatever the specs.
func (f Feature) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch f.Kind {
	case FeatureHint:
		if f.Distance != "" && !slices.Contains(distances, f.Distance) {
			bad("distance %q is unknown: use %s", f.Distance, vocab.Quoted(distances))
		}
		if f.Adapter != "" && !slices.Contains(adapters, f.Adapter) {
			bad("adapter %q is unknown: use %s", f.Adapter, vocab.Quoted(adapters))
		}
		if f.P != 0 {
			bad("p is an attention setting; remove it from the hint term")
		}
	case FeatureAttention:
		if f.Distance != "" || f.Adapter != "" {
			bad("attention has no distance or adapter (got %q, %q); remove them", f.Distance, f.Adapter)
		}
		// p < 1 makes |x|^p non-differentiable at 0 with an infinite
		// slope, which turns the gradient into NaN.
		if f.P != 0 && !(f.P >= 1 && !math.IsInf(f.P, 0)) {
			bad("attention power p must be >= 1 and finite, got %v", f.P)
		}
	default:
		bad("kind %q is unknown: use %s", f.Kind, vocab.Quoted(featureKinds))
	}
	if f.Student == "" || f.Teacher == "" {
		bad("both a student and a teacher layer name are needed (got %q, %q)", f.Student, f.Teacher)
	}
	if !(f.Weight > 0) || math.IsInf(f.Weight, 0) {
		bad("weight must be > 0 and finite, got %v", f.Weight)
	}
	return errors.Join(errs...)
}

// NeedsTeacherFeatures reports whether the objective has feature terms,
// and so needs the teacher's intermediate outputs (backend.Batch's
// TeacherFeatures) besides, or instead of, its logits.
func (o Objective) NeedsTeacherFeatures() bool { return len(o.Features) > 0 }

// HasLogitTerms reports whether the hard or soft term is on. An objective
// with only feature terms (FitNets' hint stage) does not look at the
// logits at all.
func (o Objective) HasLogitTerms() bool { return o.HardWeight > 0 || o.SoftWeight > 0 }

// FeaturePlan is a Feature resolved against the student and teacher
// specs: defaults filled, the adapter chosen (never AdapterAuto; always
// AdapterNone for attention) and the per-example shapes of both layers
// known. Backends build their graphs from it.
type FeaturePlan struct {
	// Index is the term's position in Objective.Features; it names the
	// adapter ("adapter.<Index>") and seeds its initialisation.
	Index int
	Feature
	StudentShape []int // per-example output shape of the student layer
	TeacherShape []int // per-example output shape of the teacher layer
}

// ResolveFeatures resolves every term of fs against the two specs. Errors
// (all of them, joined) name both layers and both shapes: a mismatched
// pairing is a recipe error.
func ResolveFeatures(student, teacher model.Spec, fs []Feature) ([]FeaturePlan, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	sShapes, err := student.Shapes()
	if err != nil {
		return nil, fmt.Errorf("loss: student %q: %w", student.Name, err)
	}
	tShapes, err := teacher.Shapes()
	if err != nil {
		return nil, fmt.Errorf("loss: teacher %q: %w", teacher.Name, err)
	}
	var errs []error
	plans := make([]FeaturePlan, 0, len(fs))
	for i, f := range fs {
		p, err := resolve(i, f, student, teacher, sShapes, tShapes)
		if err != nil {
			errs = append(errs, fmt.Errorf("loss: feature term %d (%s): %w", i, f, err))
			continue
		}
		plans = append(plans, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return plans, nil
}

// CheckFeatures reports, all at once, the terms of fs that cannot pair
// the named layers of the two specs.
func CheckFeatures(student, teacher model.Spec, fs []Feature) error {
	_, err := ResolveFeatures(student, teacher, fs)
	return err
}

func resolve(i int, f Feature, student, teacher model.Spec, sShapes, tShapes [][]int) (FeaturePlan, error) {
	if err := f.Validate(); err != nil {
		return FeaturePlan{}, err
	}
	f = f.WithDefaults()
	layerShape := func(role string, spec model.Spec, shapes [][]int, name string) ([]int, error) {
		_, li, ok := spec.Layer(name)
		if !ok {
			names := make([]string, len(spec.Layers))
			for j, l := range spec.Layers {
				names[j] = l.Name
			}
			// A graph's node list is long: name the block outputs, where
			// features are usually taken, before it.
			if blocks := model.BlockOutputs(spec); len(blocks) > 0 {
				return nil, fmt.Errorf("the %s %q has no layer %q; its block outputs are %v, and all its layers %v", role, spec.Name, name, blocks, names)
			}
			return nil, fmt.Errorf("the %s %q has no layer %q; its layers are %v", role, spec.Name, name, names)
		}
		return shapes[li], nil
	}
	ss, serr := layerShape("student", student, sShapes, f.Student)
	ts, terr := layerShape("teacher", teacher, tShapes, f.Teacher)
	if err := errors.Join(serr, terr); err != nil {
		return FeaturePlan{}, err
	}
	p := FeaturePlan{Index: i, Feature: f, StudentShape: slices.Clone(ss), TeacherShape: slices.Clone(ts)}
	pair := fmt.Sprintf("student layer %q has shape %v and teacher layer %q has shape %v", f.Student, ss, f.Teacher, ts)
	isMap := func(s []int) bool { return len(s) == 3 }
	sameHW := isMap(ss) && isMap(ts) && ss[1] == ts[1] && ss[2] == ts[2]
	if f.Kind == FeatureAttention {
		if !sameHW {
			return FeaturePlan{}, fmt.Errorf("%s: attention needs two [C,H,W] maps with the same H×W (channels may differ); pair layers of equal spatial size", pair)
		}
		p.Adapter = AdapterNone
		return p, nil
	}
	switch f.Adapter {
	case AdapterAuto:
		switch {
		case slices.Equal(ss, ts):
			p.Adapter = AdapterNone
		case len(ss) == 1 && len(ts) == 1:
			p.Adapter = AdapterLinear
		case sameHW:
			p.Adapter = AdapterConv1x1
		default:
			return FeaturePlan{}, fmt.Errorf("%s: no adapter is chosen automatically for these shapes; set adapter %q to flatten both sides and map them with a linear layer, or pair layers of equal H×W", pair, AdapterLinear)
		}
	case AdapterNone:
		if model.Numel(ss) != model.Numel(ts) {
			return FeaturePlan{}, fmt.Errorf("%s: adapter %q needs the same number of elements (%d vs %d); use adapter %q", pair, AdapterNone, model.Numel(ss), model.Numel(ts), AdapterAuto)
		}
	case AdapterConv1x1:
		if !sameHW {
			return FeaturePlan{}, fmt.Errorf("%s: adapter %q needs two [C,H,W] maps with the same H×W; use adapter %q", pair, AdapterConv1x1, AdapterLinear)
		}
	case AdapterLinear:
	}
	return p, nil
}

// InputShape is the per-example shape of the student argument of
// Compute: for a hint, the adapter's output (the student layer's shape
// when the adapter is none, [numel(TeacherShape)] for linear, [C_t,H,W]
// for conv1x1); for attention, the student layer's own shape.
func (p FeaturePlan) InputShape() []int {
	if p.Kind != FeatureHint {
		return slices.Clone(p.StudentShape)
	}
	switch p.Adapter {
	case AdapterLinear:
		return []int{model.Numel(p.TeacherShape)}
	case AdapterConv1x1:
		return []int{p.TeacherShape[0], p.StudentShape[1], p.StudentShape[2]}
	}
	return slices.Clone(p.StudentShape)
}

// AdapterName is the adapter's parameter prefix, "adapter.<Index>".
func (p FeaturePlan) AdapterName() string { return fmt.Sprintf("adapter.%d", p.Index) }

// AdapterParams lists the adapter's trainable tensors in PyTorch's layout
// (weight, then bias, as nn.Linear and nn.Conv2d hold them); nil when the
// term has no adapter.
func (p FeaturePlan) AdapterParams() []model.Param {
	name := p.AdapterName()
	var wShape []int
	var out, fan int
	switch {
	case p.Kind == FeatureHint && p.Adapter == AdapterLinear:
		out, fan = model.Numel(p.TeacherShape), model.Numel(p.StudentShape)
		wShape = []int{out, fan}
	case p.Kind == FeatureHint && p.Adapter == AdapterConv1x1:
		out, fan = p.TeacherShape[0], p.StudentShape[0]
		wShape = []int{out, fan, 1, 1}
	default:
		return nil
	}
	return []model.Param{
		{Name: name + ".weight", Layer: name, Shape: wShape, FanIn: fan},
		{Name: name + ".bias", Layer: name, Shape: []int{out}, FanIn: fan},
	}
}

// InitAdapter returns the adapter's initial weights (nil without one):
// uniform in ±1/√fan_in like nn.Linear and nn.Conv2d (and model.Spec.Init),
// drawn from a seed fixed by Index so that every backend, and every run,
// starts the adapter from the same numbers.
func (p FeaturePlan) InitAdapter() model.Weights {
	ps := p.AdapterParams()
	if ps == nil {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(p.Index), 0x61646170746572)) // "adapter"
	w := make(model.Weights, len(ps))
	for _, pr := range ps {
		t := model.NewTensor(pr.Shape...)
		bound := 1 / math.Sqrt(float64(pr.FanIn))
		for i := range t.Data {
			t.Data[i] = float32((rng.Float64()*2 - 1) * bound)
		}
		w[pr.Name] = t
	}
	return w
}

// Adapt64 applies the adapter with weights w (PyTorch layout, named as
// AdapterParams) to n student rows s (n × numel(StudentShape)) in float64
// and returns n × numel(InputShape()) values. Without an adapter it
// returns s. It is the reference that backends' adapters are tested
// against.
func (p FeaturePlan) Adapt64(w model.Weights, s []float64, n int) ([]float64, error) {
	ps := p.AdapterParams()
	if ps == nil {
		return s, nil
	}
	ds, do := model.Numel(p.StudentShape), model.Numel(p.InputShape())
	if len(s) < n*ds {
		return nil, fmt.Errorf("loss: adapter %s needs %d student values, got %d", p.AdapterName(), n*ds, len(s))
	}
	W, okW := w[ps[0].Name]
	b, okB := w[ps[1].Name]
	if !okW || !okB || len(W.Data) != model.Numel(ps[0].Shape) || len(b.Data) != model.Numel(ps[1].Shape) {
		return nil, fmt.Errorf("loss: adapter %s needs tensors %q %v and %q %v", p.AdapterName(), ps[0].Name, ps[0].Shape, ps[1].Name, ps[1].Shape)
	}
	out := make([]float64, n*do)
	if p.Adapter == AdapterLinear {
		for e := 0; e < n; e++ {
			x, y := s[e*ds:(e+1)*ds], out[e*do:(e+1)*do]
			for o := range y {
				acc := float64(b.Data[o])
				for j, v := range x {
					acc += float64(W.Data[o*ds+j]) * v
				}
				y[o] = acc
			}
		}
		return out, nil
	}
	cs, ct, hw := p.StudentShape[0], p.TeacherShape[0], p.StudentShape[1]*p.StudentShape[2]
	for e := 0; e < n; e++ {
		x, y := s[e*ds:(e+1)*ds], out[e*do:(e+1)*do]
		for o := 0; o < ct; o++ {
			for j := 0; j < hw; j++ {
				acc := float64(b.Data[o])
				for c := 0; c < cs; c++ {
					acc += float64(W.Data[o*cs+c]) * x[c*hw+j]
				}
				y[o*hw+j] = acc
			}
		}
	}
	return out, nil
}

// Compute evaluates the weighted term, Weight·loss, averaged over n
// examples. student holds n × numel(InputShape()) values (for a hint, the
// adapter's output), teacher n × numel(TeacherShape), both row-major. If
// grad is non-nil it receives d(Weight·loss)/d student.
func (p FeaturePlan) Compute(student, teacher []float32, n int, grad []float32) (float64, error) {
	return computeFeature(p, student, teacher, n, grad)
}

// Compute64 is Compute in float64, for references and gradient checks.
func (p FeaturePlan) Compute64(student, teacher []float64, n int, grad []float64) (float64, error) {
	return computeFeature(p, student, teacher, n, grad)
}

// cosineEps and normalizeEps are PyTorch's defaults for
// F.cosine_similarity and F.normalize: a norm below them is clamped (and
// then treated as a constant by the gradient), which keeps all-zero
// features finite.
const (
	cosineEps    = 1e-8
	normalizeEps = 1e-12
)

func computeFeature[F float32 | float64](p FeaturePlan, s, t []F, n int, grad []F) (float64, error) {
	ds, dt := model.Numel(p.InputShape()), model.Numel(p.TeacherShape)
	if len(s) < n*ds || len(t) < n*dt {
		return 0, fmt.Errorf("loss: feature term %d (%s) needs %d student and %d teacher values, got %d and %d", p.Index, p.Feature, n*ds, n*dt, len(s), len(t))
	}
	if grad != nil && len(grad) < n*ds {
		return 0, fmt.Errorf("loss: feature term %d (%s): gradient buffer has %d elements, need %d", p.Index, p.Feature, len(grad), n*ds)
	}
	if n == 0 {
		return 0, nil
	}
	if i := FirstNonFinite(t[:n*dt]); i >= 0 {
		return 0, fmt.Errorf("loss: feature term %d (%s): teacher value %d of row %d is %v: the teacher's outputs must be finite", p.Index, p.Feature, i%dt, i/dt, t[i])
	}
	var v float64
	switch {
	case p.Kind == FeatureAttention:
		ss, ts := p.StudentShape, p.TeacherShape
		if len(ss) != 3 || len(ts) != 3 || ss[1] != ts[1] || ss[2] != ts[2] {
			return 0, fmt.Errorf("loss: feature term %d (%s): attention needs [C,H,W] maps of equal H×W, got %v and %v; resolve the term with ResolveFeatures", p.Index, p.Feature, ss, ts)
		}
		v = attention(p, s, t, n, grad)
	case ds != dt:
		return 0, fmt.Errorf("loss: feature term %d (%s): the adapted student has %d values per example, the teacher %d; resolve the term with ResolveFeatures", p.Index, p.Feature, ds, dt)
	case p.Distance == DistanceCosine:
		v = hintCosine(p.Weight, s, t, n, ds, grad)
	default:
		v = hintMSE(p.Weight, s, t, n, ds, grad)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v, &NonFiniteError{Value: Value{Total: v, Feature: v}}
	}
	return v, nil
}

// hintMSE is w·mean((s−t)²) over all n·d elements, as
// F.mse_loss(reduction="mean").
func hintMSE[F float32 | float64](w float64, s, t []F, n, d int, grad []F) float64 {
	inv := 1 / float64(n*d)
	var sum float64
	for i := 0; i < n*d; i++ {
		diff := float64(s[i]) - float64(t[i])
		sum += diff * diff
		if grad != nil {
			grad[i] = F(2 * w * diff * inv)
		}
	}
	return w * sum * inv
}

// hintCosine is w·mean over rows of 1 − cos(s_b, t_b), with PyTorch's
// F.cosine_similarity clamping of each norm at 1e-8.
func hintCosine[F float32 | float64](w float64, s, t []F, n, d int, grad []F) float64 {
	inv := 1 / float64(n)
	var sum float64
	for b := 0; b < n; b++ {
		sb, tb := s[b*d:(b+1)*d], t[b*d:(b+1)*d]
		var dot, ss, tt float64
		for j := range sb {
			x, y := float64(sb[j]), float64(tb[j])
			dot += x * y
			ss += x * x
			tt += y * y
		}
		rs, rt := math.Sqrt(ss), math.Sqrt(tt)
		ns, nt := math.Max(rs, cosineEps), math.Max(rt, cosineEps)
		cos := dot / (ns * nt)
		sum += 1 - cos
		if grad == nil {
			continue
		}
		// d cos/d s = t/(|s||t|) − cos·s/|s|², the second part only
		// while |s| is not clamped.
		self := 0.0
		if rs > cosineEps {
			self = cos / (ns * ns)
		}
		g := grad[b*d : (b+1)*d]
		for j := range sb {
			g[j] = F(-w * inv * (float64(tb[j])/(ns*nt) - self*float64(sb[j])))
		}
	}
	return w * sum * inv
}

// attentionMap writes the normalised attention map of one example x
// ([c, hw] row-major) into a, and returns the mean |x|^p map q and its
// unclamped norm.
func attentionMap[F float32 | float64](x []F, c, hw int, pw float64, q, a []float64) float64 {
	clear(q)
	for ch := 0; ch < c; ch++ {
		row := x[ch*hw : (ch+1)*hw]
		for j, v := range row {
			f := float64(v)
			if pw == 2 {
				q[j] += f * f
			} else {
				q[j] += math.Pow(math.Abs(f), pw)
			}
		}
	}
	var ss float64
	for j := range q {
		q[j] /= float64(c)
		ss += q[j] * q[j]
	}
	r := math.Sqrt(ss)
	norm := math.Max(r, normalizeEps)
	for j := range q {
		a[j] = q[j] / norm
	}
	return r
}

// attention is w·mean over n·H·W of (at(s) − at(t))², where
// at(x) = F.normalize(mean_c |x|^p) per example (Zagoruyko & Komodakis'
// at_loss; their x.pow(2) is |x|² for p = 2).
func attention[F float32 | float64](p FeaturePlan, s, t []F, n int, grad []F) float64 {
	cs, ct := p.StudentShape[0], p.TeacherShape[0]
	hw := p.StudentShape[1] * p.StudentShape[2]
	ds, dt := cs*hw, ct*hw
	qs, as := make([]float64, hw), make([]float64, hw)
	qt, at := make([]float64, hw), make([]float64, hw)
	g := make([]float64, hw)
	inv := 1 / float64(n*hw)
	var sum float64
	for b := 0; b < n; b++ {
		sb := s[b*ds : (b+1)*ds]
		rs := attentionMap(sb, cs, hw, p.P, qs, as)
		attentionMap(t[b*dt:(b+1)*dt], ct, hw, p.P, qt, at)
		var ag float64 // a·g
		for j := range as {
			diff := as[j] - at[j]
			sum += diff * diff
			g[j] = 2 * p.Weight * diff * inv
			ag += as[j] * g[j]
		}
		if grad == nil {
			continue
		}
		// Through the normalisation: dL/dq = (g − a(a·g))/|q|, or g/eps
		// while the norm is clamped (a constant then).
		norm := math.Max(rs, normalizeEps)
		for j := range g {
			if rs > normalizeEps {
				g[j] = (g[j] - as[j]*ag) / norm
			} else {
				g[j] /= norm
			}
		}
		// Through the channel mean of |x|^p: dq/dx = p·|x|^(p−1)·sign(x)/C.
		gb := grad[b*ds : (b+1)*ds]
		for ch := 0; ch < cs; ch++ {
			for j := 0; j < hw; j++ {
				x := float64(sb[ch*hw+j])
				var d float64
				if p.P == 2 {
					d = 2 * x
				} else if x != 0 {
					d = p.P * math.Pow(math.Abs(x), p.P-1) * math.Copysign(1, x)
				}
				gb[ch*hw+j] = F(g[j] * d / float64(cs))
			}
		}
	}
	return p.Weight * sum * inv
}
