package backend

import (
	"errors"
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

// TestKnown: every name of the one list of backend names is one whose
// absence Open explains with the way to register it.
func TestKnown(t *testing.T) {
	for _, name := range Known() {
		_, err := Open(name, Options{})
		if err == nil || !strings.Contains(err.Error(), "to register it") {
			t.Errorf("Open(%q) = %v, want the way to register it", name, err)
		}
	}
	if got := (Optimizer{}).WithDefaults().Kind; got != DefaultOptimizer {
		t.Errorf("Optimizer{}.WithDefaults().Kind = %q, want %q", got, DefaultOptimizer)
	}
}
