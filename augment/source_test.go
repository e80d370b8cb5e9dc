package augment_test

import (
	"slices"
	"testing"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/data"
)

func TestSource(t *testing.T) {
	const n = 40
	d := &data.Dataset{Name: "toy", Shape: []int{1, 8, 8}, Classes: 4, X: make([]float32, n*64), Y: make([]int32, n)}
	for i := range d.X {
		d.X[i] = float32((i*7919+13)%97) / 96
	}
	for i := range d.Y {
		d.Y[i] = int32(i % 4)
	}
	cfg := augment.Config{Shift: 2, Rotate: 10, Mixup: 0.4}
	s, err := augment.NewSource(d, 2, cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3*n {
		t.Fatalf("Len %d, want %d", s.Len(), 3*n)
	}
	p, _ := augment.New(cfg, 7, d.Shape)
	idx := make([]int, s.Len()) // every row, in a batch large enough to run in parallel
	for i := range idx {
		idx[i] = (i * 37) % s.Len()
	}
	x := make([]float32, len(idx)*64)
	y := make([]int32, len(idx))
	s.Gather(idx, x, y)
	one := make([]float32, 64)
	for k, r := range idx {
		m := p.Apply(one, d.X, r%n, r/n)
		if !slices.Equal(one, x[k*64:(k+1)*64]) {
			t.Fatalf("row %d differs from Apply(example %d, copy %d)", r, r%n, r/n)
		}
		if r < n && !slices.Equal(x[k*64:(k+1)*64], d.X[r*64:(r+1)*64]) {
			t.Fatalf("row %d (copy 0) is not the example itself", r)
		}
		if want := d.Y[m.Dominant(r%n)]; y[k] != want {
			t.Fatalf("row %d label %d, want %d", r, y[k], want)
		}
	}
	if got := cfg.String(); got != "shift=2 rotate=10 mixup=0.4" {
		t.Errorf("String() = %q", got)
	}
	if got := (augment.Config{}).String(); got != "none" {
		t.Errorf("String() of no augmentation = %q", got)
	}
	if _, err := augment.NewSource(d, 0, cfg, 7); err == nil {
		t.Error("NewSource with 0 copies: no error")
	}
	if _, err := augment.NewSource(d, 2, augment.Config{}, 7); err == nil {
		t.Error("NewSource without augmentation: no error")
	}
}
