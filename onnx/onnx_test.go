package onnx

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx/onnxpb"
	"github.com/distill-dev/distill/quantize"
)

// inputShape is [n, spec.Input...].
func (c testCase) inputShape() []int { return append([]int{c.n}, c.spec.Input...) }

// TestGraphsComputeWhatRuntimeDoes evaluates the exported graphs with a
// literal implementation of the ONNX operators (no ONNX Runtime needed)
// and compares them with package infer.
func TestGraphsComputeWhatRuntimeDoes(t *testing.T) {
	for _, c := range testCases(t) {
		t.Run(c.name, func(t *testing.T) {
			fp32, int8 := c.ours(t)
			_, fm := c.exportFP32(t)
			got, err := run(fm, c.x, c.inputShape())
			if err != nil {
				t.Fatalf("FP32 graph: %v", err)
			}
			checkFP32(t, "FP32 graph vs runtime", got, fp32, c.spec.Classes)

			_, qm := c.exportInt8(t)
			got, err = run(qm, c.x, c.inputShape())
			if err != nil {
				t.Fatalf("QDQ graph: %v", err)
			}
			checkInt8(t, "QDQ graph vs runtime INT8", got, int8, c.spec.Classes)
		})
	}
}

// TestWellFormed checks what a checker would for every exported model:
// the opset, the graph's input and output, unique names, nodes in
// topological order and nothing left unused.
func TestWellFormed(t *testing.T) {
	for _, c := range testCases(t) {
		for _, kind := range []string{"fp32", "int8"} {
			t.Run(c.name+"/"+kind, func(t *testing.T) {
				var m *onnxpb.ModelProto
				if kind == "fp32" {
					_, m = c.exportFP32(t)
				} else {
					_, m = c.exportInt8(t)
				}
				checkWellFormed(t, c, m)
			})
		}
	}
}

func checkWellFormed(t *testing.T, c testCase, m *onnxpb.ModelProto) {
	t.Helper()
	if m.GetIrVersion() != IRVersion || len(m.GetOpsetImport()) != 1 || m.GetOpsetImport()[0].GetDomain() != "" ||
		m.GetOpsetImport()[0].GetVersion() != Opset {
		t.Errorf("IR %d, opsets %v; want IR %d and the default domain at %d", m.GetIrVersion(), m.GetOpsetImport(), IRVersion, Opset)
	}
	g := m.GetGraph()
	checkIO(t, g.GetInput(), InputName, append([]int{-1}, c.spec.Input...))
	checkIO(t, g.GetOutput(), OutputName, []int{-1, c.spec.Classes})

	defined := map[string]bool{InputName: true}
	used := map[string]bool{OutputName: true}
	for _, init := range g.GetInitializer() {
		if defined[init.GetName()] {
			t.Errorf("initializer %q defined twice", init.GetName())
		}
		defined[init.GetName()] = true
	}
	names := map[string]bool{}
	for _, n := range g.GetNode() {
		if names[n.GetName()] {
			t.Errorf("two nodes named %q", n.GetName())
		}
		names[n.GetName()] = true
		if n.GetOpType() == "Dropout" {
			t.Errorf("node %q: dropout should be omitted", n.GetName())
		}
		for _, in := range n.GetInput() {
			if !defined[in] {
				t.Errorf("node %q reads %q before it is defined", n.GetName(), in)
			}
			used[in] = true
		}
		for _, out := range n.GetOutput() {
			if defined[out] {
				t.Errorf("node %q redefines %q", n.GetName(), out)
			}
			defined[out] = true
		}
	}
	if !defined[OutputName] {
		t.Errorf("no node computes %q", OutputName)
	}
	for name := range defined {
		if !used[name] {
			t.Errorf("%q is computed or stored but never used", name)
		}
	}
	var spec model.Spec
	if err := json.Unmarshal([]byte(metadata(m)["distill.spec"]), &spec); err != nil || spec.Name != c.spec.Name ||
		len(spec.Layers) != len(c.spec.Layers) {
		t.Errorf("metadata distill.spec does not hold the spec (%v)", err)
	}
}

