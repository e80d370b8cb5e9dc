//go:build unix

package recipe

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/distill-dev/distill/internal/fileio"
)

// TestLoadFIFO checks that a recipe path naming a FIFO is refused at
// once instead of blocking on the open.
func TestLoadFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.yaml")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(p); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, fileio.ErrNotRegular) {
			t.Errorf("Load(FIFO) = %v, want fileio.ErrNotRegular", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load blocked on a FIFO")
	}
}
