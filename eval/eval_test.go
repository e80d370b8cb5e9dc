package eval_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/model"
)

func TestCompute(t *testing.T) {
	// 4 examples, 2 classes. Confidences by hand:
	//   [ln 3, 0]  -> p = 0.75 class 0 (label 0, right)
	//   [0, ln 3]  -> p = 0.75 class 1 (label 0, wrong)
	//   [ln 9, 0]  -> p = 0.90 class 0 (label 0, right)
	//   [0, ln 9]  -> p = 0.90 class 1 (label 1, right)
	l3, l9 := float32(math.Log(3)), float32(math.Log(9))
	logits := []float32{l3, 0, 0, l3, l9, 0, 0, l9}
	labels := []int32{0, 0, 0, 1}
	teacher := []float32{1, 0, 1, 0, 1, 0, 1, 0} // always class 0
	m, err := eval.Compute(logits, labels, teacher, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if m.Errors != 1 || m.Accuracy != 0.75 {
		t.Errorf("errors %d accuracy %v, want 1 and 0.75", m.Errors, m.Accuracy)
	}
	if m.Agreement != 0.5 {
		t.Errorf("agreement %v, want 0.5", m.Agreement)
	}
	// Bin [0.7,0.8): 2 examples, accuracy 0.5, confidence 0.75 -> gap 0.25.
	// Bin [0.9,1.0]: 2 examples, accuracy 1, confidence 0.9 -> gap 0.1.
	// ECE = 0.5·0.25 + 0.5·0.1 = 0.175.
	if math.Abs(m.ECE-0.175) > 1e-6 {
		t.Errorf("ECE %v, want 0.175", m.ECE)
	}
	wantNLL := -(math.Log(0.75) + math.Log(0.25) + math.Log(0.9) + math.Log(0.9)) / 4
	if math.Abs(m.NLL-wantNLL) > 1e-6 {
		t.Errorf("NLL %v, want %v", m.NLL, wantNLL)
	}
}

func TestComputeErrors(t *testing.T) {
	if _, err := eval.Compute([]float32{1, 2, 3}, []int32{0}, nil, 2, 10); err == nil {
		t.Error("mismatched logits accepted")
	}
	if _, err := eval.Compute([]float32{1, 2}, []int32{0}, nil, 2, 0); err == nil {
		t.Error("zero bins accepted")
	}
	if _, err := eval.Compute(nil, nil, nil, 2, 10); err == nil {
		t.Error("empty set accepted")
	}
}

func ExampleCompute() {
	logits := []float32{2, 0, 0, 3, 1, 0}
	labels := []int32{0, 1, 1}
	m, _ := eval.Compute(logits, labels, nil, 2, 15)
	fmt.Printf("accuracy %.3f, errors %d\n", m.Accuracy, m.Errors)
	// Output: accuracy 0.667, errors 1
}

// predictor returns fixed logits, poisoned at one place.
type predictor struct {
	spec    model.Spec
	classes int
	bad     int // index into the whole set's logits
	v       float32
	off     int
}

func (p *predictor) Spec() model.Spec { return p.spec }

func (p *predictor) Forward(x []float32, n int, out []float32) error {
	for i := range out[:n*p.classes] {
		out[i] = float32(i % p.classes)
		if p.off*p.classes+i == p.bad {
			out[i] = p.v
		}
	}
	p.off += n
	return nil
}

type inputs int

func (n inputs) Len() int                               { return int(n) }
func (inputs) Gather(idx []int, x []float32, y []int32) {}

// Issue 15 item 3: non-finite logits are an error naming the model and
// the first bad example, never an int(NaN) index panic in calibration.
func TestNonFiniteLogits(t *testing.T) {
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		p := &predictor{spec: model.Spec{Name: "huge"}, classes: 3, bad: 3*7 + 2, v: v}
		_, err := eval.Logits(context.Background(), p, inputs(10), 1, 3, 4)
		want := fmt.Sprintf(`model "huge" gave logit 2 = %v for example 7`, v)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Logits with a %v: %v, want an error containing %q", v, err, want)
		}
		logits := []float32{0, 1, 2, 0, 1, v}
		labels := []int32{0, 1}
		want = fmt.Sprintf("logit 2 of row 1 is %v", v)
		if _, err := eval.Compute(logits, labels, nil, 3, 10); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Compute with a %v: %v, want an error containing %q", v, err, want)
		}
		if _, err := eval.ECE(logits, labels, 3, 10); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ECE with a %v: %v, want an error containing %q", v, err, want)
		}
		if _, err := eval.Compute([]float32{0, 1, 2, 0, 1, 2}, labels, logits, 3, 10); err == nil || !strings.Contains(err.Error(), "teacher's "+want) {
			t.Errorf("Compute with a teacher's %v: %v", v, err)
		}
	}
	if _, err := eval.ECE([]float32{0, 1}, []int32{5}, 2, 10); err == nil {
		t.Error("ECE accepted label 5 of 2 classes")
	}
}

// TestLogitsBatchLargerThanData: a batch size far beyond the data (as a
// recipe may give) is clipped to it rather than allocated.
func TestLogitsBatchLargerThanData(t *testing.T) {
	p := &predictor{spec: model.Spec{Name: "m"}, classes: 3, bad: -1}
	logits, err := eval.Logits(context.Background(), p, inputs(10), 1, 3, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if len(logits) != 30 {
		t.Errorf("%d logits, want 30", len(logits))
	}
}
