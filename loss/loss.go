// Package loss implements the distillation objectives on host memory in
// plain Go, in float64 arithmetic. It is the reference that every backend
// is tested against, and the gorgonia backend uses it directly.
package loss

import (
	"errors"
	"fmt"
	"math"
)

// Objective is the response-distillation loss of Hinton et al. (2015):
//
//	L = HardWeight·CE(s, y) + SoftWeight·T²·KL(softmax(t/T) ‖ softmax(s/T))
//
// averaged over the batch, plus any feature terms (hints and attention
// transfer on intermediate layers), each weighted by its own Weight. With
// α the distillation weight, HardWeight = 1−α and SoftWeight = α. The T²
// factor keeps the soft gradients' magnitude independent of T.
type Objective struct {
	HardWeight  float64
	SoftWeight  float64
	Temperature float64
	// Features are the intermediate-layer terms. With features, both
	// weights above may be 0: FitNets' first stage trains on the hint
	// alone.
	Features []Feature
}

// CrossEntropyOnly is the plain hard-label objective.
var CrossEntropyOnly = Objective{HardWeight: 1, Temperature: 1}

// Hinton returns the objective for distillation weight alpha at temperature t.
func Hinton(alpha, t float64) Objective {
	return Objective{HardWeight: 1 - alpha, SoftWeight: alpha, Temperature: t}
}

// Validate reports an objective that cannot be computed.
func (o Objective) Validate() error {
	var errs []error
	if o.HardWeight < 0 || o.SoftWeight < 0 || math.IsNaN(o.HardWeight) || math.IsNaN(o.SoftWeight) {
		errs = append(errs, fmt.Errorf("loss: weights must be >= 0 (hard %v, soft %v)", o.HardWeight, o.SoftWeight))
	}
	if o.HardWeight == 0 && o.SoftWeight == 0 && len(o.Features) == 0 {
		errs = append(errs, errors.New("loss: both weights are 0 and there is no feature term, nothing to train"))
	}
	if o.SoftWeight > 0 {
		if err := CheckTemperature(o.Temperature); err != nil {
			errs = append(errs, err)
		}
	}
	for i, f := range o.Features {
		if err := f.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("loss: feature term %d (%s): %w", i, f, err))
		}
	}
	return errors.Join(errs...)
}

// NeedsTeacher reports whether the objective has a soft term, and so
// needs the teacher's logits. Feature terms need the teacher's
// intermediate outputs instead: see NeedsTeacherFeatures.
func (o Objective) NeedsTeacher() bool { return o.SoftWeight > 0 }

// Value is a batch's mean loss and its weighted parts
// (Total = Hard + Soft + Feature).
type Value struct {
	Total   float64
	Hard    float64 // HardWeight·CE
	Soft    float64 // SoftWeight·T²·KL
	Feature float64 // Σ Weight·term over Objective.Features
}

// Compute evaluates the objective's logit terms for n rows of k logits;
// feature terms are computed by FeaturePlan.Compute, so Value.Feature is
// 0 here. student and teacher are n×k row-major; teacher may be nil when
// SoftWeight is 0. If grad is non-nil it receives dL/dstudent (n×k).
// A NaN or infinite teacher logit is an error naming its row, where
// PyTorch would return a NaN loss: the caller learns which input is bad
// instead of a NaN it would blame on the learning rate.
func (o Objective) Compute(student, teacher []float32, labels []int32, n, k int, grad []float32) (Value, error) {
	return compute(o, student, teacher, labels, n, k, grad)
}

// Compute64 is Compute on float64 logits, for references and gradient
// checks that need more precision than float32 holds.
func (o Objective) Compute64(student, teacher []float64, labels []int32, n, k int, grad []float64) (Value, error) {
	return compute(o, student, teacher, labels, n, k, grad)
}

