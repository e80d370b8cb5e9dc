package model_test

import (
	"reflect"
	"testing"

	"github.com/distill-dev/distill/model"
)

// TestBuilderLayers pins the layers MLP and CNN produce, names included:
// feature distillation, checkpoints and converters refer to layers by
// these names, and both builders share the fully connected head.
func TestBuilderLayers(t *testing.T) {
	type L = model.Layer
	cases := []struct {
		name string
		spec func() (model.Spec, error)
		want []L
	}{
		{"mlp", func() (model.Spec, error) {
			return model.MLP(model.MLPConfig{Name: "m", Input: []int{4}, Hidden: []int{3, 2}, Classes: 5})
		}, []L{
			{Name: "fc1", Kind: model.KindLinear, Out: 3}, {Name: "act1", Kind: model.KindReLU},
			{Name: "fc2", Kind: model.KindLinear, Out: 2}, {Name: "act2", Kind: model.KindReLU},
			{Name: "fc3", Kind: model.KindLinear, Out: 5},
		}},
		{"mlp image input, dropout, tanh", func() (model.Spec, error) {
			return model.MLP(model.MLPConfig{Name: "m", Input: []int{1, 2, 2}, Hidden: []int{3}, Classes: 2,
				Activation: model.KindTanh, Dropout: 0.5, InputDropout: 0.2})
		}, []L{
			{Name: "flatten", Kind: model.KindFlatten},
			{Name: "drop0", Kind: model.KindDropout, Rate: 0.2},
			{Name: "fc1", Kind: model.KindLinear, Out: 3}, {Name: "act1", Kind: model.KindTanh},
			{Name: "drop1", Kind: model.KindDropout, Rate: 0.5},
			{Name: "fc2", Kind: model.KindLinear, Out: 2},
		}},
		{"mlp no hidden", func() (model.Spec, error) {
			return model.MLP(model.MLPConfig{Name: "m", Input: []int{4}, Classes: 3})
		}, []L{{Name: "fc1", Kind: model.KindLinear, Out: 3}}},
		{"cnn", func() (model.Spec, error) {
			return model.CNN(model.CNNConfig{Name: "c", Input: []int{1, 8, 8}, Classes: 4, Hidden: []int{6}, Dropout: 0.25,
				Conv: []model.ConvBlock{{Channels: 2, Kernel: 3, Padding: 1, Pool: 2}, {Channels: 3, Kernel: 3, Stride: 2}}})
		}, []L{
			{Name: "conv1", Kind: model.KindConv2D, Out: 2, Kernel: 3, Padding: 1}, {Name: "act_conv1", Kind: model.KindReLU},
			{Name: "pool1", Kind: model.KindMaxPool, Kernel: 2},
			{Name: "conv2", Kind: model.KindConv2D, Out: 3, Kernel: 3, Stride: 2}, {Name: "act_conv2", Kind: model.KindReLU},
			{Name: "flatten", Kind: model.KindFlatten},
			{Name: "fc1", Kind: model.KindLinear, Out: 6}, {Name: "act1", Kind: model.KindReLU},
			{Name: "drop1", Kind: model.KindDropout, Rate: 0.25},
			{Name: "fc2", Kind: model.KindLinear, Out: 4},
		}},
		{"cnn sigmoid, no hidden", func() (model.Spec, error) {
			return model.CNN(model.CNNConfig{Name: "c", Input: []int{1, 4, 4}, Classes: 2, Activation: model.KindSigmoid,
				Conv: []model.ConvBlock{{Channels: 1, Kernel: 3}}})
		}, []L{
			{Name: "conv1", Kind: model.KindConv2D, Out: 1, Kernel: 3}, {Name: "act_conv1", Kind: model.KindSigmoid},
			{Name: "flatten", Kind: model.KindFlatten},
			{Name: "fc1", Kind: model.KindLinear, Out: 2},
		}},
	}
	for _, c := range cases {
		s, err := c.spec()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(s.Layers, c.want) {
			t.Errorf("%s: layers\n%+v\nwant\n%+v", c.name, s.Layers, c.want)
		}
	}
}
