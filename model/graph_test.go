package model_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
)

func TestGraphErrors(t *testing.T) {
	conv := func(name string, inputs ...string) model.Layer {
		return model.Layer{Name: name, Kind: model.KindConv2D, Out: 4, Kernel: 3, Padding: 1, Inputs: inputs}
	}
	head := []model.Layer{{Name: "gap", Kind: model.KindGlobalAvgPool}, {Name: "fc", Kind: model.KindLinear, Out: 2}}
	cases := []struct {
		name   string
		layers []model.Layer
		want   []string
	}{
		{"dangling input", append([]model.Layer{conv("a"), conv("b", "nope")}, head...), []string{`"b" reads "nope"`, "neither a layer"}},
		{"forward reference", append([]model.Layer{conv("a", "b"), conv("b", "input")}, head...), []string{`"a" reads "b", which comes after it`}},
		{"cycle", append([]model.Layer{conv("a", "c"), conv("b", "a"), conv("c", "b")}, head...), []string{"cycle", `"a"`, `"b"`, `"c"`}},
		{"self", append([]model.Layer{conv("a", "a")}, head...), []string{"cycle", `"a" → "a"`}},
		{"add shapes", []model.Layer{conv("a"), {Name: "p", Kind: model.KindMaxPool, Kernel: 2}, {Name: "sum", Kind: model.KindAdd, Inputs: []string{"a", "p"}}, head[0], head[1]},
			[]string{`"sum"`, `"a" gives [4 8 8]`, `"p" gives [4 4 4]`}},
		{"add arity", append([]model.Layer{conv("a"), {Name: "sum", Kind: model.KindAdd}}, head...), []string{`"sum" (add) reads 1 inputs`, "needs 2"}},
		{"unused", append([]model.Layer{conv("a"), conv("b", "input"), conv("c", "b")}, head...), []string{`output of layer "a" is never read`}},
		{"groups", append([]model.Layer{{Name: "a", Kind: model.KindConv2D, Out: 4, Kernel: 3, Groups: 3}}, head...), []string{"3 groups", "divide"}},
		{"input name", append([]model.Layer{conv("input")}, head...), []string{`no layer may be named "input"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := model.Spec{Name: "g", Input: []int{4, 8, 8}, Classes: 2, Layers: c.layers}
			err := s.Validate()
			if err == nil {
				t.Fatal("Validate accepted a bad graph")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSortLayers(t *testing.T) {
	layers := []model.Layer{
		{Name: "fc", Kind: model.KindLinear, Out: 2, Inputs: []string{"gap"}},
		{Name: "gap", Kind: model.KindGlobalAvgPool, Inputs: []string{"sum"}},
		{Name: "a", Kind: model.KindConv2D, Out: 3, Kernel: 1, Inputs: []string{"input"}},
		{Name: "sum", Kind: model.KindAdd, Inputs: []string{"a", "input"}},
	}
	sorted, err := model.SortLayers(layers)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range sorted {
		names = append(names, l.Name)
	}
	if want := []string{"a", "sum", "gap", "fc"}; !slices.Equal(names, want) {
		t.Fatalf("order %v, want %v", names, want)
	}
	s := model.Spec{Name: "g", Input: []int{3, 4, 4}, Classes: 2, Layers: sorted}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Sequential() {
		t.Error("a residual graph reported as sequential")
	}
	// A sorted list comes back as it was, implicit inputs included.
	seq := []model.Layer{{Name: "f", Kind: model.KindFlatten}, {Name: "fc", Kind: model.KindLinear, Out: 2}}
	again, err := model.SortLayers(seq)
	if err != nil || len(again[1].Inputs) != 0 {
		t.Errorf("SortLayers(sequential) = %+v, %v", again, err)
	}
}

func TestBlocks(t *testing.T) {
	s, err := model.Blocks(model.BlocksConfig{
		Name: "resnet8", Input: []int{1, 28, 28}, Classes: 10,
		Stem:   model.StemConfig{Channels: 8},
		Stages: []model.Stage{{Channels: 8, Repeat: 1}, {Channels: 16, Stride: 2}, {Block: model.BlockInverted, Channels: 16, Repeat: 2, Expand: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := s.Params()
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	for _, want := range []string{"conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.bias", "layer3.1.conv2.weight", "fc.bias"} {
		if !slices.Contains(names, want) {
			t.Errorf("no parameter %q among %v", want, names)
		}
	}
	if slices.Contains(names, "layer1.0.conv1.bias") {
		t.Error("a conv before a batchnorm has a bias")
	}
	if got, want := model.BlockOutputs(s), []string{"layer1.0", "layer2.0", "layer3.0", "layer3.1"}; !slices.Equal(got, want) {
		t.Errorf("BlockOutputs = %v, want %v", got, want)
	}
	l, _, _ := s.Layer("layer3.1.conv2")
	if l.Groups != 32 {
		t.Errorf("depthwise conv has %d groups, want 32", l.Groups)
	}
	bs, _ := s.Buffers()
	if len(bs) == 0 || bs[0].Name != "bn1.running_mean" {
		t.Errorf("buffers %v", bs)
	}
	w, err := s.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(w); err != nil {
		t.Fatal(err)
	}
	if w["bn1.running_var"].Data[0] != 1 || w["bn1.weight"].Data[0] != 1 || w["bn1.bias"].Data[0] != 0 {
		t.Error("batchnorm does not start as PyTorch's: γ=1, β=0, running var 1")
	}
	fs, fw, err := model.Inference(s, w)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range fs.Layers {
		if l.Kind == model.KindBatchNorm || l.NoBias {
			t.Errorf("layer %q (%s, no_bias=%v) survived folding", l.Name, l.Kind, l.NoBias)
		}
	}
	if _, ok := fw["layer1.0.conv1.bias"]; !ok {
		t.Error("folded conv has no bias")
	}
}

// TestInferenceFoldsBatchNorm checks the folding arithmetic against the
// definition on a linear layer followed by a batchnorm.
func TestInferenceFoldsBatchNorm(t *testing.T) {
	s := model.Spec{Name: "f", Input: []int{2}, Classes: 2, Layers: []model.Layer{
		{Name: "fc", Kind: model.KindLinear, Out: 2, NoBias: true},
		{Name: "bn", Kind: model.KindBatchNorm, Eps: 1e-3},
	}}
	w := model.Weights{
		"fc.weight":       {Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
		"bn.weight":       {Shape: []int{2}, Data: []float32{2, 0.5}},
		"bn.bias":         {Shape: []int{2}, Data: []float32{0.1, -0.2}},
		"bn.running_mean": {Shape: []int{2}, Data: []float32{1, -1}},
		"bn.running_var":  {Shape: []int{2}, Data: []float32{4, 0.25}},
	}
	fs, fw, err := model.Inference(s, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.Layers) != 1 {
		t.Fatalf("layers %v, want the batchnorm folded away", fs.Layers)
	}
	x := []float64{0.3, -0.7}
	for o := range 2 {
		y := float64(w["fc.weight"].Data[2*o])*x[0] + float64(w["fc.weight"].Data[2*o+1])*x[1]
		want := (y-float64(w["bn.running_mean"].Data[o]))/math.Sqrt(float64(w["bn.running_var"].Data[o])+1e-3)*float64(w["bn.weight"].Data[o]) + float64(w["bn.bias"].Data[o])
		got := float64(fw["fc.weight"].Data[2*o])*x[0] + float64(fw["fc.weight"].Data[2*o+1])*x[1] + float64(fw["fc.bias"].Data[o])
		if math.Abs(got-want) > 1e-5 {
			t.Errorf("unit %d: folded %v, definition %v", o, got, want)
		}
	}
	if w["fc.weight"].Data[0] != 1 {
		t.Error("Inference modified its input weights")
	}
}

// TestKernelLargerThanInput: a window larger than its padded input is an
// error, as in PyTorch, for every windowed kind.
func TestKernelLargerThanInput(t *testing.T) {
	for _, l := range []model.Layer{
		{Name: "c", Kind: model.KindConv2D, Out: 2, Kernel: 29, Stride: 30},
		{Name: "m", Kind: model.KindMaxPool, Kernel: 30},
		{Name: "a", Kind: model.KindAvgPool, Kernel: 31, Padding: 1, Stride: 40},
	} {
		s := model.Spec{Name: "k", Input: []int{1, 28, 28}, Classes: 2, Layers: []model.Layer{l, {Name: "gap", Kind: model.KindGlobalAvgPool}, {Name: "fc", Kind: model.KindLinear, Out: 2}}}
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "does not fit") {
			t.Errorf("%s kernel %d on 28×28: error %v", l.Kind, l.Kernel, err)
		}
	}
}
