package data

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// npyBytes encodes a little-endian NPY v1 array of raw element bytes.
func npyBytes(descr string, shape []int, raw []byte) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	for (10+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(h)))
	b.WriteString(h)
	b.Write(raw)
	return b.Bytes()
}

func f32Bytes(v ...float32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, v)
	return b.Bytes()
}

func i64Bytes(v ...int64) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, v)
	return b.Bytes()
}

func writeNPZ(t *testing.T, path string, arrays map[string][]byte) {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, a := range arrays {
		w, err := zw.Create(name + ".npy")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(a)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadNPYTypes(t *testing.T) {
	cases := []struct {
		descr string
		raw   []byte
		want  []float32
	}{
		{"<f4", f32Bytes(1.5, -2), []float32{1.5, -2}},
		{"<i8", i64Bytes(3, -4), []float32{3, -4}},
		{"|u1", []byte{0, 255}, []float32{0, 255}},
		{">i2", []byte{0x01, 0x00, 0xff, 0xfe}, []float32{256, -2}},
		{"<f2", []byte{0x00, 0x3c, 0x00, 0xc0}, []float32{1, -2}},
		{"<f8", func() []byte {
			var b bytes.Buffer
			binary.Write(&b, binary.LittleEndian, []float64{0.25, 8})
			return b.Bytes()
		}(), []float32{0.25, 8}},
	}
	for _, c := range cases {
		a, err := ReadNPY(bytes.NewReader(npyBytes(c.descr, []int{2}, c.raw)))
		if err != nil {
			t.Errorf("%s: %v", c.descr, err)
			continue
		}
		if !slices.Equal(a.Data, c.want) || !slices.Equal(a.Shape, []int{2}) || a.Dtype != c.descr {
			t.Errorf("%s: got %v %v %s, want %v", c.descr, a.Data, a.Shape, a.Dtype, c.want)
		}
	}
}

func TestReadNPYErrors(t *testing.T) {
	good := npyBytes("<f4", []int{2}, f32Bytes(1, 2))
	cases := map[string]struct {
		in   []byte
		want string
	}{
		"empty":      {nil, "empty or truncated"},
		"not npy":    {[]byte("PK\x03\x04 hello"), "is this a .npy file"},
		"object":     {npyBytes("|O", []int{2}, make([]byte, 16)), `dtype "|O" is not supported`},
		"string":     {npyBytes("<U3", []int{2}, make([]byte, 24)), "not supported"},
		"fortran":    {bytes.Replace(good, []byte("False"), []byte("True "), 1), "Fortran order"},
		"truncated":  {good[:len(good)-1], "the file is truncated"},
		"trailing":   {append(slices.Clone(good), 0), "bytes follow"},
		"version":    {append([]byte("\x93NUMPY\x04\x00"), good[8:]...), "version 4.0"},
		"bad header": {bytes.Replace(good, []byte("'shape'"), []byte("'shapX'"), 1), "unexpected key 'shapX'"},
		"huge shape": {npyBytes("<f4", []int{1 << 40, 1 << 40}, nil), "more than"},
	}
	for name, c := range cases {
		_, err := ReadNPY(bytes.NewReader(c.in))
		if !errors.Is(err, ErrNPYFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrNPYFormat mentioning %q", name, err, c.want)
		}
	}
}

// TestNPYFromNumpy reads files written by numpy itself.
func TestNPYFromNumpy(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	if exec.Command(py, "-c", "import numpy").Run() != nil {
		t.Skip("numpy not installed")
	}
	dir := t.TempDir()
	script := `
import numpy as np, sys
d = sys.argv[1]
x = (np.arange(2*1*3*2, dtype=np.uint8) * 10).reshape(2, 1, 3, 2)
np.save(d + '/x.npy', x)
np.save(d + '/f8.npy', np.array([[0.5, -1.0, 2.0]], dtype='>f8'))
np.save(d + '/big.npy', np.zeros((70000,), dtype=np.float32))
np.savez(d + '/train.npz', x=x, y=np.array([0, 2]))
np.savez_compressed(d + '/test.npz', x=x[:1], y=np.array([1], dtype=np.int32))
np.savez(d + '/floaty.npz', x=x, y=np.array([0.0, 1.0]))
np.savez(d + '/rank.npz', x=x, y=np.array([[0], [1]]))
`
	if out, err := exec.Command(py, "-c", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	a, err := readNPYFile(filepath.Join(dir, "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Dtype != "|u1" || !slices.Equal(a.Shape, []int{2, 1, 3, 2}) || a.Data[11] != 110 {
		t.Fatalf("x.npy: %s %v %v", a.Dtype, a.Shape, a.Data)
	}
	if a, err = readNPYFile(filepath.Join(dir, "f8.npy")); err != nil || !slices.Equal(a.Data, []float32{0.5, -1, 2}) {
		t.Fatalf("f8.npy: %v %v", a, err)
	}
	if a, err = readNPYFile(filepath.Join(dir, "big.npy")); err != nil || len(a.Data) != 70000 {
		t.Fatalf("big.npy: %v", err)
	}
	train, test, err := LoadArrays(filepath.Join(dir, "train.npz"), filepath.Join(dir, "test.npz"), "x", "y")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(train.Shape, []int{1, 3, 2}) || train.Classes != 3 || test.Classes != 3 || !slices.Equal(train.Y, []int32{0, 2}) || !slices.Equal(test.Y, []int32{1}) {
		t.Fatalf("train %v %d %v, test %d %v", train.Shape, train.Classes, train.Y, test.Classes, test.Y)
	}
	if train.X[1] != float32(10)/255 {
		t.Fatalf("uint8 inputs are not scaled by 1/255: %v", train.X[1])
	}
	for file, want := range map[string]string{
		"floaty.npz": "labels have dtype <f8; they must be integers",
		"rank.npz":   "labels have shape [2 1]",
		"x.npy":      "not a .npz file",
	} {
		_, _, err := LoadArrays(filepath.Join(dir, file), "", "x", "y")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: err = %v, want it to name the file and say %q", file, err, want)
		}
	}
	if _, _, err := LoadArrays(filepath.Join(dir, "train.npz"), "", "inputs", "y"); err == nil || !strings.Contains(err.Error(), `no array "inputs"`) {
		t.Errorf("missing array: %v", err)
	}
}

func TestLoadArraysGoWritten(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d.npz")
	writeNPZ(t, p, map[string][]byte{
		"x": npyBytes("<f4", []int{3, 2}, f32Bytes(1, 2, 3, 4, 5, 6)),
		"y": npyBytes("<i8", []int{3}, i64Bytes(1, 0, 1)),
	})
	d, _, err := LoadArrays(p, "", "x", "y")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Shape, []int{2}) || d.Classes != 2 || d.X[5] != 6 {
		t.Fatalf("%v %d %v", d.Shape, d.Classes, d.X)
	}
	writeNPZ(t, p, map[string][]byte{
		"x": npyBytes("<f4", []int{3}, f32Bytes(1, 2, 3)),
		"y": npyBytes("<i8", []int{3}, i64Bytes(1, 0, 1)),
	})
	if _, _, err := LoadArrays(p, "", "x", "y"); err == nil || !strings.Contains(err.Error(), "inputs have shape [3]") {
		t.Fatalf("rank-1 inputs: %v", err)
	}
	writeNPZ(t, p, map[string][]byte{
		"x": npyBytes("<f4", []int{2, 1}, f32Bytes(1, float32(math.NaN()))),
		"y": npyBytes("<i8", []int{2}, i64Bytes(1, 0)),
	})
	if _, _, err := LoadArrays(p, "", "x", "y"); err == nil || !strings.Contains(err.Error(), "finite") {
		t.Fatalf("NaN input: %v", err)
	}
}

func TestLoadCSV(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tr := write("iris.csv", "a,b,species\n1,2,setosa\n3,4.5,virginica\n5,6,setosa\n")
	te := write("iris-test.csv", "a,b,species\n7,8,versicolor\n")
	train, test, err := LoadCSV(tr, te, "")
	if err != nil {
		t.Fatal(err)
	}
	// Classes are the sorted distinct names over both files.
	if train.Classes != 3 || !slices.Equal(train.Y, []int32{0, 2, 0}) || !slices.Equal(test.Y, []int32{1}) || !slices.Equal(train.X, []float32{1, 2, 3, 4.5, 5, 6}) || !slices.Equal(train.Shape, []int{2}) {
		t.Fatalf("train %d %v %v %v test %v", train.Classes, train.Y, train.X, train.Shape, test.Y)
	}
	// No header: integer labels in the default, last column.
	noHead := write("n.csv", "0.5,1,3\n0.25,2,0\n")
	d, _, err := LoadCSV(noHead, "", "")
	if err != nil || d.Classes != 4 || !slices.Equal(d.Y, []int32{3, 0}) || d.Len() != 2 {
		t.Fatalf("headerless: %v %+v", err, d)
	}
	named := write("named.csv", "label,x\n1,0.5\n0,0.25\n")
	if d, _, err = LoadCSV(named, "", "label"); err != nil || !slices.Equal(d.Y, []int32{1, 0}) || !slices.Equal(d.X, []float32{0.5, 0.25}) {
		t.Fatalf("label column by name: %v %+v", err, d)
	}
	for name, c := range map[string]struct{ body, col, want string }{
		"bad value":    {"a,b\n1,2\nx1,3\n", "", `line 3, column 1 ("a"): "x1" is not a finite number`},
		"ragged":       {"a,b,c\n1,2,0\n1,0\n", "", "line 3 has 2 fields"},
		"no column":    {"a,b\n1,2\n", "label", `no column is named "label"`},
		"empty":        {"a,b\n", "", "no data rows"},
		"one column":   {"a\n1\n", "", "at least one feature column"},
		"huge label":   {"1,70000\n", "", "not a class index"},
		"empty label":  {"1,\n", "", "label (column 2) is empty"},
		"infinite":     {"a,b\nInf,1\n", "", "not a finite number"},
		"quote broken": {"a,b\n\"1,2\n", "", "extraneous or missing"},
	} {
		_, _, err := LoadCSV(write("bad.csv", c.body), "", c.col)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.csv") {
			t.Errorf("%s: err = %v, want it to name the file and say %q", name, err, c.want)
		}
	}
}

// writeImage writes img as PNG, or JPEG for a .jpg path.
func writeImage(t *testing.T, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	var err error
	if strings.HasSuffix(path, ".jpg") {
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 100})
	} else {
		err = png.Encode(&b, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func solid(w, h int, c color.Color) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	return img
}

func TestLoadImageFolder(t *testing.T) {
	dir := t.TempDir()
	red, white := color.NRGBA{255, 0, 0, 255}, color.NRGBA{255, 255, 255, 255}
	writeImage(t, filepath.Join(dir, "b_red", "1.png"), solid(4, 2, red))
	writeImage(t, filepath.Join(dir, "b_red", "2.PNG"), solid(4, 2, red))
	writeImage(t, filepath.Join(dir, "a_white", "1.jpg"), solid(4, 2, white))
	os.WriteFile(filepath.Join(dir, "a_white", "notes.txt"), []byte("skipped"), 0o644)

	train, test, err := LoadImageFolder(dir, ImageFolderOptions{Channels: 3, Mean: []float32{0.5}, Std: []float32{0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if test != nil || train.Len() != 3 || train.Classes != 2 || !slices.Equal(train.Shape, []int{3, 2, 4}) || !slices.Equal(train.Y, []int32{0, 1, 1}) {
		t.Fatalf("got %d examples, %d classes, shape %v, labels %v", train.Len(), train.Classes, train.Shape, train.Y)
	}
	// White → (1-0.5)/0.5 = 1 in every channel; red → 1, -1, -1.
	if x := train.X[:24]; slices.Min(x) < 0.99 {
		t.Errorf("white image: %v", x)
	}
	if x := train.X[24:48]; x[0] != 1 || x[8] != -1 || x[16] != -1 {
		t.Errorf("red image channels: %v", x)
	}

	gray, _, err := LoadImageFolder(dir, ImageFolderOptions{Height: 3, Width: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Red's luma is 0.299.
	if !slices.Equal(gray.Shape, []int{1, 3, 3}) || math.Abs(float64(gray.X[9])-0.298) > 0.01 {
		t.Fatalf("gray resized: shape %v, red pixel %v", gray.Shape, gray.X[9])
	}
}

func TestLoadImageFolderSplits(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"train/cat/a.png", "train/dog/a.png", "test/dog/b.png"} {
		writeImage(t, filepath.Join(dir, p), solid(2, 2, color.Gray{100}))
	}
	train, test, err := LoadImageFolder(dir, ImageFolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 2 || test.Len() != 1 || test.Classes != 2 || test.Y[0] != 1 {
		t.Fatalf("train %d, test %d classes %d labels %v", train.Len(), test.Len(), test.Classes, test.Y)
	}
	writeImage(t, filepath.Join(dir, "test/bird/c.png"), solid(2, 2, color.Gray{1}))
	if _, _, err := LoadImageFolder(dir, ImageFolderOptions{}); err == nil || !strings.Contains(err.Error(), `class folder "bird"`) {
		t.Fatalf("unknown test class: %v", err)
	}
}

func TestLoadImageFolderErrors(t *testing.T) {
	setup := map[string]func(dir string){
		"different sizes": func(dir string) {
			writeImage(t, filepath.Join(dir, "a", "1.png"), solid(2, 2, color.Black))
			writeImage(t, filepath.Join(dir, "a", "2.png"), solid(3, 2, color.Black))
		},
		"unreadable": func(dir string) {
			writeImage(t, filepath.Join(dir, "a", "1.png"), solid(2, 2, color.Black))
			os.WriteFile(filepath.Join(dir, "a", "2.png"), []byte("not a png"), 0o644)
		},
		"empty class": func(dir string) {
			writeImage(t, filepath.Join(dir, "a", "1.png"), solid(2, 2, color.Black))
			os.MkdirAll(filepath.Join(dir, "b"), 0o755)
			os.WriteFile(filepath.Join(dir, "b", "x.txt"), nil, 0o644)
		},
		"no classes": func(dir string) {
			writeImage(t, filepath.Join(dir, "1.png"), solid(2, 2, color.Black))
		},
	}
	want := map[string]string{
		"different sizes": "2.png is 3x2 but",
		"unreadable":      "2.png cannot be decoded as PNG or JPEG",
		"empty class":     "class folder " + "%s" + " has no images",
		"no classes":      "has no subfolders",
	}
	for name, f := range setup {
		dir := t.TempDir()
		f(dir)
		w := want[name]
		if strings.Contains(w, "%s") {
			w = fmt.Sprintf(w, filepath.Join(dir, "b"))
		}
		_, _, err := LoadImageFolder(dir, ImageFolderOptions{})
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("%s: err = %v, want %q", name, err, w)
		}
	}
	if _, _, err := LoadImageFolder(t.TempDir(), ImageFolderOptions{Channels: 2}); err == nil || !strings.Contains(err.Error(), "channels must be 1") {
		t.Errorf("channels 2: %v", err)
	}
	if _, _, err := LoadImageFolder(t.TempDir(), ImageFolderOptions{Channels: 3, Mean: []float32{0, 0}}); err == nil || !strings.Contains(err.Error(), "mean has 2 values") {
		t.Errorf("mean of 2: %v", err)
	}
}

// TestImageFolderTestdata loads the committed 8x8 PNG folder.
func TestImageFolderTestdata(t *testing.T) {
	d, _, err := LoadImageFolder(filepath.Join("testdata", "shapes"), ImageFolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Classes != 2 || !slices.Equal(d.Shape, []int{1, 8, 8}) || d.Len() < 4 {
		t.Fatalf("classes %d shape %v len %d", d.Classes, d.Shape, d.Len())
	}
}

func TestSplit(t *testing.T) {
	d := &Dataset{Name: "d", Shape: []int{1}, Classes: 2}
	for i := 0; i < 100; i++ {
		y := int32(0)
		if i >= 80 {
			y = 1
		}
		d.X = append(d.X, float32(i))
		d.Y = append(d.Y, y)
	}
	train, test, err := Split(d, 0.2, 7)
	if err != nil {
		t.Fatal(err)
	}
	count := func(s *Dataset, c int32) (n int) {
		for _, y := range s.Y {
			if y == c {
				n++
			}
		}
		return n
	}
	if train.Len() != 80 || test.Len() != 20 || count(test, 1) != 4 || count(test, 0) != 16 {
		t.Fatalf("train %d test %d (class 1: %d)", train.Len(), test.Len(), count(test, 1))
	}
	seen := map[float32]bool{}
	for _, s := range []*Dataset{train, test} {
		for i, x := range s.X {
			if seen[x] || (x >= 80) != (s.Y[i] == 1) {
				t.Fatalf("example %v duplicated or mislabelled", x)
			}
			seen[x] = true
		}
	}
	again, _, _ := Split(d, 0.2, 7)
	other, _, _ := Split(d, 0.2, 8)
	if !slices.Equal(again.X, train.X) || slices.Equal(other.X, train.X) {
		t.Fatal("the split is not a function of the seed")
	}
	if _, _, err := Split(&Dataset{Name: "one", Shape: []int{1}, X: []float32{1}, Y: []int32{0}, Classes: 1}, 0.2, 1); err == nil {
		t.Fatal("a one-example split succeeded")
	}
	if _, _, err := Split(d, 1, 1); err == nil {
		t.Fatal("fraction 1 accepted")
	}
}

// TestSplitPinned pins a split: a change of algorithm would silently
// move examples between users' training and test sets across versions.
func TestSplitPinned(t *testing.T) {
	d := &Dataset{Name: "d", Shape: []int{1}, Classes: 1}
	for i := range 10 {
		d.X = append(d.X, float32(i))
		d.Y = append(d.Y, 0)
	}
	_, test, err := Split(d, 0.3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{8, 1, 7}; !slices.Equal(test.X, want) {
		t.Errorf("seed 1 holds out %v, want %v as before", test.X, want)
	}
}
