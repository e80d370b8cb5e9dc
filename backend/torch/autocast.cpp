//go:build torch

// Autocast, libtorch's mixed precision: while it is on for a device type,
// the dispatcher runs the ops of its lower-precision list (matrix
// products, convolutions) in the autocast dtype and those of its fp32
// list in float32, on this thread only. gotch's C API wraps only the CUDA
// switch of libtorch 2.1. The functions are called here through the
// symbols libtorch exports, found with dlsym, as foreach.cpp does: no
// libtorch header is needed, so the same file builds against any
// libtorch, and which API a release has is decided at run time by the
// symbols it exports. PyTorch 2.4 replaced the per-device functions of
// 1.x-2.3 (set_cpu_enabled, set_enabled, set_autocast_cpu_dtype, …) with
// ones taking a c10::DeviceType, and made the old ones inline wrappers
// that no longer exist in the library; both are looked for, the new ones
// first. c10::DeviceType and c10::ScalarType are enums of int8_t, passed
// as such.
//
// The CUDA runtime functions come from the libcudart that a CUDA
// libtorch loaded; with a CPU-only libtorch they are absent.

#include <dlfcn.h>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "autocast.h"

namespace {

typedef bool (*isNewFn)(int8_t);
typedef void (*setNewFn)(int8_t, bool);
typedef int8_t (*dtypeNewFn)(int8_t);
typedef void (*setDtypeNewFn)(int8_t, int8_t);
typedef bool (*isOldFn)();
typedef void (*setOldFn)(bool);
typedef int8_t (*dtypeOldFn)();
typedef void (*setDtypeOldFn)(int8_t);
typedef int (*intFn)();
typedef void (*voidFn)();

struct Fns {
	// PyTorch 2.4+: one function per operation, taking the device type.
	isNewFn isEnabled;
	setNewFn setEnabled;
	dtypeNewFn getDtype;
	setDtypeNewFn setDtype;
	// libtorch 1.x-2.3: one function per device type (CPU, CUDA).
	isOldFn isEnabledOld[2];
	setOldFn setEnabledOld[2];
	dtypeOldFn getDtypeOld[2];
	setDtypeOldFn setDtypeOld[2];
	intFn increment, decrement;
	voidFn clearCache;

	template <typename T> static T sym(const char *name) {
		return reinterpret_cast<T>(dlsym(RTLD_DEFAULT, name));
	}
	Fns() {
		isEnabled = sym<isNewFn>("_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE");
		setEnabled = sym<setNewFn>("_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb");
		getDtype = sym<dtypeNewFn>("_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE");
		setDtype = sym<setDtypeNewFn>("_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE");
		isEnabledOld[DISTILL_DEVICE_CPU] = sym<isOldFn>("_ZN2at8autocast14is_cpu_enabledEv");
		setEnabledOld[DISTILL_DEVICE_CPU] = sym<setOldFn>("_ZN2at8autocast15set_cpu_enabledEb");
		getDtypeOld[DISTILL_DEVICE_CPU] = sym<dtypeOldFn>("_ZN2at8autocast22get_autocast_cpu_dtypeEv");
		setDtypeOld[DISTILL_DEVICE_CPU] = sym<setDtypeOldFn>("_ZN2at8autocast22set_autocast_cpu_dtypeEN3c1010ScalarTypeE");
		isEnabledOld[DISTILL_DEVICE_CUDA] = sym<isOldFn>("_ZN2at8autocast10is_enabledEv");
		setEnabledOld[DISTILL_DEVICE_CUDA] = sym<setOldFn>("_ZN2at8autocast11set_enabledEb");
		getDtypeOld[DISTILL_DEVICE_CUDA] = sym<dtypeOldFn>("_ZN2at8autocast22get_autocast_gpu_dtypeEv");
		setDtypeOld[DISTILL_DEVICE_CUDA] = sym<setDtypeOldFn>("_ZN2at8autocast22set_autocast_gpu_dtypeEN3c1010ScalarTypeE");
		increment = sym<intFn>("_ZN2at8autocast17increment_nestingEv");
		decrement = sym<intFn>("_ZN2at8autocast17decrement_nestingEv");
		clearCache = sym<voidFn>("_ZN2at8autocast11clear_cacheEv");
	}
	bool hasNew() const { return isEnabled && setEnabled && getDtype && setDtype; }
	bool hasOld(int d) const {
		return isEnabledOld[d] && setEnabledOld[d] && getDtypeOld[d] && setDtypeOld[d];
	}
};

const Fns &fns() {
	static const Fns f; // resolved once, safely across the engines' threads
	return f;
}

bool validDevice(int d) { return d == DISTILL_DEVICE_CPU || d == DISTILL_DEVICE_CUDA; }

char *dup(const char *msg) {
	size_t n = std::strlen(msg) + 1;
	char *r = static_cast<char *>(std::malloc(n));
	if (r != nullptr) std::memcpy(r, msg, n);
	return r;
}

// set sets device's autocast switch and dtype.
void set(const Fns &f, int device, bool on, int8_t dtype) {
	if (f.hasNew()) {
		f.setDtype(static_cast<int8_t>(device), dtype);
		f.setEnabled(static_cast<int8_t>(device), on);
	} else {
		f.setDtypeOld[device](dtype);
		f.setEnabledOld[device](on);
	}
}

template <typename F> char *guard(F body) {
	try {
		body();
	} catch (const std::exception &e) {
		return dup(e.what());
	} catch (...) {
		return dup("unknown C++ exception");
	}
	return nullptr;
}

template <typename T> T cudaSym(const char *name) {
	return reinterpret_cast<T>(dlsym(RTLD_DEFAULT, name));
}

} // namespace

