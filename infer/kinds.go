package infer

import (
	"fmt"
	"math"

	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

// f32Layer appends the ops that run layer l on float32 activations; in
// and out are its per-example input and output shapes.
type f32Layer func(c *compiler, l model.Layer, in, out []int) error

// i8Layer appends the ops that run layer l of an INT8 program on the
// activation c.st describes (uint8 or float32) and reports whether it
// did; when it did not, the compiler dequantizes and runs the layer's
// f32Layer.
type i8Layer func(c *compiler, l model.Layer, in, out []int) (bool, error)

// The runtimes' implementations of each layer kind.
var (
	f32Kinds = kindreg.New[f32Layer]("infer (FP32)", inference)
	i8Kinds  = kindreg.New[i8Layer]("infer (INT8)", inference)
)

// inference is what an inference engine must implement: every kind but
// those that are the identity at inference, which build skips.
func inference(info model.KindInfo) bool { return !info.IdentityAtInference }

func init() {
	f32Kinds.Register(model.KindLinear, linearF32Layer)
	f32Kinds.Register(model.KindConv2D, convF32Layer)
	f32Kinds.Register(model.KindMaxPool, maxPoolF32)
	f32Kinds.Register(model.KindFlatten, identityF32) // the buffer is already row-major
	f32Kinds.Register(model.KindReLU, activationF32(reluF32))
	f32Kinds.Register(model.KindTanh, activationF32(tanhF32))
	f32Kinds.Register(model.KindSigmoid, activationF32(sigmoidF32))

	i8Kinds.Register(model.KindLinear, linearI8Layer)
	i8Kinds.Register(model.KindConv2D, convI8Layer)
	// Max commutes with a monotonic quantization, so pooling uint8 is exact.
	i8Kinds.Register(model.KindMaxPool, func(c *compiler, l model.Layer, in, out []int) (bool, error) {
		return true, maxPoolF32(c, l, in, out)
	})
	i8Kinds.Register(model.KindFlatten, identityI8)
	i8Kinds.Register(model.KindReLU, reluI8)
	i8Kinds.Register(model.KindTanh, tableI8(math.Tanh))
	i8Kinds.Register(model.KindSigmoid, tableI8(sigmoid64))
}

func identityF32(*compiler, model.Layer, []int, []int) error { return nil }

func identityI8(*compiler, model.Layer, []int, []int) (bool, error) { return true, nil }

func maxPoolF32(c *compiler, l model.Layer, in, out []int) error {
	c.p.ops = append(c.p.ops, &maxPoolOp{layer: l.Name, g: poolGeom{c: in[0], h: in[1], w: in[2], oh: out[1], ow: out[2], k: l.Kernel, stride: l.PoolStride()}})
	return nil
}

func activationF32(apply func(src, dst []float32)) f32Layer {
	return func(c *compiler, l model.Layer, _, _ []int) error {
		c.p.ops = append(c.p.ops, &actF32{layer: l.Name, kind: l.Kind, apply: apply})
		return nil
	}
}

// reluI8 clamps uint8 activations at the zero point, keeping their
// parameters.
func reluI8(c *compiler, l model.Layer, _, _ []int) (bool, error) {
	if !c.st.u8 {
		return false, nil
	}
	c.p.ops = append(c.p.ops, newReLULUT(l.Name, c.st.q))
	return true, nil
}

// tableI8 maps uint8 activations through a table of f when the layer has
// output parameters; otherwise the layer runs in float32.
func tableI8(f func(float64) float64) i8Layer {
	return func(c *compiler, l model.Layer, _, _ []int) (bool, error) {
		oq, ok := c.qm.Act[l.Name]
		if !c.st.u8 || !ok {
			return false, nil
		}
		c.p.ops = append(c.p.ops, newLUT(l.Name, l.Kind, f, c.st.q, oq))
		c.st = tensorState{u8: true, q: oq, qok: true, producer: l.Name}
		return true, nil
	}
}

// fuseReLU advances c past a relu layer that the GEMM of layer c.i
// absorbs, and reports whether there was one.
func (c *compiler) fuseReLU() bool {
	if j := FusedReLU(c.spec.Layers, c.i); j >= 0 {
		c.i = j
		return true
	}
	return false
}

func convGeomOf(l model.Layer, in, out []int) convGeom {
	return convGeom{c: in[0], h: in[1], w: in[2], o: l.Out, oh: out[1], ow: out[2],
		k: l.Kernel, stride: max(l.Stride, 1), pad: l.Padding}
}

// packF32 packs the float32 weight of a GEMM layer and copies its bias.
func (c *compiler) packF32(l model.Layer, fanIn int) (*gemm.PackedF32, []float32) {
	pw := gemm.PackF32(c.w[l.Name+".weight"].Data, l.Out, fanIn)
	return pw, append([]float32(nil), c.w[l.Name+".bias"].Data...)
}

func linearF32Layer(c *compiler, l model.Layer, in, _ []int) error {
	relu := c.fuseReLU()
	pw, bias := c.packF32(l, in[0])
	c.p.ops = append(c.p.ops, &linearF32{layer: l.Name, w: pw, bias: bias, relu: relu, in: in[0], out: l.Out})
	return nil
}

func convF32Layer(c *compiler, l model.Layer, in, out []int) error {
	g := convGeomOf(l, in, out)
	relu := c.fuseReLU()
	pw, bias := c.packF32(l, g.kdim())
	c.p.ops = append(c.p.ops, &convF32{layer: l.Name, g: g, w: pw, bias: bias, relu: relu})
	return nil
}

func linearI8Layer(c *compiler, l model.Layer, in, _ []int) (bool, error) {
	return c.gemmI8(l, in[0], func(pw *gemm.PackedI8, rq gemm.Requant, outFloat bool, outQ QParams) op {
		return &linearI8{layer: l.Name, w: pw, rq: rq, outFloat: outFloat, outQ: outQ, in: in[0], out: l.Out}
	})
}

func convI8Layer(c *compiler, l model.Layer, in, out []int) (bool, error) {
	g := convGeomOf(l, in, out)
	return c.gemmI8(l, g.kdim(), func(pw *gemm.PackedI8, rq gemm.Requant, outFloat bool, outQ QParams) op {
		return &convI8{layer: l.Name, g: g, w: pw, rq: rq, outFloat: outFloat, outQ: outQ}
	})
}

// gemmI8 runs a quantized GEMM layer (fan-in fanIn) in INT8 with the op
// mk makes, quantizing its input first if it is float32; a layer left in
// float32 (the accuracy fallback) is not its to run.
func (c *compiler) gemmI8(l model.Layer, fanIn int, mk func(pw *gemm.PackedI8, rq gemm.Requant, outFloat bool, outQ QParams) op) (bool, error) {
	if !c.qm.Quantized(l.Name) {
		return false, nil
	}
	relu := c.fuseReLU()
	st := c.st
	if !st.u8 {
		if !st.qok {
			return false, fmt.Errorf("infer: layer %q is quantized but the output of %q has no quantization parameters", l.Name, st.producer)
		}
		c.p.ops = append(c.p.ops, &quantizeOp{layer: st.producer, q: st.q})
	}
	ql := c.qm.Layers[l.Name]
	pw := gemm.PackI8(ql.Weight, l.Out, fanIn)
	outFloat := c.qm.FloatAfter(c.i)
	outQ := c.qm.Act[l.Name]
	rq := gemm.Requant{Offset: make([]int32, l.Out), Scale: make([]float32, l.Out), ReLU: relu}
	for ch := range rq.Offset {
		rq.Offset[ch] = ql.Bias[ch] - st.q.ZeroPoint*pw.ColSums()[ch]
		s := float64(st.q.Scale) * float64(ql.Scale[ch])
		if !outFloat {
			s /= float64(outQ.Scale)
		}
		rq.Scale[ch] = float32(s)
	}
	if !outFloat {
		rq.ZeroPoint = outQ.ZeroPoint
	}
	c.p.ops = append(c.p.ops, mk(pw, rq, outFloat, outQ))
	c.st = tensorState{u8: !outFloat, q: outQ, qok: true, producer: l.Name}
	return true, nil
}
