package onnx

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx/onnxpb"
	"github.com/distill-dev/distill/quantize"
)

// buildFP32 builds the ONNX model of a float32 network.
func buildFP32(spec model.Spec, w model.Weights) (*onnxpb.ModelProto, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	if err := spec.Check(w); err != nil {
		return nil, fmt.Errorf("onnx: weights do not fit spec %q: %w", spec.Name, err)
	}
	// The network as the runtimes run it: batchnorms folded into the
	// layers before them, every conv and linear layer with a bias.
	ispec, iw, err := infer.Fold(spec, w)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return build(spec, ispec, iw, nil, nil)
}

// buildInt8 builds the QDQ ONNX model of a quantized network.
func buildInt8(m *quantize.Model) (*onnxpb.ModelProto, error) {
	if m == nil {
		return nil, fmt.Errorf("onnx: nil quantized model")
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	meta := map[string]string{"distill.calibration": string(m.Method)}
	if m.Method == quantize.Percentile {
		meta["distill.percentile"] = strconv.FormatFloat(m.Percentile, 'g', -1, 64)
	}
	if len(m.Fallback) > 0 {
		meta["distill.fallback"] = strings.Join(m.Fallback, ",")
	}
	orig := m.Spec // already folded (see quantize.Model.Source)
	if len(m.Source.Layers) > 0 {
		orig = m.Source
	}
	return build(orig, m.Spec, m.Float, &m.QuantModel, meta)
}

// actState is what the builder knows of the activation between layers;
// it mirrors the state package infer's compiler keeps, so that the
// graph quantizes where the INT8 runtime does.
type actState struct {
	u8    bool          // the runtime holds it as uint8: its values lie on the grid of q
	fresh bool          // the tensor is the output of a DequantizeLinear with q
	q     infer.QParams // its quantization parameters, if qok
	qok   bool          // q is known
	qkey  string        // whose parameters q are: a layer's name, "" for the input
}

// builder accumulates a graph.
type builder struct {
	g      *onnxpb.GraphProto
	used   map[string]bool      // tensor and node names
	qinit  map[string][2]string // qkey → scale and zero-point initializers
	consts map[string]string    // scalar's initializers by requested name
	dq     map[[2]string]string // tensor and qkey → its qdq output
}

// build builds the graph of spec, whose batchnorms are folded where
// they can be (see infer.Fold); orig, the network as the user wrote it,
// goes into the metadata.
func build(orig, spec model.Spec, w model.Weights, qm *infer.QuantModel, meta map[string]string) (*onnxpb.ModelProto, error) {
	shapes, err := spec.Shapes()
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	ins, err := spec.InputIndices()
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	b := &builder{
		g:      &onnxpb.GraphProto{Name: proto.String(graphName(spec))},
		used:   map[string]bool{InputName: true, OutputName: true},
		qinit:  map[string][2]string{},
		consts: map[string]string{},
		dq:     map[[2]string]string{},
	}
	e := &exporter{b: b, spec: spec, w: w, qm: qm, vals: make([]value, len(spec.Layers)), done: make([]bool, len(spec.Layers))}
	input := value{name: InputName}
	if qm != nil {
		input.st = actState{q: qm.Input, qok: true}
	}
	for i, l := range spec.Layers {
		if e.done[i] { // fused into an earlier layer
			continue
		}
		e.args = e.args[:0]
		for _, j := range ins[i] {
			if j < 0 {
				e.args = append(e.args, input)
			} else {
				e.args = append(e.args, e.vals[j])
			}
		}
		if info, _ := model.Describe(l.Kind); info.IdentityAtInference {
			e.vals[i] = e.args[0] // dropout: its output is its input
			continue
		}
		export, err := exporters.Lookup(l.Kind)
		if err != nil {
			return nil, fmt.Errorf("onnx: layer %q: %w", l.Name, err)
		}
		e.i = i
		e.cur, e.st = e.args[0].name, e.args[0].st
		if err := export(e, l, spec.InputShape(shapes, i)); err != nil {
			return nil, err
		}
		e.vals[i] = value{name: e.cur, st: e.st}
	}
	b.finish(e.vals[len(spec.Layers)-1].name)

	dims := append([]int{-1}, spec.Input...)
	b.g.Input = []*onnxpb.ValueInfoProto{valueInfo(InputName, dims)}
	b.g.Output = []*onnxpb.ValueInfoProto{valueInfo(OutputName, []int{-1, spec.Classes})}

	specJSON, err := json.Marshal(orig)
	if err != nil {
		return nil, fmt.Errorf("onnx: encode spec: %w", err)
	}
	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(IRVersion),
		ProducerName: proto.String("distill"),
		DocString:    proto.String(fmt.Sprintf("%s exported by distill", graphName(spec))),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		Graph:        b.g,
		MetadataProps: []*onnxpb.StringStringEntryProto{
			{Key: proto.String("distill.spec"), Value: proto.String(string(specJSON))},
		},
	}
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(meta[k])})
	}
	return m, nil
}

func graphName(spec model.Spec) string {
	if spec.Name != "" {
		return spec.Name
	}
	return "distill"
}

// name returns base, or base with a numeric suffix if base is taken.
func (b *builder) name(base string) string {
	n := base
	for k := 2; b.used[n]; k++ {
		n = base + "_" + strconv.Itoa(k)
	}
	b.used[n] = true
	return n
}

