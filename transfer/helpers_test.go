package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/data"
)

// toyData returns n deterministic examples of shape [1, h, w] with values
// in [0, 1] and labels in [0, classes).
func toyData(n, h, w, classes int) *data.Dataset {
	d := &data.Dataset{Name: "toy", Shape: []int{1, h, w}, Classes: classes,
		X: make([]float32, n*h*w), Y: make([]int32, n)}
	for i := range d.X {
		d.X[i] = float32((i*7919+13)%97) / 96
	}
	for i := range d.Y {
		d.Y[i] = int32(i % classes)
	}
	return d
}

// linear is a linear teacher, out = W·x + b, that counts its work.
type linear struct {
	in, classes int
	w, b        []float32
	calls, rows atomic.Int64
	fail        error   // returned by Forward when set
	poison      float32 // written into out[0] when non-zero
}

func newLinear(in, classes int, seed float64) *linear {
	l := &linear{in: in, classes: classes, w: make([]float32, in*classes), b: make([]float32, classes)}
	for i := range l.w {
		l.w[i] = float32(3 * math.Sin(seed*float64(i+1)*1.7+seed))
	}
	for j := range l.b {
		l.b[j] = float32(math.Cos(seed * float64(j+2)))
	}
	return l
}

func (l *linear) Forward(x []float32, n int, out []float32) error {
	l.calls.Add(1)
	l.rows.Add(int64(n))
	if l.fail != nil {
		return l.fail
	}
	for r := range n {
		for j := range l.classes {
			s := l.b[j]
			for i := range l.in {
				s += l.w[j*l.in+i] * x[r*l.in+i]
			}
			out[r*l.classes+j] = s
		}
	}
	if l.poison != 0 && n > 0 {
		out[0] = l.poison
	}
	return nil
}

// fakeHash returns a distinct valid weights hash per name.
func fakeHash(name string) string {
	s := sha256.Sum256([]byte(name))
	return hex.EncodeToString(s[:])
}

// toyTeachers returns k linear teachers for d.
func toyTeachers(d *data.Dataset, k int) ([]Teacher, []*linear) {
	var ts []Teacher
	var ls []*linear
	for i := range k {
		l := newLinear(d.Size(), d.Classes, float64(i+1))
		ls = append(ls, l)
		ts = append(ts, Teacher{Name: fmt.Sprint("t", i), SHA256: fakeHash(fmt.Sprint("t", i)), Weight: float64(i + 1), Model: l})
	}
	return ts, ls
}

// augCfg turns on every augmentation that works on 6×6 images.
var augCfg = augment.Config{Shift: 1, Rotate: 15, Elastic: augment.Elastic{Alpha: 2, Sigma: 1.5}, Noise: 0.02, Cutout: 2, Mixup: 0.3}

// toySpec returns a spec over d with K copies in dir.
func toySpec(d *data.Dataset, dir string, copies int) BuildSpec {
	s := BuildSpec{Data: d, Copies: copies, Seed: 5, Dir: dir, BatchSize: 7}
	if copies > 0 {
		s.Augment = augCfg
	}
	return s
}

func totalRows(ls []*linear) int64 {
	var n int64
	for _, l := range ls {
		n += l.rows.Load()
	}
	return n
}

func mustBuild(t testing.TB, spec BuildSpec, ts []Teacher) *Set {
	t.Helper()
	s, err := Build(t.Context(), spec, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// flipByte flips one bit of the byte at off in path.
func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	b := readFile(t, path)
	b[off] ^= 0x10
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// setFiles returns the contents of every file in a set's directory.
func setFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range ents {
		m[e.Name()] = readFile(t, filepath.Join(dir, e.Name()))
	}
	return m
}

// allRows returns 0, 1, …, n−1.
func allRows(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}
