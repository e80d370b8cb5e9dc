//go:build torch

package torch

import (
	"errors"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/model"
)

// TestDeviceMemory: on the CPU both calls say there are no counters; on a
// CUDA device (DISTILL_TORCH_TEST_DEVICE=cuda) with a libtorch that has
// them, a loaded model's weights show in the allocated bytes, the peaks
// bound the current values, and a reset brings the peaks down to them.
func TestDeviceMemory(t *testing.T) {
	b := openTest(t)
	if b.device < 0 {
		if _, err := b.DeviceMemory(); !errors.Is(err, backend.ErrNoDeviceMemory) {
			t.Errorf("DeviceMemory on the CPU: err = %v, want ErrNoDeviceMemory", err)
		}
		if err := b.ResetPeakDeviceMemory(); !errors.Is(err, backend.ErrNoDeviceMemory) {
			t.Errorf("ResetPeakDeviceMemory on the CPU: err = %v, want ErrNoDeviceMemory", err)
		}
		// What a CUDA backend of this build would say, short of a device.
		err := (&Backend{device: 0}).devmemMissing()
		switch {
		case devmemAvailable() && err != nil:
			t.Errorf("counters built in, but a CUDA backend says: %v", err)
		case !devmemAvailable() && (!errors.Is(err, backend.ErrNoDeviceMemory) || !strings.Contains(err.Error(), "DeviceAllocator")):
			t.Errorf("counters not built in: err = %v, want ErrNoDeviceMemory naming c10::DeviceAllocator", err)
		}
		t.Logf("counters built in: %v (%v)", devmemAvailable(), err)
		return
	}
	before, err := b.DeviceMemory()
	if errors.Is(err, backend.ErrNoDeviceMemory) {
		if !strings.Contains(err.Error(), "DeviceAllocator") && !strings.Contains(err.Error(), "devmem.cpp") {
			t.Errorf("the error does not say what is missing: %v", err)
		}
		t.Skipf("no counters in this build: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	spec := tinyCNN(t)
	w, _ := spec.Init(1)
	params, err := spec.Params()
	if err != nil {
		t.Fatal(err)
	}
	var bytes int64
	for _, p := range params {
		bytes += int64(model.Numel(p.Shape)) * 4
	}
	m := load(t, b, spec, w)
	x := make([]float32, 64*model.Numel(spec.Input))
	out := make([]float32, 64*spec.Classes)
	if err := m.Forward(x, 64, out); err != nil {
		t.Fatal(err)
	}
	got, err := b.DeviceMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before %+v, after loading and a forward pass %+v (weights %d bytes)", before, got, bytes)
	if got.Allocated-before.Allocated < bytes {
		t.Errorf("allocated grew by %d bytes, less than the weights' %d", got.Allocated-before.Allocated, bytes)
	}
	if got.AllocatedPeak < got.Allocated || got.ReservedPeak < got.Reserved || got.Reserved < got.Allocated {
		t.Errorf("inconsistent counters %+v: want peak ≥ current and reserved ≥ allocated", got)
	}
	if err := b.ResetPeakDeviceMemory(); err != nil {
		t.Fatal(err)
	}
	reset, err := b.DeviceMemory()
	if err != nil {
		t.Fatal(err)
	}
	if reset.AllocatedPeak != reset.Allocated || reset.AllocatedPeak > got.AllocatedPeak {
		t.Errorf("after a reset %+v: want the allocated peak back at the allocated bytes", reset)
	}
}
