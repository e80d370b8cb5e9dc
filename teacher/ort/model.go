// Package ort runs a teacher of any architecture saved as ONNX through
// ONNX Runtime (github.com/yalue/onnxruntime_go, which needs cgo).
//
// An ONNX teacher is opaque to distill: it has no distill weights and no
// layers that distill's engines could compute. Its Spec describes it in
// model terms with layers of kind model.KindExternal: one per named
// intermediate tensor (Options.Features, for hints and attention maps),
// then the logits, each with the per-example shape ONNX Runtime gives it
// on a probe batch. The Teacher is a backend.FeatureModel, so the
// pipeline labels transfer sets and reads features through it as through
// any teacher. Intermediate tensors are read by adding them to the
// graph's outputs in memory (the file is not changed).
//
// ONNX Runtime is loaded at run time from its shared library, found by
// Library: Options.Library, else $ONNXRUNTIME_LIB, else the copy that
// onnx/testdata/install-ort.sh installs (from npm's onnxruntime-node,
// which ships libonnxruntime.so). Check says before any work whether it
// loads. A build without cgo (the default CGO_ENABLED=0 cross builds)
// has no ONNX Runtime: Check and Open return an error saying so, and
// Inspect, which only parses the file, still works.
package ort

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/distill-dev/distill/onnx"
	"github.com/distill-dev/distill/onnx/onnxpb"
)

// Options say how to open an ONNX teacher.
type Options struct {
	// Library is the path of ONNX Runtime's shared library; empty means
	// $ONNXRUNTIME_LIB, then install-ort.sh's cache (see Library).
	Library string
	// Output names the logits output; empty means the model's only one.
	Output string
	// Features names intermediate tensors (node outputs, as Inspect lists
	// them) that ForwardFeatures can return; each becomes a layer of the
	// teacher's Spec.
	Features []string
	// Input is the per-example input shape, needed only when the model
	// leaves a non-batch dimension dynamic; it must agree with the
	// dimensions the model fixes.
	Input []int
	// Device is "cpu" (or empty) or "cuda" / "cuda:N", which uses ONNX
	// Runtime's CUDA execution provider (a GPU build of ONNX Runtime).
	Device string
	// Threads is ONNX Runtime's intra-op thread count; 0 is its default
	// (one per core).
	Threads int
}

// Tensor describes a tensor of an ONNX graph. Shape has -1 for a
// dimension the graph leaves dynamic, and is nil when the file states no
// shape (ONNX Runtime infers it when the model runs).
type Tensor struct {
	Name  string
	Type  string // ONNX element type, e.g. "FLOAT"
	Shape []int
	// Op is the operator that computes an intermediate tensor.
	Op string
}

// Info is what an ONNX file holds, for a user writing a recipe.
type Info struct {
	Inputs, Outputs []Tensor
	// Intermediate lists every node output in graph order: the names
	// Options.Features accepts.
	Intermediate []Tensor
	// Params is the number of scalars in the graph's initializers.
	Params int64
	// Opsets maps operator-set domains ("" is the default ONNX domain)
	// to the versions the model imports.
	Opsets map[string]int64
}

// Inspect parses the ONNX file at path and describes its tensors. It
// needs neither cgo nor ONNX Runtime.
func Inspect(path string) (Info, error) {
	m, _, err := readModel(path)
	if err != nil {
		return Info{}, err
	}
	return describe(m), nil
}

// readModel reads and parses an ONNX file, rejecting anything that does
// not hold a graph with nodes.
func readModel(path string) (*onnxpb.ModelProto, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("teacher/ort: %w", err)
	}
	m := new(onnxpb.ModelProto)
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, nil, fmt.Errorf("teacher/ort: %s is not an ONNX model (%v): give a .onnx file, e.g. one written by torch.onnx.export", path, err)
	}
	// Arbitrary bytes sometimes decode as a protobuf message; a model
	// has at least a graph with one node and an output.
	if g := m.GetGraph(); g == nil || len(g.GetNode()) == 0 || len(g.GetOutput()) == 0 || m.GetIrVersion() == 0 {
		return nil, nil, fmt.Errorf("teacher/ort: %s is not an ONNX model (no IR version, or no graph with nodes and outputs): give a .onnx file, e.g. one written by torch.onnx.export", path)
	}
	return m, b, nil
}

func describe(m *onnxpb.ModelProto) Info {
	g := m.GetGraph()
	info := Info{Opsets: map[string]int64{}}
	for _, o := range m.GetOpsetImport() {
		info.Opsets[o.GetDomain()] = o.GetVersion()
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
		n := int64(1)
		for _, d := range t.GetDims() {
			n *= d
		}
		info.Params += n
	}
	for _, v := range g.GetInput() {
		// Before IR version 4, initializers were listed as inputs too.
		if !inits[v.GetName()] {
			info.Inputs = append(info.Inputs, valueTensor(v))
		}
	}
	for _, v := range g.GetOutput() {
		info.Outputs = append(info.Outputs, valueTensor(v))
	}
	known := map[string]*onnxpb.ValueInfoProto{}
	for _, v := range g.GetValueInfo() {
		known[v.GetName()] = v
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			if o == "" {
				continue // an optional output the node does not produce
			}
			t := Tensor{Name: o, Op: n.GetOpType()}
			if v, ok := known[o]; ok {
				vt := valueTensor(v)
				t.Type, t.Shape = vt.Type, vt.Shape
			}
			info.Intermediate = append(info.Intermediate, t)
		}
	}
	return info
}

