package backend

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestOpenUnregisteredSaysWhichImport checks the error a library user
// gets from Open before importing any backend package: it names the
// import (and build tag) that registers each backend. This package's
// tests import no backend, so nothing is registered.
func TestOpenUnregisteredSaysWhichImport(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"gorgonia", `not registered in this program (registered: none); to register it, import _ "github.com/distill-dev/distill/backend/gorgonia"`},
		{"torch", `build with -tags torch (see docs/torch.md) and import _ "github.com/distill-dev/distill/backend/torch"`},
		{"tensorflow", `gorgonia: import _ "github.com/distill-dev/distill/backend/gorgonia"; torch: build with -tags torch`},
	} {
		_, err := Open(c.name, Options{})
		if !errors.Is(err, ErrUnknownBackend) {
			t.Fatalf("Open(%q): %v, want ErrUnknownBackend", c.name, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q): %v\nwant it to say %q", c.name, err, c.want)
		}
	}
}

// TestKnown: the one list of backend names starts with the default,
// holds each name once, and is what Open's error explains.
func TestKnown(t *testing.T) {
	k := Known()
	if len(k) == 0 || k[0] != Default {
		t.Fatalf("Known() = %v, want Default %q first", k, Default)
	}
	for i, name := range k {
		if slices.Index(k, name) != i {
			t.Errorf("backend %q listed twice", name)
		}
		_, err := Open(name, Options{})
		if err == nil || !strings.Contains(err.Error(), "to register it") {
			t.Errorf("Open(%q) = %v, want the way to register it", name, err)
		}
	}
}

// TestOptimizers checks the optimizer vocabulary: the default first,
// each kind parses to itself, an unknown one is refused with every kind
// listed, and a zero Optimizer means the default.
func TestOptimizers(t *testing.T) {
	ks := Optimizers()
	if len(ks) == 0 || ks[0] != DefaultOptimizer {
		t.Fatalf("Optimizers() = %v, want DefaultOptimizer %q first", ks, DefaultOptimizer)
	}
	for _, k := range ks {
		if got, err := ParseOptimizer(string(k)); err != nil || got != k {
			t.Errorf("ParseOptimizer(%q) = %q, %v", k, got, err)
		}
	}
	_, err := ParseOptimizer("rmsprop")
	if err == nil {
		t.Fatal("ParseOptimizer(rmsprop) accepted")
	}
	for _, k := range ks {
		if !strings.Contains(err.Error(), string(k)) {
			t.Errorf("ParseOptimizer(rmsprop): %v; want it to list %q", err, k)
		}
	}
	if got := (Optimizer{}).WithDefaults().Kind; got != DefaultOptimizer {
		t.Errorf("Optimizer{}.WithDefaults().Kind = %q, want %q", got, DefaultOptimizer)
	}
}
