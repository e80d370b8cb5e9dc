//go:build torch

package torch

// #include <stdlib.h>
// #include "autocast.h"
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/distill-dev/distill/backend"
)

// autocastDevice is the c10::DeviceType of gotch device index d.
func autocastDevice(d int) C.int {
	if d < 0 {
		return C.DISTILL_DEVICE_CPU
	}
	return C.DISTILL_DEVICE_CUDA
}

// autocastMissing reports why the loaded libtorch cannot autocast on
// device d (nil when it can).
func autocastMissing(d int) error {
	if p := C.distill_autocast_missing(autocastDevice(d)); p != nil {
		return fmt.Errorf("the loaded libtorch has no %s", C.GoString(p))
	}
	return nil
}

// withAutocast runs f with bfloat16 autocast on for device d on this
// thread when on is true (else it just runs f), and restores the previous
// state after, even when f fails. Outputs of the lower-precision ops come
// back as bfloat16: callers cast what they read or feed to a loss to
// float32 (toFloat).
func withAutocast(d int, on bool, f func() error) error {
	if !on {
		return f()
	}
	var enabled, dtype C.int
	if msg := C.distill_autocast_enter(autocastDevice(d), C.DISTILL_SCALAR_BFLOAT16, &enabled, &dtype); msg != nil {
		return autocastErr("enabling", msg)
	}
	err := f()
	if msg := C.distill_autocast_exit(autocastDevice(d), enabled, dtype); msg != nil {
		err = errors.Join(err, autocastErr("restoring", msg))
	}
	return err
}

func autocastErr(what string, msg *C.char) error {
	err := errors.New(trimTrace(C.GoString(msg)))
	C.free(unsafe.Pointer(msg))
	return fmt.Errorf("torch backend: %s autocast: %w", what, err)
}

// cudaCapability returns the compute capability of CUDA device d, ok
// false when the CUDA runtime cannot tell.
func cudaCapability(d int) (major, minor int, ok bool) {
	var ma, mi C.int
	if C.distill_cuda_capability(C.int(d), &ma, &mi) != 0 {
		return 0, 0, false
	}
	return int(ma), int(mi), true
}

// cudaMemInfo returns the free and total memory of CUDA device d, ok
// false when the CUDA runtime cannot tell.
func cudaMemInfo(d int) (free, total int64, ok bool) {
	var f, t C.size_t
	if C.distill_cuda_mem_info(C.int(d), &f, &t) != 0 {
		return 0, 0, false
	}
	return int64(f), int64(t), true
}

// cudaRuntime returns the version of the CUDA runtime libtorch loaded,
// "12.8" for 12080, ok false without one.
func cudaRuntime() (string, bool) {
	var v C.int
	if C.distill_cuda_runtime_version(&v) != 0 {
		return "", false
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10), true
}

// resolvePrecision turns the requested precision into the one device d
// runs: auto is bf16 on a CUDA device of compute capability 8.0 or newer
// (Ampere: native bfloat16 tensor cores) and fp32 elsewhere, where bf16
// is emulated or converted (on the CPU, bf16 is as fast as fp32 only with
// AVX-512 BF16 or AMX, and PyTorch leaves CPU autocast off by default).
// bf16 asked for explicitly needs the autocast entry points.
func resolvePrecision(want backend.Precision, d int) (backend.Precision, error) {
	switch want {
	case backend.PrecisionFP32:
		return backend.PrecisionFP32, nil
	case backend.PrecisionBF16:
		if err := autocastMissing(d); err != nil {
			return "", fmt.Errorf("torch backend: precision bf16 on %s: %w; set precision to fp32", deviceName(d), err)
		}
		return backend.PrecisionBF16, nil
	case backend.PrecisionAuto, "":
		if d < 0 || autocastMissing(d) != nil {
			return backend.PrecisionFP32, nil
		}
		if major, _, ok := cudaCapability(d); ok && major >= 8 {
			return backend.PrecisionBF16, nil
		}
		return backend.PrecisionFP32, nil
	default:
		return "", fmt.Errorf("torch backend: unknown precision %q: use auto, fp32 or bf16", want)
	}
}
