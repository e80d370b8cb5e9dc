//go:build torch

package torch

// #include <stdlib.h>
// #include "foreach.h"
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"
)

// foreachOp is one of the multi-tensor ops of foreach.cpp.
type foreachOp C.int

const (
	foreachMulScalar foreachOp = C.DISTILL_FOREACH_MUL_SCALAR
	foreachAddScalar foreachOp = C.DISTILL_FOREACH_ADD_SCALAR
	foreachDivScalar foreachOp = C.DISTILL_FOREACH_DIV_SCALAR
	foreachAddList   foreachOp = C.DISTILL_FOREACH_ADD_LIST
	foreachAddcmul   foreachOp = C.DISTILL_FOREACH_ADDCMUL
	foreachAddcdiv   foreachOp = C.DISTILL_FOREACH_ADDCDIV
	foreachZero      foreachOp = C.DISTILL_FOREACH_ZERO
	foreachSqrt      foreachOp = C.DISTILL_FOREACH_SQRT
)

var foreachNames = [...]string{"_foreach_mul_", "_foreach_add_", "_foreach_div_", "_foreach_add_", "_foreach_addcmul_", "_foreach_addcdiv_", "_foreach_zero_", "_foreach_sqrt_"}

// foreachMissing reports the first multi-tensor op the loaded libtorch
// lacks (nil when it has them all).
func foreachMissing() error {
	if p := C.distill_foreach_missing(); p != nil {
		return fmt.Errorf("torch backend: the loaded libtorch has no at::_ops::%s", C.GoString(p))
	}
	return nil
}

// foreach runs an in-place multi-tensor op with scalar v: a[i] op= v, or
// a[i] += v·b[i] (·c[i] or /c[i]), or a[i] = 0 or √a[i] (v unused). b and
// c, when used, have len(a) tensors.
func (s *scope) foreach(op foreachOp, a, b, c []ctensor, v float64) {
	if s.err != nil || len(a) == 0 {
		return
	}
	if (b != nil && len(b) != len(a)) || (c != nil && len(c) != len(a)) {
		s.fail(fmt.Errorf("torch %s: lists of %d, %d and %d tensors", foreachNames[op], len(a), len(b), len(c)))
		return
	}
	// The handles are C pointers, so the Go slices holding them may be
	// passed to C.
	ptr := func(l []ctensor) *unsafe.Pointer {
		if len(l) == 0 {
			return nil
		}
		return (*unsafe.Pointer)(unsafe.Pointer(&l[0]))
	}
	s.scalar(v, func(sc lib.Cscalar) {
		msg := C.distill_foreach(C.int(op), ptr(a), ptr(b), ptr(c), C.size_t(len(a)), unsafe.Pointer(sc))
		if msg != nil {
			err := errors.New(trimTrace(C.GoString(msg)))
			C.free(unsafe.Pointer(msg))
			s.fail(fmt.Errorf("torch %s: %w", foreachNames[op], err))
		}
	})
}
