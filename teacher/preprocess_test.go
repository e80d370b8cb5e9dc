package teacher

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/recipe"
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
	m, err := Preprocess(rec, []int{2, 1, 2}, recipe.Preprocess{Mean: []float64{1, 2}, Std: []float64{2, 4}})
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
	m, err = Preprocess(rec, []int{3}, recipe.Preprocess{Mean: []float64{0.5}})
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
		{[]float64{1, 2, 3}, nil, "3 mean values for the teacher's examples of 2 channel(s)"},
		{nil, []float64{1, 0}, "std[1] must be > 0"},
	} {
		if _, err := Preprocess(&recorder{}, []int{2, 4, 4}, recipe.Preprocess{Mean: tc.mean, Std: tc.std}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Preprocess(mean %v, std %v) = %v, want %q", tc.mean, tc.std, err, tc.want)
		}
	}
	if err := (&preprocessed{Model: &recorder{}, mean: []float32{0}, inv: []float32{1}, source: []int{0}, inPlane: 4, outPlane: 4, inSize: 4, outSize: 4}).Forward(make([]float32, 3), 1, nil); err == nil {
		t.Error("a short batch was accepted")
	}
}

// TestPreprocessBilinearMatchesPyTorch: resizing gives what PyTorch's
// F.interpolate(mode="bilinear", align_corners=False) gave for the same
// values (testdata/preprocess/gen.py), up and down, square or not, to
// and from one pixel.
func TestPreprocessBilinearMatchesPyTorch(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "preprocess", "bilinear.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Cases []struct {
			Shape, Size []int
			X, Y        []float32
		}
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden.Cases) < 5 {
		t.Fatalf("%d golden cases", len(golden.Cases))
	}
	for _, c := range golden.Cases {
		rec := &recorder{}
		m, err := Preprocess(rec, c.Shape, recipe.Preprocess{Size: c.Size})
		if err != nil {
			t.Fatal(err)
		}
		// Two examples: the second is the first negated.
		x := append(slices.Clone(c.X), c.X...)
		for i := len(c.X); i < len(x); i++ {
			x[i] = -x[i]
		}
		if err := m.Forward(x, 2, nil); err != nil {
			t.Fatal(err)
		}
		if len(rec.got) != 2*len(c.Y) {
			t.Fatalf("%v → %v: teacher got %d values, want %d", c.Shape, c.Size, len(rec.got), 2*len(c.Y))
		}
		var worst float64
		for i, want := range c.Y {
			worst = max(worst, math.Abs(float64(rec.got[i]-want)), math.Abs(float64(rec.got[len(c.Y)+i]+want)))
		}
		if worst > 1e-6 {
			t.Errorf("%v → %v: max |Δ| %g from PyTorch", c.Shape, c.Size, worst)
		}
	}
}

// TestPreprocessChannels: a grey image is repeated into the teacher's
// channels, bgr reverses them, and mean/std then apply per teacher
// channel.
func TestPreprocessChannels(t *testing.T) {
	rec := &recorder{}
	m, err := Preprocess(rec, []int{1, 1, 2}, recipe.Preprocess{Channels: 3, Mean: []float64{0, 1, 2}, Std: []float64{1, 2, 4}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Forward([]float32{2, 6}, 1, nil); err != nil {
		t.Fatal(err)
	}
	if want := []float32{2, 6, 0.5, 2.5, 0, 1}; !slices.Equal(rec.got, want) {
		t.Errorf("grey to 3 channels: teacher saw %v, want %v", rec.got, want)
	}
	// RGB data to a BGR teacher, resized 1×1 → 2×2 (every pixel the same).
	m, err = Preprocess(rec, []int{3, 1, 1}, recipe.Preprocess{ChannelOrder: recipe.ChannelsBGR, Size: []int{2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Forward([]float32{1, 2, 3, 4, 5, 6}, 2, nil); err != nil {
		t.Fatal(err)
	}
	if want := []float32{3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4}; !slices.Equal(rec.got, want) {
		t.Errorf("rgb to bgr: teacher saw %v, want %v", rec.got, want)
	}
	for _, tc := range []struct {
		shape []int
		p     recipe.Preprocess
		want  string
	}{
		{[]int{3, 4, 4}, recipe.Preprocess{Channels: 1}, "only a one-channel image"},
		{[]int{16}, recipe.Preprocess{Size: []int{4, 4}}, "work on images"},
		{[]int{1, 4, 4}, recipe.Preprocess{ChannelOrder: recipe.ChannelsBGR}, "reverses 3 colour channels"},
		{[]int{3, 4, 4}, recipe.Preprocess{ChannelOrder: "rgba"}, "unknown channel order"},
		{[]int{1, 4, 4}, recipe.Preprocess{Size: []int{0, 4}}, "height and width"},
	} {
		if _, err := Preprocess(&recorder{}, tc.shape, tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Preprocess(%v, %+v) = %v, want %q", tc.shape, tc.p, err, tc.want)
		}
	}
}
