package inspect_test

import (
	"archive/zip"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/inspect"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx"
	"github.com/distill-dev/distill/safetensors"
)

// dir holds PyTorch-made files of one network (make_teachers.py).
const dir = "../teacher/testdata/pytorch"

// teacher is that network as distill describes it, with PyTorch's weights.
func teacher(t *testing.T) (model.Spec, model.Weights) {
	t.Helper()
	spec, err := model.Blocks(model.BlocksConfig{
		Name: "resnet", Input: []int{1, 28, 28}, Stem: model.StemConfig{Channels: 8},
		Stages: []model.Stage{{Channels: 8}, {Channels: 16, Stride: 2}}, Classes: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	w, err := model.LoadSafetensorsWeights(filepath.Join(dir, "resnet.safetensors"), spec)
	if err != nil {
		t.Fatal(err)
	}
	return spec, w
}

// counts are the parameter and buffer elements of spec.
func counts(t *testing.T, spec model.Spec) (params, buffers int64) {
	t.Helper()
	n, err := spec.ParamCount()
	if err != nil {
		t.Fatal(err)
	}
	bs, err := spec.Buffers()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		buffers += int64(model.Numel(b.Shape))
	}
	return int64(n), buffers
}

func file(t *testing.T, path string) *inspect.Summary {
	t.Helper()
	s, err := inspect.File(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Path != path {
		t.Errorf("Path = %q, want %q", s.Path, path)
	}
	var size int64
	paths := []string{path}
	if s.Format == inspect.Distill {
		j, w := model.Paths(path)
		paths = []string{j, w}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		size += st.Size()
	}
	if s.Bytes != size {
		t.Errorf("Bytes = %d, want %d", s.Bytes, size)
	}
	// The JSON form is complete and the text names the file.
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.String(), path) {
		t.Errorf("String does not name %s", path)
	}
	return s
}

func contains(t *testing.T, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("output does not contain %q:\n%s", w, text)
		}
	}
}

func TestStateDict(t *testing.T) {
	spec, _ := teacher(t)
	params, buffers := counts(t, spec)
	tensors, err := spec.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file  string
		dtype string
	}{{"resnet.safetensors", "F32"}, {"resnet_f16.safetensors", "F16"}, {"resnet_bf16.safetensors", "BF16"}} {
		t.Run(tc.file, func(t *testing.T) {
			s := file(t, filepath.Join(dir, tc.file))
			if s.Format != inspect.StateDict || s.Tensors == nil || s.Spec != nil {
				t.Fatalf("format %q, tensors %v, spec %v", s.Format, s.Tensors != nil, s.Spec)
			}
			if s.Params != params || s.Buffers != buffers {
				t.Errorf("%d parameters, %d buffer elements; the spec has %d and %d", s.Params, s.Buffers, params, buffers)
			}
			bn := 0
			for _, l := range spec.Layers {
				if l.Kind == model.KindBatchNorm {
					bn++
				}
			}
			if want := map[string]int{tc.dtype: len(tensors), "I64": bn}; !equalMaps(s.Tensors.DTypes, want) {
				t.Errorf("dtypes %v, want %v (num_batches_tracked as I64)", s.Tensors.DTypes, want)
			}
			// One group per layer with tensors, each guessed.
			groups := map[string]inspect.Group{}
			for _, g := range s.Tensors.Groups {
				groups[g.Layer] = g
			}
			for _, p := range tensors {
				g, ok := groups[p.Layer]
				if !ok {
					t.Fatalf("no group %q", p.Layer)
				}
				_, name, _ := strings.Cut(p.Name, p.Layer+".")
				i := slices.IndexFunc(g.Tensors, func(x inspect.Tensor) bool { return x.Name == name })
				if i < 0 || !slices.Equal(g.Tensors[i].Shape, p.Shape) || g.Tensors[i].DType != tc.dtype {
					t.Errorf("group %q lacks %s %s %v: %+v", p.Layer, name, tc.dtype, p.Shape, g.Tensors)
				}
			}
			for layer, want := range map[string]string{
				"conv1":                 "conv2d 1→8 3×3, no bias",
				"layer2.0.downsample.0": "conv2d 8→16 1×1, no bias",
				"layer2.0.bn2":          "batchnorm 16",
				"fc":                    "linear 16→10",
			} {
				if !strings.HasPrefix(groups[layer].Guess, want) {
					t.Errorf("%s looks like %q, want %q", layer, groups[layer].Guess, want)
				}
			}
			contains(t, s.String(), "safetensors state dict", "| layer2.0.conv1 | conv2d 8→16 3×3, no bias | weight "+tc.dtype+" [16 8 3 3] |", "model.LoadStateDict")
		})
	}
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A common prefix is reported, and only one that leaves layer names.
func TestStateDictPrefix(t *testing.T) {
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{
		"module.fc.weight": safetensors.F32([]int{2, 3}, make([]float32, 6)),
		"module.fc.bias":   safetensors.F32([]int{2}, make([]float32, 2)),
		"module.bn.weight": safetensors.F32([]int{3}, make([]float32, 3)),
	}}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := safetensors.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	if s := file(t, path); s.Tensors.Prefix != "module." || s.Params != 11 {
		t.Errorf("prefix %q, %d parameters; want module. and 11", s.Tensors.Prefix, s.Params)
	}
	delete(f.Tensors, "module.bn.weight")
	if err := safetensors.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	// "module.fc." is a layer, not a prefix.
	if s := file(t, path); s.Tensors.Prefix != "module." {
		t.Errorf("prefix %q, want module.", s.Tensors.Prefix)
	}
	f.Tensors = map[string]safetensors.Tensor{"fc.weight": f.Tensors["module.fc.weight"], "fc.bias": f.Tensors["module.fc.bias"]}
	if err := safetensors.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	if s := file(t, path); s.Tensors.Prefix != "" {
		t.Errorf("prefix %q of fc.weight and fc.bias, want none", s.Tensors.Prefix)
	}
}

