package inspect

import (
	"strconv"

	"github.com/distill-dev/distill/onnx/onnxpb"
)

// Exporters such as torch.onnx.export often leave the intermediate
// tensors' shapes out of the model (no value_info). inferShape derives
// them for the operators of ordinary vision networks from the inputs'
// shapes, so that a user sees each named tensor's channels and size.
// Dimensions are strings as in Value.Shape: sizes, or symbolic names
// such as "batch" that carry through; nil means unknown.

func attrs(n *onnxpb.NodeProto) map[string]*onnxpb.AttributeProto {
	m := map[string]*onnxpb.AttributeProto{}
	for _, a := range n.GetAttribute() {
		m[a.GetName()] = a
	}
	return m
}

func dimInt(d string) (int64, bool) {
	v, err := strconv.ParseInt(d, 10, 64)
	return v, err == nil
}

// inferShape returns the shape of n's first output, or nil.
func inferShape(n *onnxpb.NodeProto, shapeOf func(string) []string) []string {
	in := n.GetInput()
	if len(in) == 0 {
		return nil
	}
	x := shapeOf(in[0])
	a := attrs(n)
	switch n.GetOpType() {
	case "Relu", "Sigmoid", "Tanh", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Identity", "Dropout",
		"BatchNormalization", "Softmax", "LogSoftmax", "Erf", "Neg", "Exp", "Sqrt", "Elu", "Selu", "Gelu", "Mish", "Softplus", "Cast", "InstanceNormalization", "LayerNormalization":
		return x
	case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu":
		if len(in) < 2 {
			return x
		}
		return broadcast(x, shapeOf(in[1]))
	case "GlobalAveragePool", "GlobalMaxPool":
		if len(x) < 3 {
			return nil
		}
		out := append([]string{}, x[:2]...)
		for range x[2:] {
			out = append(out, "1")
		}
		return out
	case "Conv", "MaxPool", "AveragePool":
		if len(x) < 3 {
			return nil
		}
		if ap := a["auto_pad"]; ap != nil && string(ap.GetS()) != "NOTSET" && string(ap.GetS()) != "" {
			return nil
		}
		spatial := len(x) - 2
		kernel := a["kernel_shape"].GetInts()
		channels := x[1]
		if n.GetOpType() == "Conv" {
			if len(in) < 2 {
				return nil
			}
			w := shapeOf(in[1])
			if len(w) != len(x) {
				return nil
			}
			channels = w[0]
			if len(kernel) == 0 {
				for _, d := range w[2:] {
					k, ok := dimInt(d)
					if !ok {
						return nil
					}
					kernel = append(kernel, k)
				}
			}
		}
		if len(kernel) != spatial {
			return nil
		}
		get := func(name string, def int64, n int) []int64 {
			v := a[name].GetInts()
			if len(v) == 0 {
				v = make([]int64, n)
				for i := range v {
					v[i] = def
				}
			}
			return v
		}
		strides, dil, pads := get("strides", 1, spatial), get("dilations", 1, spatial), get("pads", 0, 2*spatial)
		if len(strides) != spatial || len(dil) != spatial || len(pads) != 2*spatial {
			return nil
		}
		ceil := a["ceil_mode"].GetI() == 1
		out := []string{x[0], channels}
		for i := range spatial {
			size, ok := dimInt(x[2+i])
			if !ok || strides[i] <= 0 {
				return nil
			}
			span := size + pads[i] + pads[i+spatial] - dil[i]*(kernel[i]-1) - 1
			o := span/strides[i] + 1
			if ceil && span%strides[i] != 0 {
				o++
			}
			out = append(out, strconv.FormatInt(o, 10))
		}
		return out
	case "Flatten":
		axis := int64(1)
		if v, ok := a["axis"]; ok {
			axis = v.GetI()
		}
		if x == nil || axis < 0 || axis > int64(len(x)) {
			return nil
		}
		return []string{product(x[:axis]), product(x[axis:])}
	case "Gemm":
		if len(in) < 2 || len(x) != 2 {
			return nil
		}
		w := shapeOf(in[1])
		if len(w) != 2 {
			return nil
		}
		rows := x[0]
		if a["transA"].GetI() == 1 {
			rows = x[1]
		}
		cols := w[1]
		if a["transB"].GetI() == 1 {
			cols = w[0]
		}
		return []string{rows, cols}
	case "MatMul":
		if len(in) < 2 || len(x) < 2 {
			return nil
		}
		w := shapeOf(in[1])
		if len(w) != 2 {
			return nil
		}
		return append(append([]string{}, x[:len(x)-1]...), w[1])
	}
	return nil
}

// product multiplies known sizes; one symbolic dimension among ones
// stays symbolic.
func product(ds []string) string {
	p, sym := int64(1), ""
	for _, d := range ds {
		v, ok := dimInt(d)
		switch {
		case ok:
			p *= v
		case sym == "":
			sym = d
		default:
			return "?"
		}
	}
	switch {
	case sym == "":
		return strconv.FormatInt(p, 10)
	case p == 1:
		return sym
	}
	return "?"
}

// broadcast is numpy's broadcasting of two shapes.
func broadcast(x, y []string) []string {
	if x == nil || y == nil {
		return nil
	}
	if len(y) > len(x) {
		x, y = y, x
	}
	out := append([]string{}, x...)
	off := len(x) - len(y)
	for i, d := range y {
		switch o := out[off+i]; {
		case o == "1":
			out[off+i] = d
		case d == "1" || d == o:
		default:
			if _, ok := dimInt(o); !ok {
				out[off+i] = d
			}
		}
	}
	return out
}