func checkIO(t *testing.T, vs []*onnxpb.ValueInfoProto, name string, dims []int) {
	t.Helper()
	if len(vs) != 1 || vs[0].GetName() != name {
		t.Errorf("graph has %d inputs or outputs where %q is expected", len(vs), name)
		return
	}
	tt := vs[0].GetType().GetTensorType()
	if tt.GetElemType() != int32(onnxpb.TensorProto_FLOAT) {
		t.Errorf("%s: element type %d, want float", name, tt.GetElemType())
	}
	got := tt.GetShape().GetDim()
	if len(got) != len(dims) {
		t.Fatalf("%s: rank %d, want %d", name, len(got), len(dims))
	}
	for i, d := range dims {
		if d < 0 {
			if got[i].GetDimParam() == "" {
				t.Errorf("%s: dimension %d is %v, want the dynamic batch dimension", name, i, got[i])
			}
		} else if got[i].GetDimValue() != int64(d) {
			t.Errorf("%s: dimension %d is %v, want %d", name, i, got[i], d)
		}
	}
}

func metadata(m *onnxpb.ModelProto) map[string]string {
	r := map[string]string{}
	for _, p := range m.GetMetadataProps() {
		r[p.GetKey()] = p.GetValue()
	}
	return r
}

func ops(g *onnxpb.GraphProto) []string {
	var r []string
	for _, n := range g.GetNode() {
		r = append(r, n.GetOpType())
	}
	return r
}

func initializers(g *onnxpb.GraphProto) map[string]*onnxpb.TensorProto {
	r := map[string]*onnxpb.TensorProto{}
	for _, i := range g.GetInitializer() {
		r[i.GetName()] = i
	}
	return r
}

func producer(g *onnxpb.GraphProto, tensor string) *onnxpb.NodeProto {
	for _, n := range g.GetNode() {
		if slices.Contains(n.GetOutput(), tensor) {
			return n
		}
	}
	return nil
}

