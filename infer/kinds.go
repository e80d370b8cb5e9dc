package infer

import (
	"math"

	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

// f32Layer appends the ops that run a layer on float32 activations (its
// inputs are float32 values) and returns the value holding its output.
type f32Layer func(c *compiler, nd node) (int, error)

// i8Layer appends the ops that run a layer of an INT8 program on its
// input values (uint8 or float32) and reports whether it did; when it
// did not, the compiler dequantizes the inputs and runs the layer's
// f32Layer (the float32 fallback).
type i8Layer func(c *compiler, nd node) (out int, done bool, err error)

// The runtimes' implementations of each layer kind.
var (
	f32Kinds = kindreg.New[f32Layer]("infer (FP32)", inference)
	i8Kinds  = kindreg.New[i8Layer]("infer (INT8)", inference)
)

// u8Readers are the kinds whose INT8 implementation reads uint8 when the
// layer has activation parameters (see QuantModel.FloatAfter); the
// other kinds without parameters of their own run in float32 in an INT8
// program.
var u8Readers = map[model.Kind]bool{
	model.KindAdd: true, model.KindTanh: true, model.KindSigmoid: true, model.KindReLU6: true,
}

// inference is what an inference engine must implement: every kind but
// those that are the identity at inference, which build skips.
func inference(info model.KindInfo) bool { return !info.IdentityAtInference }

func init() {
	f32Kinds.Register(model.KindLinear, linearF32Layer)
	f32Kinds.Register(model.KindConv2D, convF32Layer)
	f32Kinds.Register(model.KindMaxPool, maxPoolLayer)
	f32Kinds.Register(model.KindFlatten, identityF32) // the buffer is already row-major
	f32Kinds.Register(model.KindReLU, activationF32(reluF32))
	f32Kinds.Register(model.KindTanh, activationF32(tanhF32))
	f32Kinds.Register(model.KindSigmoid, activationF32(sigmoidF32))
	f32Kinds.Register(model.KindReLU6, activationF32(relu6F32))
	f32Kinds.Register(model.KindSiLU, activationF32(siluF32))
	f32Kinds.Register(model.KindAdd, addF32Layer)
	f32Kinds.Register(model.KindAvgPool, avgPoolF32Layer)
	f32Kinds.Register(model.KindGlobalAvgPool, globalAvgPoolF32Layer)
	f32Kinds.Register(model.KindBatchNorm, batchNormF32Layer)

	i8Kinds.Register(model.KindLinear, linearI8Layer)
	i8Kinds.Register(model.KindConv2D, convI8Layer)
	// Max commutes with a monotonic quantization, so pooling uint8 is exact.
	i8Kinds.Register(model.KindMaxPool, func(c *compiler, nd node) (int, bool, error) {
		if !c.vals[nd.in[0]].u8 {
			return 0, false, nil
		}
		out, err := maxPoolLayer(c, nd)
		return out, true, err
	})
	i8Kinds.Register(model.KindFlatten, func(_ *compiler, nd node) (int, bool, error) { return nd.in[0], true, nil })
	i8Kinds.Register(model.KindReLU, reluI8)
	i8Kinds.Register(model.KindTanh, tableI8(math.Tanh))
	i8Kinds.Register(model.KindSigmoid, tableI8(sigmoid64))
	i8Kinds.Register(model.KindReLU6, relu6I8)
	i8Kinds.Register(model.KindAdd, addI8Layer)
	// These run in float32 between a dequantization and the next INT8
	// layer's quantization: a uint8 average needs a rescale per element
	// anyway and runs once per network (globalavgpool) or rarely
	// (avgpool); silu and an unfolded batchnorm are rare and cheap next
	// to the convolutions around them.
	for _, k := range []model.Kind{model.KindAvgPool, model.KindGlobalAvgPool, model.KindSiLU, model.KindBatchNorm} {
		i8Kinds.Register(k, floatI8)
	}
}

func identityF32(_ *compiler, nd node) (int, error) { return nd.in[0], nil }

// floatI8 runs a layer in float32 in an INT8 program.
func floatI8(*compiler, node) (int, bool, error) { return 0, false, nil }

// maxPoolLayer pools the input value, float32 or uint8.
func maxPoolLayer(c *compiler, nd node) (int, error) {
	l, in := nd.l, c.vals[nd.in[0]]
	o := &maxPoolOp{layer: l.Name, g: poolGeom{c: nd.inS[0], h: nd.inS[1], w: nd.inS[2], oh: nd.out[1], ow: nd.out[2], k: l.Kernel, stride: l.PoolStride()}}
	return c.emit(o, nd.in, in.u8, o.g.out(), in.q, in.qok), nil
}

func activationF32(apply func(src, dst []float32)) f32Layer {
	return func(c *compiler, nd node) (int, error) {
		o := &actF32{layer: nd.l.Name, kind: nd.l.Kind, apply: apply}
		return c.emit(o, nd.in, false, c.vals[nd.in[0]].dim, QParams{}, false), nil
	}
}

func addF32Layer(c *compiler, nd node) (int, error) {
	return c.emit(&addF32{layer: nd.l.Name}, nd.in, false, c.vals[nd.in[0]].dim, QParams{}, false), nil
}

func avgPoolF32Layer(c *compiler, nd node) (int, error) {
	l := nd.l
	o := &avgPoolOp{layer: l.Name, g: poolGeom{c: nd.inS[0], h: nd.inS[1], w: nd.inS[2], oh: nd.out[1], ow: nd.out[2],
		k: l.Kernel, stride: l.PoolStride(), pad: l.Padding}}
	return c.emit(o, nd.in, false, o.g.out(), QParams{}, false), nil
}

func globalAvgPoolF32Layer(c *compiler, nd node) (int, error) {
	o := &globalAvgPoolOp{layer: nd.l.Name, c: nd.inS[0], hw: nd.inS[1] * nd.inS[2]}
	return c.emit(o, nd.in, false, nd.inS[0], QParams{}, false), nil
}

// batchNormF32Layer runs a batchnorm that model.Inference could not fold
// as y = x·a + b per channel, a = γ/√(var+ε), b = β − mean·a (computed
// in float64).
func batchNormF32Layer(c *compiler, nd node) (int, error) {
	l := nd.l
	ch := nd.inS[0]
	gamma, beta := c.w[l.Name+".weight"].Data, c.w[l.Name+".bias"].Data
	mean, variance := c.w[l.Name+".running_mean"].Data, c.w[l.Name+".running_var"].Data
	o := &batchNormOp{layer: l.Name, scale: make([]float32, ch), shift: make([]float32, ch), per: model.Numel(nd.inS) / ch}
	for k := range ch {
		a := float64(gamma[k]) / math.Sqrt(float64(variance[k])+l.BNEps())
		o.scale[k] = float32(a)
		o.shift[k] = float32(float64(beta[k]) - float64(mean[k])*a)
	}
	return c.emit(o, nd.in, false, c.vals[nd.in[0]].dim, QParams{}, false), nil
}

// reluI8 clamps uint8 activations at the zero point, keeping their
// parameters.
func reluI8(c *compiler, nd node) (int, bool, error) {
	in := c.vals[nd.in[0]]
	if !in.u8 {
		return 0, false, nil
	}
	return c.emit(newReLULUT(nd.l.Name, in.q), nd.in, true, in.dim, in.q, true), true, nil
}

// tableI8 maps uint8 activations through a table of f when the layer has
// output parameters; otherwise the layer runs in float32.
func tableI8(f func(float64) float64) i8Layer {
	return func(c *compiler, nd node) (int, bool, error) {
		in := c.vals[nd.in[0]]
		oq, ok := c.qm.Act[nd.l.Name]
		if !in.u8 || !ok {
			return 0, false, nil
		}
		return c.emit(newLUT(nd.l.Name, nd.l.Kind, f, in.q, oq), nd.in, true, in.dim, oq, true), true, nil
	}
}

// relu6I8 maps uint8 activations through newReLU6LUT when the layer has
// output parameters; otherwise it runs in float32.
func relu6I8(c *compiler, nd node) (int, bool, error) {
	in := c.vals[nd.in[0]]
	oq, ok := c.qm.Act[nd.l.Name]
	if !in.u8 || !ok {
		return 0, false, nil
	}
	return c.emit(newReLU6LUT(nd.l.Name, in.q, oq), nd.in, true, in.dim, oq, true), true, nil
}

// addI8Layer adds in INT8 when the add has output parameters: both
// inputs as uint8 (quantized first if float32), see addI8.
func addI8Layer(c *compiler, nd node) (int, bool, error) {
	oq, ok := c.qm.Act[nd.l.Name]
	if !ok {
		return 0, false, nil
	}
	var qs [2]QParams
	ins := make([]int, 2)
	for k, id := range nd.in {
		u, err := c.asU8(id, nd.l.Name)
		if err != nil {
			return 0, false, err
		}
		ins[k], qs[k] = u, c.vals[u].q
	}
	o := newAddI8(nd.l.Name, qs[0], qs[1], oq)
	return c.emit(o, ins, true, c.vals[ins[0]].dim, oq, true), true, nil
}

// fuseReLU marks a relu layer that the op of layer c.i absorbs as done,
// and reports whether there was one.
func (c *compiler) fuseReLU() bool {
	if j := FusedReLU(c.spec.Layers, c.i); j >= 0 {
		c.fused[j] = true
		return true
	}
	return false
}

func convGeomOf(l model.Layer, in, out []int) convGeom {
	return convGeom{c: in[0], h: in[1], w: in[2], o: l.Out, oh: out[1], ow: out[2],
		k: l.Kernel, stride: max(l.Stride, 1), pad: l.Padding, groups: l.ConvGroups()}
}

func linearF32Layer(c *compiler, nd node) (int, error) {
	l := nd.l
	relu := c.fuseReLU()
	pw := gemm.PackF32(c.w[l.Name+".weight"].Data, l.Out, nd.inS[0])
	bias := append([]float32(nil), c.w[l.Name+".bias"].Data...)
	o := &linearF32{layer: l.Name, w: pw, bias: bias, relu: relu, in: nd.inS[0], out: l.Out}
	return c.emit(o, nd.in, false, l.Out, QParams{}, false), nil
}

func convF32Layer(c *compiler, nd node) (int, error) {
	l := nd.l
	g := convGeomOf(l, nd.inS, nd.out)
	relu := c.fuseReLU()
	wt := c.w[l.Name+".weight"].Data
	o := &convF32{layer: l.Name, g: g, bias: append([]float32(nil), c.w[l.Name+".bias"].Data...), relu: relu,
		nhwc: g.groups == 1 && nhwcConv}
	switch {
	case g.direct():
		o.dw = append([]float32(nil), wt...)
	case o.nhwc:
		o.w = []*gemm.PackedF32{gemm.PackF32(kernelHWC(g, wt), g.o, g.kdim())}
	default:
		per := g.og() * g.kdim()
		for gi := range g.groups {
			o.w = append(o.w, gemm.PackF32(wt[gi*per:(gi+1)*per], g.og(), g.kdim()))
		}
	}
	return c.emit(o, nd.in, false, g.out(), QParams{}, false), nil
}

// directDepthwise runs depthwise convolutions as a direct loop rather
// than one small GEMM per channel (see BenchmarkDepthwise); tests turn it
// off to check one against the other.
var directDepthwise = true

// direct reports whether the convolution runs as a direct loop: a
// depthwise one (one input channel per group, several groups). A single
// group with one input channel (a stem on a grey image) is one GEMM with
// every output channel as a column, which the kernels vectorise better.
func (g convGeom) direct() bool { return g.depthwise() && g.groups > 1 && directDepthwise }

func linearI8Layer(c *compiler, nd node) (int, bool, error) {
	l := nd.l
	return c.gemmI8(nd, nd.inS[0], 1, nil, func(pw []*gemm.PackedI8, _ []int8, rq gemm.Requant, outFloat bool, outQ QParams) op {
		return &linearI8{layer: l.Name, w: pw[0], rq: rq, outFloat: outFloat, outQ: outQ, in: nd.inS[0], out: l.Out}
	})
}

func convI8Layer(c *compiler, nd node) (int, bool, error) {
	l := nd.l
	g := convGeomOf(l, nd.inS, nd.out)
	var reorder func([]int8) []int8
	nhwc := g.groups == 1 && nhwcConv
	if nhwc {
		reorder = func(w []int8) []int8 { return kernelHWC(g, w) }
	}
	return c.gemmI8(nd, g.kdim(), g.groups, reorder, func(pw []*gemm.PackedI8, dw []int8, rq gemm.Requant, outFloat bool, outQ QParams) op {
		o := &convI8{layer: l.Name, g: g, w: pw, dw: dw, rq: rq, outFloat: outFloat, outQ: outQ, nhwc: nhwc, px: 1}
		if px := g.pixelsPerRow(); nhwc && px > 1 && packPixelRows {
			o.packPixels(px, kernelHWC(g, c.qm.Layers[l.Name].Weight))
		}
		return o
	})
}

// packPixelRows lets narrow NHWC INT8 convolutions compute several
// pixels per GEMM row (see convI8.packPixels); tests turn it off to
// compare.
var packPixelRows = true

// nhwcConv runs single-group convolutions (FP32 and INT8) through an
// NHWC copy of their input (see convNHWC); tests turn it off to compare
// with the NCHW im2col.
var nhwcConv = true

// kernelHWC reorders a single-group conv's weights [o][c][ky][kx] into
// [o][ky][kx][c], the column order of im2colNHWC.
func kernelHWC[T any](g convGeom, w []T) []T {
	k, c, kd := g.k, g.c, g.kdim()
	r := make([]T, len(w))
	for oc := range g.o {
		for ch := range c {
			for t := range k * k {
				r[oc*kd+t*c+ch] = w[oc*kd+ch*k*k+t]
			}
		}
	}
	return r
}

// gemmI8 runs a quantized linear or conv layer (fan-in fanIn per group)
// in INT8 with the op mk makes, quantizing its input first if it is
// float32; a layer left in float32 (the accuracy fallback) is not its to
// run. Depthwise convolutions get their raw weights (and offsets without
// the zero-point correction, which their direct loop applies) instead of
// packed ones. reorder, if not nil, permutes each output channel's
// weights into the column order of the op's patches before packing.
func (c *compiler) gemmI8(nd node, fanIn, groups int, reorder func([]int8) []int8, mk func(pw []*gemm.PackedI8, dw []int8, rq gemm.Requant, outFloat bool, outQ QParams) op) (int, bool, error) {
	l := nd.l
	if !c.qm.Quantized(l.Name) {
		return 0, false, nil
	}
	in, err := c.asU8(nd.in[0], l.Name)
	if err != nil {
		return 0, false, err
	}
	relu := c.fuseReLU()
	inQ := c.vals[in].q
	ql := c.qm.Layers[l.Name]
	og := l.Out / groups
	direct := l.Kind == model.KindConv2D && convGeomOf(l, nd.inS, nd.out).direct()
	var pws []*gemm.PackedI8
	var dw []int8
	sums := make([]int32, l.Out)
	wt := ql.Weight
	if reorder != nil {
		wt = reorder(wt)
	}
	if direct {
		dw = append([]int8(nil), wt...)
	} else {
		for gi := range groups {
			pw := gemm.PackI8(wt[gi*og*fanIn:(gi+1)*og*fanIn], og, fanIn)
			copy(sums[gi*og:], pw.ColSums())
			pws = append(pws, pw)
		}
	}
	outFloat := c.qm.FloatAfter(c.i)
	outQ := c.qm.Act[l.Name]
	rq := gemm.Requant{Offset: make([]int32, l.Out), Scale: make([]float32, l.Out), ReLU: relu}
	for ch := range rq.Offset {
		rq.Offset[ch] = ql.Bias[ch] - inQ.ZeroPoint*sums[ch]
		s := float64(inQ.Scale) * float64(ql.Scale[ch])
		if !outFloat {
			s /= float64(outQ.Scale)
		}
		rq.Scale[ch] = float32(s)
	}
	if !outFloat {
		rq.ZeroPoint = outQ.ZeroPoint
	}
	o := mk(pws, dw, rq, outFloat, outQ)
	if outFloat {
		return c.emit(o, []int{in}, false, model.Numel(nd.out), outQ, true), true, nil
	}
	return c.emit(o, []int{in}, true, model.Numel(nd.out), outQ, true), true, nil
}