func TestDistillModel(t *testing.T) {
	spec, w := teacher(t)
	stem := filepath.Join(t.TempDir(), "teacher")
	info := model.Info{Dataset: "fashion-mnist"}
	if err := model.SaveWithInfo(stem, spec, w, info); err != nil {
		t.Fatal(err)
	}
	params, buffers := counts(t, spec)
	shapes, err := spec.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{stem + ".json", stem + ".safetensors"} {
		s := file(t, path)
		if s.Format != inspect.Distill || s.Spec == nil || s.Tensors == nil {
			t.Fatalf("%s: format %q, spec %v", path, s.Format, s.Spec)
		}
		if s.Params != params || s.Buffers != buffers {
			t.Errorf("%d parameters, %d buffer elements, want %d and %d", s.Params, s.Buffers, params, buffers)
		}
		if s.Spec.Name != spec.Name || s.Spec.Dataset != "fashion-mnist" || s.Spec.Classes != 10 || len(s.Spec.Layers) != len(spec.Layers) {
			t.Fatalf("spec %+v", s.Spec)
		}
		var sum, bsum int64
		for i, l := range s.Spec.Layers {
			sum += l.Params
			bsum += l.Buffers
			if l.Name != spec.Layers[i].Name || l.Kind != string(spec.Layers[i].Kind) || !slices.Equal(l.Output, shapes[i]) {
				t.Errorf("layer %d: %+v, want %s %s %v", i, l, spec.Layers[i].Name, spec.Layers[i].Kind, shapes[i])
			}
			if l.Name == "layer2.0.add" && !slices.Equal(l.Inputs, []string{"layer2.0.bn2", "layer2.0.downsample.1"}) {
				t.Errorf("layer2.0.add reads %v", l.Inputs)
			}
			if l.Name == "layer1.0.conv2" && l.Inputs != nil {
				t.Errorf("a layer reading the previous one lists inputs %v", l.Inputs)
			}
		}
		if sum != params || bsum != buffers {
			t.Errorf("layers hold %d parameters and %d buffer elements, want %d and %d", sum, bsum, params, buffers)
		}
		contains(t, s.String(), "distill model", "| layer2.0.add | add | layer2.0.bn2, layer2.0.downsample.1 | [16 14 14] | 0 |  |", "| layer2.0.bn2 | batchnorm |  | [16 14 14] | 32 | 32 |", "trained on fashion-mnist")
	}
}

