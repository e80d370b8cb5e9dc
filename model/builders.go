package model

import "fmt"

// MLPConfig describes a multi-layer perceptron.
type MLPConfig struct {
	Name         string
	Input        []int // per-example input shape; flattened first if not 1-D
	Hidden       []int // widths of the hidden layers
	Classes      int
	Activation   Kind    // relu (default), tanh, sigmoid
	Dropout      float64 // after every hidden activation
	InputDropout float64 // on the input, as in Hinton et al. 2012
}

// MLP builds the spec of a multi-layer perceptron. Linear layers are named
// fc1, fc2, … in order; the last one produces the logits.
func MLP(c MLPConfig) (Spec, error) {
	s := Spec{Name: c.Name, Input: append([]int(nil), c.Input...), Classes: c.Classes}
	if len(c.Input) != 1 {
		s.Layers = append(s.Layers, Layer{Name: "flatten", Kind: KindFlatten})
	}
	if c.InputDropout > 0 {
		s.Layers = append(s.Layers, Layer{Name: "drop0", Kind: KindDropout, Rate: c.InputDropout})
	}
	s.Layers = appendHead(s.Layers, c.Hidden, c.Classes, orReLU(c.Activation), c.Dropout)
	return s, s.Validate()
}

// orReLU is act, or ReLU when act is unset.
func orReLU(act Kind) Kind {
	if act == "" {
		return KindReLU
	}
	return act
}

// appendHead appends the fully connected part that MLP and CNN share:
// fc1, act1, [drop1], … for each hidden width, then the logits layer
// fc<len(hidden)+1>. The names are the ones feature distillation and
// checkpoints refer to, so both builders must produce them alike.
func appendHead(layers []Layer, hidden []int, classes int, act Kind, dropout float64) []Layer {
	for i, h := range hidden {
		n := i + 1
		layers = append(layers,
			Layer{Name: fmt.Sprintf("fc%d", n), Kind: KindLinear, Out: h},
			Layer{Name: fmt.Sprintf("act%d", n), Kind: act})
		if dropout > 0 {
			layers = append(layers, Layer{Name: fmt.Sprintf("drop%d", n), Kind: KindDropout, Rate: dropout})
		}
	}
	return append(layers, Layer{Name: fmt.Sprintf("fc%d", len(hidden)+1), Kind: KindLinear, Out: classes})
}

// ConvBlock is one conv → activation → optional max-pool stage of a CNN.
type ConvBlock struct {
	Channels int
	Kernel   int
	Stride   int
	Padding  int
	Pool     int // max-pool kernel (and stride); 0 or 1 = none
}

// CNNConfig describes a small convolutional classifier: conv blocks, then a
// flatten and an MLP head.
type CNNConfig struct {
	Name       string
	Input      []int // [C, H, W]
	Conv       []ConvBlock
	Hidden     []int
	Classes    int
	Activation Kind
	Dropout    float64 // in the MLP head
}

// CNN builds the spec of a small CNN. Layers are named conv1, act_conv1,
// pool1, …, flatten, fc1, …; the names are what feature and attention
// distillation refer to.
func CNN(c CNNConfig) (Spec, error) {
	act := orReLU(c.Activation)
	s := Spec{Name: c.Name, Input: append([]int(nil), c.Input...), Classes: c.Classes}
	for i, b := range c.Conv {
		n := i + 1
		s.Layers = append(s.Layers,
			Layer{Name: fmt.Sprintf("conv%d", n), Kind: KindConv2D, Out: b.Channels, Kernel: b.Kernel, Stride: b.Stride, Padding: b.Padding},
			Layer{Name: fmt.Sprintf("act_conv%d", n), Kind: act})
		if b.Pool > 1 {
			s.Layers = append(s.Layers, Layer{Name: fmt.Sprintf("pool%d", n), Kind: KindMaxPool, Kernel: b.Pool})
		}
	}
	s.Layers = append(s.Layers, Layer{Name: "flatten", Kind: KindFlatten})
	s.Layers = appendHead(s.Layers, c.Hidden, c.Classes, act, c.Dropout)
	return s, s.Validate()
}
