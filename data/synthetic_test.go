package data

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSyntheticDeterministic(t *testing.T) {
	cfg := SyntheticConfig{Train: 50, Test: 20, Shape: []int{1, 4, 4}, Classes: 4, Seed: 9}
	tr1, te1 := Synthetic(cfg)
	tr2, te2 := Synthetic(cfg)
	if !slices.Equal(tr1.X, tr2.X) || !slices.Equal(tr1.Y, tr2.Y) || !slices.Equal(te1.X, te2.X) || !slices.Equal(te1.Y, te2.Y) {
		t.Fatal("the same config gave different datasets")
	}
	cfg.Seed++
	tr3, _ := Synthetic(cfg)
	if slices.Equal(tr1.X, tr3.X) {
		t.Fatal("different seeds gave the same training set")
	}
}

// TestSyntheticGolden pins a few values so that the generator cannot
// change silently across Go versions.
func TestSyntheticGolden(t *testing.T) {
	tr, _ := Synthetic(SyntheticConfig{Train: 3, Test: 1, Shape: []int{4}, Classes: 3, Seed: 1})
	if want := []int32{1, 0, 1}; !slices.Equal(tr.Y, want) {
		t.Errorf("labels = %v, want %v", tr.Y, want)
	}
	want := []float32{0, 0.92691386, 0.76760983, 0.6869035}
	if !slices.Equal(tr.X[:4], want) {
		t.Errorf("first example = %v, want %v", tr.X[:4], want)
	}
}

func TestSyntheticShapesAndRange(t *testing.T) {
	tr, te := Synthetic(SyntheticConfig{Train: 30, Test: 7, Shape: []int{2, 3}, Classes: 5, Seed: 1, Noise: 2})
	for _, d := range []*Dataset{tr, te} {
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
		if d.Name != "synthetic" || d.Classes != 5 || !slices.Equal(d.Shape, []int{2, 3}) {
			t.Errorf("got name %q, classes %d, shape %v", d.Name, d.Classes, d.Shape)
		}
		for _, v := range d.X {
			if v < 0 || v > 1 {
				t.Fatalf("value %v outside [0, 1]", v)
			}
		}
	}
	if tr.Len() != 30 || te.Len() != 7 {
		t.Errorf("lengths %d, %d; want 30, 7", tr.Len(), te.Len())
	}
}

func TestSyntheticTrainIndependentOfTestSize(t *testing.T) {
	a, _ := Synthetic(SyntheticConfig{Train: 20, Test: 5, Shape: []int{3}, Classes: 2, Seed: 4})
	b, _ := Synthetic(SyntheticConfig{Train: 20, Test: 500, Shape: []int{3}, Classes: 2, Seed: 4})
	if !slices.Equal(a.X, b.X) || !slices.Equal(a.Y, b.Y) {
		t.Fatal("changing Test changed the training set")
	}
}

// TestSyntheticSeparable checks the task is learnable: classifying test
// examples by the nearest class mean of the training set is accurate.
func TestSyntheticSeparable(t *testing.T) {
	for _, shape := range [][]int{{1, 8, 8}, {16}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			tr, te := Synthetic(SyntheticConfig{Train: 1000, Test: 300, Shape: shape, Classes: 4, Seed: 1})
			size := tr.Size()
			means := make([]float64, tr.Classes*size)
			counts := make([]int, tr.Classes)
			for i, y := range tr.Y {
				counts[y]++
				for j := range size {
					means[int(y)*size+j] += float64(tr.X[i*size+j])
				}
			}
			for c, n := range counts {
				if n == 0 {
					t.Fatalf("class %d has no training examples", c)
				}
				for j := range size {
					means[c*size+j] /= float64(n)
				}
			}
			correct := 0
			for i, y := range te.Y {
				best, bestDist := -1, math.Inf(1)
				for c := range tr.Classes {
					dist := 0.0
					for j := range size {
						d := float64(te.X[i*size+j]) - means[c*size+j]
						dist += d * d
					}
					if dist < bestDist {
						best, bestDist = c, dist
					}
				}
				if best == int(y) {
					correct++
				}
			}
			if acc := float64(correct) / float64(te.Len()); acc < 0.9 {
				t.Errorf("nearest-mean accuracy %.3f, want >= 0.9", acc)
			}
		})
	}
}

func TestSyntheticConfigValidate(t *testing.T) {
	ok := SyntheticConfig{Train: 1, Test: 1, Shape: []int{2}, Classes: 2}
	tests := []struct {
		name   string
		modify func(*SyntheticConfig)
		want   string
	}{
		{"valid", func(*SyntheticConfig) {}, ""},
		{"empty sets", func(c *SyntheticConfig) { c.Train, c.Test = 0, 0 }, ""},
		{"negative train", func(c *SyntheticConfig) { c.Train = -1 }, "must be >= 0"},
		{"no classes", func(c *SyntheticConfig) { c.Classes = 0 }, "at least 1"},
		{"no shape", func(c *SyntheticConfig) { c.Shape = nil }, "shape is empty"},
		{"bad dimension", func(c *SyntheticConfig) { c.Shape = []int{3, -1} }, "must be positive"},
		{"negative noise", func(c *SyntheticConfig) { c.Noise = -0.1 }, "noise"},
		{"NaN noise", func(c *SyntheticConfig) { c.Noise = math.NaN() }, "noise"},
		{"too large", func(c *SyntheticConfig) { c.Train, c.Shape = 1<<20, []int{1 << 12} }, "exceed the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.modify(&cfg)
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := NewSynthetic(cfg); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
			if _, _, err2 := NewSynthetic(cfg); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("NewSynthetic error %v, want %v", err2, err)
			}
		})
	}
}

func TestSyntheticPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "classes") {
			t.Errorf("recovered %v, want a panic about classes", r)
		}
	}()
	Synthetic(SyntheticConfig{Shape: []int{1}})
}
