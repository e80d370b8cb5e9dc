package quantize

import (
	"context"
	"reflect"
	"testing"

	"github.com/distill-dev/distill/model"
)

// TestZeroConfigUsesDefaultMethod: a zero Config calibrates with
// DefaultMethod, the method recipes and the CLI default to (it used to
// mean MinMax while they meant Entropy), and records it.
func TestZeroConfigUsesDefaultMethod(t *testing.T) {
	if DefaultMethod != Entropy {
		t.Fatalf("DefaultMethod = %q; recipes/README.md, docs/int8.md and the shipped reports assume entropy", DefaultMethod)
	}
	spec, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{8}, Hidden: []int{16}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	w, xs := testNet(t, spec, 64)
	quantizeWith := func(cfg Config) *Model {
		t.Helper()
		m, err := Quantize(context.Background(), spec, w, FromSlices(xs, 16), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	zero := quantizeWith(Config{})
	explicit := quantizeWith(Config{Method: DefaultMethod, Percentile: DefaultPercentile})
	if zero.Method != DefaultMethod || zero.Percentile != DefaultPercentile {
		t.Errorf("Config{} recorded method %q, percentile %v; want %q, %v", zero.Method, zero.Percentile, DefaultMethod, DefaultPercentile)
	}
	if !reflect.DeepEqual(zero.Act, explicit.Act) {
		t.Errorf("Config{} calibrated %v, Config{Method: %q} %v", zero.Act, DefaultMethod, explicit.Act)
	}
	if minmax := quantizeWith(Config{Method: MinMax}); reflect.DeepEqual(zero.Act, minmax.Act) {
		t.Error("entropy and minmax calibrated the same ranges: the test net cannot tell the default apart")
	}
}