// node appends a node named after its output, which it returns.
func (b *builder) node(op, out string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	out = b.name(out)
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		Name:      proto.String(out),
		OpType:    proto.String(op),
		Input:     inputs,
		Output:    []string{out},
		Attribute: attrs,
	})
	return out
}

// finish names the tensor cur, the last layer's output, "logits": it
// renames the output of the node computing cur when nothing else reads it,
// and adds an Identity node otherwise (cur is the input, or a dropout at
// the end aliases a tensor other nodes read).
func (b *builder) finish(cur string) {
	var prod *onnxpb.NodeProto
	for _, n := range b.g.Node {
		if n.Output[0] == cur {
			prod = n
		}
		if slices.Contains(n.Input, cur) {
			prod = nil
			break
		}
	}
	if prod == nil {
		b.g.Node = append(b.g.Node, &onnxpb.NodeProto{Name: proto.String(OutputName), OpType: proto.String("Identity"),
			Input: []string{cur}, Output: []string{OutputName}})
		return
	}
	prod.Output[0] = OutputName
}

// qdq quantizes x with the activation parameters of qkey (a layer, or
// "" for the input) and
// dequantizes it back, returning the dequantized tensor.
func (b *builder) qdq(x, qkey string, q infer.QParams) string {
	if dq, ok := b.dq[[2]string{x, qkey}]; ok {
		return dq // another reader of x already quantized it
	}
	names, ok := b.qinit[qkey]
	if !ok {
		prefix := qkey + ".out"
		if qkey == "" {
			prefix = InputName
		}
		names[0] = b.init(prefix+"_scale", onnxpb.TensorProto_FLOAT, nil, f32Bytes([]float32{q.Scale}))
		names[1] = b.init(prefix+"_zero_point", onnxpb.TensorProto_UINT8, nil, []byte{uint8(q.ZeroPoint)})
		b.qinit[qkey] = names
	}
	qx := b.node("QuantizeLinear", x+"_quantized", []string{x, names[0], names[1]})
	dq := b.node("DequantizeLinear", x+"_dequantized", []string{qx, names[0], names[1]})
	b.dq[[2]string{x, qkey}] = dq
	return dq
}

// quantizedParams adds a quantized layer's int8 weight and int32 bias and
// their per-channel DequantizeLinear nodes, returning the dequantized
// weight and bias.
func (b *builder) quantizedParams(layer string, ql infer.QLayer, wshape []int, inScale float32) (wt, bias string) {
	out := wshape[0]
	wq := b.init(layer+".weight_quantized", onnxpb.TensorProto_INT8, wshape, i8Bytes(ql.Weight))
	ws := b.init(layer+".weight_scale", onnxpb.TensorProto_FLOAT, []int{out}, f32Bytes(ql.Scale))
	wz := b.init(layer+".weight_zero_point", onnxpb.TensorProto_INT8, []int{out}, make([]byte, out))
	wt = b.node("DequantizeLinear", layer+".weight", []string{wq, ws, wz}, intAttr("axis", 0))

	bs := make([]float32, out)
	for c := range bs {
		// As package quantize rounds the bias and runtime requantizes.
		bs[c] = float32(float64(inScale) * float64(ql.Scale[c]))
	}
	bq := b.init(layer+".bias_quantized", onnxpb.TensorProto_INT32, []int{out}, i32Bytes(ql.Bias))
	bsn := b.init(layer+".bias_scale", onnxpb.TensorProto_FLOAT, []int{out}, f32Bytes(bs))
	bz := b.init(layer+".bias_zero_point", onnxpb.TensorProto_INT32, []int{out}, make([]byte, 4*out))
	bias = b.node("DequantizeLinear", layer+".bias", []string{bq, bsn, bz}, intAttr("axis", 0))
	return wt, bias
}

// scalar returns a float32 scalar initializer holding v, added once per
// name.
func (b *builder) scalar(name string, v float32) string {
	if n, ok := b.consts[name]; ok {
		return n
	}
	n := b.init(name, onnxpb.TensorProto_FLOAT, nil, f32Bytes([]float32{v}))
	b.consts[name] = n
	return n
}

// floatInit adds a float32 initializer.
func (b *builder) floatInit(name string, t model.Tensor) string {
	return b.init(name, onnxpb.TensorProto_FLOAT, t.Shape, f32Bytes(t.Data))
}

// init adds an initializer with little-endian raw data; shape nil is a
// scalar.
func (b *builder) init(name string, typ onnxpb.TensorProto_DataType, shape []int, raw []byte) string {
	name = b.name(name)
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{
		Name:     proto.String(name),
		DataType: proto.Int32(int32(typ)),
		Dims:     dims,
		RawData:  raw,
	})
	return name
}

// valueInfo describes a float32 graph input or output; a dimension < 0 is
// the dynamic batch dimension "N".
func valueInfo(name string, dims []int) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d < 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
		} else {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			Shape:    shape,
		}}},
	}
}

func intAttr(name string, v int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(v))}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func intsAttr(name string, vs ...int) *onnxpb.AttributeProto {
	a := &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum()}
	for _, v := range vs {
		a.Ints = append(a.Ints, int64(v))
	}
	return a
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func i32Bytes(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func i8Bytes(v []int8) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	return b
}
