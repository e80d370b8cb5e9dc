package transfer_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/backend"
	_ "github.com/distill-dev/distill/backend/gorgonia"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/train"
	"github.com/distill-dev/distill/transfer"
)

// TestFeatureTeacherMatchesTheModel stores a CNN teacher's layers in a
// transfer set with augmented copies and checks that the set, as a
// train.FeatureTeacher, serves exactly what the model computes on the
// same (augmented) inputs, without running it.
func TestFeatureTeacherMatchesTheModel(t *testing.T) {
	b, err := backend.Open("gorgonia", backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	spec, err := model.CNN(model.CNNConfig{Name: "teacher", Input: []int{1, 8, 8},
		Conv: []model.ConvBlock{{Channels: 4, Kernel: 3, Padding: 1, Pool: 2}}, Hidden: []int{6}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := spec.Init(3)
	m, err := b.Load(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fm := m.(backend.FeatureModel)
	d := &data.Dataset{Name: "toy", Shape: []int{1, 8, 8}, Classes: 3, X: make([]float32, 20*64), Y: make([]int32, 20)}
	for i := range d.X {
		d.X[i] = float32((i*7919+13)%97) / 96
	}
	layers := []string{"act_conv1", "act1", "act_conv1"} // a repeat is stored once
	fs, fn, err := transfer.LayerFeatures(fm, spec, layers)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || fs[0].Name != "act_conv1" || !slices.Equal(fs[0].Shape, []int{4, 8, 8}) {
		t.Fatalf("feature specs %+v", fs)
	}
	set, err := transfer.Build(t.Context(), transfer.BuildSpec{Data: d, Copies: 1, Augment: augment.Config{Shift: 1}, Seed: 2, Dir: t.TempDir(), BatchSize: 7},
		[]transfer.Teacher{{Name: "teacher", SHA256: strings.Repeat("a", 64), Model: m, Features: fs, FeatureFn: fn}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ft, err := set.FeatureTeacher(4, 0, spec)
	if err != nil {
		t.Fatal(err)
	}
	var _ train.FeatureTeacher = ft
	idx := []int{39, 0, 25, 7} // originals and augmented copies
	n := len(idx)
	x := make([]float32, n*64)
	set.Gather(idx, x, nil)
	want := [][]float32{make([]float32, n*256), make([]float32, n*6)}
	wantLogits := make([]float32, n*3)
	if err := fm.ForwardFeatures(x, n, []string{"act_conv1", "act1"}, wantLogits, want); err != nil {
		t.Fatal(err)
	}
	got := [][]float32{make([]float32, n*6), make([]float32, n*256)}
	logits := make([]float32, n*3)
	if err := ft.Features(idx, nil, n, []string{"act1", "act_conv1"}, logits, got); err != nil {
		t.Fatal(err)
	}
	// Equal up to rounding: the set was labelled in batches of 7, and a
	// GEMM may sum a batch of 7 in another order than one of 4.
	for i, pair := range [][2][]float32{{got[0], want[1]}, {got[1], want[0]}, {logits, wantLogits}} {
		for j := range pair[0] {
			if d := math.Abs(float64(pair[0][j] - pair[1][j])); d > 1e-6*(1+math.Abs(float64(pair[1][j]))) {
				t.Fatalf("output %d, value %d: %v from the set, %v from the model on the same inputs", i, j, pair[0][j], pair[1][j])
			}
		}
	}
	if err := ft.Features(idx, nil, n, []string{"fc1"}, nil, [][]float32{make([]float32, n*6)}); err == nil || !strings.Contains(err.Error(), `"fc1"`) {
		t.Errorf("a layer not stored: error %v, want one naming it", err)
	}
	other, _ := model.CNN(model.CNNConfig{Name: "other", Input: []int{1, 8, 8},
		Conv: []model.ConvBlock{{Channels: 5, Kernel: 3, Padding: 1, Pool: 2}}, Hidden: []int{6}, Classes: 3})
	if _, err := set.FeatureTeacher(4, 0, other); err == nil || !strings.Contains(err.Error(), "another teacher") {
		t.Errorf("FeatureTeacher with a spec of other shapes: error %v", err)
	}
}