func findCase(t *testing.T, name string) testCase {
	for _, c := range testCases(t) {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no test case %q", name)
	return testCase{}
}

// TestStructureFP32 checks the nodes and weights of an exported MLP.
func TestStructureFP32(t *testing.T) {
	c := findCase(t, "mlp")
	_, m := c.exportFP32(t)
	g := m.GetGraph()
	if want := []string{"Gemm", "Relu", "Gemm", "Relu", "Gemm"}; !slices.Equal(ops(g), want) {
		t.Fatalf("ops %v, want %v", ops(g), want)
	}
	inits := initializers(g)
	for name, w := range c.w {
		p, ok := inits[name]
		if !ok {
			t.Errorf("no initializer %q", name)
			continue
		}
		if p.GetDataType() != int32(onnxpb.TensorProto_FLOAT) || !slices.Equal(dims(p), w.Shape) {
			t.Errorf("%s: type %d shape %v, want float %v", name, p.GetDataType(), p.GetDims(), w.Shape)
		}
		if !bytes.Equal(p.GetRawData(), f32Bytes(w.Data)) {
			t.Errorf("%s: data differs from the weights", name)
		}
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() == "Gemm" && (attrs(n)["transB"].GetI() != 1 || !strings.HasSuffix(n.GetInput()[1], ".weight")) {
			t.Errorf("Gemm %q: inputs %v, attributes %v", n.GetName(), n.GetInput(), n.GetAttribute())
		}
	}
}

func dims(p *onnxpb.TensorProto) []int {
	var r []int
	for _, d := range p.GetDims() {
		r = append(r, int(d))
	}
	return r
}

// TestStructureInt8 checks the QDQ form of an exported MLP: Q→DQ on each
// layer's input, per-channel int8 weights, int32 biases at scale
// s_in·s_w, and a float32 layer where the model falls back.
func TestStructureInt8(t *testing.T) {
	c := findCase(t, "mlp")
	_, m := c.exportInt8(t)
	g := m.GetGraph()
	want := []string{
		"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "DequantizeLinear", "Gemm", "Relu", // fc1
		"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "DequantizeLinear", "Gemm", "Relu", // fc2
		"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "DequantizeLinear", "Gemm", // fc3
	}
	if !slices.Equal(ops(g), want) {
		t.Fatalf("ops %v, want %v", ops(g), want)
	}
	inits := initializers(g)
	// Each Gemm reads DequantizeLinear outputs: the activation (per
	// tensor, uint8), the weight and the bias (per channel, axis 0).
	inScale := map[string]float32{"fc1": c.q.Input.Scale, "fc2": c.q.Act["fc1"].Scale, "fc3": c.q.Act["fc2"].Scale}
	inZP := map[string]int32{"fc1": c.q.Input.ZeroPoint, "fc2": c.q.Act["fc1"].ZeroPoint, "fc3": c.q.Act["fc2"].ZeroPoint}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Gemm" {
			continue
		}
		layer := n.GetName()
		ql := c.q.Layers[layer]
		x, w, b := producer(g, n.GetInput()[0]), producer(g, n.GetInput()[1]), producer(g, n.GetInput()[2])
		for _, p := range []*onnxpb.NodeProto{x, w, b} {
			if p.GetOpType() != "DequantizeLinear" {
				t.Fatalf("%s: input from %s, want DequantizeLinear", layer, p.GetOpType())
			}
		}
		// Activation.
		q := producer(g, x.GetInput()[0])
		if q.GetOpType() != "QuantizeLinear" || q.GetInput()[1] != x.GetInput()[1] || q.GetInput()[2] != x.GetInput()[2] {
			t.Errorf("%s: activation %v is not quantized and dequantized with the same parameters", layer, x.GetInput())
		}
		s, z := inits[x.GetInput()[1]], inits[x.GetInput()[2]]
		if len(s.GetDims()) != 0 || f32At(s, 0) != inScale[layer] || z.GetDataType() != int32(onnxpb.TensorProto_UINT8) ||
			int32(z.GetRawData()[0]) != inZP[layer] {
			t.Errorf("%s: activation scale %v zero point %v, want scalar %v and uint8 %d", layer, s, z, inScale[layer], inZP[layer])
		}
		// Weight.
		wq, ws, wz := inits[w.GetInput()[0]], inits[w.GetInput()[1]], inits[w.GetInput()[2]]
		if attrs(w)["axis"].GetI() != 0 || attrs(w)["axis"] == nil {
			t.Errorf("%s: weight DequantizeLinear without axis 0", layer)
		}
		if wq.GetDataType() != int32(onnxpb.TensorProto_INT8) || !bytes.Equal(wq.GetRawData(), i8Bytes(ql.Weight)) {
			t.Errorf("%s: weight is not the int8 weights", layer)
		}
		if !bytes.Equal(ws.GetRawData(), f32Bytes(ql.Scale)) || !slices.Equal(dims(ws), []int{len(ql.Scale)}) {
			t.Errorf("%s: weight scales differ", layer)
		}
		if wz.GetDataType() != int32(onnxpb.TensorProto_INT8) || bytes.ContainsFunc(wz.GetRawData(), func(r rune) bool { return r != 0 }) {
			t.Errorf("%s: weight zero points are not int8 zeros", layer)
		}
		// Bias.
		bq, bs := inits[b.GetInput()[0]], inits[b.GetInput()[1]]
		if bq.GetDataType() != int32(onnxpb.TensorProto_INT32) || !bytes.Equal(bq.GetRawData(), i32Bytes(ql.Bias)) {
			t.Errorf("%s: bias is not the int32 biases", layer)
		}
		for ch, sw := range ql.Scale {
			if want := float32(float64(inScale[layer]) * float64(sw)); f32At(bs, ch) != want {
				t.Fatalf("%s: bias scale %d is %v, want s_in·s_w = %v", layer, ch, f32At(bs, ch), want)
			}
		}
	}
	md := metadata(m)
	if md["distill.calibration"] != string(quantize.MinMax) {
		t.Errorf("metadata %v: want the calibration method", md)
	}

	// Falling back: fc2 is a float Gemm on float weights, fed by fc1's
	// float output (no requantization), and fc3 reads fc2's output
	// quantized with fc2's activation parameters.
	c = findCase(t, "mlp_fallback_fc2")
	_, m = c.exportInt8(t)
	g = m.GetGraph()
	want = []string{
		"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "DequantizeLinear", "Gemm", "Relu", // fc1 → float
		"Gemm", "Relu", // fc2 in float32
		"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "DequantizeLinear", "Gemm", // fc3
	}
	if !slices.Equal(ops(g), want) {
		t.Fatalf("with fc2 in float32: ops %v, want %v", ops(g), want)
	}
	inits = initializers(g)
	for _, name := range []string{"fc2.weight", "fc2.bias"} {
		if p := inits[name]; p == nil || p.GetDataType() != int32(onnxpb.TensorProto_FLOAT) || !bytes.Equal(p.GetRawData(), f32Bytes(c.w[name].Data)) {
			t.Errorf("with fc2 in float32: initializer %s is not the float weights", name)
		}
	}
	if s := inits["fc2.out_scale"]; s == nil || f32At(s, 0) != c.q.Act["fc2"].Scale {
		t.Errorf("with fc2 in float32: fc3's input is not quantized with fc2's scale")
	}
	if md := metadata(m); md["distill.fallback"] != "fc2" || md["distill.calibration"] != string(quantize.Percentile) {
		t.Errorf("metadata %v: want fallback fc2, percentile calibration", md)
	}
}

