package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/distill-dev/distill/onnx/onnxpb"
)

// interp evaluates the operators the exporter emits, following the ONNX
// operator specifications literally (float64 accumulation, round half to
// even in QuantizeLinear), so that the exported graphs' meaning is tested
// without ONNX Runtime.
type interp struct {
	vals map[string]*tensor
}

// tensor is a dense row-major tensor; quantized values are held in f as
// integers.
type tensor struct {
	shape []int
	f     []float64
	typ   onnxpb.TensorProto_DataType
}

func numel(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// run evaluates m on x, whose shape is [n, the input's other dims], and
// returns the output "logits" as float32.
func run(m *onnxpb.ModelProto, x []float32, shape []int) ([]float32, error) {
	in := &interp{vals: map[string]*tensor{}}
	for _, init := range m.GetGraph().GetInitializer() {
		t, err := fromProto(init)
		if err != nil {
			return nil, err
		}
		in.vals[init.GetName()] = t
	}
	xt := &tensor{shape: shape, f: make([]float64, len(x)), typ: onnxpb.TensorProto_FLOAT}
	for i, v := range x {
		xt.f[i] = float64(v)
	}
	in.vals[InputName] = xt
	for _, n := range m.GetGraph().GetNode() {
		args := make([]*tensor, len(n.GetInput()))
		for i, name := range n.GetInput() {
			t, ok := in.vals[name]
			if !ok {
				return nil, fmt.Errorf("node %q reads %q, which is not computed yet", n.GetName(), name)
			}
			args[i] = t
		}
		out, err := eval(n, args)
		if err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.GetName(), n.GetOpType(), err)
		}
		in.vals[n.GetOutput()[0]] = out
	}
	y, ok := in.vals[OutputName]
	if !ok {
		return nil, fmt.Errorf("no node computes %q", OutputName)
	}
	r := make([]float32, len(y.f))
	for i, v := range y.f {
		r[i] = float32(v)
	}
	return r, nil
}

