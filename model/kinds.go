package model

import (
	"fmt"
	"slices"
)

// Kind names what a layer computes. It is a string so that spec files
// stay readable JSON; the set of kinds is the table behind Describe.
type Kind string

// Layer kinds.
const (
	KindLinear  Kind = "linear"  // y = x·Wᵀ + b; Out units
	KindConv2D  Kind = "conv2d"  // NCHW convolution; Out channels, Kernel, Stride, Padding
	KindMaxPool Kind = "maxpool" // 2-D max pool; Kernel, Stride (defaults to Kernel)
	KindFlatten Kind = "flatten" // [N, C, H, W] -> [N, C·H·W]
	KindReLU    Kind = "relu"
	KindTanh    Kind = "tanh"
	KindSigmoid Kind = "sigmoid"
	KindDropout Kind = "dropout" // Rate = probability of dropping; identity at inference

	// KindBatchNorm normalises each channel (dim 0 of the per-example
	// shape: BatchNorm1d on [C], BatchNorm2d on [C,H,W]) with the batch's
	// statistics in training and the running ones at inference, then
	// scales and shifts: PyTorch's definition, Momentum and Eps included.
	KindBatchNorm     Kind = "batchnorm"
	KindAdd           Kind = "add"           // element-wise sum of two inputs of the same shape (a residual)
	KindAvgPool       Kind = "avgpool"       // 2-D average pool; Kernel, Stride (defaults to Kernel), Padding (counted, as PyTorch's default)
	KindGlobalAvgPool Kind = "globalavgpool" // [C,H,W] -> [C], the mean over H and W
	KindReLU6         Kind = "relu6"         // min(max(x, 0), 6)
	KindSiLU          Kind = "silu"          // x·sigmoid(x)

	// KindExternal is a node computed outside distill, e.g. a tensor of
	// an ONNX teacher that ONNX Runtime runs: its per-example output
	// shape is the layer's Shape. It lets such a model describe itself as
	// a Spec (input, named intermediate tensors, logits) for feature
	// terms and transfer sets. Its input only orders it after the node
	// it reads; no distill engine can compute it (KindInfo.External).
	KindExternal Kind = "external"
)

// KindInfo is what every engine may rely on about a layer kind, whatever
// computes it. Each engine (the training backends, the FP32 and INT8
// runtimes, quantize, ONNX export, the float64 reference) registers one
// implementation per kind; internal/kindreg's conformance test names the
// engine that lacks one.
type KindInfo struct {
	Kind Kind
	// Inputs is how many inputs a layer of this kind reads; 0 means 1.
	Inputs int
	// OutShape checks l's fields against the per-example shapes of its
	// inputs (Inputs of them) and returns the per-example output shape.
	OutShape func(l Layer, in [][]int) ([]int, error)
	// Params lists l's trainable tensors, weight before bias, given its
	// (first) per-example input shape; nil for kinds without parameters.
	Params func(l Layer, in []int) []Param
	// Buffers lists l's non-trainable state (a batchnorm's running
	// statistics), given its per-example input shape; nil for none.
	Buffers func(l Layer, in []int) []Param
	// Quantizable kinds have a weight with one row of fan-in inputs per
	// output unit (PyTorch's layout) and an [out] bias: they can run in
	// INT8 (per-channel int8 weights, int32 bias), and max-norm bounds
	// their rows.
	Quantizable bool
	// KeepsQuantParams means the output is exactly representable with the
	// input's uint8 quantization (a max, a reshape, the identity, a ReLU),
	// so the layer needs no calibrated activation parameters of its own.
	KeepsQuantParams bool
	// IdentityAtInference kinds only act in training (dropout): the
	// inference engines skip them and need no implementation.
	IdentityAtInference bool
	// Activation marks element-wise nonlinearities: the kinds an MLP or
	// CNN builder (and a recipe's model.activation) may use between layers.
	Activation bool
	// External kinds are computed outside distill (KindExternal): no
	// engine implements them, internal/kindreg exempts every engine, and
	// an engine asked to run one fails with an error saying so.
	External bool
}

// arity is how many inputs a layer of the kind reads.
func (k KindInfo) arity() int { return max(k.Inputs, 1) }

// Arity is how many inputs a layer of kind k reads (1 for unknown kinds).
func Arity(k Kind) int { return kinds[k].arity() }

// one adapts a single-input shape rule to OutShape.
func one(f func(Layer, []int) ([]int, error)) func(Layer, [][]int) ([]int, error) {
	return func(l Layer, in [][]int) ([]int, error) { return f(l, in[0]) }
}

