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
