//go:build cgo

package ort

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/safetensors"
	"github.com/distill-dev/distill/transfer"
)

// The PyTorch-made teacher of teacher/testdata/pytorch (make_teachers.py
// writes it): its ONNX export, its state_dict, and inputs with
// PyTorch's logits.
var pytorchDir = filepath.Join("..", "testdata", "pytorch")

// pytorchSpec is the same network in distill's terms, as the script
// says.
func pytorchSpec(t testing.TB) model.Spec {
	spec, err := model.Blocks(model.BlocksConfig{Name: "resnet", Input: []int{1, 28, 28},
		Stem:    model.StemConfig{Channels: 8},
		Stages:  []model.Stage{{Channels: 8}, {Channels: 16, Stride: 2}},
		Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func pytorchIO(t testing.TB) (x, logits []float32, n int) {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join(pytorchDir, "io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) []float32 {
		v, err := f.Tensors[name].Float32()
		if err != nil {
			t.Fatalf("io.safetensors %q: %v", name, err)
		}
		return v
	}
	x, logits = get("x"), get("logits")
	return x, logits, f.Tensors["x"].Shape[0]
}

// pytorchBlockTensors are the ONNX names PyTorch's exporter gives block
// layer1.0's residual add and its output (the ReLU after the add, the
// block's last Relu), found by their module path.
func pytorchBlockTensors(t testing.TB, path string) (add, out string) {
	t.Helper()
	info, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range info.Intermediate {
		if !strings.HasPrefix(x.Name, "/layer1/layer1.0/") {
			continue
		}
		switch x.Op {
		case "Add":
			add = x.Name
		case "Relu":
			out = x.Name
		}
	}
	if add == "" || out == "" {
		t.Fatalf("no Add and Relu under /layer1/layer1.0/ among %+v", info.Intermediate)
	}
	return add, out
}

// TestPyTorchONNX opens the ONNX model PyTorch exported: its logits are
// PyTorch's, and its block output and residual sum, read by their ONNX
// names, are those of the same network loaded from the state_dict into
// distill (float64 reference).
func TestPyTorchONNX(t *testing.T) {
	needORT(t)
	path := filepath.Join(pytorchDir, "resnet.onnx")
	add, out := pytorchBlockTensors(t, path)
	t.Logf("layer1.0's add is %q, its output %q", add, out)
	tc, err := Open(path, Options{Features: []string{out, add}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	spec := pytorchSpec(t)
	s := tc.Spec()
	if !slices.Equal(s.Input, spec.Input) || s.Classes != spec.Classes {
		t.Errorf("ORT teacher spec: input %v, %d classes; want %v, %d", s.Input, s.Classes, spec.Input, spec.Classes)
	}
	x, want, n := pytorchIO(t)
	logits := make([]float32, n*spec.Classes)
	shapes, _ := s.Shapes()
	feats := [][]float32{make([]float32, n*model.Numel(shapes[0])), make([]float32, n*model.Numel(shapes[1]))}
	if err := tc.ForwardFeatures(x, n, []string{out, add}, logits, feats); err != nil {
		t.Fatal(err)
	}
	near(t, "ORT teacher vs PyTorch", logits, f64(want), 1e-4)

	w, err := model.LoadStateDict(filepath.Join(pytorchDir, "resnet.safetensors"), spec, model.StateDictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refLogits, refFeats, err := backendtest.ReferenceLayers(spec, w, x, n, nil, []string{"layer1.0", "layer1.0.add"})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "ORT teacher vs the state_dict in distill (logits)", logits, refLogits, 1e-4)
	near(t, "block output "+out+" vs layer1.0", feats[0], refFeats[0], 1e-4)
	near(t, "residual sum "+add+" vs layer1.0.add", feats[1], refFeats[1], 1e-4)
}

// pytorchData is a dataset of the PyTorch inputs and copies of them
// scaled and shifted, so that a set spans several teacher batches.
func pytorchData(t testing.TB, copies int) *data.Dataset {
	x, _, n := pytorchIO(t)
	d := &data.Dataset{Name: "pytorch-io", Shape: []int{1, 28, 28}, Classes: 10}
	for c := range copies {
		for _, v := range x {
			d.X = append(d.X, v*float32(1+c)/2+float32(c)/10)
		}
		for i := range n {
			d.Y = append(d.Y, int32(i%10))
		}
	}
	return d
}

// TestTransferSetMatchesStateDict labels a transfer set (logits and a
// block's output) through the ORT teacher and through distill's FP32
// engine running the same network loaded from its state_dict; the two
// sets agree within 1e-5.
func TestTransferSetMatchesStateDict(t *testing.T) {
	needORT(t)
	path := filepath.Join(pytorchDir, "resnet.onnx")
	_, out := pytorchBlockTensors(t, path)
	tc, err := Open(path, Options{Features: []string{out}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	spec := pytorchSpec(t)
	w, err := model.LoadStateDict(filepath.Join(pytorchDir, "resnet.safetensors"), spec, model.StateDictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := infer.Compile(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	ds := pytorchData(t, 5) // 40 examples
	build := func(name string, m transfer.Forwarder, fm transfer.LayerForwarder, fspec model.Spec, layer string) *transfer.Set {
		tt := transfer.Teacher{Name: name, SHA256: strings.Repeat("0", 64), Model: m}
		if tt.Features, tt.FeatureFn, err = transfer.LayerFeatures(fm, fspec, []string{layer}); err != nil {
			t.Fatal(err)
		}
		set, err := transfer.Build(context.Background(), transfer.BuildSpec{Data: ds, BatchSize: 16, Dir: t.TempDir()}, []transfer.Teacher{tt}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	viaORT := build("onnx", tc, tc, tc.Spec(), out)
	viaEngine := build("state_dict", engine, referenceLayers{spec, w}, spec, "layer1.0")

	rows := viaORT.Len()
	if rows != viaEngine.Len() || rows != ds.Len() {
		t.Fatalf("sets of %d and %d rows, want %d", rows, viaEngine.Len(), ds.Len())
	}
	idx := make([]int, rows)
	for i := range idx {
		idx[i] = i
	}
	a, b := make([]float32, rows*10), make([]float32, rows*10)
	if err := viaORT.Logits(idx, nil, rows, a); err != nil {
		t.Fatal(err)
	}
	if err := viaEngine.Logits(idx, nil, rows, b); err != nil {
		t.Fatal(err)
	}
	near(t, "transfer-set logits, ORT vs state_dict in infer FP32", a, f64(b), 1e-5)

	fa, err := viaORT.FeatureTeacher(1, 0, tc.Spec())
	if err != nil {
		t.Fatal(err)
	}
	fb, err := viaEngine.FeatureTeacher(1, 0, spec)
	if err != nil {
		t.Fatal(err)
	}
	size := 8 * 28 * 28
	ga, gb := make([]float32, rows*size), make([]float32, rows*size)
	if err := fa.Features(idx, nil, rows, []string{out}, nil, [][]float32{ga}); err != nil {
		t.Fatal(err)
	}
	if err := fb.Features(idx, nil, rows, []string{"layer1.0"}, nil, [][]float32{gb}); err != nil {
		t.Fatal(err)
	}
	near(t, "transfer-set block outputs, ORT vs state_dict in the reference", ga, f64(gb), 1e-5)
}

// referenceLayers gives layer outputs of distill's float64 reference as
// float32 (infer's Program has no ForwardFeatures).
type referenceLayers struct {
	spec model.Spec
	w    model.Weights
}

func (r referenceLayers) ForwardFeatures(x []float32, n int, layers []string, logits []float32, feats [][]float32) error {
	l, f, err := backendtest.ReferenceLayers(r.spec, r.w, x, n, nil, layers)
	if err != nil {
		return err
	}
	for i := range logits {
		logits[i] = float32(l[i])
	}
	for k := range feats {
		for i := range feats[k] {
			feats[k][i] = float32(f[k][i])
		}
	}
	return nil
}

// BenchmarkLabel measures labelling throughput (examples/s, batches of
// 256) of the PyTorch-made ResNet through the ORT teacher and through
// distill's FP32 engine running its state_dict, both on one thread.
func BenchmarkLabel(b *testing.B) {
	needORT(b)
	spec := pytorchSpec(b)
	ds := pytorchData(b, 32) // 256 examples
	n := ds.Len()
	out := make([]float32, n*spec.Classes)
	tc, err := Open(filepath.Join(pytorchDir, "resnet.onnx"), Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer tc.Close()
	w, err := model.LoadStateDict(filepath.Join(pytorchDir, "resnet.safetensors"), spec, model.StateDictOptions{})
	if err != nil {
		b.Fatal(err)
	}
	engine, err := infer.Compile(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		m    transfer.Forwarder
	}{{"ort", tc}, {"infer-fp32", engine}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.m.Forward(ds.X, n, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "examples/s")
		})
	}
}

// BenchmarkLabelling labels batches of 256 examples with the PyTorch
// teacher two ways, interleaved so both see the same machine: its ONNX
// file in ONNX Runtime, and its state_dict in distill's FP32 runtime (the
// engine a frozen teacher's Forward runs on). It reports each path's
// examples per second and their ratio: what a transfer set of either
// teacher costs to label.
//
//	go test -run '^$' -bench Labelling ./teacher/ort
func BenchmarkLabelling(b *testing.B) {
	needORT(b)
	tc, err := Open(filepath.Join(pytorchDir, "resnet.onnx"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer tc.Close()
	spec := pytorchSpec(b)
	w, err := model.LoadStateDict(filepath.Join(pytorchDir, "resnet.safetensors"), spec, model.StateDictOptions{})
	if err != nil {
		b.Fatal(err)
	}
	engine, err := infer.Compile(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	const n = 256
	x, _, _ := backendtest.Inputs(spec, n, 1)
	out := make([]float32, n*spec.Classes)
	var viaORT, viaEngine time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := tc.Forward(x, n, out); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := engine.Forward(x, n, out); err != nil {
			b.Fatal(err)
		}
		viaORT += t1.Sub(t0)
		viaEngine += time.Since(t1)
	}
	ort, eng := float64(b.N*n)/viaORT.Seconds(), float64(b.N*n)/viaEngine.Seconds()
	b.ReportMetric(ort, "onnx-ex/s")
	b.ReportMetric(eng, "state_dict-ex/s")
	b.ReportMetric(eng/ort, "state_dict/onnx")
	b.ReportMetric(0, "ns/op")
}
