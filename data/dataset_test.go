package data

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// tinyDataset has 4 examples of shape [2] (values 10*i, 10*i+1) and
// labels i%3.
func tinyDataset() *Dataset {
	d := &Dataset{Name: "tiny", Shape: []int{2}, Classes: 3}
	for i := range 4 {
		d.X = append(d.X, float32(10*i), float32(10*i+1))
		d.Y = append(d.Y, int32(i%3))
	}
	return d
}

func TestDatasetLenSize(t *testing.T) {
	d := &Dataset{Shape: []int{1, 28, 28}, Y: make([]int32, 7)}
	if d.Len() != 7 || d.Size() != 784 {
		t.Fatalf("Len, Size = %d, %d; want 7, 784", d.Len(), d.Size())
	}
}

func TestSubset(t *testing.T) {
	d := tinyDataset()
	tests := []struct {
		n, wantLen int
		same       bool
	}{
		{n: -1, wantLen: 4, same: true},
		{n: 0, wantLen: 4, same: true},
		{n: 1, wantLen: 1},
		{n: 3, wantLen: 3},
		{n: 4, wantLen: 4, same: true},
		{n: 100, wantLen: 4, same: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			s := d.Subset(tt.n)
			if (s == d) != tt.same {
				t.Errorf("Subset(%d) == d is %v, want %v", tt.n, s == d, tt.same)
			}
			if s.Len() != tt.wantLen || len(s.X) != tt.wantLen*2 {
				t.Fatalf("Subset(%d): Len %d, len(X) %d; want %d, %d", tt.n, s.Len(), len(s.X), tt.wantLen, tt.wantLen*2)
			}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.X, d.X[:len(s.X)]) || !slices.Equal(s.Y, d.Y[:len(s.Y)]) {
				t.Errorf("Subset(%d) is not a prefix of d", tt.n)
			}
		})
	}
}

func TestSubsetSharesMemoryButAppendDoesNotClobber(t *testing.T) {
	d := tinyDataset()
	s := d.Subset(2)
	s.X[0] = 99
	if d.X[0] != 99 {
		t.Error("Subset copied X; it should share memory")
	}
	s.X = append(s.X, -1)
	s.Y = append(s.Y, 1)
	if d.X[4] != 20 || d.Y[2] != 2 {
		t.Error("appending to a subset overwrote the parent dataset")
	}
}

func TestGather(t *testing.T) {
	d := tinyDataset()
	x := make([]float32, 3*2+1) // longer than needed: the tail is untouched
	x[6] = -7
	y := make([]int32, 3)
	d.Gather([]int{3, 0, 3}, x, y)
	if want := []float32{30, 31, 0, 1, 30, 31, -7}; !slices.Equal(x, want) {
		t.Errorf("x = %v, want %v", x, want)
	}
	if want := []int32{0, 0, 0}; !slices.Equal(y, want) {
		t.Errorf("y = %v, want %v", y, want)
	}
	d.Gather([]int{2}, x, nil) // labels not wanted
	if x[0] != 20 || x[1] != 21 {
		t.Errorf("Gather with nil y: x[:2] = %v", x[:2])
	}
	d.Gather(nil, nil, nil) // nothing to do
}

