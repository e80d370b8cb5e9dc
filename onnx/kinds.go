package onnx

import (
	"fmt"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

// exporter is the state of build between layers; the per-kind exporters
// below add the nodes of one layer each.
type exporter struct {
	b    *builder
	spec model.Spec
	w    model.Weights
	qm   *infer.QuantModel // nil for a float32 graph
	cur  string            // the tensor the next layer reads
	st   actState          // what the runtime would hold for cur
	// i is the index of the layer being exported; an exporter that fuses
	// the layers after it advances i past them.
	i int
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
			return e.b.node("Conv", l.Name, []string{x, wt, bias},
				intsAttr("kernel_shape", l.Kernel, l.Kernel), intsAttr("strides", s, s),
				intsAttr("pads", l.Padding, l.Padding, l.Padding, l.Padding))
		})
	})
	exporters.Register(model.KindReLU, func(e *exporter, l model.Layer, _ []int) error {
		e.cur = e.b.node("Relu", l.Name, []string{e.cur})
		e.st.fresh = false
		return nil
	})
	exporters.Register(model.KindTanh, tableActivation("Tanh"))
	exporters.Register(model.KindSigmoid, tableActivation("Sigmoid"))
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
		if !e.st.fresh {
			x = b.qdq(e.cur, e.st.qkey, e.st.q)
		}
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
		e.i = relu
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

// tableActivation exports an activation that the INT8 runtime computes
// through a uint8 table when its input is uint8 and it has output
// parameters: the graph then rounds its output to those parameters.
func tableActivation(op string) layerExporter {
	return func(e *exporter, l model.Layer, _ []int) error {
		e.cur = e.b.node(op, l.Name, []string{e.cur})
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