func TestONNXFromPyTorch(t *testing.T) {
	spec, w := teacher(t)
	// The exporter folds the batchnorms into the convs, as distill's
	// inference does.
	fs, _, err := infer.Fold(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	folded, _ := counts(t, fs)
	s := file(t, filepath.Join(dir, "resnet.onnx"))
	g := s.Graph
	if s.Format != inspect.ONNX || g == nil {
		t.Fatalf("format %q", s.Format)
	}
	if s.Params != folded {
		t.Errorf("%d parameters, the folded spec has %d", s.Params, folded)
	}
	if g.Opsets["ai.onnx"] != 13 || !strings.HasPrefix(g.Producer, "pytorch") {
		t.Errorf("opsets %v, producer %q", g.Opsets, g.Producer)
	}
	want := []inspect.Value{{Name: "input", Type: "FLOAT", Shape: []string{"batch", "1", "28", "28"}}}
	if !slices.EqualFunc(g.Inputs, want, equalValues) {
		t.Errorf("inputs %+v, want %+v", g.Inputs, want)
	}
	want = []inspect.Value{{Name: "logits", Type: "FLOAT", Shape: []string{"batch", "10"}}}
	if !slices.EqualFunc(g.Outputs, want, equalValues) {
		t.Errorf("outputs %+v, want %+v", g.Outputs, want)
	}
	convs, adds := 0, 0
	for _, l := range spec.Layers {
		switch l.Kind {
		case model.KindConv2D:
			convs++
		case model.KindAdd:
			adds++
		}
	}
	ops := map[string]int{}
	for _, o := range g.Ops {
		ops[o.Op] = o.Count
	}
	if ops["Conv"] != convs || ops["Add"] != adds || ops["Gemm"] != 1 {
		t.Errorf("ops %v, want %d Conv, %d Add, 1 Gemm", ops, convs, adds)
	}
	// The block outputs are named intermediates, shaped as distill's
	// block outputs (with the batch dimension).
	shapes, err := spec.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	for name, layer := range map[string]string{
		"/layer1/layer1.0/relu_1/Relu_output_0":                  "layer1.0",
		"/layer2/layer2.0/relu_1/Relu_output_0":                  "layer2.0",
		"/layer2/layer2.0/downsample/downsample.0/Conv_output_0": "layer2.0.downsample.1",
		"/Flatten_output_0":                                      "avgpool",
	} {
		_, i, _ := spec.Layer(layer)
		want := []string{"batch"}
		for _, d := range shapes[i] {
			want = append(want, strconv.Itoa(d))
		}
		j := slices.IndexFunc(g.Intermediates, func(v inspect.Value) bool { return v.Name == name })
		if j < 0 {
			t.Errorf("no intermediate %q in %+v", name, g.Intermediates)
			continue
		}
		if !slices.Equal(g.Intermediates[j].Shape, want) {
			t.Errorf("%s: shape %v, want %v (distill's %s)", name, g.Intermediates[j].Shape, want, layer)
		}
	}
	contains(t, s.String(), "ONNX model", "| input | FLOAT | [batch, 1, 28, 28] |", "| Conv | 6 |", "| /layer2/layer2.0/relu_1/Relu_output_0 | Relu | /layer2/layer2.0/relu_1/Relu | [batch, 16, 14, 14] |")
}

func equalValues(a, b inspect.Value) bool {
	return a.Name == b.Name && a.Type == b.Type && slices.Equal(a.Shape, b.Shape)
}

// distill's own export carries its spec and records every shape.
func TestONNXFromDistill(t *testing.T) {
	spec, w := teacher(t)
	path := filepath.Join(t.TempDir(), "teacher.onnx")
	if err := onnx.WriteFileFP32(path, spec, w); err != nil {
		t.Fatal(err)
	}
	s := file(t, path)
	if s.Graph.Metadata["distill.spec"] == "" {
		t.Errorf("metadata %v lacks distill.spec", s.Graph.Metadata)
	}
	if len(s.Graph.Inputs) != 1 || s.Graph.Inputs[0].Name != "input" || len(s.Graph.Outputs) != 1 || s.Graph.Outputs[0].Name != "logits" {
		t.Errorf("inputs %+v, outputs %+v", s.Graph.Inputs, s.Graph.Outputs)
	}
	for _, v := range s.Graph.Intermediates {
		if v.Shape == nil {
			t.Errorf("intermediate %s (%s) has no shape", v.Name, v.Op)
		}
	}
}

func TestTorchArchives(t *testing.T) {
	spec, _ := teacher(t)
	params, buffers := counts(t, spec)
	tensors, err := spec.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	bufs, _ := spec.Buffers()
	for _, tc := range []struct {
		file   string
		format inspect.Format
		note   string
	}{
		{"resnet.pt", inspect.TorchScript, "trusted: true"},
		{"resnet_state_dict.pth", inspect.TorchSave, "safetensors.torch.save_file"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s := file(t, filepath.Join(dir, tc.file))
			a := s.Archive
			if s.Format != tc.format || a == nil {
				t.Fatalf("format %q", s.Format)
			}
			if a.PickleError != "" {
				t.Fatal(a.PickleError)
			}
			if s.Params != params || s.Buffers != buffers {
				t.Errorf("%d parameters, %d buffer elements, want %d and %d", s.Params, s.Buffers, params, buffers)
			}
			got := map[string]inspect.ArchiveTensor{}
			for _, at := range a.Tensors {
				got[at.Name] = at
			}
			for _, p := range tensors {
				at, ok := got[p.Name]
				isBuf := slices.ContainsFunc(bufs, func(b model.Param) bool { return b.Name == p.Name })
				if !ok || !slices.Equal(at.Shape, p.Shape) || at.DType != "F32" || at.Buffer != isBuf {
					t.Errorf("%s: %+v, want F32 %v, buffer %v", p.Name, at, p.Shape, isBuf)
				}
			}
			if c := got["layer2.0.downsample.1.num_batches_tracked"]; c.DType != "I64" || !c.Buffer {
				t.Errorf("counter %+v", c)
			}
			if want := len(tensors) + len(bufs)/2; len(a.Tensors) != want {
				t.Errorf("%d tensors, want %d", len(a.Tensors), want)
			}
			// TorchScript names the submodules (make_teachers.py's classes),
			// where hints may be taken; a pickled state dict has none.
			if tc.format == inspect.TorchScript {
				for _, m := range []inspect.Module{{Name: "", Class: "ResNet"}, {Name: "layer1.0", Class: "BasicBlock"}, {Name: "layer2.0.relu", Class: "torch.nn.modules.activation.ReLU"}, {Name: "layer2.0.downsample.1", Class: "torch.nn.modules.batchnorm.BatchNorm2d"}} {
					if !slices.Contains(a.Modules, m) {
						t.Errorf("modules %v lack %v", a.Modules, m)
					}
				}
			} else if len(a.Modules) != 0 {
				t.Errorf("a state dict with modules %v", a.Modules)
			}
			if !slices.ContainsFunc(a.Entries, func(e inspect.Entry) bool { return strings.HasSuffix(e.Name, "/data.pkl") && e.Bytes > 0 }) {
				t.Errorf("entries %v lack data.pkl", a.Entries)
			}
			contains(t, s.String(), tc.note, "| layer1.0.conv2.weight | F32 | [8 8 3 3] | parameter |", "| bn1.running_var | F32 | [8] | buffer |")
		})
	}
}