// kindTable is the table of layer kinds, in the order Kinds lists them
// (which is the order error messages list activations in).
var kindTable = []KindInfo{
	{Kind: KindLinear, OutShape: one(linearShape), Params: linearParams, Quantizable: true},
	{Kind: KindConv2D, OutShape: one(conv2DShape), Params: conv2DParams, Quantizable: true},
	{Kind: KindMaxPool, OutShape: one(maxPoolShape), KeepsQuantParams: true},
	{Kind: KindFlatten, OutShape: one(flattenShape), KeepsQuantParams: true},
	{Kind: KindReLU, OutShape: one(sameShape), KeepsQuantParams: true, Activation: true},
	{Kind: KindTanh, OutShape: one(sameShape), Activation: true},
	{Kind: KindSigmoid, OutShape: one(sameShape), Activation: true},
	{Kind: KindDropout, OutShape: one(dropoutShape), KeepsQuantParams: true, IdentityAtInference: true},
	{Kind: KindBatchNorm, OutShape: one(batchNormShape), Params: batchNormParams, Buffers: batchNormBuffers},
	{Kind: KindAdd, Inputs: 2, OutShape: addShape},
	{Kind: KindAvgPool, OutShape: one(avgPoolShape)},
	{Kind: KindGlobalAvgPool, OutShape: one(globalAvgPoolShape)},
	{Kind: KindReLU6, OutShape: one(sameShape), Activation: true},
	{Kind: KindSiLU, OutShape: one(sameShape), Activation: true},
	{Kind: KindExternal, OutShape: one(externalShape), External: true},
}

// kinds indexes kindTable.
var kinds = func() map[Kind]KindInfo {
	m := make(map[Kind]KindInfo, len(kindTable))
	for _, info := range kindTable {
		m[info.Kind] = info
	}
	return m
}()

// Kinds lists every layer kind.
func Kinds() []Kind {
	ks := make([]Kind, len(kindTable))
	for i, info := range kindTable {
		ks[i] = info.Kind
	}
	return ks
}

// ComputedKinds lists the kinds distill computes: every kind but the
// External ones, which only describe models run elsewhere. Recipes
// build networks from these.
func ComputedKinds() []Kind {
	var ks []Kind
	for _, info := range kindTable {
		if !info.External {
			ks = append(ks, info.Kind)
		}
	}
	return ks
}

// Activations lists the activation kinds.
func Activations() []Kind {
	var ks []Kind
	for _, info := range kindTable {
		if info.Activation {
			ks = append(ks, info.Kind)
		}
	}
	return ks
}

// Describe returns the descriptor of kind k.
func Describe(k Kind) (KindInfo, bool) {
	info, ok := kinds[k]
	return info, ok
}

func linearShape(l Layer, in []int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("model: layer %q (linear) needs a flat input, got shape %v: add a flatten layer before it", l.Name, in)
	}
	if l.Out <= 0 {
		return nil, fmt.Errorf("model: layer %q (linear) needs out > 0", l.Name)
	}
	return []int{l.Out}, nil
}

func linearParams(l Layer, in []int) []Param {
	return weightBias(l, []int{l.Out, in[0]}, in[0])
}

// weightBias lists a linear or conv layer's weight and, unless NoBias,
// its bias.
func weightBias(l Layer, wshape []int, fanIn int) []Param {
	ps := []Param{{Name: l.Name + ".weight", Layer: l.Name, Shape: wshape, FanIn: fanIn}}
	if !l.NoBias {
		ps = append(ps, Param{Name: l.Name + ".bias", Layer: l.Name, Shape: []int{l.Out}, FanIn: fanIn})
	}
	return ps
}

func conv2DShape(l Layer, in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("model: layer %q (conv2d) needs a [C,H,W] input, got shape %v", l.Name, in)
	}
	if l.Out <= 0 || l.Kernel <= 0 {
		return nil, fmt.Errorf("model: layer %q (conv2d) needs out > 0 and kernel > 0", l.Name)
	}
	if g := l.ConvGroups(); in[0]%g != 0 || l.Out%g != 0 {
		return nil, fmt.Errorf("model: layer %q (conv2d) has %d groups, which must divide its %d input and %d output channels", l.Name, g, in[0], l.Out)
	}
	if l.Padding < 0 || l.Stride < 0 {
		return nil, fmt.Errorf("model: layer %q (conv2d) needs stride and padding >= 0", l.Name)
	}
	st := max(l.Stride, 1)
	h, w := windows(in[1], l.Padding, l.Kernel, st), windows(in[2], l.Padding, l.Kernel, st)
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("model: layer %q (conv2d) kernel %d does not fit input %v", l.Name, l.Kernel, in)
	}
	return []int{l.Out, h, w}, nil
}

func conv2DParams(l Layer, in []int) []Param {
	cin := in[0] / l.ConvGroups() // input channels per group
	fan := cin * l.Kernel * l.Kernel
	return weightBias(l, []int{l.Out, cin, l.Kernel, l.Kernel}, fan)
}

// PoolStride is a max-pool or avgpool layer's stride: Stride, or Kernel when unset.
func (l Layer) PoolStride() int {
	if l.Stride <= 0 {
		return l.Kernel
	}
	return l.Stride
}

