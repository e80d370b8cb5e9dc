// Package eval measures a classifier's quality: accuracy, errors,
// agreement with a teacher, and calibration (expected calibration error).
// The metrics work on plain logits, so they serve any model, backend or
// runtime.
package eval

import (
	"context"
	"fmt"
	"math"

	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// Predictor computes logits for n examples; backend.Model and the INT8
// runtime's programs implement it.
type Predictor interface {
	Forward(x []float32, n int, out []float32) error
}

// Inputs is what Logits reads examples from; *data.Dataset implements it.
type Inputs interface {
	Len() int
	Gather(idx []int, x []float32, y []int32)
}

// Logits runs p over every example of ds in batches and returns the
// Len() × classes logits.
func Logits(ctx context.Context, p Predictor, ds Inputs, inputSize, classes, batch int) ([]float32, error) {
	if batch < 1 {
		return nil, fmt.Errorf("eval: batch size must be >= 1, got %d", batch)
	}
	n := ds.Len()
	// A batch larger than the data would only allocate rows never filled.
	batch = max(min(batch, n), 1)
	out := make([]float32, n*classes)
	x := make([]float32, batch*inputSize)
	y := make([]int32, batch)
	idx := make([]int, batch)
	for off := 0; off < n; off += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows := min(batch, n-off)
		for i := 0; i < rows; i++ {
			idx[i] = off + i
		}
		ds.Gather(idx[:rows], x[:rows*inputSize], y[:rows])
		batchOut := out[off*classes : (off+rows)*classes]
		if err := p.Forward(x[:rows*inputSize], rows, batchOut); err != nil {
			return nil, fmt.Errorf("eval: forward of examples %d..%d: %w", off, off+rows-1, err)
		}
		if i := loss.FirstNonFinite(batchOut); i >= 0 {
			name := "the model"
			if s, ok := p.(interface{ Spec() model.Spec }); ok {
				name = fmt.Sprintf("model %q", s.Spec().Name)
			}
			return nil, fmt.Errorf("eval: %s gave logit %d = %v for example %d: its outputs must be finite; check its weights (activations that overflow float32) and the inputs",
				name, i%classes, batchOut[i], off+i/classes)
		}
	}
	return out, nil
}

// checkFinite reports the first row of logits holding a NaN or infinity,
// which has no predicted class or confidence.
func checkFinite(logits []float32, classes int, what string) error {
	if i := loss.FirstNonFinite(logits); i >= 0 {
		return fmt.Errorf("eval: %s logit %d of row %d is %v; logits must be finite", what, i%classes, i/classes, logits[i])
	}
	return nil
}

// Argmax returns each row's predicted class.
func Argmax(logits []float32, classes int) []int32 {
	n := len(logits) / classes
	pred := make([]int32, n)
	for i := 0; i < n; i++ {
		row := logits[i*classes : (i+1)*classes]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		pred[i] = int32(best)
	}
	return pred
}

// Metrics summarises a model on a labelled set.
type Metrics struct {
	N        int
	Accuracy float64
	Errors   int
	// Agreement is the fraction of examples where the model's top-1 class
	// equals the teacher's; NaN when no teacher logits were given.
	Agreement float64
	// ECE is the expected calibration error over equal-width confidence bins.
	ECE float64
	// NLL is the mean negative log-likelihood of the true labels.
	NLL float64
}

// Compute scores logits against labels; teacher (same shape) may be nil.
func Compute(logits []float32, labels []int32, teacher []float32, classes, bins int) (Metrics, error) {
	n := len(labels)
	if classes < 1 || len(logits) != n*classes {
		return Metrics{}, fmt.Errorf("eval: %d logits for %d labels of %d classes", len(logits), n, classes)
	}
	if teacher != nil && len(teacher) != len(logits) {
		return Metrics{}, fmt.Errorf("eval: %d teacher logits, want %d", len(teacher), len(logits))
	}
	if n == 0 {
		return Metrics{}, fmt.Errorf("eval: no examples")
	}
	if err := checkFinite(logits, classes, "the model's"); err != nil {
		return Metrics{}, err
	}
	if teacher != nil {
		if err := checkFinite(teacher, classes, "the teacher's"); err != nil {
			return Metrics{}, err
		}
	}
	pred := Argmax(logits, classes)
	m := Metrics{N: n, Agreement: math.NaN()}
	for i, p := range pred {
		if p != labels[i] {
			m.Errors++
		}
	}
	m.Accuracy = float64(n-m.Errors) / float64(n)
	if teacher != nil {
		m.Agreement = Agreement(pred, Argmax(teacher, classes))
	}
	var err error
	if m.ECE, m.NLL, err = calibration(logits, labels, classes, bins); err != nil {
		return Metrics{}, err
	}
	return m, nil
}

// Agreement is the fraction of equal predictions.
func Agreement(a, b []int32) float64 {
	if len(a) == 0 || len(a) != len(b) {
		return math.NaN()
	}
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	return float64(same) / float64(len(a))
}

// ECE is the expected calibration error (Guo et al. 2017): examples are
// binned by top-1 confidence into bins equal-width bins, and the
// |accuracy − confidence| gaps are averaged, weighted by bin size.
func ECE(logits []float32, labels []int32, classes, bins int) (float64, error) {
	e, _, err := calibration(logits, labels, classes, bins)
	return e, err
}

func calibration(logits []float32, labels []int32, classes, bins int) (ece, nll float64, err error) {
	if bins < 1 {
		return 0, 0, fmt.Errorf("eval: ECE needs >= 1 bin, got %d", bins)
	}
	n := len(labels)
	if classes < 1 || len(logits) != n*classes {
		return 0, 0, fmt.Errorf("eval: %d logits for %d labels of %d classes", len(logits), n, classes)
	}
	// A NaN confidence would index bin int(NaN).
	if err := checkFinite(logits, classes, "the model's"); err != nil {
		return 0, 0, err
	}
	count := make([]int, bins)
	conf := make([]float64, bins)
	correct := make([]int, bins)
	for i := 0; i < n; i++ {
		if labels[i] < 0 || int(labels[i]) >= classes {
			return 0, 0, fmt.Errorf("eval: label %d of row %d is outside [0, %d)", labels[i], i, classes)
		}
		p := loss.Softmax(logits[i*classes:(i+1)*classes], 1)
		best := 0
		for j := range p {
			if p[j] > p[best] {
				best = j
			}
		}
		c := p[best]
		b := min(int(c*float64(bins)), bins-1)
		count[b]++
		conf[b] += c
		if int32(best) == labels[i] {
			correct[b]++
		}
		nll -= math.Log(math.Max(p[labels[i]], 1e-300))
	}
	for b := range count {
		if count[b] == 0 {
			continue
		}
		gap := math.Abs(float64(correct[b])/float64(count[b]) - conf[b]/float64(count[b]))
		ece += gap * float64(count[b]) / float64(n)
	}
	return ece, nll / float64(n), nil
}