func f32At(p *onnxpb.TensorProto, i int) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(p.GetRawData()[4*i:]))
}

// TestStructureCNN checks the convolution and pooling attributes.
func TestStructureCNN(t *testing.T) {
	c := findCase(t, "mixed")
	_, m := c.exportFP32(t)
	g := m.GetGraph()
	want := []string{"Conv", "Relu", "MaxPool", "Relu", "Conv", "Sigmoid", "Flatten", "Gemm", "Tanh", "Gemm"}
	if !slices.Equal(ops(g), want) {
		t.Fatalf("ops %v, want %v", ops(g), want)
	}
	conv, pool := g.GetNode()[0], g.GetNode()[2]
	if a := attrs(conv); !slices.Equal(intsOf(a["kernel_shape"]), []int{3, 3}) || !slices.Equal(intsOf(a["strides"]), []int{2, 2}) ||
		!slices.Equal(intsOf(a["pads"]), []int{1, 1, 1, 1}) {
		t.Errorf("conv attributes %v", conv.GetAttribute())
	}
	if a := attrs(pool); !slices.Equal(intsOf(a["kernel_shape"]), []int{2, 2}) || !slices.Equal(intsOf(a["strides"]), []int{1, 1}) {
		t.Errorf("max-pool attributes %v", pool.GetAttribute())
	}
	// INT8: the sigmoid and tanh outputs are requantized, as the runtime
	// maps them through uint8 tables.
	_, m = c.exportInt8(t)
	for _, n := range m.GetGraph().GetNode() {
		if n.GetOpType() == "Sigmoid" || n.GetOpType() == "Tanh" {
			var next *onnxpb.NodeProto
			for _, k := range m.GetGraph().GetNode() {
				if slices.Contains(k.GetInput(), n.GetOutput()[0]) {
					next = k
				}
			}
			if next.GetOpType() != "QuantizeLinear" {
				t.Errorf("%s output goes to %s, want QuantizeLinear", n.GetOpType(), next.GetOpType())
			}
		}
	}
}

// TestWriteFile checks the file variants and that exports are
// deterministic.
func TestWriteFile(t *testing.T) {
	c := findCase(t, "cnn")
	dir := t.TempDir()
	fb, _ := c.exportFP32(t)
	qb, _ := c.exportInt8(t)
	if again, _ := c.exportInt8(t); !bytes.Equal(again, qb) {
		t.Error("two exports of the same model differ")
	}
	fp, qp := filepath.Join(dir, "sub", "cnn.onnx"), filepath.Join(dir, "cnn_int8.onnx")
	if err := WriteFileFP32(fp, c.spec, c.w); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileInt8(qp, c.q); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]byte{fp: fb, qp: qb} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what Export writes", path)
		}
	}
	if len(qb) >= len(fb) {
		t.Errorf("INT8 model is %d bytes, FP32 %d: the int8 weights should make it smaller", len(qb), len(fb))
	}
	// A failed export leaves the file as it was.
	if err := WriteFileFP32(fp, c.spec, model.Weights{}); err == nil {
		t.Fatal("exporting without weights succeeded")
	}
	if got, _ := os.ReadFile(fp); !bytes.Equal(got, fb) {
		t.Error("a failed export changed the file")
	}
}

// TestExportErrors checks that what cannot be exported is reported with
// what is wrong.
func TestExportErrors(t *testing.T) {
	c := findCase(t, "mlp")
	var buf bytes.Buffer
	w := c.w.Clone()
	delete(w, "fc2.bias")
	if err := ExportFP32(&buf, c.spec, w); err == nil || !strings.Contains(err.Error(), "fc2.bias") {
		t.Errorf("missing bias: got %v, want an error naming fc2.bias", err)
	}
	bad := c.spec
	bad.Classes = 7
	if err := ExportFP32(&buf, bad, c.w); err == nil || !strings.Contains(err.Error(), "logits") {
		t.Errorf("wrong class count: got %v", err)
	}
	if err := ExportInt8(&buf, nil); err == nil {
		t.Error("nil model: no error")
	}
	q := *c.q
	q.Layers = maps.Clone(c.q.Layers)
	l := q.Layers["fc1"]
	l.Scale = l.Scale[:3]
	q.Layers["fc1"] = l
	if err := ExportInt8(&buf, &q); err == nil || !strings.Contains(err.Error(), "fc1") {
		t.Errorf("truncated scales: got %v, want an error naming fc1", err)
	}
	if buf.Len() != 0 {
		t.Errorf("failed exports wrote %d bytes", buf.Len())
	}
}