func TestGatherPanicsOnContractViolation(t *testing.T) {
	d := tinyDataset()
	tests := []struct {
		name string
		idx  []int
		x    []float32
		y    []int32
		want string
	}{
		{"short x", []int{0, 1}, make([]float32, 3), nil, "len(x) >= 4"},
		{"short y", []int{0, 1}, make([]float32, 4), make([]int32, 1), "len(y) >= 2"},
		{"index too large", []int{0, 4}, make([]float32, 4), nil, "idx[1] = 4 out of range [0, 4)"},
		{"negative index", []int{-1}, make([]float32, 2), nil, "idx[0] = -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q, want it to mention %q", msg, tt.want)
				}
			}()
			d.Gather(tt.idx, tt.x, tt.y)
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(d *Dataset)
		want   string // "" = valid
	}{
		{"valid", func(d *Dataset) {}, ""},
		{"empty dataset", func(d *Dataset) { d.X, d.Y = nil, nil }, ""},
		{"values outside [0,1] are fine", func(d *Dataset) { d.X[0] = -3 }, ""},
		{"no classes", func(d *Dataset) { d.Classes = 0 }, "0 classes"},
		{"empty shape", func(d *Dataset) { d.Shape = nil }, "shape is empty"},
		{"zero dimension", func(d *Dataset) { d.Shape = []int{0} }, "every dimension must be positive"},
		{"huge shape", func(d *Dataset) { d.Shape = []int{1 << 20, 1 << 20} }, "more than"},
		{"X too short", func(d *Dataset) { d.X = d.X[:7] }, "X should hold 8 values, but it holds 7"},
		{"Y too long", func(d *Dataset) { d.Y = append(d.Y, 0) }, "5 labels"},
		{"label too large", func(d *Dataset) { d.Y[2] = 3 }, "label 3 of example 2 is outside [0, 3)"},
		{"negative label", func(d *Dataset) { d.Y[0] = -1 }, "label -1"},
		{"NaN", func(d *Dataset) { d.X[5] = float32(math.NaN()) }, "value 1 of example 2 is NaN"},
		{"Inf", func(d *Dataset) { d.X[0] = float32(math.Inf(-1)) }, "-Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tinyDataset()
			tt.modify(d)
			err := d.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	var nilDataset *Dataset
	if err := nilDataset.Validate(); err == nil {
		t.Error("nil dataset validated")
	}
}

func TestOrderIsDeterministicPermutation(t *testing.T) {
	for _, n := range []int{1, 2, 3, 10, 1000} {
		for seed := range int64(3) {
			for epoch := range 3 {
				a, b := Order(n, seed, epoch), Order(n, seed, epoch)
				if !slices.Equal(a, b) {
					t.Fatalf("Order(%d, %d, %d) differs between calls", n, seed, epoch)
				}
				sorted := slices.Sorted(slices.Values(a))
				for i, v := range sorted {
					if v != i {
						t.Fatalf("Order(%d, %d, %d) = %v is not a permutation of [0, %d)", n, seed, epoch, a, n)
					}
				}
			}
		}
	}
}

func TestOrderVariesWithSeedAndEpoch(t *testing.T) {
	base := Order(1000, 7, 0)
	for _, other := range [][]int{Order(1000, 7, 1), Order(1000, 8, 0), Order(1000, -7, 0)} {
		if slices.Equal(base, other) {
			t.Error("different (seed, epoch) gave the same order")
		}
	}
	// Every position should move around: in a uniform permutation about
	// one element in n stays put.
	fixed := 0
	for i, v := range base {
		if i == v {
			fixed++
		}
	}
	if fixed > 10 {
		t.Errorf("%d of 1000 elements kept their place; the shuffle looks broken", fixed)
	}
}

// TestOrderGolden pins the exact output, which must not change across Go
// versions or platforms: recorded runs and checkpoints depend on it.
func TestOrderGolden(t *testing.T) {
	tests := []struct {
		seed  int64
		epoch int
		want  []int
	}{
		{1, 0, []int{0, 1, 5, 8, 2, 4, 7, 6, 3, 9}},
		{1, 1, []int{9, 5, 8, 6, 1, 3, 7, 0, 2, 4}},
		{2, 0, []int{7, 6, 9, 2, 4, 1, 5, 0, 8, 3}},
	}
	for _, tt := range tests {
		if got := Order(10, tt.seed, tt.epoch); !slices.Equal(got, tt.want) {
			t.Errorf("Order(10, %d, %d) = %v, want %v", tt.seed, tt.epoch, got, tt.want)
		}
	}
}

func TestOrderEmpty(t *testing.T) {
	for _, n := range []int{0, -5} {
		if got := Order(n, 1, 0); got == nil || len(got) != 0 {
			t.Errorf("Order(%d) = %#v, want an empty non-nil slice", n, got)
		}
	}
}

func TestBatches(t *testing.T) {
	tests := []struct {
		n, size int
		want    [][]int
	}{
		{n: 0, size: 3, want: nil},
		{n: 6, size: 3, want: [][]int{{0, 1, 2}, {3, 4, 5}}},
		{n: 7, size: 3, want: [][]int{{0, 1, 2}, {3, 4, 5}, {6}}},
		{n: 2, size: 3, want: [][]int{{0, 1}}},
		{n: 3, size: 1, want: [][]int{{0}, {1}, {2}}},
		{n: 4, size: 0, want: [][]int{{0, 1, 2, 3}}},
		{n: 4, size: -2, want: [][]int{{0, 1, 2, 3}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d", tt.n, tt.size), func(t *testing.T) {
			order := make([]int, tt.n)
			for i := range order {
				order[i] = i
			}
			got := Batches(order, tt.size)
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Fatalf("Batches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBatchesCoverEveryExampleOnce(t *testing.T) {
	order := Order(1001, 3, 2)
	var seen []int
	for _, b := range Batches(order, 64) {
		if len(b) == 0 || len(b) > 64 {
			t.Fatalf("batch of %d", len(b))
		}
		seen = append(seen, b...)
	}
	if !slices.Equal(seen, order) {
		t.Fatal("concatenated batches differ from the order")
	}
}

func TestBatchesAppendDoesNotClobber(t *testing.T) {
	order := []int{0, 1, 2, 3}
	b := Batches(order, 2)
	_ = append(b[0], 99)
	if order[2] != 2 {
		t.Error("appending to a batch overwrote the next one")
	}
}
