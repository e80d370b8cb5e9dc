//go:build torch

package torch

// #include <stdint.h>
// #include <stdlib.h>
//
// // Defined in scripts/torch/devmem.cpp, which build.sh compiles into
// // libtch. Weak, so that a libtch prepared before that file existed
// // still links: the calls then say the counters are missing.
// extern int distill_devmem_available(void) __attribute__((weak));
// extern char *distill_devmem_stats(int dev, int64_t *out) __attribute__((weak));
// extern char *distill_devmem_reset_peak(int dev) __attribute__((weak));
//
// static int devmem_linked(void) { return distill_devmem_stats != 0 && distill_devmem_reset_peak != 0 && distill_devmem_available != 0; }
// static int devmem_available(void) { return devmem_linked() && distill_devmem_available(); }
// static char *devmem_stats(int dev, int64_t *out) { return distill_devmem_stats(dev, out); }
// static char *devmem_reset_peak(int dev) { return distill_devmem_reset_peak(dev); }
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/distill-dev/distill/backend"
)

var _ backend.DeviceMemory = (*Backend)(nil)

// DeviceMemory returns the CUDA caching allocator's counters for the
// backend's device (backend.DeviceMemory). On the CPU, or with a libtorch
// older than 2.9 (see scripts/torch/devmem.cpp), the error wraps
// backend.ErrNoDeviceMemory.
func (b *Backend) DeviceMemory() (backend.MemoryStats, error) {
	if err := b.devmemMissing(); err != nil {
		return backend.MemoryStats{}, err
	}
	var out [4]C.int64_t
	err := b.eng.do(func() error {
		return devmemErr("reading", C.devmem_stats(C.int(b.device), &out[0]))
	})
	if err != nil {
		return backend.MemoryStats{}, err
	}
	return backend.MemoryStats{
		Allocated: int64(out[0]), AllocatedPeak: int64(out[1]),
		Reserved: int64(out[2]), ReservedPeak: int64(out[3]),
	}, nil
}

// ResetPeakDeviceMemory starts the device's peaks anew
// (backend.DeviceMemory).
func (b *Backend) ResetPeakDeviceMemory() error {
	if err := b.devmemMissing(); err != nil {
		return err
	}
	return b.eng.do(func() error {
		return devmemErr("resetting the peaks of", C.devmem_reset_peak(C.int(b.device)))
	})
}

// devmemMissing says why this backend cannot read device memory counters,
// or returns nil.
func (b *Backend) devmemMissing() error {
	switch {
	case b.device < 0:
		return fmt.Errorf("torch backend: %w on the CPU", backend.ErrNoDeviceMemory)
	case C.devmem_linked() == 0:
		return fmt.Errorf("torch backend: %w: libtch was prepared without scripts/torch/devmem.cpp; rerun scripts/torch/build.sh", backend.ErrNoDeviceMemory)
	case !devmemAvailable():
		return fmt.Errorf("torch backend: %w: %s has no c10::DeviceAllocator (PyTorch 2.9 or later has it)", backend.ErrNoDeviceMemory, b.Library())
	}
	return nil
}

// devmemAvailable reports whether this build reads the counters.
func devmemAvailable() bool { return C.devmem_available() != 0 }

func devmemErr(what string, msg *C.char) error {
	if msg == nil {
		return nil
	}
	err := errors.New(trimTrace(C.GoString(msg)))
	C.free(unsafe.Pointer(msg))
	return fmt.Errorf("torch backend: %s the CUDA allocator's counters: %w", what, err)
}
