package onnx

import (
	"bytes"
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx/onnxpb"
	"github.com/distill-dev/distill/quantize"
)

// graphCases are backendtest's graph networks (residual adds, folded and
// unfolded batchnorms, grouped and depthwise convs, the new pools and
// activations) with random weights, non-trivial batchnorm statistics and
// random inputs.
func graphCases(t testing.TB) []testCase {
	t.Helper()
	var cases []testCase
	for i, spec := range backendtest.GraphSpecs(t) {
		seed := uint64(100 + i)
		w, err := spec.Init(seed)
		if err != nil {
			t.Fatal(err)
		}
		backendtest.RandomizeBatchNorm(spec, w, seed)
		rng := rand.New(rand.NewPCG(seed, 5))
		const n = 64
		cases = append(cases, testCase{name: spec.Name, spec: spec, w: w, x: randNormal(rng, n*model.Numel(spec.Input)), n: n})
	}
	return cases
}

// reference runs the float64 reference on the network as written (its
// batchnorms unfolded, in eval mode), as float32 logits.
func (c testCase) reference(t testing.TB) []float32 {
	t.Helper()
	ref, err := backendtest.ReferenceForward(c.spec, c.w, c.x, c.n, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(ref))
	for i, v := range ref {
		out[i] = float32(v)
	}
	return out
}

