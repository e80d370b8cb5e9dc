package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckMNISTDir checks the up-front check of a data directory: the
// four files are found without being read, and a missing directory or
// file, or a file where the directory should be, is reported as
// LoadMNIST would.
func TestCheckMNISTDir(t *testing.T) {
	dir := t.TempDir()
	names := []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte", "t10k-images.idx3-ubyte", "t10k-labels-idx1-ubyte.gz"}
	for _, n := range names[:3] {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckMNISTDir(dir); err == nil || !strings.Contains(err.Error(), "missing t10k-labels-idx1-ubyte") {
		t.Errorf("three of four files: %v, want the missing one named", err)
	}
	if err := os.WriteFile(filepath.Join(dir, names[3]), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckMNISTDir(dir); err != nil {
		t.Errorf("all four files (empty: CheckMNISTDir does not read them): %v", err)
	}
	if err := CheckMNISTDir(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "MNIST not found") {
		t.Errorf("missing directory: %v", err)
	}
	file := filepath.Join(dir, names[0])
	if err := CheckMNISTDir(file); err == nil || !strings.Contains(err.Error(), "is a regular file, not a directory") {
		t.Errorf("a file for the directory: %v", err)
	}
}
