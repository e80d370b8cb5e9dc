// Device memory counters of libtorch's caching allocator, for distill's
// torch backend (backend/torch/devmem.go declares these functions).
//
// scripts/torch/build.sh compiles this file into gotch's libtch, with
// libtorch's headers, because the counters cannot be read without them:
// they are returned by virtual calls on the allocator object, whose
// layout only the headers know (autocast.cpp and foreach.cpp need no
// headers because the functions they call are plain exported symbols).
// build.sh defines DISTILL_DEVICE_ALLOCATOR to 1 when this file compiles
// against the libtorch it builds for, that is, when libtorch has
// c10::DeviceAllocator (PyTorch 2.9 and later; it needs no CUDA header),
// and to 0 otherwise: then the functions say the counters are missing.
//
// Stat index 0 is StatType::AGGREGATE (both pools) in every release; the
// enum's namespace moved between releases, so it is not named here.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>

#ifndef DISTILL_DEVICE_ALLOCATOR
#define DISTILL_DEVICE_ALLOCATOR 0
#endif
#if DISTILL_DEVICE_ALLOCATOR
#include <c10/core/CachingDeviceAllocator.h>
#endif

namespace {

char *distill_devmem_dup(const char *msg) {
	size_t n = std::strlen(msg) + 1;
	char *r = static_cast<char *>(std::malloc(n));
	if (r != nullptr) std::memcpy(r, msg, n);
	return r;
}

// distill_devmem_guard runs body and returns NULL, or the message of what
// it threw, which the caller frees.
template <typename F> char *distill_devmem_guard(F body) {
	try {
		body();
		return nullptr;
	} catch (const std::exception &e) {
		return distill_devmem_dup(e.what());
	} catch (...) {
		return distill_devmem_dup("unknown C++ exception");
	}
}

} // namespace

// distill_devmem_available reports whether this build reads the counters.
extern "C" int distill_devmem_available(void) { return DISTILL_DEVICE_ALLOCATOR; }

// distill_devmem_stats writes CUDA device dev's allocated, peak allocated,
// reserved and peak reserved bytes to out[0..3]. It returns NULL, or an
// error message the caller frees.
extern "C" char *distill_devmem_stats(int dev, int64_t *out) {
#if DISTILL_DEVICE_ALLOCATOR
	return distill_devmem_guard([&] {
		c10::DeviceAllocator *a = c10::getDeviceAllocator(c10::DeviceType::CUDA);
		if (!a->initialized()) {
			// Nothing was ever allocated on a CUDA device.
			out[0] = out[1] = out[2] = out[3] = 0;
			return;
		}
		auto s = a->getDeviceStats(static_cast<c10::DeviceIndex>(dev));
		out[0] = s.allocated_bytes[0].current;
		out[1] = s.allocated_bytes[0].peak;
		out[2] = s.reserved_bytes[0].current;
		out[3] = s.reserved_bytes[0].peak;
	});
#else
	(void)dev;
	(void)out;
	return distill_devmem_dup("this libtorch has no c10::DeviceAllocator (PyTorch 2.9 or later has it)");
#endif
}

// distill_devmem_reset_peak starts CUDA device dev's peaks anew. It
// returns NULL, or an error message the caller frees.
extern "C" char *distill_devmem_reset_peak(int dev) {
#if DISTILL_DEVICE_ALLOCATOR
	return distill_devmem_guard([&] {
		c10::DeviceAllocator *a = c10::getDeviceAllocator(c10::DeviceType::CUDA);
		if (a->initialized()) a->resetPeakStats(static_cast<c10::DeviceIndex>(dev));
	});
#else
	(void)dev;
	return distill_devmem_dup("this libtorch has no c10::DeviceAllocator (PyTorch 2.9 or later has it)");
#endif
}