// oursFP32 runs package infer's FP32 program on the inputs.
func (c testCase) oursFP32(t testing.TB) []float32 {
	t.Helper()
	p, err := infer.Compile(c.spec, c.w)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, c.n*c.spec.Classes)
	if err := p.Forward(c.x, c.n, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGraphsFP32 evaluates the exported graph networks with the Go
// interpreter and compares them with the float64 reference, which runs
// the batchnorms unfolded, and with package infer.
func TestGraphsFP32(t *testing.T) {
	for _, c := range graphCases(t) {
		t.Run(c.name, func(t *testing.T) {
			_, m := c.exportFP32(t)
			checkWellFormed(t, c, m)
			got, err := run(m, c.x, c.inputShape())
			if err != nil {
				t.Fatalf("FP32 graph: %v", err)
			}
			checkFP32(t, "FP32 graph vs float64 reference", got, c.reference(t), c.spec.Classes)
			checkFP32(t, "FP32 graph vs runtime", got, c.oursFP32(t), c.spec.Classes)
		})
	}
}

// graphCase returns the graph case called name.
func graphCase(t *testing.T, name string) testCase {
	t.Helper()
	for _, c := range graphCases(t) {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no graph case %q", name)
	return testCase{}
}

// node returns the node called name.
func nodeNamed(t *testing.T, g *onnxpb.GraphProto, name string) *onnxpb.NodeProto {
	t.Helper()
	for _, n := range g.GetNode() {
		if n.GetName() == name {
			return n
		}
	}
	t.Fatalf("no node %q among %v", name, ops(g))
	return nil
}

// TestStructureGraphFP32 checks how the graph kinds are exported: folded
// batchnorms, the add's two inputs, grouped and depthwise convs, the
// pools' attributes, relu6 as Clip with input bounds, silu as x·σ(x) and
// a batchnorm that cannot be folded as BatchNormalization.
func TestStructureGraphFP32(t *testing.T) {
	c := graphCase(t, "resnet")
	_, m := c.exportFP32(t)
	g := m.GetGraph()
	ispec, iw, err := model.Inference(c.spec, c.w)
	if err != nil {
		t.Fatal(err)
	}
	adds := 0
	for _, n := range g.GetNode() {
		switch n.GetOpType() {
		case "BatchNormalization":
			t.Errorf("resnet: batchnorm %q is exported, want it folded into its conv", n.GetName())
		case "Add":
			adds++
		}
	}
	if adds != 2 {
		t.Errorf("resnet: %d Add nodes, want one per block (2)", adds)
	}
	inits := initializers(g)
	for _, p := range []string{"conv1.weight", "conv1.bias", "layer2.0.downsample.0.weight", "layer2.0.downsample.0.bias"} {
		if got := inits[p]; got == nil || !bytes.Equal(got.GetRawData(), f32Bytes(iw[p].Data)) {
			t.Errorf("resnet: initializer %s is not the folded weights", p)
		}
	}
	// The block's add reads the shortcut (the stem's relu) and the
	// second conv of the block.
	add := nodeNamed(t, g, "layer1.0.add")
	_, ai, _ := ispec.Layer("layer1.0.add")
	insIdx, _ := ispec.InputIndices()
	for k, j := range insIdx[ai] {
		if p := producer(g, add.GetInput()[k]); p == nil || p.GetName() != ispec.Layers[j].Name {
			t.Errorf("resnet: layer1.0.add input %d comes from %v, want %q", k, p.GetName(), ispec.Layers[j].Name)
		}
	}

	c = graphCase(t, "mixed")
	_, m = c.exportFP32(t)
	g = m.GetGraph()
	if a := attrs(nodeNamed(t, g, "gconv")); a["group"].GetI() != 2 {
		t.Errorf("gconv: group %v, want 2", a["group"])
	}
	if bias := nodeNamed(t, g, "gconv").GetInput()[2]; !bytes.Equal(initializers(g)[bias].GetRawData(), f32Bytes(c.w["gconv.bias"].Data)) {
		t.Errorf("gconv: bias %q is not the layer's bias", bias)
	}
	pool := attrs(nodeNamed(t, g, "pool"))
	if !slices.Equal(intsOf(pool["kernel_shape"]), []int{3, 3}) || !slices.Equal(intsOf(pool["strides"]), []int{2, 2}) ||
		!slices.Equal(intsOf(pool["pads"]), []int{1, 1, 1, 1}) || pool["count_include_pad"].GetI() != 1 {
		t.Errorf("avgpool attributes %v", nodeNamed(t, g, "pool").GetAttribute())
	}
	clip := nodeNamed(t, g, "act_g")
	if clip.GetOpType() != "Clip" || len(clip.GetInput()) != 3 ||
		f32At(initializers(g)[clip.GetInput()[1]], 0) != 0 || f32At(initializers(g)[clip.GetInput()[2]], 0) != 6 {
		t.Errorf("relu6: %s with inputs %v, want Clip between initializers 0 and 6", clip.GetOpType(), clip.GetInput())
	}
	silu := nodeNamed(t, g, "act1")
	sig := producer(g, silu.GetInput()[1])
	if silu.GetOpType() != "Mul" || sig.GetOpType() != "Sigmoid" || sig.GetInput()[0] != silu.GetInput()[0] {
		t.Errorf("silu: %s(%v), want Mul(x, Sigmoid(x))", silu.GetOpType(), silu.GetInput())
	}
	bn := nodeNamed(t, g, "bn_sum")
	if bn.GetOpType() != "BatchNormalization" || attrs(bn)["epsilon"].GetF() != 1e-5 {
		t.Errorf("bn_sum: %s %v, want BatchNormalization with epsilon 1e-5", bn.GetOpType(), bn.GetAttribute())
	}
	for k, suffix := range []string{".weight", ".bias", ".running_mean", ".running_var"} {
		if in := initializers(g)[bn.GetInput()[k+1]]; in == nil || !bytes.Equal(in.GetRawData(), f32Bytes(c.w["bn_sum"+suffix].Data)) {
			t.Errorf("bn_sum: input %d is not %s", k+1, "bn_sum"+suffix)
		}
	}
	if p := producer(g, bn.GetInput()[0]); p.GetOpType() != "Add" {
		t.Errorf("bn_sum reads %s, want the Add", p.GetOpType())
	}
	for _, n := range g.GetNode() {
		if n.GetName() == "bn1" {
			t.Errorf("bn1 is exported as %s, want it folded into fc1", n.GetOpType())
		}
	}

	c = graphCase(t, "mobile")
	_, m = c.exportFP32(t)
	shapes, _ := c.spec.Shapes()
	depthwise := 0
	for i, l := range c.spec.Layers {
		if l.Kind == model.KindConv2D && l.ConvGroups() > 1 {
			depthwise++
			if in := c.spec.InputShape(shapes, i); l.ConvGroups() != in[0] || attrs(nodeNamed(t, m.GetGraph(), l.Name))["group"].GetI() != int64(in[0]) {
				t.Errorf("mobile: %s has %d groups for %d channels; exported group %v", l.Name, l.ConvGroups(), in[0], attrs(nodeNamed(t, m.GetGraph(), l.Name))["group"])
			}
		}
	}
	if depthwise == 0 {
		t.Error("mobile has no depthwise conv: the fixture changed")
	}
}

// quantizeCase quantizes c's network (min-max calibration on 256 random
// inputs), for the INT8 checks.
func quantizeCase(t testing.TB, c testCase) testCase {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(c.name)), 9))
	calib := make([][]float32, 256)
	for k := range calib {
		calib[k] = randNormal(rng, model.Numel(c.spec.Input))
	}
	q, err := quantize.Quantize(context.Background(), c.spec, c.w, quantize.FromSlices(calib, 64), quantize.Config{Method: quantize.MinMax})
	if err != nil {
		t.Fatalf("%s: quantize: %v", c.name, err)
	}
	c.q = q
	return c
}

