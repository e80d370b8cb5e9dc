package train_test

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/train"
)

// residentBackend gives trainers that keep the set "on the device": a
// host copy that StepRows gathers from and hands to Step, so the run
// must be bit for bit the run without it.
type residentBackend struct {
	backend.Backend
	kept, rows int // Keep calls, StepRows calls
}

func (b *residentBackend) NewTrainer(m backend.Model, cfg backend.TrainConfig) (backend.Trainer, error) {
	tr, err := b.Backend.NewTrainer(m, cfg)
	if err != nil {
		return nil, err
	}
	return &residentTrainer{Trainer: tr, b: b, in: model.Numel(m.Spec().Input), k: m.Spec().Classes}, nil
}

type residentTrainer struct {
	backend.Trainer
	b     *residentBackend
	in, k int
	set   backend.Batch
}

func (t *residentTrainer) KeepBudget() int64 { return math.MaxInt64 }

func (t *residentTrainer) Keep(set *backend.Batch) error {
	t.b.kept++
	t.set = backend.Batch{N: set.N, X: slices.Clone(set.X), Labels: slices.Clone(set.Labels), TeacherLogits: slices.Clone(set.TeacherLogits)}
	return nil
}

func (t *residentTrainer) StepRows(idx []int, b *backend.Batch) (loss.Value, error) {
	t.b.rows++
	in, k := t.in, t.k
	h := *b
	h.X = make([]float32, len(idx)*in)
	h.Labels = make([]int32, len(idx))
	for r, i := range idx {
		copy(h.X[r*in:], t.set.X[i*in:(i+1)*in])
		h.Labels[r] = t.set.Labels[i]
	}
	if t.set.TeacherLogits != nil {
		h.TeacherLogits = make([]float32, len(idx)*k)
		for r, i := range idx {
			copy(h.TeacherLogits[r*k:], t.set.TeacherLogits[i*k:(i+1)*k])
		}
	}
	return t.Step(&h)
}

// tableTeacher serves fixed logits by row, as a transfer set does.
type tableTeacher struct {
	logits []float32
	k      int
}

func (t tableTeacher) Logits(idx []int, _ []float32, n int, out []float32) error {
	return t.IndexedLogits(idx, n, out)
}

func (t tableTeacher) IndexedLogits(idx []int, n int, out []float32) error {
	for r, i := range idx[:n] {
		copy(out[r*t.k:(r+1)*t.k], t.logits[i*t.k:(i+1)*t.k])
	}
	return nil
}

// TestResidentTrainerSameRun: a trainer that keeps the set steps on the
// rows of every batch, in order, with their soft targets: the weights
// are those of the run from the host, bit for bit. A teacher run in the
// loop (not indexed) keeps the run on the host.
func TestResidentTrainerSameRun(t *testing.T) {
	b, spec, ds := setup(t, 0.3)
	logits := make([]float32, ds.Len()*ds.Classes)
	for i := range logits {
		logits[i] = float32(math.Sin(float64(i)))
	}
	c := cfg()
	c.Objective.SoftWeight, c.Objective.HardWeight, c.Objective.Temperature = 0.7, 0.3, 2
	c.Teacher = tableTeacher{logits, ds.Classes}
	fit := func(b backend.Backend) model.Weights {
		m, _, err := train.Fit(context.Background(), b, spec, 1, ds, c)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		w, err := m.Weights()
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	want := fit(b)
	rb := &residentBackend{Backend: b}
	got := fit(rb)
	if rb.kept != 1 || rb.rows != 8 {
		t.Fatalf("Keep called %d times, StepRows %d; want 1 and 8 (2 epochs of 4 batches)", rb.kept, rb.rows)
	}
	for name, w := range want {
		if !slices.Equal(w.Data, got[name].Data) {
			t.Errorf("%s differs between the kept and the host run", name)
		}
	}

	tm, err := b.Load(spec, mustInit(t, spec))
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	c.Teacher = train.ModelTeacher(tm)
	rb = &residentBackend{Backend: b}
	fit(rb)
	if rb.kept != 0 || rb.rows != 0 {
		t.Errorf("with a teacher run in the loop: Keep called %d times, StepRows %d; want none", rb.kept, rb.rows)
	}
}

func mustInit(t *testing.T, spec model.Spec) model.Weights {
	t.Helper()
	w, err := spec.Init(9)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
