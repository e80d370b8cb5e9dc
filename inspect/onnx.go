package inspect

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/distill-dev/distill/internal/fileio"
	"github.com/distill-dev/distill/onnx/onnxpb"
)

// Graph describes an ONNX model.
type Graph struct {
	IRVersion int64            `json:"ir_version"`
	Opsets    map[string]int64 `json:"opsets"` // by domain; "ai.onnx" for the default
	Producer  string           `json:"producer,omitempty"`
	Name      string           `json:"name,omitempty"`
	Inputs    []Value          `json:"inputs"`
	Outputs   []Value          `json:"outputs"`
	// Intermediates are the outputs of the graph's nodes other than the
	// graph's outputs and constants, in node order: the names a recipe
	// gives to take hints or attention maps from an ONNX teacher.
	Intermediates []Value `json:"intermediates"`
	// Ops counts the nodes of each operator, most frequent first.
	Ops          []OpCount         `json:"ops"`
	Initializers int               `json:"initializers"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

// Value is a named tensor of an ONNX graph. Shape holds each dimension's
// size or symbolic name ("batch"), "?" where unknown; it is nil when the
// model does not record the tensor's shape and it cannot be derived
// (intermediate tensors' shapes are derived from the inputs' for the
// usual operators of vision networks when the model leaves them out).
type Value struct {
	Name  string   `json:"name"`
	Type  string   `json:"type,omitempty"`
	Shape []string `json:"shape,omitempty"`
	Op    string   `json:"op,omitempty"`   // the operator producing it (intermediates)
	Node  string   `json:"node,omitempty"` // the node producing it, when named
}

// OpCount is the number of nodes of one operator.
type OpCount struct {
	Op    string `json:"op"`
	Count int    `json:"count"`
}

// maxONNXSize bounds the ONNX files read: protobuf's own limit (larger
// models keep their weights in external data files).
const maxONNXSize = 2 << 30

func onnxFile(path string) (*Summary, error) {
	b, err := fileio.ReadFileMax(path, maxONNXSize, "an ONNX model")
	if err != nil {
		return nil, err
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: not a valid ONNX model (protobuf: %v)", ErrNotModel, err)
	}
	g := m.GetGraph()
	if m.GetIrVersion() <= 0 || g == nil || len(g.GetNode()) == 0 {
		return nil, fmt.Errorf("%w: not an ONNX model: no IR version or no graph nodes", ErrNotModel)
	}
	sum := &Graph{
		IRVersion:    m.GetIrVersion(),
		Opsets:       map[string]int64{},
		Producer:     strings.TrimSpace(m.GetProducerName() + " " + m.GetProducerVersion()),
		Name:         g.GetName(),
		Initializers: len(g.GetInitializer()),
	}
	for _, o := range m.GetOpsetImport() {
		sum.Opsets[cmp.Or(o.GetDomain(), "ai.onnx")] = o.GetVersion()
	}
	for _, p := range m.GetMetadataProps() {
		if sum.Metadata == nil {
			sum.Metadata = map[string]string{}
		}
		sum.Metadata[p.GetKey()] = p.GetValue()
	}
	s := &Summary{Format: ONNX, Graph: sum}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
		if isFloatONNX(t.GetDataType()) {
			n := int64(1)
			for _, d := range t.GetDims() {
				n *= d
			}
			s.Params += n
		}
	}
	known := map[string]*onnxpb.ValueInfoProto{}
	for _, vs := range [][]*onnxpb.ValueInfoProto{g.GetValueInfo(), g.GetInput(), g.GetOutput()} {
		for _, v := range vs {
			known[v.GetName()] = v
		}
	}
	for _, v := range g.GetInput() {
		if !inits[v.GetName()] { // IR < 4 lists initializers as inputs
			sum.Inputs = append(sum.Inputs, value(v))
		}
	}
	outputs := map[string]bool{}
	for _, v := range g.GetOutput() {
		sum.Outputs = append(sum.Outputs, value(v))
		outputs[v.GetName()] = true
	}
	// Shapes: value_info where given, else the initializers' and what
	// inferShape derives.
	shapes := map[string][]string{}
	for _, t := range g.GetInitializer() {
		shape := []string{}
		for _, d := range t.GetDims() {
			shape = append(shape, strconv.FormatInt(d, 10))
		}
		shapes[t.GetName()] = shape
	}
	for name, vi := range known {
		if sh := value(vi).Shape; sh != nil {
			shapes[name] = sh
		}
	}
	shapeOf := func(name string) []string { return shapes[name] }
	ops := map[string]int{}
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			op = d + "." + op
		}
		ops[op]++
		if op == "Constant" {
			continue
		}
		outs := n.GetOutput()
		if len(outs) > 0 && shapes[outs[0]] == nil {
			if sh := inferShape(n, shapeOf); sh != nil {
				shapes[outs[0]] = sh
			}
		}
		for _, out := range outs {
			if out == "" || outputs[out] {
				continue
			}
			v := Value{Name: out, Op: op, Node: n.GetName(), Shape: shapes[out]}
			if vi, ok := known[out]; ok {
				v.Type = value(vi).Type
			}
			sum.Intermediates = append(sum.Intermediates, v)
		}
	}
	for op, c := range ops {
		sum.Ops = append(sum.Ops, OpCount{op, c})
	}
	slices.SortFunc(sum.Ops, func(a, b OpCount) int { return cmp.Or(b.Count-a.Count, cmp.Compare(a.Op, b.Op)) })
	s.Notes = append(s.Notes, "ONNX models run through ONNX Runtime; hints and attention maps may name the intermediate tensors")
	return s, nil
}

func isFloatONNX(t int32) bool {
	switch onnxpb.TensorProto_DataType(t) {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		return true
	}
	return false
}

// value describes a typed graph value.
func value(v *onnxpb.ValueInfoProto) Value {
	out := Value{Name: v.GetName()}
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return out
	}
	if name, ok := onnxpb.TensorProto_DataType_name[tt.GetElemType()]; ok {
		out.Type = name
	}
	if sh := tt.GetShape(); sh != nil {
		out.Shape = []string{}
		for _, d := range sh.GetDim() {
			switch v := d.GetValue().(type) {
			case *onnxpb.TensorShapeProto_Dimension_DimParam:
				out.Shape = append(out.Shape, v.DimParam)
			case *onnxpb.TensorShapeProto_Dimension_DimValue:
				out.Shape = append(out.Shape, strconv.FormatInt(v.DimValue, 10))
			default:
				out.Shape = append(out.Shape, "?")
			}
		}
	}
	return out
}