extern "C" const char *distill_autocast_missing(int device) {
	if (!validDevice(device)) return "autocast for this device type";
	const Fns &f = fns();
	if (!f.increment) return "at::autocast::increment_nesting";
	if (!f.decrement) return "at::autocast::decrement_nesting";
	if (!f.clearCache) return "at::autocast::clear_cache";
	if (f.hasNew() || f.hasOld(device)) return nullptr;
	return device == DISTILL_DEVICE_CPU ? "at::autocast::set_autocast_enabled or set_cpu_enabled"
	                                    : "at::autocast::set_autocast_enabled or set_enabled";
}

extern "C" char *distill_autocast_enter(int device, int dtype, int *enabled, int *dtypePrev) {
	if (distill_autocast_missing(device) != nullptr) return dup("autocast is not available in the loaded libtorch");
	const Fns &f = fns();
	return guard([&] {
		if (f.hasNew()) {
			*enabled = f.isEnabled(static_cast<int8_t>(device));
			*dtypePrev = f.getDtype(static_cast<int8_t>(device));
		} else {
			*enabled = f.isEnabledOld[device]();
			*dtypePrev = f.getDtypeOld[device]();
		}
		f.increment();
		set(f, device, true, static_cast<int8_t>(dtype));
	});
}

extern "C" char *distill_autocast_exit(int device, int enabled, int dtype) {
	if (distill_autocast_missing(device) != nullptr) return dup("autocast is not available in the loaded libtorch");
	const Fns &f = fns();
	return guard([&] {
		// As torch.autocast's __exit__: the cache of cast weights lives
		// as long as the outermost region.
		if (f.decrement() == 0) f.clearCache();
		set(f, device, enabled != 0, static_cast<int8_t>(dtype));
	});
}

extern "C" int distill_cuda_capability(int dev, int *major, int *minor) {
	// cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);
	// cudaDevAttrComputeCapabilityMajor = 75, ...Minor = 76.
	typedef int (*attrFn)(int *, int, int);
	attrFn attr = cudaSym<attrFn>("cudaDeviceGetAttribute");
	if (attr == nullptr || attr(major, 75, dev) != 0 || attr(minor, 76, dev) != 0) return -1;
	return 0;
}

extern "C" int distill_cuda_mem_info(int dev, size_t *freeBytes, size_t *totalBytes) {
	// cudaMemGetInfo reports the current device's memory: select dev on
	// this thread first (libtorch's ops set their device themselves).
	typedef int (*setDeviceFn)(int);
	typedef int (*memInfoFn)(size_t *, size_t *);
	setDeviceFn setDevice = cudaSym<setDeviceFn>("cudaSetDevice");
	memInfoFn memInfo = cudaSym<memInfoFn>("cudaMemGetInfo");
	if (setDevice == nullptr || memInfo == nullptr || setDevice(dev) != 0 || memInfo(freeBytes, totalBytes) != 0) return -1;
	return 0;
}

extern "C" int distill_cuda_runtime_version(int *version) {
	typedef int (*versionFn)(int *);
	versionFn f = cudaSym<versionFn>("cudaRuntimeGetVersion");
	if (f == nullptr || f(version) != 0) return -1;
	return 0;
}
