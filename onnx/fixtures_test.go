package onnx

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx/onnxpb"
	"github.com/distill-dev/distill/quantize"
)

// testCase is a network exported in float32 and INT8, with inputs.
type testCase struct {
	name string
	spec model.Spec
	w    model.Weights
	q    *quantize.Model
	x    []float32 // n examples
	n    int
}

// mustSpec panics on a builder error (the fixtures are fixed).
func mustSpec(s model.Spec, err error) model.Spec {
	if err != nil {
		panic(err)
	}
	return s
}

// mixedSpec has what the builders do not make: a ReLU after a max-pool
// (not fused), sigmoid and tanh, dropout between a layer and its ReLU, a
// strided padded convolution.
func mixedSpec() model.Spec {
	return model.Spec{Name: "mixed", Input: []int{2, 9, 9}, Classes: 4, Layers: []model.Layer{
		{Name: "conv1", Kind: model.KindConv2D, Out: 6, Kernel: 3, Stride: 2, Padding: 1},
		{Name: "drop", Kind: model.KindDropout, Rate: 0.2},
		{Name: "relu", Kind: model.KindReLU},
		{Name: "pool", Kind: model.KindMaxPool, Kernel: 2, Stride: 1},
		{Name: "relu2", Kind: model.KindReLU},
		{Name: "conv2", Kind: model.KindConv2D, Out: 5, Kernel: 2},
		{Name: "sig", Kind: model.KindSigmoid},
		{Name: "flatten", Kind: model.KindFlatten},
		{Name: "fc1", Kind: model.KindLinear, Out: 12},
		{Name: "tanh", Kind: model.KindTanh},
		{Name: "fc2", Kind: model.KindLinear, Out: 4},
	}}
}

// testCases builds the networks the tests export: MLPs and CNNs with
// random weights, quantized by calibration on random inputs, some with
// layers kept in float32.
func testCases(t testing.TB) []testCase {
	t.Helper()
	type def struct {
		name     string
		spec     model.Spec
		fallback []string
		method   quantize.Method
	}
	mlp := mustSpec(model.MLP(model.MLPConfig{Name: "mlp", Input: []int{20}, Hidden: []int{32, 24}, Classes: 6, Dropout: 0.1}))
	mlpTanh := mustSpec(model.MLP(model.MLPConfig{Name: "mlp_tanh", Input: []int{4, 5}, Hidden: []int{16}, Classes: 5,
		Activation: model.KindTanh, InputDropout: 0.2}))
	cnn := mustSpec(model.CNN(model.CNNConfig{Name: "cnn", Input: []int{1, 12, 12}, Classes: 10, Hidden: []int{24},
		Conv: []model.ConvBlock{{Channels: 8, Kernel: 3, Padding: 1, Pool: 2}, {Channels: 12, Kernel: 3, Stride: 2, Padding: 1}}}))
	mixed := mixedSpec()
	if err := mixed.Validate(); err != nil {
		t.Fatal(err)
	}
	defs := []def{
		{name: "mlp", spec: mlp, method: quantize.MinMax},
		{name: "mlp_fallback_fc2", spec: mlp, fallback: []string{"fc2"}, method: quantize.Percentile},
		{name: "mlp_tanh", spec: mlpTanh, method: quantize.MSE},
		{name: "cnn", spec: cnn, method: quantize.MinMax},
		{name: "cnn_fallback_conv1_fc2", spec: cnn, fallback: []string{"conv1", "fc2"}, method: quantize.Entropy},
		{name: "mixed", spec: mixed, method: quantize.MinMax},
	}
	var cases []testCase
	for i, d := range defs {
		seed := uint64(i + 1)
		w, err := d.spec.Init(seed)
		if err != nil {
			t.Fatal(err)
		}
		in := model.Numel(d.spec.Input)
		rng := rand.New(rand.NewPCG(seed, 77))
		calib := make([][]float32, 256)
		for k := range calib {
			calib[k] = randNormal(rng, in)
		}
		q, err := quantize.Quantize(context.Background(), d.spec, w, quantize.FromSlices(calib, 64), quantize.Config{Method: d.method})
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		for _, f := range d.fallback {
			delete(q.Layers, f)
			q.Float[f+".weight"] = w[f+".weight"]
			q.Float[f+".bias"] = w[f+".bias"]
			q.Fallback = append(q.Fallback, f)
		}
		const n = 300
		cases = append(cases, testCase{name: d.name, spec: d.spec, w: w, q: q, x: randNormal(rng, n*in), n: n})
	}
	return cases
}

