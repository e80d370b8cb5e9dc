package teacher_test

import (
	"math"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	_ "github.com/distill-dev/distill/backend/gorgonia"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/teacher"
)

// The ensemble's logits soften, at its temperature, to the weighted mean
// of the members' softened predictions, computed here by hand.
func TestEnsembleMixesSoftenedPredictions(t *testing.T) {
	b, _ := backend.Open("gorgonia", backend.Options{})
	spec, _ := model.MLP(model.MLPConfig{Name: "t", Input: []int{3}, Hidden: []int{4}, Classes: 3})
	var ms []backend.Model
	for seed := uint64(1); seed <= 2; seed++ {
		w, _ := spec.Init(seed)
		m, err := b.Load(spec, w)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	const T = 3
	ens, err := teacher.Ensemble(ms, []float64{1, 3}, loss.SoftTargets{Temperature: T})
	if err != nil {
		t.Fatal(err)
	}
	x := []float32{0.5, -1, 2, 1, 1, 1}
	got := make([]float32, 6)
	if err := ens.Logits(nil, x, 2, got); err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 2; r++ {
		var want [3]float64
		for i, w := range []float64{0.25, 0.75} {
			z := make([]float32, 3)
			ms[i].Forward(x[r*3:(r+1)*3], 1, z)
			for j, p := range loss.Softmax(z, T) {
				want[j] += w * p
			}
		}
		for j, p := range loss.Softmax(got[r*3:(r+1)*3], T) {
			if math.Abs(p-want[j]) > 1e-6 {
				t.Errorf("row %d class %d: softened ensemble %v, want %v", r, j, p, want[j])
			}
		}
	}
	if _, err := teacher.Ensemble(ms, []float64{1, 0}, loss.SoftTargets{Temperature: T}); err == nil {
		t.Error("zero weight accepted")
	}
	// Infinite T passed the old check (T > 0) and softened every member
	// to the uniform distribution.
	for _, bad := range []float64{0, -1, math.Inf(1), math.NaN()} {
		if _, err := teacher.Ensemble(ms, []float64{1, 3}, loss.SoftTargets{Temperature: bad}); err == nil {
			t.Errorf("temperature %v accepted", bad)
		}
	}
}

// Issue 15 item 3: a member whose outputs overflow is named, not mixed
// into NaN soft targets blamed on the ensemble's main teacher.
func TestEnsembleNonFiniteMember(t *testing.T) {
	b, _ := backend.Open("gorgonia", backend.Options{})
	var ms []backend.Model
	for i, name := range []string{"fine", "huge"} {
		spec, _ := model.MLP(model.MLPConfig{Name: name, Input: []int{3}, Hidden: []int{4}, Classes: 3})
		w, _ := spec.Init(1)
		if i == 1 {
			for _, tn := range w {
				for j := range tn.Data {
					tn.Data[j] = 3e38
				}
			}
		}
		m, err := b.Load(spec, w)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ms = append(ms, m)
	}
	ens, err := teacher.Ensemble(ms, []float64{1, 1}, loss.SoftTargets{Temperature: 2})
	if err != nil {
		t.Fatal(err)
	}
	err = ens.Logits(nil, []float32{0.5, 1, 2, 1, 1, 1}, 2, make([]float32, 6))
	if err == nil || !strings.Contains(err.Error(), `ensemble member 1 ("huge") gave logit 0 = +Inf for row 0`) {
		t.Fatalf("Logits: %v, want an error naming member 1 and row 0", err)
	}
}