func compute[F float32 | float64](o Objective, student, teacher []F, labels []int32, n, k int, grad []F) (Value, error) {
	if len(student) < n*k || len(labels) < n {
		return Value{}, fmt.Errorf("loss: need %d logits and %d labels, got %d and %d", n*k, n, len(student), len(labels))
	}
	soft := o.SoftWeight > 0
	if soft && len(teacher) < n*k {
		return Value{}, fmt.Errorf("loss: need %d teacher logits, got %d", n*k, len(teacher))
	}
	if soft {
		// Unchecked, a NaN teacher logit drops out of the KL sum (NaN > 0
		// is false) and leaves a finite loss over NaN gradients.
		if i := FirstNonFinite(teacher[:n*k]); i >= 0 {
			return Value{}, fmt.Errorf("loss: teacher logit %d of row %d is %v: the teacher's outputs must be finite", i%k, i/k, teacher[i])
		}
	}
	if grad != nil && len(grad) < n*k {
		return Value{}, fmt.Errorf("loss: gradient buffer has %d elements, need %d", len(grad), n*k)
	}
	if n == 0 {
		return Value{}, nil
	}
	T := o.Temperature
	ps := make([]float64, k)  // softmax(s)
	pst := make([]float64, k) // softmax(s/T)
	pt := make([]float64, k)  // softmax(t/T)
	lst := make([]float64, k) // log softmax(s/T)
	lt := make([]float64, k)  // log softmax(t/T)
	var hard, kl float64
	inv := 1 / float64(n)
	for i := 0; i < n; i++ {
		s := student[i*k : (i+1)*k]
		y := int(labels[i])
		if y < 0 || y >= k {
			return Value{}, fmt.Errorf("loss: label %d of row %d is outside [0, %d)", y, i, k)
		}
		if o.HardWeight > 0 {
			logSoftmax(s, 1, ps)
			hard -= ps[y]
			for j := range ps {
				ps[j] = math.Exp(ps[j])
			}
		}
		if soft {
			t := teacher[i*k : (i+1)*k]
			logSoftmax(s, T, lst)
			logSoftmax(t, T, lt)
			for j := 0; j < k; j++ {
				pt[j] = math.Exp(lt[j])
				pst[j] = math.Exp(lst[j])
				if pt[j] > 0 {
					kl += pt[j] * (lt[j] - lst[j])
				}
			}
		}
		if grad != nil {
			g := grad[i*k : (i+1)*k]
			for j := 0; j < k; j++ {
				var d float64
				if o.HardWeight > 0 {
					d = ps[j]
					if j == y {
						d--
					}
					d *= o.HardWeight
				}
				if soft {
					d += o.SoftWeight * T * (pst[j] - pt[j])
				}
				g[j] = F(d * inv)
			}
		}
	}
	v := Value{Hard: o.HardWeight * hard * inv}
	if soft {
		v.Soft = o.SoftWeight * T * T * kl * inv
	}
	v.Total = v.Hard + v.Soft
	if math.IsNaN(v.Total) || math.IsInf(v.Total, 0) {
		return v, &NonFiniteError{Value: v}
	}
	return v, nil
}

// FirstNonFinite returns the index of the first NaN or ±Inf in x, or -1.
func FirstNonFinite[F float32 | float64](x []F) int {
	for i, v := range x {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return i
		}
	}
	return -1
}

// NonFiniteError reports a loss that became NaN or Inf.
type NonFiniteError struct{ Value Value }

func (e *NonFiniteError) Error() string {
	parts := fmt.Sprintf("total %v, hard %v, soft %v", e.Value.Total, e.Value.Hard, e.Value.Soft)
	if e.Value.Feature != 0 {
		// Only then: messages of objectives without feature terms are
		// pinned in docs/reliability.md.
		parts += fmt.Sprintf(", feature %v", e.Value.Feature)
	}
	return "loss is not finite (" + parts + "): lower the learning rate or check the inputs"
}

// logSoftmax writes log softmax(z/T) into out and returns log Σ exp(z/T).
func logSoftmax[F float32 | float64](z []F, T float64, out []float64) float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v)/T)
	}
	var sum float64
	for _, v := range z {
		sum += math.Exp(float64(v)/T - m)
	}
	lse := m + math.Log(sum)
	for j, v := range z {
		out[j] = float64(v)/T - lse
	}
	return lse
}

// Softmax returns softmax(z/T) of one row of logits.
func Softmax[F float32 | float64](z []F, T float64) []float64 {
	out := make([]float64, len(z))
	logSoftmax(z, T, out)
	for i := range out {
		out[i] = math.Exp(out[i])
	}
	return out
}
