//go:build unix

package pipeline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distill-dev/distill/pipeline"
)

// TestRunFIFOCheckpoint checks that a teacher checkpoint that is a named
// pipe fails the run at once; opening it for reading used to block the
// run for good.
func TestRunFIFOCheckpoint(t *testing.T) {
	r, dir := loadIn(t, strings.Replace(smallRecipe, "model: {hidden: [16]}", "checkpoint: teacher.safetensors", 1))
	fifo := filepath.Join(dir, "teacher.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	t.Cleanup(func() { // unblock a hanging reader, so the binary can exit
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	})
	done := make(chan error, 1)
	go func() {
		_, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: filepath.Join(dir, "run")})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("Run = %v, want an error saying the checkpoint is a named pipe", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "run")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the run directory was made (%v)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run blocked on a FIFO checkpoint")
	}
}
