package loss_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/distill-dev/distill/loss"
)

// Values pinned from PyTorch 1.13 (F.kl_div(log_softmax(s/T), softmax(t/T),
// reduction="batchmean")·T² and F.cross_entropy), float64, printed by
// testdata/torch_reference.py.
var torchCases = []struct {
	alpha, T, hard, soft, total float64
	grad                        []float64
}{
	{alpha: 0.0, T: 1.0, hard: 0.5625175855705769, soft: 0.0, total: 0.5625175855705769,
		grad: []float64{0.08351709062237157, 0.004158071100701103, 0.01863518180570069, -0.10631034352877336, -0.24276170528234575, 0.10009712932471604, 0.0607119778846608, 0.0819525980729689, 1.0192064041737659e-07, -0.00015298919544596648, 4.111772099558913e-05, 0.0001117695538099589}},
	{alpha: 0.9, T: 4.0, hard: 0.05625175855705767, soft: 0.9639328306619395, total: 1.0201845892189971,
		grad: []float64{0.1001096469022055, -0.03490443078790757, 0.04143617909350258, -0.10664139520780051, -0.22216945332956015, 0.13921381009783282, 0.013703194976247904, 0.06925244825547934, -0.08366765823510744, 0.16599492315423822, -0.07470157513355283, -0.007625689785578053}},
	{alpha: 0.5, T: 20.0, hard: 0.2812587927852884, soft: 0.8134819648065914, total: 1.0947407575918797,
		grad: []float64{0.08972599733607686, -0.030876236227192586, 0.034557070500512724, -0.09340683160939608, -0.21972774656256, 0.12553505158813222, 0.025387839959332328, 0.06880485501509545, -0.15079049609515696, 0.1290213771622816, -0.02805647811140402, 0.049825597044279316}},
	{alpha: 1.0, T: 2.0, hard: 0.0, soft: 0.6121395974949443, total: 0.6121395974949443,
		grad: []float64{0.09976853533030607, -0.01591784850341228, 0.03376718873909882, -0.11761787556599256, -0.23081198613783838, 0.12856067006024552, 0.02672544079065043, 0.07552587528694238, -0.010759576829888571, 0.04026454722290569, -0.023030238469782725, -0.006474731923234268}},
}

var (
	student = []float64{2.0, -1.0, 0.5, 3.0, 0.1, 0.2, -0.3, 0.0, -5.0, 10.0, 1.0, 2.0}
	teacher = []float64{1.0, 0.0, 0.0, 4.0, 3.0, -1.0, 0.5, 0.0, 0.0, 8.0, 2.0, 1.0}
	labels  = []int32{3, 0, 1}
)

func TestMatchesPyTorch(t *testing.T) {
	for _, c := range torchCases {
		t.Run(fmt.Sprintf("alpha=%v,T=%v", c.alpha, c.T), func(t *testing.T) {
			obj := loss.Hinton(c.alpha, c.T)
			grad := make([]float64, len(student))
			v, err := obj.Compute64(student, teacher, labels, 3, 4, grad)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []struct {
				name      string
				got, want float64
			}{{"hard", v.Hard, c.hard}, {"soft", v.Soft, c.soft}, {"total", v.Total, c.total}} {
				if math.Abs(p.got-p.want) > 1e-12 {
					t.Errorf("%s = %.15g, PyTorch %.15g", p.name, p.got, p.want)
				}
			}
			for i := range grad {
				if math.Abs(grad[i]-c.grad[i]) > 1e-12 {
					t.Errorf("grad[%d] = %.15g, PyTorch %.15g", i, grad[i], c.grad[i])
				}
			}
			// The float32 entry point agrees to float32 precision.
			s32, t32 := make([]float32, len(student)), make([]float32, len(teacher))
			for i := range student {
				s32[i], t32[i] = float32(student[i]), float32(teacher[i])
			}
			g32 := make([]float32, len(student))
			v32, err := obj.Compute(s32, t32, labels, 3, 4, g32)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(v32.Total-c.total) > 1e-6 {
				t.Errorf("float32 total = %v, PyTorch %v", v32.Total, c.total)
			}
			for i := range g32 {
				if math.Abs(float64(g32[i])-c.grad[i]) > 1e-6 {
					t.Errorf("float32 grad[%d] = %v, PyTorch %v", i, g32[i], c.grad[i])
				}
			}
		})
	}
}

