package eval_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/distill-dev/distill/eval"
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
