package data

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeIDXDir writes four gzipped IDX files of n×rows×cols images and
// labels to dir.
func writeIDXDir(t *testing.T, dir string, n, rows, cols int, label func(i int) byte) {
	t.Helper()
	for _, split := range []string{"train", "t10k"} {
		img := &IDX{Type: IDXUint8, Dims: []int{n, rows, cols}, Data: make([]byte, n*rows*cols)}
		for i := range img.Data {
			img.Data[i] = byte(i)
		}
		lbl := &IDX{Type: IDXUint8, Dims: []int{n}, Data: make([]byte, n)}
		for i := range lbl.Data {
			lbl.Data[i] = label(i)
		}
		for name, x := range map[string]*IDX{split + "-images-idx3-ubyte.gz": img, split + "-labels-idx1-ubyte.gz": lbl} {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			if err := WriteIDX(zw, x); err != nil {
				t.Fatal(err)
			}
			zw.Close()
			if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestLoadIDXDirAnySize(t *testing.T) {
	dir := t.TempDir()
	writeIDXDir(t, dir, 6, 5, 7, func(i int) byte { return byte(i % 3) })
	train, test, err := LoadIDXDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 6 || test.Len() != 6 || train.Classes != 3 || test.Classes != 3 || !equalInts(train.Shape, []int{1, 5, 7}) {
		t.Fatalf("got train %d test %d classes %d shape %v", train.Len(), test.Len(), train.Classes, train.Shape)
	}
	if train.Name != "idx" || train.X[1] != float32(1)/255 {
		t.Fatalf("name %q, X[1] %v", train.Name, train.X[1])
	}
}

func TestLoadFashionMNISTChecksPins(t *testing.T) {
	dir := t.TempDir()
	writeIDXDir(t, dir, 4, 28, 28, func(i int) byte { return byte(i) })
	cfg := fashionSource
	cfg.trainN, cfg.testN = 4, 4
	_, _, err := loadFashion(dir, cfg)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "train-images-idx3-ubyte") {
		t.Fatalf("err = %v, want a checksum mismatch naming the file", err)
	}
}

func TestLoadFashionMNISTAbsent(t *testing.T) {
	_, _, err := LoadFashionMNIST(filepath.Join(t.TempDir(), "none"))
	for _, want := range []string{"Fashion-MNIST not found", "dataset-fashion-mnist", "--data-dir", "train-images-idx3-ubyte.gz"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %q", err, want)
		}
	}
	if err := CheckFashionMNISTDir(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "dataset-fashion-mnist") {
		t.Errorf("CheckFashionMNISTDir: %v", err)
	}
}

// TestLoadFashionMNISTDebian reads the real files where Debian's package
// is installed (CI installs it).
func TestLoadFashionMNISTDebian(t *testing.T) {
	if _, err := os.Stat(FashionMNISTDebianDir); err != nil {
		if os.Getenv("DISTILL_REQUIRE_DATASETS") != "" {
			t.Fatalf("DISTILL_REQUIRE_DATASETS is set but Debian's dataset-fashion-mnist is not installed: %v", err)
		}
		t.Skipf("Debian's dataset-fashion-mnist is not installed (%v); apt-get install dataset-fashion-mnist to run this test", err)
	}
	if testing.Short() {
		t.Skip("reads 30 MB; not in -short")
	}
	train, test, err := LoadFashionMNIST("")
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 60000 || test.Len() != 10000 || train.Classes != 10 || train.Name != "fashion-mnist" {
		t.Fatalf("train %d test %d classes %d name %q", train.Len(), test.Len(), train.Classes, train.Name)
	}
	var counts [10]int
	for _, y := range test.Y {
		counts[y]++
	}
	for c, n := range counts {
		if n != 1000 {
			t.Errorf("test class %d (%s) has %d examples, want 1000", c, FashionMNISTClasses[c], n)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