func fromProto(p *onnxpb.TensorProto) (*tensor, error) {
	t := &tensor{typ: onnxpb.TensorProto_DataType(p.GetDataType())}
	for _, d := range p.GetDims() {
		t.shape = append(t.shape, int(d))
	}
	n := numel(t.shape)
	raw := p.GetRawData()
	t.f = make([]float64, n)
	size := map[onnxpb.TensorProto_DataType]int{onnxpb.TensorProto_FLOAT: 4, onnxpb.TensorProto_INT32: 4,
		onnxpb.TensorProto_INT8: 1, onnxpb.TensorProto_UINT8: 1}[t.typ]
	if size == 0 || len(raw) != n*size {
		return nil, fmt.Errorf("initializer %q: type %v with %d raw bytes for shape %v", p.GetName(), t.typ, len(raw), t.shape)
	}
	for i := range t.f {
		switch t.typ {
		case onnxpb.TensorProto_FLOAT:
			t.f[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		case onnxpb.TensorProto_INT32:
			t.f[i] = float64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		case onnxpb.TensorProto_INT8:
			t.f[i] = float64(int8(raw[i]))
		case onnxpb.TensorProto_UINT8:
			t.f[i] = float64(raw[i])
		}
	}
	return t, nil
}

func attrs(n *onnxpb.NodeProto) map[string]*onnxpb.AttributeProto {
	m := map[string]*onnxpb.AttributeProto{}
	for _, a := range n.GetAttribute() {
		m[a.GetName()] = a
	}
	return m
}

func intsOf(a *onnxpb.AttributeProto, def ...int64) []int {
	v := def
	if a != nil {
		v = a.GetInts()
	}
	r := make([]int, len(v))
	for i, x := range v {
		r[i] = int(x)
	}
	return r
}

func eval(n *onnxpb.NodeProto, in []*tensor) (*tensor, error) {
	at := attrs(n)
	switch n.GetOpType() {
	case "Identity":
		return in[0], nil
	case "Relu", "Tanh", "Sigmoid":
		y := &tensor{shape: in[0].shape, f: make([]float64, len(in[0].f)), typ: onnxpb.TensorProto_FLOAT}
		for i, v := range in[0].f {
			// float32 in, float32 out, as an engine computes them.
			v = float64(float32(v))
			switch n.GetOpType() {
			case "Relu":
				y.f[i] = max(v, 0)
			case "Tanh":
				y.f[i] = float64(float32(math.Tanh(v)))
			default:
				y.f[i] = float64(float32(1 / (1 + math.Exp(-v))))
			}
		}
		return y, nil
	case "Flatten":
		if a := at["axis"]; a == nil || a.GetI() != 1 {
			return nil, fmt.Errorf("only axis 1 is implemented")
		}
		return &tensor{shape: []int{in[0].shape[0], numel(in[0].shape[1:])}, f: in[0].f, typ: in[0].typ}, nil
	case "QuantizeLinear":
		x, s, z := in[0], in[1], in[2]
		if len(s.f) != 1 || z.typ != onnxpb.TensorProto_UINT8 {
			return nil, fmt.Errorf("only per-tensor uint8 is implemented")
		}
		y := &tensor{shape: x.shape, f: make([]float64, len(x.f)), typ: onnxpb.TensorProto_UINT8}
		for i, v := range x.f {
			q := math.RoundToEven(float64(float32(v)/float32(s.f[0]))) + z.f[0]
			y.f[i] = min(max(q, 0), 255)
		}
		return y, nil
	case "DequantizeLinear":
		x, s, z := in[0], in[1], in[2]
		if z.typ != x.typ {
			return nil, fmt.Errorf("zero point of type %v for input of type %v", z.typ, x.typ)
		}
		y := &tensor{shape: x.shape, f: make([]float64, len(x.f)), typ: onnxpb.TensorProto_FLOAT}
		per := 1 // elements per scale
		if len(s.f) > 1 {
			if a := at["axis"]; a == nil || a.GetI() != 0 || s.shape[0] != x.shape[0] {
				return nil, fmt.Errorf("per-axis scales of shape %v for input %v: only axis 0 is implemented", s.shape, x.shape)
			}
			per = len(x.f) / len(s.f)
		} else {
			per = len(x.f)
		}
		for i, v := range x.f {
			c := i / per
			y.f[i] = float64(float32(v-z.f[c]) * float32(s.f[c]))
		}
		return y, nil
	case "Gemm":
		a, b, c := in[0], in[1], in[2]
		if at["transB"].GetI() != 1 || len(a.shape) != 2 {
			return nil, fmt.Errorf("only transB=1 with a 2-D A is implemented")
		}
		m, k, nOut := a.shape[0], a.shape[1], b.shape[0]
		if b.shape[1] != k || len(c.f) != nOut {
			return nil, fmt.Errorf("shapes %v, %v, %v do not fit", a.shape, b.shape, c.shape)
		}
		y := &tensor{shape: []int{m, nOut}, f: make([]float64, m*nOut), typ: onnxpb.TensorProto_FLOAT}
		for i := range m {
			for j := range nOut {
				var s float64
				for p := range k {
					s += a.f[i*k+p] * b.f[j*k+p]
				}
				y.f[i*nOut+j] = float64(float32(s + c.f[j]))
			}
		}
		return y, nil
	case "Conv":
		x, w, b := in[0], in[1], in[2]
		ks, st, pd := intsOf(at["kernel_shape"]), intsOf(at["strides"], 1, 1), intsOf(at["pads"], 0, 0, 0, 0)
		groups := 1
		if a := at["group"]; a != nil {
			groups = int(a.GetI())
		}
		nb, c, h, wd := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
		o := w.shape[0]
		cg, og := c/groups, o/groups // input and output channels per group
		if c%groups != 0 || o%groups != 0 || w.shape[1] != cg || ks[0] != w.shape[2] || ks[1] != w.shape[3] {
			return nil, fmt.Errorf("weight %v does not fit input %v, kernel %v, %d groups", w.shape, x.shape, ks, groups)
		}
		oh := (h+pd[0]+pd[2]-ks[0])/st[0] + 1
		ow := (wd+pd[1]+pd[3]-ks[1])/st[1] + 1
		y := &tensor{shape: []int{nb, o, oh, ow}, f: make([]float64, nb*o*oh*ow), typ: onnxpb.TensorProto_FLOAT}
		for n := range nb {
			for oc := range o {
				g := oc / og
				for i := range oh {
					for j := range ow {
						s := b.f[oc]
						for k := range cg {
							ic := g*cg + k
							for ki := range ks[0] {
								for kj := range ks[1] {
									r, q := i*st[0]-pd[0]+ki, j*st[1]-pd[1]+kj
									if r < 0 || r >= h || q < 0 || q >= wd {
										continue
									}
									s += x.f[((n*c+ic)*h+r)*wd+q] * w.f[((oc*cg+k)*ks[0]+ki)*ks[1]+kj]
								}
							}
						}
						y.f[((n*o+oc)*oh+i)*ow+j] = float64(float32(s))
					}
				}
			}
		}
		return y, nil
	case "AveragePool":
		x := in[0]
		ks, st, pd := intsOf(at["kernel_shape"]), intsOf(at["strides"], 1, 1), intsOf(at["pads"], 0, 0, 0, 0)
		if at["count_include_pad"].GetI() != 1 || at["ceil_mode"].GetI() != 0 {
			return nil, fmt.Errorf("only count_include_pad=1 without ceil_mode is implemented")
		}
		nb, c, h, wd := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
		oh := (h+pd[0]+pd[2]-ks[0])/st[0] + 1
		ow := (wd+pd[1]+pd[3]-ks[1])/st[1] + 1
		y := &tensor{shape: []int{nb, c, oh, ow}, f: make([]float64, nb*c*oh*ow), typ: onnxpb.TensorProto_FLOAT}
		for p := range nb * c {
			for i := range oh {
				for j := range ow {
					var s float64
					for ki := range ks[0] {
						for kj := range ks[1] {
							r, q := i*st[0]-pd[0]+ki, j*st[1]-pd[1]+kj
							if r >= 0 && r < h && q >= 0 && q < wd {
								s += x.f[(p*h+r)*wd+q]
							}
						}
					}
					// Padding counts in the divisor: the whole window.
					y.f[(p*oh+i)*ow+j] = float64(float32(s / float64(ks[0]*ks[1])))
				}
			}
		}
		return y, nil
	case "GlobalAveragePool":
		x := in[0]
		nb, c, hw := x.shape[0], x.shape[1], numel(x.shape[2:])
		y := &tensor{shape: []int{nb, c, 1, 1}, f: make([]float64, nb*c), typ: onnxpb.TensorProto_FLOAT}
		for p := range nb * c {
			var s float64
			for _, v := range x.f[p*hw : (p+1)*hw] {
				s += v
			}
			y.f[p] = float64(float32(s / float64(hw)))
		}
		return y, nil
	case "Add", "Mul":
		a, b := in[0], in[1]
		if !slices.Equal(a.shape, b.shape) {
			return nil, fmt.Errorf("shapes %v and %v: broadcasting is not implemented", a.shape, b.shape)
		}
		y := &tensor{shape: a.shape, f: make([]float64, len(a.f)), typ: onnxpb.TensorProto_FLOAT}
		for i := range y.f {
			if n.GetOpType() == "Add" {
				y.f[i] = float64(float32(a.f[i] + b.f[i]))
			} else {
				y.f[i] = float64(float32(a.f[i] * b.f[i]))
			}
		}
		return y, nil
	case "Clip":
		if len(in) != 3 || len(in[1].f) != 1 || len(in[2].f) != 1 {
			return nil, fmt.Errorf("want scalar min and max inputs, got %d inputs", len(in))
		}
		y := &tensor{shape: in[0].shape, f: make([]float64, len(in[0].f)), typ: onnxpb.TensorProto_FLOAT}
		for i, v := range in[0].f {
			y.f[i] = min(max(v, in[1].f[0]), in[2].f[0])
		}
		return y, nil
	case "BatchNormalization":
		x, scale, bias, mean, vr := in[0], in[1], in[2], in[3], in[4]
		eps := float64(at["epsilon"].GetF())
		if at["epsilon"] == nil {
			eps = float64(float32(1e-5))
		}
		c := x.shape[1]
		per := numel(x.shape[2:]) // values per channel and example
		y := &tensor{shape: x.shape, f: make([]float64, len(x.f)), typ: onnxpb.TensorProto_FLOAT}
		for i, v := range x.f {
			ch := i / per % c
			y.f[i] = float64(float32((v-mean.f[ch])/math.Sqrt(vr.f[ch]+eps)*scale.f[ch] + bias.f[ch]))
		}
		return y, nil
	case "MaxPool":
		x := in[0]
		ks, st := intsOf(at["kernel_shape"]), intsOf(at["strides"], 1, 1)
		if at["pads"] != nil || at["ceil_mode"].GetI() != 0 {
			return nil, fmt.Errorf("pads and ceil_mode are not implemented")
		}
		nb, c, h, wd := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
		oh, ow := (h-ks[0])/st[0]+1, (wd-ks[1])/st[1]+1
		y := &tensor{shape: []int{nb, c, oh, ow}, f: make([]float64, nb*c*oh*ow), typ: x.typ}
		for p := range nb * c {
			for i := range oh {
				for j := range ow {
					m := math.Inf(-1)
					for ki := range ks[0] {
						for kj := range ks[1] {
							m = max(m, x.f[(p*h+i*st[0]+ki)*wd+j*st[1]+kj])
						}
					}
					y.f[(p*oh+i)*ow+j] = m
				}
			}
		}
		return y, nil
	}
	return nil, fmt.Errorf("operator %s is not implemented", n.GetOpType())
}