func randNormal(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// exportFP32 exports and decodes the float32 model.
func (c testCase) exportFP32(t testing.TB) ([]byte, *onnxpb.ModelProto) {
	t.Helper()
	var buf bytes.Buffer
	if err := ExportFP32(&buf, c.spec, c.w); err != nil {
		t.Fatalf("%s: ExportFP32: %v", c.name, err)
	}
	return buf.Bytes(), decode(t, buf.Bytes())
}

// exportInt8 exports and decodes the QDQ model.
func (c testCase) exportInt8(t testing.TB) ([]byte, *onnxpb.ModelProto) {
	t.Helper()
	var buf bytes.Buffer
	if err := ExportInt8(&buf, c.q); err != nil {
		t.Fatalf("%s: ExportInt8: %v", c.name, err)
	}
	return buf.Bytes(), decode(t, buf.Bytes())
}

func decode(t testing.TB, b []byte) *onnxpb.ModelProto {
	t.Helper()
	m := new(onnxpb.ModelProto)
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatalf("decode exported model: %v", err)
	}
	return m
}

// ours runs package infer's FP32 and INT8 programs on the inputs.
func (c testCase) ours(t testing.TB) (fp32, int8 []float32) {
	t.Helper()
	fp, err := infer.Compile(c.spec, c.w)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := c.q.Compile()
	if err != nil {
		t.Fatal(err)
	}
	fp32 = make([]float32, c.n*c.spec.Classes)
	int8 = make([]float32, c.n*c.spec.Classes)
	if err := fp.Forward(c.x, c.n, fp32); err != nil {
		t.Fatal(err)
	}
	if err := qp.Forward(c.x, c.n, int8); err != nil {
		t.Fatal(err)
	}
	return fp32, int8
}

// agreement compares two batches of logits: the fraction of examples with
// the same argmax, the largest absolute difference, the mean absolute
// difference and the largest absolute logit of want.
type agreement struct {
	argmax, maxDiff, meanDiff, scale float64
}

func compare(got, want []float32, classes int) agreement {
	var a agreement
	n := len(want) / classes
	same := 0
	for i := range n {
		g, w := got[i*classes:(i+1)*classes], want[i*classes:(i+1)*classes]
		if argmax(g) == argmax(w) {
			same++
		}
		for c := range w {
			d := math.Abs(float64(g[c] - w[c]))
			a.maxDiff = max(a.maxDiff, d)
			a.meanDiff += d
			a.scale = max(a.scale, math.Abs(float64(w[c])))
		}
	}
	a.argmax = float64(same) / float64(n)
	a.meanDiff /= float64(len(want))
	return a
}

func argmax(v []float32) int {
	return slices.Index(v, slices.Max(v))
}

// checkFP32 fails unless got matches want to float32 rounding.
func checkFP32(t *testing.T, what string, got, want []float32, classes int) {
	t.Helper()
	a := compare(got, want, classes)
	t.Logf("%s: max |Δ| %.3g (logits up to %.3g), argmax agreement %.4f", what, a.maxDiff, a.scale, a.argmax)
	if a.maxDiff > 1e-4*max(1, a.scale) {
		t.Errorf("%s: logits differ by up to %.3g (logits up to %.3g), want ≤ 1e-4 relative", what, a.maxDiff, a.scale)
	}
}

// checkInt8 fails unless got agrees with want as two INT8 engines with
// the same quantization parameters do: the same class for ≥ 99% of the
// examples and logits within a few quantization steps.
func checkInt8(t *testing.T, what string, got, want []float32, classes int) {
	t.Helper()
	a := compare(got, want, classes)
	t.Logf("%s: argmax agreement %.4f, max |Δ| %.3g, mean |Δ| %.3g (logits up to %.3g)", what, a.argmax, a.maxDiff, a.meanDiff, a.scale)
	if a.argmax < 0.99 {
		t.Errorf("%s: argmax agrees on %.2f%% of the examples, want ≥ 99%%", what, 100*a.argmax)
	}
	if a.maxDiff > 0.05*a.scale || a.meanDiff > 0.005*a.scale {
		t.Errorf("%s: logits differ by up to %.3g, %.3g on average (logits up to %.3g), want ≤ 5%% and 0.5%%", what, a.maxDiff, a.meanDiff, a.scale)
	}
}