// By hand: two classes, equal logits → CE = ln 2; identical student and
// teacher → KL = 0 at any temperature.
func TestByHand(t *testing.T) {
	v, err := loss.CrossEntropyOnly.Compute([]float32{1, 1}, nil, []int32{0}, 1, 2, nil)
	if err != nil || math.Abs(v.Total-math.Ln2) > 1e-12 {
		t.Fatalf("CE of equal logits = %v, %v; want ln 2", v.Total, err)
	}
	z := []float32{3, -2, 7}
	v, err = loss.Hinton(1, 5).Compute(z, z, []int32{2}, 1, 3, nil)
	if err != nil || math.Abs(v.Total) > 1e-12 {
		t.Fatalf("KL of identical logits = %v, %v; want 0", v.Total, err)
	}
}

func TestStableForHugeLogits(t *testing.T) {
	v, err := loss.Hinton(0.5, 1).Compute([]float32{1e4, -1e4}, []float32{-1e4, 1e4}, []int32{1}, 1, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	// CE ≈ 2e4, KL ≈ 2e4: finite, not Inf or NaN.
	if math.IsInf(v.Total, 0) || math.IsNaN(v.Total) || math.Abs(v.Total-2e4) > 1 {
		t.Fatalf("loss for huge logits = %+v", v)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		obj  loss.Objective
		s, t []float32
		y    []int32
	}{
		{"label out of range", loss.CrossEntropyOnly, []float32{1, 2}, nil, []int32{2}},
		{"short logits", loss.CrossEntropyOnly, []float32{1}, nil, []int32{0}},
		{"missing teacher", loss.Hinton(0.5, 2), []float32{1, 2}, nil, []int32{0}},
	}
	for _, tc := range tests {
		if _, err := tc.obj.Compute(tc.s, tc.t, tc.y, 1, 2, nil); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := (loss.Objective{}).Validate(); err == nil {
		t.Error("zero objective validated")
	}
	if err := (loss.Objective{SoftWeight: 1}).Validate(); err == nil {
		t.Error("soft objective without temperature validated")
	}
	_, err := loss.CrossEntropyOnly.Compute([]float32{float32(math.NaN()), 0}, nil, []int32{0}, 1, 2, nil)
	var nf *loss.NonFiniteError
	if !errors.As(err, &nf) {
		t.Errorf("NaN logits: error %v, want *NonFiniteError", err)
	}
}

func ExampleObjective_Compute() {
	// Distil one example with α = 0.9 at temperature 4.
	obj := loss.Hinton(0.9, 4)
	studentLogits := []float32{2, -1, 0.5}
	teacherLogits := []float32{3, -2, 0}
	grad := make([]float32, 3)
	v, _ := obj.Compute(studentLogits, teacherLogits, []int32{0}, 1, 3, grad)
	fmt.Printf("total %.4f = hard %.4f + soft %.4f\n", v.Total, v.Hard, v.Soft)
	// Output: total 0.3571 = hard 0.0241 + soft 0.3329
}

// Issue 15 item 3: a NaN or infinite teacher logit is an error naming the
// row and logit, never a finite loss over NaN gradients (the NaN used to
// fall out of the KL sum through its pt > 0 test).
func TestNonFiniteTeacherLogits(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		s := []float32{1, 2, 3, 1, 2, 3}
		tt := []float32{0, 1, 2, 0, bad, 2}
		grad := make([]float32, 6)
		v, err := loss.Hinton(0.5, 2).Compute(s, tt, []int32{0, 1}, 2, 3, grad)
		want := fmt.Sprintf("teacher logit 1 of row 1 is %v", bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("teacher logit %v: value %+v, error %v; want an error containing %q", bad, v, err, want)
		}
		var nf *loss.NonFiniteError
		if errors.As(err, &nf) {
			t.Errorf("teacher logit %v: %v blames the loss (and so the learning rate), not the teacher", bad, err)
		}
		// Without a soft term the teacher is not read.
		if _, err := loss.CrossEntropyOnly.Compute(s, tt, []int32{0, 1}, 2, 3, grad); err != nil {
			t.Errorf("hard-only objective read the teacher: %v", err)
		}
	}
}

func TestFirstNonFinite(t *testing.T) {
	for _, tc := range []struct {
		x    []float64
		want int
	}{
		{nil, -1},
		{[]float64{1, -1e308, math.MaxFloat64}, -1},
		{[]float64{0, math.NaN(), math.Inf(1)}, 1},
		{[]float64{math.Inf(-1)}, 0},
	} {
		if got := loss.FirstNonFinite(tc.x); got != tc.want {
			t.Errorf("FirstNonFinite(%v) = %d, want %d", tc.x, got, tc.want)
		}
	}
}
