package fileio

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFileMax(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFileMax(p, 5, "a test file"); err != nil || string(b) != "12345" {
		t.Fatalf("at the bound: %q, %v", b, err)
	}
	if _, err := ReadFileMax(p, 4, "a test file"); !errors.Is(err, ErrTooLarge) || err.Error() != p+": file too large: more than 4 bytes, too many for a test file" {
		t.Fatalf("over the bound: %v", err)
	}
	if _, err := ReadFileMax(p+"x", 4, "a test file"); !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "open "+p+"x:") {
		t.Fatalf("missing file: %v, want os.Open's error", err)
	}
}

func TestOpenRegularThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Skip("no symlinks:", err)
	}
	b, err := ReadFile(link)
	if err != nil || string(b) != "abc" {
		t.Fatalf("ReadFile through a symlink: %q, %v", b, err)
	}
	if err := Check(link); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	for name, f := range map[string]func(string) error{
		"Open":        func(p string) error { _, err := Open(p); return err },
		"Check":       Check,
		"ReadFile":    func(p string) error { _, err := ReadFile(p); return err },
		"ReadFileMax": func(p string) error { _, err := ReadFileMax(p, 10, "a test file"); return err },
	} {
		err := f(dir)
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "a directory") || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s(directory) = %v, want ErrNotRegular naming the path and saying it is a directory", name, err)
		}
	}
}
