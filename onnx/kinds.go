package onnx

import (
	"fmt"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx/onnxpb"
)

// value is a tensor of the graph: a layer's output, or the input.
type value struct {
	name string   // the ONNX tensor
	st   actState // what the INT8 runtime would hold for it
}

// exporter is the state of build between layers; the per-kind exporters
// below add the nodes of one layer each.
type exporter struct {
	b    *builder
	spec model.Spec
	w    model.Weights
	qm   *infer.QuantModel // nil for a float32 graph
	vals []value           // each layer's output, by index, once exported
	done []bool            // layers an earlier exporter fused (and set vals of)
	args []value           // the inputs of the layer being exported
	cur  string            // args[0]'s tensor, replaced by the layer's output
	st   actState          // what the runtime would hold for cur
	i    int               // the index of the layer being exported
}

// layerExporter adds the nodes of layer l, whose per-example input shape
// is in.
type layerExporter func(e *exporter, l model.Layer, in []int) error

// exporters is ONNX export's implementation of each layer kind.
// Kinds that are the identity at inference need none: build skips them.
var exporters = kindreg.New[layerExporter]("onnx (export)", func(info model.KindInfo) bool { return !info.IdentityAtInference })

func init() {
	exporters.Register(model.KindFlatten, func(e *exporter, l model.Layer, _ []int) error {
		e.cur = e.b.node("Flatten", l.Name, []string{e.cur}, intAttr("axis", 1))
		e.st.fresh = false
		return nil
	})
	exporters.Register(model.KindMaxPool, func(e *exporter, l model.Layer, _ []int) error {
		st := l.PoolStride()
		e.cur = e.b.node("MaxPool", l.Name, []string{e.cur},
			intsAttr("kernel_shape", l.Kernel, l.Kernel), intsAttr("strides", st, st))
		e.st.fresh = false
		return nil
	})
	exporters.Register(model.KindLinear, func(e *exporter, l model.Layer, in []int) error {
		return e.gemm(l, in, func(x, wt, bias string) string {
			return e.b.node("Gemm", l.Name, []string{x, wt, bias}, intAttr("transB", 1))
		})
	})
	exporters.Register(model.KindConv2D, func(e *exporter, l model.Layer, in []int) error {
		return e.gemm(l, in, func(x, wt, bias string) string {
			s := max(l.Stride, 1)
			attrs := []*onnxpb.AttributeProto{intsAttr("kernel_shape", l.Kernel, l.Kernel), intsAttr("strides", s, s),
				intsAttr("pads", l.Padding, l.Padding, l.Padding, l.Padding)}
			if g := l.ConvGroups(); g > 1 {
				attrs = append(attrs, intAttr("group", g))
			}
			return e.b.node("Conv", l.Name, []string{x, wt, bias}, attrs...)
		})
	})
	exporters.Register(model.KindReLU, func(e *exporter, l model.Layer, _ []int) error {
		e.cur = e.b.node("Relu", l.Name, []string{e.cur})
		e.st.fresh = false
		return nil
	})
	exporters.Register(model.KindTanh, tableActivation(func(e *exporter, l model.Layer) string {
		return e.b.node("Tanh", l.Name, []string{e.cur})
	}))
	exporters.Register(model.KindSigmoid, tableActivation(func(e *exporter, l model.Layer) string {
		return e.b.node("Sigmoid", l.Name, []string{e.cur})
	}))
	exporters.Register(model.KindReLU6, tableActivation(func(e *exporter, l model.Layer) string {
		// Since opset 11 Clip takes its bounds as (scalar) inputs.
		lo, hi := e.b.scalar("relu6_min", 0), e.b.scalar("relu6_max", 6)
		return e.b.node("Clip", l.Name, []string{e.cur, lo, hi})
	}))
	exporters.Register(model.KindSiLU, func(e *exporter, l model.Layer, _ []int) error {
		// The INT8 runtime computes silu in float32 (no table).
		sig := e.b.node("Sigmoid", l.Name+".sigmoid", []string{e.cur})
		e.cur = e.b.node("Mul", l.Name, []string{e.cur, sig})
		e.floatOutput(l)
		return nil
	})
	exporters.Register(model.KindAvgPool, func(e *exporter, l model.Layer, _ []int) error {
		st, p := l.PoolStride(), l.Padding
		e.cur = e.b.node("AveragePool", l.Name, []string{e.cur},
			intsAttr("kernel_shape", l.Kernel, l.Kernel), intsAttr("strides", st, st),
			intsAttr("pads", p, p, p, p), intAttr("count_include_pad", 1))
		e.floatOutput(l)
		return nil
	})
	exporters.Register(model.KindGlobalAvgPool, func(e *exporter, l model.Layer, _ []int) error {
		// GlobalAveragePool keeps H and W as ones; distill's output is [C].
		pooled := e.b.node("GlobalAveragePool", l.Name+".pool", []string{e.cur})
		e.cur = e.b.node("Flatten", l.Name, []string{pooled}, intAttr("axis", 1))
		e.floatOutput(l)
		return nil
	})
	exporters.Register(model.KindAdd, func(e *exporter, l model.Layer, _ []int) error {
		a, b := e.args[0], e.args[1]
		if e.qm != nil {
			// The INT8 runtime adds two uint8 tensors (quantizing a
			// float32 one with its parameters first) in float32 and
			// rounds the sum to the add's parameters.
			if q, ok := e.qm.Act[l.Name]; ok {
				for k, v := range e.args {
					if !v.st.qok {
						return fmt.Errorf("onnx: add %q runs in INT8 but its input %q has no quantization parameters", l.Name, e.spec.InputNames(e.i)[k])
					}
				}
				sum := e.b.node("Add", l.Name, []string{e.dequantized(a), e.dequantized(b)})
				e.cur = e.b.qdq(sum, l.Name, q)
				e.st = actState{u8: true, fresh: true, q: q, qok: true, qkey: l.Name}
				return nil
			}
		}
		e.cur = e.b.node("Add", l.Name, []string{a.name, b.name})
		e.floatOutput(l)
		return nil
	})
	exporters.Register(model.KindBatchNorm, func(e *exporter, l model.Layer, _ []int) error {
		// Only a batchnorm infer.Fold could not fold gets here (after
		// an add or a pool, on the input): ONNX's BatchNormalization in
		// inference mode is PyTorch's eval-mode batchnorm.
		in := []string{e.cur}
		for _, suffix := range []string{".weight", ".bias", ".running_mean", ".running_var"} {
			in = append(in, e.b.floatInit(l.Name+suffix, e.w[l.Name+suffix]))
		}
		e.cur = e.b.node("BatchNormalization", l.Name, in, floatAttr("epsilon", float32(l.BNEps())))
		e.floatOutput(l)
		return nil
	})
}