func valueTensor(v *onnxpb.ValueInfoProto) Tensor {
	t := Tensor{Name: v.GetName()}
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return t
	}
	t.Type = onnxpb.TensorProto_DataType(tt.GetElemType()).String()
	if sh := tt.GetShape(); sh != nil {
		t.Shape = make([]int, len(sh.GetDim()))
		for i, d := range sh.GetDim() {
			t.Shape[i] = -1
			if d.GetDimValue() > 0 {
				t.Shape[i] = int(d.GetDimValue())
			}
		}
	}
	return t
}

// graph is what Open needs of a parsed model.
type graph struct {
	input  Tensor
	output Tensor
	// order maps every node output to its position in the graph.
	order    map[string]int
	external bool // some initializer's data is in another file
}

// parse finds the model's single input and its logits output (named by
// output, or the only one) and checks the requested feature tensors.
func parse(path string, m *onnxpb.ModelProto, output string, features []string) (graph, error) {
	info := describe(m)
	var gr graph
	switch len(info.Inputs) {
	case 1:
		gr.input = info.Inputs[0]
	case 0:
		return gr, fmt.Errorf("teacher/ort: %s has no input", path)
	default:
		return gr, fmt.Errorf("teacher/ort: %s has %d inputs %q; a teacher reads one (the examples)", path, len(info.Inputs), Names(info.Inputs))
	}
	if output == "" {
		if len(info.Outputs) != 1 {
			return gr, fmt.Errorf("teacher/ort: %s has %d outputs %q: name the logits with the output option", path, len(info.Outputs), Names(info.Outputs))
		}
		gr.output = info.Outputs[0]
	} else {
		i := slices.IndexFunc(info.Outputs, func(t Tensor) bool { return t.Name == output })
		if i < 0 {
			return gr, fmt.Errorf("teacher/ort: %s has no output %q (outputs: %q)", path, output, Names(info.Outputs))
		}
		gr.output = info.Outputs[i]
	}
	for _, t := range []Tensor{gr.input, gr.output} {
		if t.Type != onnxpb.TensorProto_FLOAT.String() {
			return gr, fmt.Errorf("teacher/ort: %s: tensor %q is %s; a teacher reads and writes float32 (FLOAT) tensors", path, t.Name, orUnknown(t.Type))
		}
	}
	gr.order = map[string]int{}
	for i, t := range info.Intermediate {
		gr.order[t.Name] = i
	}
	var errs []error
	for _, f := range features {
		if _, ok := gr.order[f]; !ok {
			errs = append(errs, fmt.Errorf("teacher/ort: %s has no intermediate tensor %q%s", path, f, Suggest(f, info.Intermediate, fmt.Sprintf(": name a node output (the file has %d; distill inspect, or teacher/ort.Inspect, lists them)", len(info.Intermediate)))))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return gr, err
	}
	for _, t := range m.GetGraph().GetInitializer() {
		if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
			gr.external = true
		}
	}
	return gr, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "of no stated type"
	}
	return s
}

// Names returns the tensors' names, in order.
func Names(ts []Tensor) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// Suggest lists tensors whose names contain want's last path element
// (PyTorch's exporter names the output of block layer1.0's final ReLU
// "/layer1/layer1.0/relu_1/Relu_output_0"), so that a user sees the
// names to write; none is what it says when no name does.
func Suggest(want string, ts []Tensor, none string) string {
	key := want
	if i := strings.LastIndexByte(key, '/'); i >= 0 && i+1 < len(key) {
		key = key[i+1:]
	}
	var hits []string
	for _, t := range ts {
		if strings.Contains(t.Name, key) {
			hits = append(hits, t.Name)
		}
	}
	const most = 8
	switch {
	case len(hits) == 0:
		return none
	case len(hits) > most:
		return fmt.Sprintf("; tensors with %q in their names include %q", key, hits[:most])
	}
	return fmt.Sprintf("; tensors with %q in their names: %q", key, hits)
}

// withOutputs returns the model's encoding with the tensors added to the
// graph's outputs (typed float32; ONNX Runtime infers their shapes), so
// that a session can return them.
func withOutputs(m *onnxpb.ModelProto, tensors []string) ([]byte, error) {
	c := proto.Clone(m).(*onnxpb.ModelProto)
	g := c.GetGraph()
	for _, name := range tensors {
		if slices.ContainsFunc(g.Output, func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == name }) {
			continue
		}
		g.Output = append(g.Output, &onnxpb.ValueInfoProto{
			Name: proto.String(name),
			Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
				ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			}}},
		})
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("teacher/ort: re-encode the model with its feature outputs: %w", err)
	}
	return b, nil
}

// Library returns the path of ONNX Runtime's shared library: path if not
// empty, else what onnx.RuntimeLibrary finds ($ONNXRUNTIME_LIB, then
// install-ort.sh's cache). The error says how to provide it.
func Library(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("teacher/ort: ONNX Runtime library: %w; %s", err, howToInstall)
		}
		return path, nil
	}
	p, err := onnx.RuntimeLibrary()
	if err != nil {
		return "", fmt.Errorf("teacher/ort: %w; %s", err, howToInstall)
	}
	return p, nil
}

// howToInstall ends every error about a missing or unloadable library.
const howToInstall = "an ONNX teacher needs ONNX Runtime ≥ 1.24's shared library: npm's onnxruntime-node ships it " +
	"(npm install onnxruntime-node; the file is node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1), " +
	"onnx/testdata/install-ort.sh installs it where distill looks by default, or point $" + onnx.RuntimeLibraryEnv +
	" (or the teacher's library option) at libonnxruntime.so"