func maxPoolShape(l Layer, in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("model: layer %q (maxpool) needs a [C,H,W] input, got shape %v", l.Name, in)
	}
	if l.Kernel <= 0 {
		return nil, fmt.Errorf("model: layer %q (maxpool) needs kernel > 0", l.Name)
	}
	st := l.PoolStride()
	h, w := windows(in[1], 0, l.Kernel, st), windows(in[2], 0, l.Kernel, st)
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("model: layer %q (maxpool) kernel %d does not fit input %v", l.Name, l.Kernel, in)
	}
	return []int{in[0], h, w}, nil
}

func flattenShape(_ Layer, in []int) ([]int, error) { return []int{Numel(in)}, nil }

func sameShape(_ Layer, in []int) ([]int, error) { return append([]int(nil), in...), nil }

func dropoutShape(l Layer, in []int) ([]int, error) {
	if l.Rate < 0 || l.Rate >= 1 {
		return nil, fmt.Errorf("model: layer %q (dropout) rate %v must be in [0, 1)", l.Name, l.Rate)
	}
	return append([]int(nil), in...), nil
}

func batchNormShape(l Layer, in []int) ([]int, error) {
	if len(in) != 1 && len(in) != 3 {
		return nil, fmt.Errorf("model: layer %q (batchnorm) needs a [C] or [C,H,W] input, got shape %v", l.Name, in)
	}
	if l.Momentum < 0 || l.Momentum > 1 {
		return nil, fmt.Errorf("model: layer %q (batchnorm) momentum %v must be in [0, 1]", l.Name, l.Momentum)
	}
	if l.Eps < 0 {
		return nil, fmt.Errorf("model: layer %q (batchnorm) eps %v must be > 0", l.Name, l.Eps)
	}
	return append([]int(nil), in...), nil
}

// batchNormParams are PyTorch's affine weight (γ, ones) and bias (β, zeros).
func batchNormParams(l Layer, in []int) []Param {
	return []Param{
		{Name: l.Name + ".weight", Layer: l.Name, Shape: []int{in[0]}, Init: InitOnes},
		{Name: l.Name + ".bias", Layer: l.Name, Shape: []int{in[0]}, Init: InitZeros},
	}
}

// batchNormBuffers are PyTorch's running_mean (zeros) and running_var
// (ones). PyTorch also keeps num_batches_tracked, which only matters
// with momentum=None (a cumulative average); distill has no such mode.
func batchNormBuffers(l Layer, in []int) []Param {
	return []Param{
		{Name: l.Name + ".running_mean", Layer: l.Name, Shape: []int{in[0]}, Init: InitZeros},
		{Name: l.Name + ".running_var", Layer: l.Name, Shape: []int{in[0]}, Init: InitOnes},
	}
}

func addShape(l Layer, in [][]int) ([]int, error) {
	if !slices.Equal(in[0], in[1]) {
		return nil, fmt.Errorf("model: layer %q (add) needs inputs of one shape: %q gives %v, %q gives %v", l.Name, l.Inputs[0], in[0], l.Inputs[1], in[1])
	}
	return append([]int(nil), in[0]...), nil
}

func avgPoolShape(l Layer, in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("model: layer %q (avgpool) needs a [C,H,W] input, got shape %v", l.Name, in)
	}
	if l.Kernel <= 0 || l.Padding < 0 || 2*l.Padding > l.Kernel {
		return nil, fmt.Errorf("model: layer %q (avgpool) needs kernel > 0 and 0 <= padding <= kernel/2", l.Name)
	}
	st := l.PoolStride()
	h, w := windows(in[1], l.Padding, l.Kernel, st), windows(in[2], l.Padding, l.Kernel, st)
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("model: layer %q (avgpool) kernel %d does not fit input %v", l.Name, l.Kernel, in)
	}
	return []int{in[0], h, w}, nil
}

func globalAvgPoolShape(l Layer, in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("model: layer %q (globalavgpool) needs a [C,H,W] input, got shape %v", l.Name, in)
	}
	return []int{in[0]}, nil
}

// externalShape is the shape the layer states; what it reads does not
// constrain it, since something outside distill computes it.
func externalShape(l Layer, _ []int) ([]int, error) {
	if len(l.Shape) == 0 {
		return nil, fmt.Errorf("model: layer %q (external) needs its per-example output shape", l.Name)
	}
	for _, d := range l.Shape {
		if d <= 0 {
			return nil, fmt.Errorf("model: layer %q (external) has shape %v: every dimension must be > 0", l.Name, l.Shape)
		}
	}
	return append([]int(nil), l.Shape...), nil
}

// windows is how many positions a kernel of size k takes along a side of
// n with padding p on each end and stride st: 0 when it does not fit at
// all. (Go's division truncates toward zero, so the usual formula alone
// would give 1 for a kernel one or more larger than the padded side.)
func windows(n, p, k, st int) int {
	if n+2*p < k {
		return 0
	}
	return (n+2*p-k)/st + 1
}
