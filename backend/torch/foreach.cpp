//go:build torch

// The _foreach_* ops of ATen take lists of tensors and, on CUDA, update
// all of them in a few multi-tensor kernels instead of one launch per
// tensor (on the CPU they loop over the same kernels as the single-tensor
// ops). gotch's generated C API has none of them, and its in-place add_,
// addcmul_ and addcdiv_ lack the alpha/value scalar. They are called here
// through the at::_ops::<op>::call functions libtorch exports, found with
// dlsym, so that no libtorch header is needed: their arguments are
// c10::ArrayRef<at::Tensor> (a pointer and a length, passed by value in
// two registers), whose elements are at::Tensor, a single TensorImpl
// pointer (the first word of the torch::Tensor a gotch handle points to),
// and const c10::Scalar& (a gotch scalar handle). The lists only borrow
// the tensors: no reference count changes.

#include <dlfcn.h>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include "foreach.h"

namespace {

struct TensorList {
	void *const *data;
	size_t len;
};

typedef void (*fn0)(TensorList);
typedef void (*fn1)(TensorList, const void *);
typedef void (*fn2)(TensorList, TensorList, const void *);
typedef void (*fn3)(TensorList, TensorList, TensorList, const void *);

struct Op {
	const char *name;
	const char *symbol;
	int lists; // tensor lists it takes; 0: one list and no scalar
};

const Op ops[DISTILL_FOREACH_OPS] = {
	{"_foreach_mul_.Scalar", "_ZN2at4_ops20_foreach_mul__Scalar4callEN3c108ArrayRefINS_6TensorEEERKNS2_6ScalarE", 1},
	{"_foreach_add_.Scalar", "_ZN2at4_ops20_foreach_add__Scalar4callEN3c108ArrayRefINS_6TensorEEERKNS2_6ScalarE", 1},
	{"_foreach_div_.Scalar", "_ZN2at4_ops20_foreach_div__Scalar4callEN3c108ArrayRefINS_6TensorEEERKNS2_6ScalarE", 1},
	{"_foreach_add_.List", "_ZN2at4_ops18_foreach_add__List4callEN3c108ArrayRefINS_6TensorEEES5_RKNS2_6ScalarE", 2},
	{"_foreach_addcmul_.Scalar", "_ZN2at4_ops24_foreach_addcmul__Scalar4callEN3c108ArrayRefINS_6TensorEEES5_S5_RKNS2_6ScalarE", 3},
	{"_foreach_addcdiv_.Scalar", "_ZN2at4_ops24_foreach_addcdiv__Scalar4callEN3c108ArrayRefINS_6TensorEEES5_S5_RKNS2_6ScalarE", 3},
	{"_foreach_zero_", "_ZN2at4_ops14_foreach_zero_4callEN3c108ArrayRefINS_6TensorEEE", 0},
	{"_foreach_sqrt_", "_ZN2at4_ops14_foreach_sqrt_4callEN3c108ArrayRefINS_6TensorEEE", 0},
};

struct Fns {
	void *f[DISTILL_FOREACH_OPS];
	Fns() {
		for (int i = 0; i < DISTILL_FOREACH_OPS; i++) f[i] = dlsym(RTLD_DEFAULT, ops[i].symbol);
	}
};

void *resolve(int op) {
	static const Fns fns; // initialised once, safely across the engines' threads
	return fns.f[op];
}

// impls turns gotch handles into the at::Tensor values an ArrayRef holds.
TensorList impls(std::vector<void *> &buf, void **ts, size_t n) {
	buf.resize(n);
	for (size_t i = 0; i < n; i++) buf[i] = *static_cast<void **>(ts[i]);
	return TensorList{buf.data(), n};
}

char *dup(const char *msg) {
	size_t n = std::strlen(msg) + 1;
	char *r = static_cast<char *>(std::malloc(n));
	if (r != nullptr) std::memcpy(r, msg, n);
	return r;
}

} // namespace

extern "C" const char *distill_foreach_missing(void) {
	for (int i = 0; i < DISTILL_FOREACH_OPS; i++) {
		if (resolve(i) == nullptr) return ops[i].name;
	}
	return nullptr;
}

extern "C" char *distill_foreach(int op, void **a, void **b, void **c, size_t n, void *s) {
	if (op < 0 || op >= DISTILL_FOREACH_OPS) return dup("unknown foreach op");
	void *f = resolve(op);
	if (f == nullptr) return dup("op not found in the loaded libtorch");
	std::vector<void *> ba, bb, bc;
	try {
		switch (ops[op].lists) {
		case 0:
			reinterpret_cast<fn0>(f)(impls(ba, a, n));
			break;
		case 1:
			reinterpret_cast<fn1>(f)(impls(ba, a, n), s);
			break;
		case 2:
			reinterpret_cast<fn2>(f)(impls(ba, a, n), impls(bb, b, n), s);
			break;
		default:
			reinterpret_cast<fn3>(f)(impls(ba, a, n), impls(bb, b, n), impls(bc, c, n), s);
		}
	} catch (const std::exception &e) {
		return dup(e.what());
	} catch (...) {
		return dup("unknown C++ exception");
	}
	return nullptr;
}