// zipFile writes a zip archive of the given entries.
func zipFile(t *testing.T, entries map[string][]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.pt")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(fh)
	for name, b := range entries {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	return path
}

// A TorchScript archive whose data.pkl cannot be read still lists its
// entries, and says why it has no tensor names.
func TestTorchScriptBadPickle(t *testing.T) {
	for name, pkl := range map[string][]byte{
		"truncated":      []byte("\x80\x02c__torch__\nRes"),
		"unknown opcode": []byte("\x80\x02\xff."),
		"empty":          nil,
		"underflow":      []byte("\x80\x02R."),
	} {
		t.Run(name, func(t *testing.T) {
			path := zipFile(t, map[string][]byte{"m/data.pkl": pkl, "m/code/__torch__.py": []byte("class M(Module):\n  __parameters__ = []\n"), "m/constants.pkl": nil})
			s := file(t, path)
			if s.Format != inspect.TorchScript || s.Archive.PickleError == "" || len(s.Archive.Tensors) != 0 || len(s.Archive.Entries) != 3 {
				t.Fatalf("%+v", s.Archive)
			}
			contains(t, s.String(), "data.pkl could not be read", "trusted: true")
		})
	}
}

func TestErrors(t *testing.T) {
	tmp := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := os.ReadFile(filepath.Join(dir, "resnet.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	onnxBytes, err := os.ReadFile(filepath.Join(dir, "resnet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		path     string
		notModel bool
		want     []string
	}{
		{"text", write("notes.txt", []byte("hello, this is not a model\n")), true, []string{"not safetensors, ONNX, a PyTorch zip archive or a distill model", `"hello, this is n"`}},
		{"empty", write("empty.bin", nil), true, []string{"not safetensors"}},
		{"truncated safetensors", write("cut.safetensors", good[:len(good)-100]), false, []string{"safetensors", "truncated file?"}},
		{"garbage onnx", write("bad.onnx", []byte("this is no protobuf \xff\xff\xff")), true, []string{"not a valid ONNX model"}},
		{"truncated onnx", write("cut.onnx", onnxBytes[:len(onnxBytes)/2]), true, []string{"not a valid ONNX model"}},
		{"corrupt zip", write("bad.pt", []byte("PK\x03\x04 and then nothing a zip needs")), false, []string{"corrupt zip archive"}},
		{"zip without data.pkl", zipFile(t, map[string][]byte{"a/readme.txt": []byte("hi")}), true, []string{"without data.pkl"}},
		{"legacy pickle", write("old.pth", []byte("\x80\x02}q\x00.")), true, []string{"pickle", "safetensors.torch.save_file"}},
		{"not a distill JSON", write("m.json", []byte(`{"format":"other"}`)), false, []string{`format "other"`}},
		{"directory", tmp, false, []string{tmp}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := inspect.File(tc.path)
			if err == nil {
				t.Fatalf("File succeeded: %v", s)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "inspect: ") || !strings.Contains(msg, tc.path) {
				t.Errorf("error %q does not start with inspect: and name %s", msg, tc.path)
			}
			if errors.Is(err, inspect.ErrNotModel) != tc.notModel {
				t.Errorf("errors.Is(%q, ErrNotModel) = %v", msg, !tc.notModel)
			}
			contains(t, msg, tc.want...)
		})
	}
	if _, err := inspect.File(filepath.Join(tmp, "none.onnx")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}
