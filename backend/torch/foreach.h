// Multi-tensor ATen ops that gotch's C API does not wrap, called through
// their at::_ops entry points (see foreach.cpp).
#ifndef DISTILL_FOREACH_H
#define DISTILL_FOREACH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
	DISTILL_FOREACH_MUL_SCALAR, // a[i] *= s
	DISTILL_FOREACH_ADD_SCALAR, // a[i] += s
	DISTILL_FOREACH_DIV_SCALAR, // a[i] /= s
	DISTILL_FOREACH_ADD_LIST,   // a[i] += s·b[i]
	DISTILL_FOREACH_ADDCMUL,    // a[i] += s·b[i]·c[i]
	DISTILL_FOREACH_ADDCDIV,    // a[i] += s·b[i]/c[i]
	DISTILL_FOREACH_ZERO,       // a[i] = 0 (s unused)
	DISTILL_FOREACH_SQRT,       // a[i] = √a[i] (s unused)
	DISTILL_FOREACH_OPS
};

// distill_foreach_missing returns NULL when every op resolved in the loaded
// libtorch, else the name of the first missing one.
const char *distill_foreach_missing(void);

// distill_foreach runs op on the n tensors of a (and b, c where the op
// reads them), with s a torch::Scalar*. The tensors are gotch handles
// (torch::Tensor*). It returns NULL, or a message (free it) for the
// exception libtorch threw.
char *distill_foreach(int op, void **a, void **b, void **c, size_t n, void *s);

#ifdef __cplusplus
}
#endif

#endif