// floatOutput records that layer l, computed in float32, produced cur:
// the runtime holds its output as float32, with l's activation
// parameters if it has calibrated ones.
func (e *exporter) floatOutput(l model.Layer) {
	if e.qm == nil {
		return
	}
	q, ok := e.qm.Act[l.Name]
	e.st = actState{q: q, qok: ok, qkey: l.Name}
}

// gemm exports a linear or conv2d layer (the node node makes from the
// input, weight and bias) with the runtime's rules: a quantized layer
// reads its input on the uint8 grid and has dequantized int8 weights, a
// following relu is fused, and the output is requantized unless a float
// consumer follows, so that the graph rounds where the runtime does.
func (e *exporter) gemm(l model.Layer, in []int, node func(x, wt, bias string) string) error {
	b, qm := e.b, e.qm
	relu := infer.FusedReLU(e.spec.Layers, e.i)
	x, wt, bias := e.cur, "", ""
	if qm.Quantized(l.Name) {
		if !e.st.qok {
			return fmt.Errorf("onnx: layer %q is quantized but its input has no quantization parameters", l.Name)
		}
		x = e.dequantized(value{name: e.cur, st: e.st})
		info, _ := model.Describe(l.Kind)
		wshape := info.Params(l, in)[0].Shape // the weight, in PyTorch's layout
		wt, bias = b.quantizedParams(l.Name, qm.Layers[l.Name], wshape, e.st.q.Scale)
	} else {
		wt = b.floatInit(l.Name+".weight", e.w[l.Name+".weight"])
		bias = b.floatInit(l.Name+".bias", e.w[l.Name+".bias"])
	}
	e.cur = node(x, wt, bias)
	if relu >= 0 {
		e.cur = b.node("Relu", e.spec.Layers[relu].Name, []string{e.cur})
		e.done[relu] = true
		defer func() { e.vals[relu] = value{name: e.cur, st: e.st} }()
	}
	if qm == nil {
		return nil
	}
	e.st = actState{q: qm.Act[l.Name], qok: true, qkey: l.Name}
	if qm.Quantized(l.Name) && !qm.FloatAfter(e.i) {
		e.cur = b.qdq(e.cur, l.Name, e.st.q)
		e.st.u8, e.st.fresh = true, true
	}
	return nil
}

// tableActivation exports an activation (the nodes op adds to e.cur)
// that the INT8 runtime computes through a uint8 table when its input is
// uint8 and it has output parameters: the graph then rounds its output
// to those parameters.
func tableActivation(op func(e *exporter, l model.Layer) string) layerExporter {
	return func(e *exporter, l model.Layer, _ []int) error {
		e.cur = op(e, l)
		if e.qm == nil {
			return nil
		}
		q, ok := e.qm.Act[l.Name]
		if e.st.u8 && ok {
			e.cur = e.b.qdq(e.cur, l.Name, q)
			e.st = actState{u8: true, fresh: true, q: q, qok: true, qkey: l.Name}
		} else {
			e.st = actState{q: q, qok: ok, qkey: l.Name}
		}
		return nil
	}
}

// dequantized returns v's tensor as the INT8 runtime's uint8 values
// dequantized: v itself when it is a DequantizeLinear output, else v
// through a QuantizeLinear → DequantizeLinear pair with its parameters
// (exact: v's values lie on that grid).
func (e *exporter) dequantized(v value) string {
	if v.st.fresh {
		return v.name
	}
	return e.b.qdq(v.name, v.st.qkey, v.st.q)
}
