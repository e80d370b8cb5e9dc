// Autocast (mixed precision) and CUDA device queries that gotch's C API
// does not wrap (see autocast.cpp).
#ifndef DISTILL_AUTOCAST_H
#define DISTILL_AUTOCAST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// c10::DeviceType and c10::ScalarType values (stable across libtorch
// releases).
enum {
	DISTILL_DEVICE_CPU = 0,
	DISTILL_DEVICE_CUDA = 1,
	DISTILL_SCALAR_FLOAT = 6,
	DISTILL_SCALAR_BFLOAT16 = 15,
};

// distill_autocast_missing returns NULL when the loaded libtorch has the
// autocast entry points for device (a DISTILL_DEVICE_*), else the name of
// the first one it lacks.
const char *distill_autocast_missing(int device);

// distill_autocast_enter turns autocast on for device with dtype on this
// thread (as torch.autocast's __enter__ does) and stores the state it
// replaces in *enabled and *dtype, for distill_autocast_exit. It returns
// NULL or a message (free it).
char *distill_autocast_enter(int device, int dtype, int *enabled, int *dtype_prev);

// distill_autocast_exit restores the state enter saved and, when the
// outermost autocast region ends, frees the cast copies of the weights
// autocast cached (they are stale once an optimizer updates the weights).
char *distill_autocast_exit(int device, int enabled, int dtype);

// distill_cuda_capability stores the compute capability of CUDA device
// dev through the CUDA runtime libtorch_cuda loaded. It returns 0, or -1
// when no CUDA runtime is loaded or it failed.
int distill_cuda_capability(int dev, int *major, int *minor);

// distill_cuda_mem_info stores the free and total memory of CUDA device
// dev (cudaMemGetInfo). It returns 0, or -1 as distill_cuda_capability.
int distill_cuda_mem_info(int dev, size_t *free_bytes, size_t *total_bytes);

// distill_cuda_runtime_version stores cudaRuntimeGetVersion's answer
// (1000·major + 10·minor). It returns 0, or -1 as distill_cuda_capability.
int distill_cuda_runtime_version(int *version);

#ifdef __cplusplus
}
#endif

#endif
