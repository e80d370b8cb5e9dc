package model

import "fmt"

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
)

// KindInfo is what every engine may rely on about a layer kind, whatever
// computes it. Each engine (the training backends, the FP32 and INT8
// runtimes, quantize, ONNX export, the float64 reference) registers one
// implementation per kind; internal/kindreg's conformance test names the
// engine that lacks one.
type KindInfo struct {
	Kind Kind
	// OutShape checks l's fields against the per-example input shape in
	// and returns the per-example output shape.
	OutShape func(l Layer, in []int) ([]int, error)
	// Params lists l's trainable tensors, weight before bias, given its
	// per-example input shape; nil for kinds without parameters.
	Params func(l Layer, in []int) []Param
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
}

// kindTable is the table of layer kinds, in the order Kinds lists them
// (which is the order error messages list activations in).
var kindTable = []KindInfo{
	{Kind: KindLinear, OutShape: linearShape, Params: linearParams, Quantizable: true},
	{Kind: KindConv2D, OutShape: conv2DShape, Params: conv2DParams, Quantizable: true},
	{Kind: KindMaxPool, OutShape: maxPoolShape, KeepsQuantParams: true},
	{Kind: KindFlatten, OutShape: flattenShape, KeepsQuantParams: true},
	{Kind: KindReLU, OutShape: sameShape, KeepsQuantParams: true, Activation: true},
	{Kind: KindTanh, OutShape: sameShape, Activation: true},
	{Kind: KindSigmoid, OutShape: sameShape, Activation: true},
	{Kind: KindDropout, OutShape: dropoutShape, KeepsQuantParams: true, IdentityAtInference: true},
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
	return []Param{
		{Name: l.Name + ".weight", Layer: l.Name, Shape: []int{l.Out, in[0]}, FanIn: in[0]},
		{Name: l.Name + ".bias", Layer: l.Name, Shape: []int{l.Out}, FanIn: in[0]},
	}
}

func conv2DShape(l Layer, in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("model: layer %q (conv2d) needs a [C,H,W] input, got shape %v", l.Name, in)
	}
	if l.Out <= 0 || l.Kernel <= 0 {
		return nil, fmt.Errorf("model: layer %q (conv2d) needs out > 0 and kernel > 0", l.Name)
	}
	st := max(l.Stride, 1)
	h := (in[1]+2*l.Padding-l.Kernel)/st + 1
	w := (in[2]+2*l.Padding-l.Kernel)/st + 1
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("model: layer %q (conv2d) kernel %d does not fit input %v", l.Name, l.Kernel, in)
	}
	return []int{l.Out, h, w}, nil
}

func conv2DParams(l Layer, in []int) []Param {
	fan := in[0] * l.Kernel * l.Kernel
	return []Param{
		{Name: l.Name + ".weight", Layer: l.Name, Shape: []int{l.Out, in[0], l.Kernel, l.Kernel}, FanIn: fan},
		{Name: l.Name + ".bias", Layer: l.Name, Shape: []int{l.Out}, FanIn: fan},
	}
}

// PoolStride is a max-pool layer's stride: Stride, or Kernel when unset.
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
	h := (in[1]-l.Kernel)/st + 1
	w := (in[2]-l.Kernel)/st + 1
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
