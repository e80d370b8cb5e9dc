//go:build unix

package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// TestCheckFilesFIFO checks that a teacher checkpoint that is a FIFO is
// reported at once: opening it would block the run.
func TestCheckFilesFIFO(t *testing.T) {
	r, dir := writeRecipe(t, strings.Replace(checkpointRecipe, "teacher.json", "teacher.safetensors", 1))
	if err := os.MkdirAll(filepath.Join(dir, "ckpt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "ckpt", "teacher.safetensors"), 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.CheckFiles() }()
	select {
	case err := <-done:
		wantWords(t, oneProblem(t, err).Message, "is a named pipe (FIFO), not a regular file")
	case <-time.After(10 * time.Second):
		t.Fatal("CheckFiles blocked on a FIFO")
	}
}