// oursInt8 runs the INT8 runtime on the inputs.
func (c testCase) oursInt8(t testing.TB) []float32 {
	t.Helper()
	p, err := c.q.Compile()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, c.n*c.spec.Classes)
	if err := p.Forward(c.x, c.n, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// graphInt8Cases are the graph cases quantized, and the resnet with two
// layers kept in float32: the stem conv (whose ReLU output feeds a
// shortcut and a conv) and the conv before the first add (a float32
// input of an INT8 add).
func graphInt8Cases(t testing.TB) []testCase {
	t.Helper()
	var cases []testCase
	for _, c := range graphCases(t) {
		cases = append(cases, quantizeCase(t, c))
		if c.name != "resnet" {
			continue
		}
		fb := quantizeCase(t, c)
		_, fw, err := infer.Fold(c.spec, c.w)
		if err != nil {
			t.Fatal(err)
		}
		q := *fb.q
		q.Layers, q.Float = maps.Clone(q.Layers), maps.Clone(q.Float)
		q.Fallback = []string{"conv1", "layer1.0.conv2"}
		for _, f := range q.Fallback {
			if _, ok := q.Layers[f]; !ok {
				t.Fatalf("resnet has no quantized layer %q: the fixture changed", f)
			}
			delete(q.Layers, f)
			q.Float[f+".weight"], q.Float[f+".bias"] = fw[f+".weight"], fw[f+".bias"]
		}
		fb.name, fb.q = "resnet_fallback", &q
		cases = append(cases, fb)
	}
	return cases
}

// checkInt8Step fails unless got matches the INT8 runtime's logits want
// to within one quantization step of the logits (the last layer's
// activation scale) and agrees on the class of ≥ 99% of the examples.
func checkInt8Step(t *testing.T, what string, got, want []float32, c testCase) {
	t.Helper()
	a := compare(got, want, c.spec.Classes)
	step := float64(c.q.Act[c.q.Spec.Layers[len(c.q.Spec.Layers)-1].Name].Scale)
	t.Logf("%s: argmax agreement %.4f, max |Δ| %.3g, mean |Δ| %.3g (logits up to %.3g, step %.3g)", what, a.argmax, a.maxDiff, a.meanDiff, a.scale, step)
	if a.argmax < 0.99 {
		t.Errorf("%s: argmax agrees on %.2f%% of the examples, want ≥ 99%%", what, 100*a.argmax)
	}
	if a.maxDiff > step {
		t.Errorf("%s: logits differ by up to %.3g, more than a quantization step (%.3g)", what, a.maxDiff, step)
	}
}

// TestGraphsInt8 evaluates the QDQ exports of the quantized graph
// networks with the Go interpreter and compares them with the INT8
// runtime.
func TestGraphsInt8(t *testing.T) {
	for _, c := range graphInt8Cases(t) {
		t.Run(c.name, func(t *testing.T) {
			_, m := c.exportInt8(t)
			checkWellFormed(t, c, m)
			got, err := run(m, c.x, c.inputShape())
			if err != nil {
				t.Fatalf("QDQ graph: %v", err)
			}
			checkInt8Step(t, "QDQ graph vs runtime INT8", got, c.oursInt8(t), c)
		})
	}
}

// TestFusionOnlyWithSoleReader exports a conv whose output feeds both a
// relu and an add: the add must read the conv's output before the relu,
// so the relu is its own node and the conv is not fused with it (in
// INT8 the conv's output is requantized before the relu, as the runtime
// does).
func TestFusionOnlyWithSoleReader(t *testing.T) {
	spec := model.Spec{Name: "shared", Input: []int{2, 5, 5}, Classes: 3, Layers: []model.Layer{
		{Name: "c", Kind: model.KindConv2D, Out: 3, Kernel: 3, Padding: 1},
		{Name: "r", Kind: model.KindReLU},
		{Name: "d", Kind: model.KindConv2D, Out: 3, Kernel: 1},
		{Name: "s", Kind: model.KindAdd, Inputs: []string{"c", "d"}},
		{Name: "flatten", Kind: model.KindFlatten},
		{Name: "fc", Kind: model.KindLinear, Out: 3},
	}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(3)
	if err != nil {
		t.Fatal(err)
	}
	c := testCase{name: spec.Name, spec: spec, w: w, x: randNormal(rand.New(rand.NewPCG(3, 4)), 40*model.Numel(spec.Input)), n: 40}
	c = quantizeCase(t, c)

	_, m := c.exportFP32(t)
	g := m.GetGraph()
	if p := producer(g, nodeNamed(t, g, "s").GetInput()[0]); p.GetName() != "c" || p.GetOpType() != "Conv" {
		t.Errorf("FP32: the add reads %s %q, want the conv's output", p.GetOpType(), p.GetName())
	}
	got, err := run(m, c.x, c.inputShape())
	if err != nil {
		t.Fatal(err)
	}
	checkFP32(t, "FP32 graph vs float64 reference", got, c.reference(t), c.spec.Classes)

	_, m = c.exportInt8(t)
	g = m.GetGraph()
	// c → Q → DQ (c's parameters), read by the relu and the add.
	dq := producer(g, nodeNamed(t, g, "r").GetInput()[0])
	if dq.GetOpType() != "DequantizeLinear" || producer(g, producer(g, dq.GetInput()[0]).GetInput()[0]).GetName() != "c" {
		t.Errorf("INT8: the relu reads %s, want the conv's requantized output", dq.GetOpType())
	}
	if a := nodeNamed(t, g, "s").GetInput()[0]; a != dq.GetOutput()[0] {
		t.Errorf("INT8: the add reads %q, want the conv's requantized output %q", a, dq.GetOutput()[0])
	}
	got, err = run(m, c.x, c.inputShape())
	if err != nil {
		t.Fatal(err)
	}
	checkInt8Step(t, "QDQ graph vs runtime INT8", got, c.oursInt8(t), c)
}

// TestStructureGraphInt8 checks the QDQ form of the graph kinds: an add
// between two DequantizeLinear nodes and requantized with its own
// parameters, a float32 (fallback) conv quantized with its parameters
// before the add, and per-channel weights of a depthwise conv.
func TestStructureGraphInt8(t *testing.T) {
	var c testCase
	for _, k := range graphInt8Cases(t) {
		if k.name == "resnet_fallback" {
			c = k
		}
	}
	_, m := c.exportInt8(t)
	g := m.GetGraph()
	inits := initializers(g)
	add := nodeNamed(t, g, "layer1.0.add")
	for k, in := range add.GetInput() {
		if p := producer(g, in); p.GetOpType() != "DequantizeLinear" {
			t.Errorf("add input %d comes from %s, want DequantizeLinear", k, p.GetOpType())
		}
	}
	// The float32 conv2 feeding the add is quantized with its own
	// parameters first.
	found := false
	for _, in := range add.GetInput() {
		q := producer(g, producer(g, in).GetInput()[0])
		if q.GetOpType() == "QuantizeLinear" && producer(g, q.GetInput()[0]).GetName() == "layer1.0.conv2" {
			found = true
			if f32At(inits[q.GetInput()[1]], 0) != c.q.Act["layer1.0.conv2"].Scale {
				t.Errorf("the float conv2 is quantized with scale %v, want its own %v", f32At(inits[q.GetInput()[1]], 0), c.q.Act["layer1.0.conv2"].Scale)
			}
		}
	}
	if !found {
		t.Errorf("the add's inputs %v: none is the float conv2 quantized", add.GetInput())
	}
	var next *onnxpb.NodeProto
	for _, n := range g.GetNode() {
		if slices.Contains(n.GetInput(), add.GetOutput()[0]) {
			next = n
		}
	}
	if next.GetOpType() != "QuantizeLinear" || f32At(inits[next.GetInput()[1]], 0) != c.q.Act["layer1.0.add"].Scale ||
		int32(inits[next.GetInput()[2]].GetRawData()[0]) != c.q.Act["layer1.0.add"].ZeroPoint {
		t.Errorf("the add's output goes to %s %v, want QuantizeLinear with the add's parameters", next.GetOpType(), next.GetInput())
	}
	for _, f := range c.q.Fallback {
		conv := nodeNamed(t, g, f)
		if w := inits[conv.GetInput()[1]]; w == nil || w.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
			t.Errorf("fallback %s: weight %q is not a float32 initializer", f, conv.GetInput()[1])
		}
	}

	for _, k := range graphInt8Cases(t) {
		if k.name == "mobile" {
			c = k
		}
	}
	_, m = c.exportInt8(t)
	g = m.GetGraph()
	inits = initializers(g)
	dw := 0
	for _, l := range c.q.Spec.Layers {
		if l.Kind != model.KindConv2D || l.ConvGroups() == 1 {
			continue
		}
		dw++
		wdq := producer(g, nodeNamed(t, g, l.Name).GetInput()[1])
		if wdq.GetOpType() != "DequantizeLinear" || attrs(wdq)["axis"] == nil || attrs(wdq)["axis"].GetI() != 0 ||
			!bytes.Equal(inits[wdq.GetInput()[1]].GetRawData(), f32Bytes(c.q.Layers[l.Name].Scale)) {
			t.Errorf("%s: weight from %s %v, want per-channel (axis 0) DequantizeLinear with the layer's scales", l.Name, wdq.GetOpType(), wdq.GetAttribute())
		}
		if got := attrs(nodeNamed(t, g, l.Name))["group"].GetI(); got != int64(l.ConvGroups()) {
			t.Errorf("%s: group %d, want %d", l.Name, got, l.ConvGroups())
		}
	}
	if dw == 0 {
		t.Error("mobile has no grouped conv: the fixture changed")
	}
}

// TestGraphExportErrors checks that a graph network whose batchnorm
// statistics are missing is reported with the tensor that is missing.
func TestGraphExportErrors(t *testing.T) {
	c := graphCase(t, "mixed")
	w := c.w.Clone()
	delete(w, "bn_sum.running_var")
	var buf bytes.Buffer
	if err := ExportFP32(&buf, c.spec, w); err == nil || !strings.Contains(err.Error(), "bn_sum.running_var") {
		t.Errorf("missing running variance: got %v, want an error naming bn_sum.running_var", err)
	}
	if buf.Len() != 0 {
		t.Errorf("a failed export wrote %d bytes", buf.Len())
	}
}
