package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
)

// countingBackend stands in for the torch backend on a GPU whose
// allocator counts memory: after the n-th reset of the peaks they read n
// MiB allocated and 2n MiB reserved, so readings tell the resets apart.
type countingBackend struct {
	cudaBackend
	resets *int64
	err    error // what the counters answer, when set
}

func (b countingBackend) DeviceMemory() (backend.MemoryStats, error) {
	if b.err != nil {
		return backend.MemoryStats{}, b.err
	}
	n := *b.resets << 20
	return backend.MemoryStats{Allocated: n, AllocatedPeak: n, Reserved: 2 * n, ReservedPeak: 2 * n}, nil
}

func (b countingBackend) ResetPeakDeviceMemory() error {
	*b.resets++
	return b.err
}

// TestStageDeviceMemory: each stage gets the peak read at its end, after
// its own reset; the record of a finished stage keeps it, so a rerun that
// reuses the stage reports it again; a backend without counters, or whose
// counters are missing, gives stages without device memory.
func TestStageDeviceMemory(t *testing.T) {
	run := &runner{be: countingBackend{resets: new(int64)}, out: t.TempDir(), log: slog.New(slog.DiscardHandler)}
	for i, name := range []string{"teacher", "small"} {
		c := run.begin()
		rec := c.end()
		want := report.DeviceMemory{AllocatedPeakBytes: int64(i+1) << 20, ReservedPeakBytes: int64(i+1) << 21}
		if rec.DeviceMemory == nil || *rec.DeviceMemory != want {
			t.Fatalf("stage %s: device memory %+v, want %+v", name, rec.DeviceMemory, want)
		}
		if err := run.record(name, "key-"+name, rec); err != nil {
			t.Fatal(err)
		}
		run.done(report.StageID{Kind: report.StageTeacher, Model: name}, rec)
	}
	if got := run.stages[1].DeviceMemory; got == nil || got.AllocatedPeakBytes != 2<<20 {
		t.Errorf("report stage %+v, want the second reading", run.stages[1])
	}
	rec, ok := run.recorded("teacher", "key-teacher")
	if !ok || rec.DeviceMemory == nil || rec.DeviceMemory.AllocatedPeakBytes != 1<<20 {
		t.Errorf("recorded %+v, %v: want the teacher's reading kept", rec, ok)
	}

	for _, be := range []backend.Backend{
		cudaBackend{}, // no counters at all
		countingBackend{resets: new(int64), err: backend.ErrNoDeviceMemory},
		countingBackend{resets: new(int64), err: errors.New("driver gone")},
	} {
		run := &runner{be: be, log: slog.New(slog.DiscardHandler)}
		if rec := run.begin().end(); rec.DeviceMemory != nil {
			t.Errorf("%T: device memory %+v, want none", be, rec.DeviceMemory)
		}
	}
}

// TestServingDeviceMemory: a float model served by the backend on its
// device gets the device memory held over its measurement; the peaks are
// reset before it.
func TestServingDeviceMemory(t *testing.T) {
	spec, err := model.MLP(model.MLPConfig{Name: "m", Input: []int{6}, Hidden: []int{4}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	off := false
	resets := new(int64)
	*resets = 5 // the stages before
	test := &data.Dataset{Shape: []int{6}, Classes: 3, X: make([]float32, 4*6), Y: make([]int32, 4)}
	run := &runner{
		be: countingBackend{resets: resets}, out: t.TempDir(), test: test, log: slog.New(slog.DiscardHandler),
		r: &recipe.Recipe{Serving: recipe.Serving{Batches: []int{1, 2}, Seconds: 0.02, Server: recipe.ServerScenario{Measure: &off}}},
	}
	prog := newEvalProgress(func(Event) {}, 1)
	defer prog.end()
	s, err := run.serving(context.Background(), prog, newServingSet(), evalEntry{name: "small"}, "", spec, fakeModel{})
	if err != nil {
		t.Fatal(err)
	}
	want := report.DeviceMemory{AllocatedPeakBytes: 6 << 20, ReservedPeakBytes: 12 << 20}
	if s.DeviceMemory == nil || *s.DeviceMemory != want {
		t.Errorf("serving device memory %+v, want %+v (read after a reset of its own)", s.DeviceMemory, want)
	}
	if got := s.ModelBytesAt(1); got != want.AllocatedPeakBytes {
		t.Errorf("ModelBytesAt = %d, want the allocated peak", got)
	}
}
