package infer_test

import (
	"fmt"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
)

func ExampleCompile() {
	spec, _ := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{4}, Hidden: []int{8}, Classes: 3, Dropout: 0.5})
	w, _ := spec.Init(1)
	p, err := infer.Compile(spec, w)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p)

	x := []float32{0.1, 0.2, 0.3, 0.4, 1, 0, 0, 1} // two examples
	logits := make([]float32, 2*p.Classes())
	if err := p.Forward(x, 2, logits); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(logits))
	// Output:
	// linear+relu[fc1 4→8 f32] → linear[fc2 8→3 f32]
	// 6
}

func ExampleCompileInt8() {
	spec, _ := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{2}, Hidden: []int{2}, Classes: 2})
	m := &infer.QuantModel{
		Spec:  spec,
		Input: infer.QParams{Scale: 1.0 / 255, ZeroPoint: 0}, // inputs in [0, 1]
		Act: map[string]infer.QParams{
			"fc1": {Scale: 0.01, ZeroPoint: 0},   // after its ReLU
			"fc2": {Scale: 0.02, ZeroPoint: 128}, // logits (not requantized: the last layer outputs float32)
		},
		Layers: map[string]infer.QLayer{
			"fc1": {Weight: []int8{127, 0, 0, 127}, Scale: []float32{1.0 / 127, 1.0 / 127}, Bias: []int32{0, 0}},
			"fc2": {Weight: []int8{127, -127, -127, 127}, Scale: []float32{1.0 / 127, 1.0 / 127}, Bias: []int32{0, 0}},
		},
	}
	p, err := infer.CompileInt8(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p)
	out := make([]float32, 2)
	p.Forward([]float32{0.8, 0.2}, 1, out)
	fmt.Printf("%.2f\n", out)
	// Output:
	// quantize[input s=0.003922 z=0] → linear+relu[fc1 2→2 int8→u8] → linear[fc2 2→2 int8→f32]
	// [0.60 -0.60]
}
