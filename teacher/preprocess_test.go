package teacher

import (
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/model"
)

// recorder is a FeatureModel that keeps the inputs it was given.
type recorder struct {
	got    []float32
	closed bool
}

func (r *recorder) Spec() model.Spec { return model.Spec{Name: "rec", Classes: 1} }
func (r *recorder) Forward(x []float32, n int, out []float32) error {
	r.got = slices.Clone(x)
	return nil
}
func (r *recorder) ForwardFeatures(x []float32, n int, _ []string, _ []float32, _ [][]float32) error {
	r.got = slices.Clone(x)
	return nil
}
func (r *recorder) Weights() (model.Weights, error) { return model.Weights{}, nil }
func (r *recorder) Close() error                    { r.closed = true; return nil }

// TestPreprocess: the teacher sees (x-mean[c])/std[c] per channel of a
// [C, H, W] example, the caller's batch is left as it was, features go
// through the same normalisation, and bad lengths are errors.
func TestPreprocess(t *testing.T) {
	rec := &recorder{}
	m, err := Preprocess(rec, []int{2, 1, 2}, []float64{1, 2}, []float64{2, 4})
	if err != nil {
		t.Fatal(err)
	}
	// Two examples of 2 channels × 2 pixels.
	x := []float32{1, 3, 2, 6, 5, 7, 10, 14}
	orig := slices.Clone(x)
	if err := m.Forward(x, 2, make([]float32, 2)); err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 1, 0, 1, 2, 3, 2, 3}
	if !slices.Equal(rec.got, want) || !slices.Equal(x, orig) {
		t.Errorf("teacher saw %v (want %v); caller's batch now %v (was %v)", rec.got, want, x, orig)
	}
	fm, ok := m.(backend.FeatureModel)
	if !ok {
		t.Fatal("the wrapper of a FeatureModel is not one")
	}
	rec.got = nil
	if err := fm.ForwardFeatures(x, 2, nil, nil, nil); err != nil || !slices.Equal(rec.got, want) {
		t.Errorf("features: teacher saw %v, err %v; want %v", rec.got, err, want)
	}
	m.Close()
	if !rec.closed {
		t.Error("closing the wrapper left the teacher open")
	}

	// One value for every channel; a flat example is one channel.
	rec = &recorder{}
	m, err = Preprocess(rec, []int{3}, []float64{0.5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Forward([]float32{0.5, 1, 1.5}, 1, make([]float32, 1)); err != nil || !slices.Equal(rec.got, []float32{0, 0.5, 1}) {
		t.Errorf("flat example: teacher saw %v, err %v", rec.got, err)
	}

	for _, tc := range []struct {
		mean, std []float64
		want      string
	}{
		{[]float64{1, 2, 3}, nil, "3 mean values for examples of 2 channel(s)"},
		{nil, []float64{1, 0}, "std[1] must be > 0"},
	} {
		if _, err := Preprocess(&recorder{}, []int{2, 4, 4}, tc.mean, tc.std); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Preprocess(mean %v, std %v) = %v, want %q", tc.mean, tc.std, err, tc.want)
		}
	}
	if err := (&preprocessed{Model: &recorder{}, mean: []float32{0}, inv: []float32{1}, plane: 4, size: 4}).Forward(make([]float32, 3), 1, nil); err == nil {
		t.Error("a short batch was accepted")
	}
}
