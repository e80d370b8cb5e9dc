//go:build torch

package torch

import (
	"fmt"
	"math"
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"
)

// c10::ScalarType codes used with gotch's C API.
const (
	kindInt64   = 4
	kindFloat32 = 6
)

// Reductions of ATen's loss functions.
const (
	reductionMean = 1
	reductionSum  = 2
)

// scope calls libtorch through gotch's C API (package libtch) and owns the
// tensors those calls return until free. It records the first error and
// turns every later call into a no-op returning nil, so a sequence of ops
// reads straight and is checked once, at the end.
//
// gotch's higher-level ts package is not used on purpose: each ts.Tensor
// costs 100 KB of Go heap, a global lock and a finalizer, each op leaks a
// C.malloc(0) output slot, and in-place ops leak the old handle. Here
// every handle is freed exactly once, when its scope ends or earlier.
//
// A scope must only be used on its engine's thread.
type scope struct {
	device int // -1 = CPU, n = cuda:n
	// mixed marks a scope whose forward pass runs under bf16 autocast:
	// toHost casts what it copies to float32.
	mixed bool
	// pageable makes toDevice copy synchronously from pageable memory:
	// for one-off uploads, whose pinned staging buffers libtorch's
	// pinned-memory cache would keep for the life of the process.
	pageable bool
	err      error
	owned    []ctensor
	// out receives the result of the op being called. It is an allocation
	// of its own: cgo checks the whole Go object a pointer argument points
	// into, and the scope holds Go pointers.
	out *[4]ctensor
}

func newScope(device int) *scope { return &scope{device: device, out: new([4]ctensor)} }

// fail records err unless an earlier error is recorded.
func (s *scope) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// call runs one libtch op that writes its result into s.out[0], checks
// libtorch's error and takes ownership of the result.
func (s *scope) call(name string, f func(out *ctensor)) ctensor {
	if s.err != nil {
		return nil
	}
	s.out[0] = nil
	f(&s.out[0])
	if err := lastErr(); err != nil {
		s.fail(fmt.Errorf("torch %s: %w", name, err))
		return nil
	}
	t := s.out[0]
	if t == nil {
		s.fail(fmt.Errorf("torch %s returned no tensor", name))
		return nil
	}
	s.owned = append(s.owned, t)
	return t
}

// inplace runs one in-place libtch op and frees the extra handle it
// returns (a second torch::Tensor object for the same tensor).
func (s *scope) inplace(name string, f func(out *ctensor)) {
	if s.err != nil {
		return
	}
	s.out[0] = nil
	f(&s.out[0])
	if err := lastErr(); err != nil {
		s.fail(fmt.Errorf("torch %s: %w", name, err))
		return
	}
	if s.out[0] != nil {
		lib.AtFree(s.out[0])
	}
}

// scalar runs f with a libtorch Scalar holding v, freed afterwards.
func (s *scope) scalar(v float64, f func(sc lib.Cscalar)) {
	if s.err != nil {
		return
	}
	sc := lib.AtsFloat(v)
	if err := lastErr(); err != nil {
		s.fail(fmt.Errorf("torch scalar: %w", err))
		return
	}
	defer lib.AtsFree(sc)
	f(sc)
}

// keep removes t from the tensors freed by free, handing it to the caller.
func (s *scope) keep(t ctensor) ctensor {
	for i := len(s.owned) - 1; i >= 0; i-- {
		if s.owned[i] == t {
			s.owned = append(s.owned[:i], s.owned[i+1:]...)
			return t
		}
	}
	return t
}

// drop frees t now instead of when the scope ends.
func (s *scope) drop(t ctensor) {
	if t == nil {
		return
	}
	for i := len(s.owned) - 1; i >= 0; i-- {
		if s.owned[i] == t {
			s.owned = append(s.owned[:i], s.owned[i+1:]...)
			lib.AtFree(t)
			return
		}
	}
}

// free releases every tensor the scope still owns and returns its error.
func (s *scope) free() error {
	for _, t := range s.owned {
		lib.AtFree(t)
	}
	s.owned = s.owned[:0]
	return s.err
}

func int64s(v ...int) []int64 {
	r := make([]int64, len(v))
	for i, x := range v {
		r[i] = int64(x)
	}
	return r
}

