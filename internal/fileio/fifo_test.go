//go:build unix

package fileio

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOpenFIFO checks that a named pipe is refused at once: opening one
// for reading blocks until a writer comes, which hung runs whose teacher
// checkpoint was a FIFO. The calls run in a goroutine so that a
// regression fails the test instead of hanging it.
func TestOpenFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	// Unblock a hanging open at the end, whatever happens, so that the
	// test binary can exit.
	t.Cleanup(func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	})
	for _, p := range []string{fifo, link} {
		for name, f := range map[string]func(string) error{
			"Open":        func(p string) error { _, err := Open(p); return err },
			"Check":       Check,
			"ReadFile":    func(p string) error { _, err := ReadFile(p); return err },
			"ReadFileMax": func(p string) error { _, err := ReadFileMax(p, 10, "a test file"); return err },
		} {
			done := make(chan error, 1)
			go func() { done <- f(p) }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "named pipe") {
					t.Errorf("%s(%s) = %v, want ErrNotRegular saying it is a named pipe", name, p, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s(%s) blocked on the FIFO", name, p)
			}
		}
	}
}
