package quantize

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
)

// TestMethods checks the vocabulary's invariants that its consumers
// (recipe validation, the CLI, the schema, the docs) rely on: the default
// first, each name once, every name parses to itself, an unknown name
// is refused with every valid name listed, and the slice is a copy.
func TestMethods(t *testing.T) {
	ms := Methods()
	if len(ms) == 0 || ms[0] != DefaultMethod {
		t.Fatalf("Methods() = %v, want DefaultMethod %q first", ms, DefaultMethod)
	}
	for i, m := range ms {
		if slices.Index(ms, m) != i {
			t.Errorf("method %q listed twice", m)
		}
		got, err := ParseMethod(string(m))
		if err != nil || got != m {
			t.Errorf("ParseMethod(%q) = %q, %v", m, got, err)
		}
	}
	for _, bad := range []string{"", "median", "Entropy"} {
		_, err := ParseMethod(bad)
		if err == nil {
			t.Fatalf("ParseMethod(%q) accepted", bad)
		}
		for _, m := range ms {
			if !strings.Contains(err.Error(), string(m)) {
				t.Errorf("ParseMethod(%q): %v; want it to list %q", bad, err, m)
			}
		}
	}
	ms[0] = "changed"
	if Methods()[0] != DefaultMethod {
		t.Error("Methods returned the package's own slice")
	}
}

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
