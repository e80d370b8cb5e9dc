package transfer_test

import (
	"math"
	"strings"
	"testing"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/student"
	"github.com/distill-dev/distill/train"
	"github.com/distill-dev/distill/transfer"
)

// mlp is a plain-Go ReLU MLP teacher (dense layers, row-major weights
// [in][out]), so the benchmark depends on no backend.
type mlp struct {
	sizes []int
	w, b  [][]float32
	h     [2][]float32 // activations scratch, max batch × max width
}

func newMLP(sizes []int, maxBatch int) *mlp {
	m := &mlp{sizes: sizes}
	widest := 0
	for l := 0; l+1 < len(sizes); l++ {
		in, out := sizes[l], sizes[l+1]
		w := make([]float32, in*out)
		scale := math.Sqrt(2 / float64(in))
		for i := range w {
			w[i] = float32(scale * math.Sin(float64(i*7+l)))
		}
		m.w = append(m.w, w)
		m.b = append(m.b, make([]float32, out))
		widest = max(widest, out)
	}
	m.h[0], m.h[1] = make([]float32, maxBatch*widest), make([]float32, maxBatch*widest)
	return m
}

func (m *mlp) Forward(x []float32, n int, out []float32) error {
	in := x
	for l, w := range m.w {
		ni, no := m.sizes[l], m.sizes[l+1]
		dst := m.h[l%2][:n*no]
		if l == len(m.w)-1 {
			dst = out[:n*no]
		}
		for r := range n {
			o := dst[r*no : (r+1)*no]
			copy(o, m.b[l])
			for i, xv := range in[r*ni : (r+1)*ni] {
				if xv == 0 {
					continue
				}
				row := w[i*no : (i+1)*no]
				for j := range o {
					o[j] += xv * row[j]
				}
			}
			if l < len(m.w)-1 {
				for j, v := range o {
					o[j] = max(v, 0)
				}
			}
		}
		in = dst
	}
	return nil
}

// liveTeacher runs a model in the loop, as train.ModelTeacher does.
type liveTeacher struct{ m transfer.Forwarder }

func (t liveTeacher) Logits(_ []int, x []float32, n int, out []float32) error {
	return t.m.Forward(x, n, out)
}

// mnistLike returns n random 1×28×28 images in 10 classes.
func mnistLike(n int) *data.Dataset {
	d := &data.Dataset{Name: "mnist-like", Shape: []int{1, 28, 28}, Classes: 10,
		X: make([]float32, n*784), Y: make([]int32, n)}
	for i := range d.X {
		if v := math.Sin(float64(i) * 12.9898); v > 0.3 { // sparse, like strokes
			d.X[i] = float32(v)
		}
	}
	for i := range d.Y {
		d.Y[i] = int32(i % 10)
	}
	return d
}

// BenchmarkEpoch compares, per epoch over an MNIST-shaped set of 1024
// examples in batches of 128, getting soft targets from a transfer set
// with running a 784-800-800-10 MLP teacher in the loop. Both gather the
// batch's inputs, which training needs either way; the "inputs"
// benchmarks show that cost alone, for stored and for augmented
// (recomputed) inputs.
func BenchmarkEpoch(b *testing.B) {
	const n, batch = 1024, 128
	d := mnistLike(n)
	teacher := newMLP([]int{784, 800, 800, 10}, batch)
	teachers := []transfer.Teacher{{Name: "mlp", SHA256: strings.Repeat("0", 64), Model: teacher}}
	cache := transfer.Cache{Dir: b.TempDir()}
	spec := transfer.BuildSpec{Data: d, BatchSize: batch}
	set, err := cache.GetOrBuild(b.Context(), spec, teachers, nil)
	if err != nil {
		b.Fatal(err)
	}
	spec.Copies, spec.Augment = 1, augment.Config{Shift: 2, Rotate: 10}
	augSet, err := cache.GetOrBuild(b.Context(), spec, teachers, nil)
	if err != nil {
		b.Fatal(err)
	}
	cached, err := set.Ensemble(4)
	if err != nil {
		b.Fatal(err)
	}
	live := liveTeacher{teacher}

	x := make([]float32, batch*784)
	y := make([]int32, batch)
	soft := make([]float32, batch*10)
	epoch := func(b *testing.B, src train.Source, rows []int, t train.Teacher) {
		for _, idx := range data.Batches(rows, batch) {
			k := len(idx)
			src.Gather(idx, x[:k*784], y[:k])
			if t == nil {
				continue
			}
			if err := t.Logits(idx, x[:k*784], k, soft[:k*10]); err != nil {
				b.Fatal(err)
			}
		}
	}
	order := data.Order(n, 1, 0)
	augRows := make([]int, n) // the augmented copies: rows n … 2n−1
	for i := range augRows {
		augRows[i] = n + order[i]
	}
	for _, bc := range []struct {
		name string
		src  train.Source
		rows []int
		t    train.Teacher
	}{
		{"targets=cache", set, order, cached},
		{"targets=teacher", set, order, live},
		{"inputs=stored", set, order, nil},
		{"inputs=augmented", augSet, augRows, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				epoch(b, bc.src, bc.rows, bc.t)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/example")
		})
	}
}

// BenchmarkDistillEpoch times one epoch of training Hinton's student
// (784-800-800-10) on the gorgonia backend over 2048 MNIST-shaped
// examples in batches of 128, three ways in the same run: on hard labels
// alone (the floor), distilled with soft targets from a transfer set, and
// distilled with the teacher (784-1200-1200-10) run in the loop. With the
// cache an epoch should cost about what the student alone costs; the
// ratios are the result:
//
//	go test -run '^$' -bench DistillEpoch -benchtime 3x ./transfer
func BenchmarkDistillEpoch(b *testing.B) {
	const n, batch = 2048, 128
	be, err := backend.Open("gorgonia", backend.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	d := mnistLike(n)
	tspec, _ := model.MLP(model.MLPConfig{Name: "teacher", Input: []int{1, 28, 28}, Hidden: []int{1200, 1200}, Classes: 10})
	sspec, _ := model.MLP(model.MLPConfig{Name: "student", Input: []int{1, 28, 28}, Hidden: []int{800, 800}, Classes: 10})
	tw, _ := tspec.Init(1)
	tm, err := be.Load(tspec, tw)
	if err != nil {
		b.Fatal(err)
	}
	defer tm.Close()
	set, err := transfer.Build(b.Context(), transfer.BuildSpec{Data: d, Dir: b.TempDir(), BatchSize: batch},
		[]transfer.Teacher{{Name: "teacher", SHA256: strings.Repeat("0", 64), Model: tm}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	cached, err := set.Ensemble(4)
	if err != nil {
		b.Fatal(err)
	}
	cfg := train.Config{Epochs: 1, BatchSize: batch, LR: 1e-3, Seed: 1, Optimizer: backend.Optimizer{Kind: backend.Adam}}
	for _, bc := range []struct {
		name    string
		src     train.Source
		teacher train.Teacher
	}{
		{"student-alone", d, nil},
		{"targets=cache", set, cached},
		{"targets=teacher", d, train.ModelTeacher(tm)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				var m backend.Model
				var err error
				if bc.teacher == nil {
					m, _, err = student.Baseline(b.Context(), be, sspec, bc.src, cfg)
				} else {
					m, _, err = student.Distill(b.Context(), be, sspec, bc.teacher, 0.9, 4, bc.src, cfg)
				}
				if err != nil {
					b.Fatal(err)
				}
				m.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/example")
		})
	}
}