// fromHost copies data (exactly the shape's size) to a new float32 tensor
// on the scope's device.
func (s *scope) fromHost(data []float32, shape ...int) ctensor {
	if s.err != nil {
		return nil
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n == 0 || len(data) < n {
		s.fail(fmt.Errorf("torch backend: need %d values for shape %v, got %d", n, shape, len(data)))
		return nil
	}
	dims := int64s(shape...)
	t := s.call("tensor_of_data", func(out *ctensor) {
		*out = lib.AtTensorOfData(unsafe.Pointer(&data[0]), dims, uint(len(dims)), 4, kindFloat32)
	})
	return s.toDevice(t, kindFloat32)
}

// labels copies class indices to a new int64 tensor on the scope's device.
func (s *scope) labels(y []int32) ctensor {
	if s.err != nil {
		return nil
	}
	if len(y) == 0 {
		s.fail(fmt.Errorf("torch backend: no labels"))
		return nil
	}
	v := make([]int64, len(y))
	for i, l := range y {
		v[i] = int64(l)
	}
	return s.int64s(v)
}

// indices copies row indices to a new int64 tensor on the scope's device.
func (s *scope) indices(idx []int) ctensor {
	if s.err != nil {
		return nil
	}
	if len(idx) == 0 {
		s.fail(fmt.Errorf("torch backend: no rows"))
		return nil
	}
	return s.int64s(int64s(idx...))
}

func (s *scope) int64s(v []int64) ctensor {
	t := s.call("tensor_of_data", func(out *ctensor) {
		*out = lib.AtTensorOfData(unsafe.Pointer(&v[0]), []int64{int64(len(v))}, 1, 8, kindInt64)
	})
	return s.toDevice(t, kindInt64)
}

// toDevice moves a CPU tensor of the given kind to the scope's device (a
// no-op on CPU). On CUDA it goes through page-locked (pinned) memory and
// a non-blocking copy: a copy from pageable memory makes the host wait
// until it is done, one from pinned memory is queued on the stream behind
// the kernels already launched, so the host goes on launching the step.
// libtorch's pinned-memory allocator caches the buffers and keeps each
// until the copies that read it have run.
func (s *scope) toDevice(t ctensor, kind int32) ctensor {
	if s.err != nil || s.device < 0 {
		return t
	}
	if s.pageable {
		d := s.call("to", func(out *ctensor) { lib.AtgTo(out, t, int32(s.device)) })
		s.drop(t)
		return d
	}
	p := s.call("pin_memory", func(out *ctensor) { lib.AtgPinMemory(out, t, int32(s.device)) })
	s.drop(t)
	d := s.call("to", func(out *ctensor) { lib.AtgToDevice(out, p, int32(s.device), kind, 1, 0) })
	s.drop(p)
	return d
}

// indexSelect returns rows idx (an int64 tensor) of t along dim 0.
func (s *scope) indexSelect(t, idx ctensor) ctensor {
	return s.call("index_select", func(out *ctensor) { lib.AtgIndexSelect(out, t, 0, idx) })
}

// toHost copies the first len(dst) values of a float32 tensor (of any
// floating type in a mixed scope) into dst.
func (s *scope) toHost(t ctensor, dst []float32) {
	if s.err != nil || len(dst) == 0 {
		return
	}
	if s.mixed {
		t = s.toFloat(t)
	}
	lib.AtCopyData(t, unsafe.Pointer(&dst[0]), uint(len(dst)), 4)
	if err := lastErr(); err != nil {
		s.fail(fmt.Errorf("torch copy to host: %w", err))
	}
}

// toFloat returns t as float32: a bfloat16 output of autocast converted,
// t itself (a new handle) if it is float32 already. Losses and softmax
// read float32, as torch.autocast's fp32 list makes them on CUDA.
func (s *scope) toFloat(t ctensor) ctensor {
	return s.call("to", func(out *ctensor) { lib.AtgToDtype(out, t, kindFloat32, 0, 0) })
}

// dataPtr returns the address of t's first element (nil after an error).
func (s *scope) dataPtr(t ctensor) unsafe.Pointer {
	if s.err != nil {
		return nil
	}
	p := lib.AtDataPtr(t)
	if err := lastErr(); err != nil {
		s.fail(fmt.Errorf("torch data_ptr: %w", err))
		return nil
	}
	return p
}

// contiguous reports whether t's elements are laid out densely in
// row-major order.
func (s *scope) contiguous(t ctensor) bool {
	if s.err != nil {
		return false
	}
	c := lib.AtIsContiguous(t)
	if err := lastErr(); err != nil {
		s.fail(fmt.Errorf("torch is_contiguous: %w", err))
		return false
	}
	return c
}

// item reads a one-element tensor as float64.
func (s *scope) item(t ctensor) float64 {
	if s.err != nil {
		return math.NaN()
	}
	v := lib.AtDoubleValueAtIndexes(t, nil, 0)
	if err := lastErr(); err != nil {
		s.fail(fmt.Errorf("torch item: %w", err))
		return math.NaN()
	}
	return v
}

// shape returns t's sizes.
func (s *scope) shape(t ctensor) []int {
	if s.err != nil {
		return nil
	}
	n := lib.AtDim(t)
	if n == 0 {
		return []int{}
	}
	dims := make([]int64, n)
	lib.AtShape(t, unsafe.Pointer(&dims[0]))
	if err := lastErr(); err != nil {
		s.fail(fmt.Errorf("torch shape: %w", err))
		return nil
	}
	r := make([]int, n)
	for i, d := range dims {
		r[i] = int(d)
	}
	return r
}

// Ops. Each returns a new tensor owned by the scope (nil after an error).

// scalarOp records op(a, v) for an op taking a libtorch Scalar.
func (s *scope) scalarOp(name string, a ctensor, v float64, op func(out *ctensor, a ctensor, v lib.Cscalar)) ctensor {
	var r ctensor
	s.scalar(v, func(sc lib.Cscalar) {
		r = s.call(name, func(o *ctensor) { op(o, a, sc) })
	})
	return r
}

// scalarOp_ runs the in-place op(a, v) for an op taking a libtorch Scalar.
func (s *scope) scalarOp_(name string, a ctensor, v float64, op func(out *ctensor, a ctensor, v lib.Cscalar)) {
	s.scalar(v, func(sc lib.Cscalar) {
		s.inplace(name, func(o *ctensor) { op(o, a, sc) })
	})
}

func (s *scope) linear(x, w, b ctensor) ctensor {
	return s.call("linear", func(o *ctensor) { lib.AtgLinear(o, x, w, b) })
}

func (s *scope) conv2d(x, w, b ctensor, stride, pad, groups int) ctensor {
	st, p, d := int64s(stride, stride), int64s(pad, pad), int64s(1, 1)
	return s.call("conv2d", func(o *ctensor) { lib.AtgConv2d(o, x, w, b, st, 2, p, 2, d, 2, int64(groups)) })
}

func (s *scope) maxPool2d(x ctensor, kernel, stride int) ctensor {
	k, st, p, d := int64s(kernel, kernel), int64s(stride, stride), int64s(0, 0), int64s(1, 1)
	return s.call("max_pool2d", func(o *ctensor) { lib.AtgMaxPool2d(o, x, k, 2, st, 2, p, 2, d, 2, 0) })
}

// avgPool2d is F.avg_pool2d with its defaults: floor mode, zero padding
// counted in the divisor (count_include_pad=True), no divisor override.
func (s *scope) avgPool2d(x ctensor, kernel, stride, pad int) ctensor {
	k, st, p := int64s(kernel, kernel), int64s(stride, stride), int64s(pad, pad)
	return s.call("avg_pool2d", func(o *ctensor) { lib.AtgAvgPool2d(o, x, k, 2, st, 2, p, 2, 0, 1, 0, 1) })
}

// globalAvgPool maps [N, C, H, W] to [N, C], the mean over H and W: what
// nn.AdaptiveAvgPool2d(1) and a flatten compute (ATen's adaptive average
// pool to 1×1 is this mean).
func (s *scope) globalAvgPool(x ctensor) ctensor {
	d := int64s(2, 3)
	return s.call("mean", func(o *ctensor) { lib.AtgMeanDim(o, x, d, len(d), 0, -1) })
}

// batchNorm is at::batch_norm (F.batch_norm) with cuDNN allowed, as
// PyTorch's default. In training it updates mean and variance in place.
func (s *scope) batchNorm(x, w, b, mean, variance ctensor, train bool, momentum, eps float64) ctensor {
	tr := int32(0)
	if train {
		tr = 1
	}
	return s.call("batch_norm", func(o *ctensor) { lib.AtgBatchNorm(o, x, w, b, mean, variance, tr, momentum, eps, 1) })
}

// clone returns a copy of a (not part of any autograd graph).
func (s *scope) clone(a ctensor) ctensor {
	c := s.call("zeros_like", func(o *ctensor) { lib.AtgZerosLike(o, a) })
	s.copy_(c, a)
	return c
}

func (s *scope) flatten(x ctensor) ctensor {
	return s.call("flatten", func(o *ctensor) { lib.AtgFlatten(o, x, 1, -1) })
}

func (s *scope) relu(x ctensor) ctensor {
	return s.call("relu", func(o *ctensor) { lib.AtgRelu(o, x) })
}

// relu6 is min(max(x, 0), 6), as nn.ReLU6 (hardtanh(x, 0, 6): no
// gradient at 0 and 6).
func (s *scope) relu6(x ctensor) ctensor {
	return s.call("relu6", func(o *ctensor) { lib.AtgRelu6(o, x) })
}

func (s *scope) silu(x ctensor) ctensor {
	return s.call("silu", func(o *ctensor) { lib.AtgSilu(o, x) })
}

func (s *scope) tanh(x ctensor) ctensor {
	return s.call("tanh", func(o *ctensor) { lib.AtgTanh(o, x) })
}

func (s *scope) sigmoid(x ctensor) ctensor {
	return s.call("sigmoid", func(o *ctensor) { lib.AtgSigmoid(o, x) })
}

func (s *scope) mul(a, b ctensor) ctensor {
	return s.call("mul", func(o *ctensor) { lib.AtgMul(o, a, b) })
}

func (s *scope) add(a, b ctensor) ctensor {
	return s.call("add", func(o *ctensor) { lib.AtgAdd(o, a, b) })
}

func (s *scope) mulScalar(a ctensor, v float64) ctensor {
	return s.scalarOp("mul", a, v, lib.AtgMulScalar)
}

func (s *scope) divScalar(a ctensor, v float64) ctensor {
	return s.scalarOp("div", a, v, lib.AtgDivScalar)
}

func (s *scope) sqrt(a ctensor) ctensor {
	return s.call("sqrt", func(o *ctensor) { lib.AtgSqrt(o, a) })
}

func (s *scope) logSoftmax(a ctensor) ctensor {
	return s.call("log_softmax", func(o *ctensor) { lib.AtgLogSoftmax(o, a, 1, -1) })
}

// crossEntropy is the batch mean of −log softmax(logits)[y].
func (s *scope) crossEntropy(logits, y ctensor) ctensor {
	return s.call("cross_entropy_loss", func(o *ctensor) {
		lib.AtgCrossEntropyLoss(o, logits, y, nil, reductionMean, -100, 0)
	})
}

// klSum is Σ exp(logQ)·(logQ − logP) over all elements.
func (s *scope) klSum(logP, logQ ctensor) ctensor {
	return s.call("kl_div", func(o *ctensor) { lib.AtgKlDiv(o, logP, logQ, reductionSum, 1) })
}

// In-place ops.

func (s *scope) mulScalar_(a ctensor, v float64) {
	s.scalarOp_("mul_", a, v, lib.AtgMulScalar_)
}

func (s *scope) divScalar_(a ctensor, v float64) {
	s.scalarOp_("div_", a, v, lib.AtgDivScalar_)
}

func (s *scope) addScalar_(a ctensor, v float64) {
	s.scalarOp_("add_", a, v, lib.AtgAddScalar_)
}

func (s *scope) mul_(a, b ctensor) {
	s.inplace("mul_", func(o *ctensor) { lib.AtgMul_(o, a, b) })
}

func (s *scope) add_(a, b ctensor) {
	s.inplace("add_", func(o *ctensor) { lib.AtgAdd_(o, a, b) })
}

// sqrtOut sets dst = √a (same shape).
func (s *scope) sqrtOut(dst, a ctensor) {
	s.inplace("sqrt_out", func(o *ctensor) { lib.AtgSqrtOut(o, dst, a) })
}

// addcdiv_ sets a = a + b/c.
func (s *scope) addcdiv_(a, b, c ctensor) {
	s.inplace("addcdiv_", func(o *ctensor) { lib.AtgAddcdiv_(o, a, b, c) })
}

// renorm_ scales each slice a[i] whose L2 norm exceeds maxNorm back to
// it, as torch.renorm_(a, 2, 0, maxNorm).
func (s *scope) renorm_(a ctensor, maxNorm float64) {
	s.scalar(2, func(p lib.Cscalar) {
		s.scalar(maxNorm, func(mx lib.Cscalar) {
			s.inplace("renorm_", func(o *ctensor) { lib.AtgRenorm_(o, a, p, 0, mx) })
		})
	})
}

func (s *scope) setRequiresGrad(a ctensor, on bool) {
	r := int32(0)
	if on {
		r = 1
	}
	s.inplace("set_requires_grad", func(o *ctensor) { lib.AtgSetRequiresGrad(o, a, r) })
}

// copy_ copies src into dst (any devices, same shape).
func (s *scope) copy_(dst, src ctensor) {
	if s.err != nil {
		return
	}
	lib.AtCopy_(dst, src)
	if err := lastErr(); err != nil {
		s.fail(fmt.Errorf("torch copy_: %w", err))
	}
}

// grads returns d loss / d params (new tensors owned by the scope); the
// graph behind loss is released.
func (s *scope) grads(loss ctensor, params []ctensor) []ctensor {
	if s.err != nil {
		return nil
	}
	out := make([]ctensor, len(params))
	roots := []ctensor{loss}
	lib.AtRunBackward(&roots[0], 1, &params[0], len(params), &out[0], 0, 0)
	if err := lastErr(); err != nil {
		for _, g := range out {
			if g != nil {
				lib.AtFree(g)
			}
		}
		s.fail(fmt.Errorf("torch backward: %w", err))
		return nil
	}
	s.owned = append(s.owned, out...)
	return out
}

// Ops of the feature terms (features.go).

func (s *scope) div(a, b ctensor) ctensor {
	return s.call("div", func(o *ctensor) { lib.AtgDiv(o, a, b) })
}

func (s *scope) abs(a ctensor) ctensor {
	return s.call("abs", func(o *ctensor) { lib.AtgAbs(o, a) })
}

func (s *scope) addScalar(a ctensor, v float64) ctensor {
	return s.scalarOp("add", a, v, lib.AtgAddScalar)
}

func (s *scope) powScalar(a ctensor, v float64) ctensor {
	return s.scalarOp("pow", a, v, lib.AtgPowTensorScalar)
}

func (s *scope) clampMin(a ctensor, v float64) ctensor {
	return s.scalarOp("clamp_min", a, v, lib.AtgClampMin)
}

// reshape views a with the given sizes (one may be -1).
func (s *scope) reshape(a ctensor, shape ...int) ctensor {
	dims := int64s(shape...)
	return s.call("reshape", func(o *ctensor) { lib.AtgReshape(o, a, dims, len(dims)) })
}

// mean is the mean of all elements.
func (s *scope) mean(a ctensor) ctensor {
	return s.call("mean", func(o *ctensor) { lib.AtgMean(o, a, -1) })
}

// meanDim and sumDim reduce dimension dim (not kept).
func (s *scope) meanDim(a ctensor, dim int) ctensor {
	d := int64s(dim)
	return s.call("mean", func(o *ctensor) { lib.AtgMeanDim(o, a, d, 1, 0, -1) })
}

func (s *scope) sumDim(a ctensor, dim int) ctensor {
	d := int64s(dim)
	return s.call("sum", func(o *ctensor) { lib.AtgSumDimIntlist(o, a, d, 1, 0, -1) })
}

// norm2 is the L2 norm over dimension dim, kept as a size-1 dimension
// (so that it broadcasts against a) when keep is set. Its backward is 0
// where the norm is 0.
func (s *scope) norm2(a ctensor, dim int, keep bool) ctensor {
	d := int64s(dim)
	k := int32(0)
	if keep {
		k = 1
	}
	var r ctensor
	s.scalar(2, func(sc lib.Cscalar) {
		r = s.call("norm", func(o *ctensor) { lib.AtgNormScalaroptDim(o, a, sc, d, 1, k) })
	})
	return r
}

// mseLoss is the mean of (a − b)² over all elements, as F.mse_loss.
func (s *scope) mseLoss(a, b ctensor) ctensor {
	return s.call("mse_loss", func(o *ctensor) { lib.AtgMseLoss(o, a, b, reductionMean) })
}
