// Package model describes network architectures independently of any
// compute backend: a Spec is a list of named layers, and Weights are the
// host-side float32 tensors that go with it, in PyTorch's layout
// (linear weight [out, in], conv weight [out, in, kh, kw]) so that files
// interoperate with PyTorch state dicts.
package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Layer is one named node of a network. Only the fields meaningful for
// its Kind are set.
//
// Inputs names the nodes it reads: earlier layers, or InputName for the
// network's input. Empty means the previous layer (the network's input
// for the first), so a sequential network needs no Inputs at all.
type Layer struct {
	Name    string   `json:"name"`
	Kind    Kind     `json:"kind"`
	Inputs  []string `json:"inputs,omitempty"`
	Out     int      `json:"out,omitempty"`
	Kernel  int      `json:"kernel,omitempty"`
	Stride  int      `json:"stride,omitempty"`
	Padding int      `json:"padding,omitempty"`
	// Groups splits a conv2d's channels into groups convolved separately
	// (PyTorch's groups); 0 and 1 mean one group, Groups equal to the
	// input and output channels is a depthwise convolution.
	Groups int `json:"groups,omitempty"`
	// NoBias drops the bias of a linear or conv2d layer (as PyTorch's
	// bias=False, usual before a batchnorm).
	NoBias bool    `json:"no_bias,omitempty"`
	Rate   float64 `json:"rate,omitempty"`
	// Momentum and Eps are a batchnorm's (PyTorch's meaning: running =
	// (1-momentum)·running + momentum·batch); 0 means PyTorch's defaults,
	// 0.1 and 1e-5 (see BNMomentum and BNEps).
	Momentum float64 `json:"momentum,omitempty"`
	Eps      float64 `json:"eps,omitempty"`
	// Shape is an external layer's per-example output shape (KindExternal).
	Shape []int `json:"shape,omitempty"`
}

// InputName is the name by which a layer's Inputs refer to the network's
// input; no layer may take it.
const InputName = "input"

// BNMomentum is a batchnorm layer's momentum: Momentum, or PyTorch's
// default 0.1 when unset.
func (l Layer) BNMomentum() float64 {
	if l.Momentum == 0 {
		return 0.1
	}
	return l.Momentum
}

// BNEps is a batchnorm layer's eps: Eps, or PyTorch's default 1e-5 when
// unset.
func (l Layer) BNEps() float64 {
	if l.Eps == 0 {
		return 1e-5
	}
	return l.Eps
}

// ConvGroups is a conv2d layer's group count: Groups, or 1 when unset.
func (l Layer) ConvGroups() int {
	return max(l.Groups, 1)
}

// Spec is a feed-forward classifier: Input is the per-example shape
// ([D] for vectors, [C, H, W] for images) and the last layer produces
// Classes logits. Layers are a directed acyclic graph in topological
// order (each reads only earlier layers or the input; see Layer.Inputs);
// SortLayers puts a graph written in any order into it.
type Spec struct {
	Name    string  `json:"name"`
	Input   []int   `json:"input"`
	Classes int     `json:"classes"`
	Layers  []Layer `json:"layers"`
}

// Tensor is a dense, row-major float32 host tensor.
type Tensor struct {
	Shape []int
	Data  []float32
}

// NewTensor allocates a zero tensor of the given shape.
func NewTensor(shape ...int) Tensor {
	return Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, Numel(shape))}
}

// Numel is the number of elements of a shape.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Param names a trainable tensor of a layer: "<layer>.weight" or "<layer>.bias".
type Param struct {
	Name  string
	Layer string
	Shape []int
	// FanIn is the number of inputs feeding one output unit; it sets the
	// scale of InitFanIn.
	FanIn int
	Init  InitRule
}

// InitRule says how Spec.Init draws a parameter.
type InitRule uint8

const (
	// InitFanIn draws uniformly in ±1/√FanIn, as PyTorch's nn.Linear and
	// nn.Conv2d do by default.
	InitFanIn InitRule = iota
	// InitOnes and InitZeros fill with 1 and 0, as PyTorch's BatchNorm
	// does for its weight and running variance, and bias and running mean.
	InitOnes
	InitZeros
)

// Weights maps parameter names to tensors.
type Weights map[string]Tensor

// Shapes returns the per-example output shape of each layer: Shapes()[i]
// is the output shape of Layers[i].
func (s Spec) Shapes() ([][]int, error) {
	if len(s.Input) == 0 {
		return nil, errors.New("model: spec has no input shape")
	}
	ins, err := s.InputIndices()
	if err != nil {
		return nil, err
	}
	out := make([][]int, len(s.Layers))
	for i, l := range s.Layers {
		info, ok := kinds[l.Kind]
		if !ok {
			return nil, fmt.Errorf("model: layer %q has unknown kind %q (known: %v)", l.Name, l.Kind, Kinds())
		}
		if want := info.arity(); len(ins[i]) != want {
			return nil, fmt.Errorf("model: layer %q (%s) reads %d inputs %q, it needs %d", l.Name, l.Kind, len(ins[i]), s.InputNames(i), want)
		}
		inShapes := make([][]int, len(ins[i]))
		for k, j := range ins[i] {
			if j < 0 {
				inShapes[k] = s.Input
			} else {
				inShapes[k] = out[j]
			}
		}
		next, err := info.OutShape(l, inShapes)
		if err != nil {
			return nil, err
		}
		out[i] = append([]int(nil), next...)
	}
	return out, nil
}

// InputShape is the per-example shape of the first input of Layers[i],
// given shapes from Shapes.
func (s Spec) InputShape(shapes [][]int, i int) []int {
	ins, _ := s.InputIndices()
	if len(ins) <= i || len(ins[i]) == 0 || ins[i][0] < 0 {
		return s.Input
	}
	return shapes[ins[i][0]]
}

// Validate checks that the layers fit together and end in Classes logits.
func (s Spec) Validate() error {
	if s.Classes <= 0 {
		return errors.New("model: classes must be > 0")
	}
	if len(s.Layers) == 0 {
		return errors.New("model: spec has no layers")
	}
	seen := map[string]bool{}
	for _, l := range s.Layers {
		// An external layer is named after a tensor of a model made
		// elsewhere (PyTorch's ONNX export writes "/layer1/layer1.0/Relu");
		// it has no parameters, so no tensor or file name derives from it.
		bad := " \t\n/"
		if l.Kind == KindExternal {
			bad = " \t\n"
		}
		if l.Name == "" || strings.ContainsAny(l.Name, bad) {
			return fmt.Errorf("model: layer name %q must be non-empty without spaces or slashes", l.Name)
		}
		if l.Name == InputName {
			return fmt.Errorf("model: no layer may be named %q: inputs use that name for the network's input", InputName)
		}
		if seen[l.Name] {
			return fmt.Errorf("model: layer name %q is used twice", l.Name)
		}
		seen[l.Name] = true
	}
	if err := s.checkGraph(); err != nil {
		return err
	}
	shapes, err := s.Shapes()
	if err != nil {
		return err
	}
	last := shapes[len(shapes)-1]
	if len(last) != 1 || last[0] != s.Classes {
		return fmt.Errorf("model: the last layer produces shape %v, want [%d] logits", last, s.Classes)
	}
	return nil
}

// Layer returns the layer with the given name.
func (s Spec) Layer(name string) (Layer, int, bool) {
	for i, l := range s.Layers {
		if l.Name == name {
			return l, i, true
		}
	}
	return Layer{}, -1, false
}

// Params lists the trainable tensors in a fixed order (layer order, weight
// before bias). The order is the contract for optimizer state.
func (s Spec) Params() ([]Param, error) {
	shapes, err := s.Shapes()
	if err != nil {
		return nil, err
	}
	var ps []Param
	for i, l := range s.Layers {
		if p := kinds[l.Kind].Params; p != nil {
			ps = append(ps, p(l, s.InputShape(shapes, i))...)
		}
	}
	return ps, nil
}

// Buffers lists the non-trainable state tensors (a batchnorm's running
// mean and variance) in layer order. Weights hold them beside the
// parameters, as a PyTorch state dict does; optimizers never see them.
func (s Spec) Buffers() ([]Param, error) {
	shapes, err := s.Shapes()
	if err != nil {
		return nil, err
	}
	var bs []Param
	for i, l := range s.Layers {
		if b := kinds[l.Kind].Buffers; b != nil {
			bs = append(bs, b(l, s.InputShape(shapes, i))...)
		}
	}
	return bs, nil
}

// Tensors lists every tensor of Weights: Params, then Buffers.
func (s Spec) Tensors() ([]Param, error) {
	ps, err := s.Params()
	if err != nil {
		return nil, err
	}
	bs, err := s.Buffers()
	if err != nil {
		return nil, err
	}
	return append(ps, bs...), nil
}

// ParamCount is the number of trainable scalars.
func (s Spec) ParamCount() (int, error) {
	ps, err := s.Params()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range ps {
		n += Numel(p.Shape)
	}
	return n, nil
}

// DropoutLayers lists the dropout layers in order with the per-example
// shape of the tensor each one masks.
func (s Spec) DropoutLayers() ([]Layer, [][]int, error) {
	shapes, err := s.Shapes()
	if err != nil {
		return nil, nil, err
	}
	var ls []Layer
	var sh [][]int
	for i, l := range s.Layers {
		if l.Kind == KindDropout && l.Rate > 0 {
			ls = append(ls, l)
			sh = append(sh, shapes[i])
		}
	}
	return ls, sh, nil
}

// Init returns freshly initialised weights, each by its parameter's
// InitRule, drawn from seed so that every backend starts from the same
// numbers.
func (s Spec) Init(seed uint64) (Weights, error) {
	ps, err := s.Tensors()
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d6f64656c)) // "model"
	w := make(Weights, len(ps))
	for _, p := range ps {
		t := NewTensor(p.Shape...)
		switch p.Init {
		case InitFanIn:
			bound := 1 / math.Sqrt(float64(p.FanIn))
			for i := range t.Data {
				t.Data[i] = float32((rng.Float64()*2 - 1) * bound)
			}
		case InitOnes:
			for i := range t.Data {
				t.Data[i] = 1
			}
		case InitZeros:
		default:
			return nil, fmt.Errorf("model: parameter %q has unknown init rule %d", p.Name, p.Init)
		}
		w[p.Name] = t
	}
	return w, nil
}

// Check verifies that w holds exactly the spec's parameters and buffers
// with the right shapes and finite values.
func (s Spec) Check(w Weights) error {
	ps, err := s.Tensors()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range ps {
		t, ok := w[p.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("missing tensor %q (shape %v)", p.Name, p.Shape))
			continue
		}
		if !slices.Equal(t.Shape, p.Shape) || len(t.Data) != Numel(p.Shape) {
			errs = append(errs, fmt.Errorf("tensor %q has shape %v, the spec needs %v", p.Name, t.Shape, p.Shape))
			continue
		}
		for _, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				errs = append(errs, fmt.Errorf("tensor %q holds NaN or Inf", p.Name))
				break
			}
		}
	}
	if len(w) != len(ps) {
		names := map[string]bool{}
		for _, p := range ps {
			names[p.Name] = true
		}
		for n := range w {
			if !names[n] {
				errs = append(errs, fmt.Errorf("unexpected tensor %q", n))
			}
		}
	}
	return errors.Join(errs...)
}

// Clone returns a deep copy of w.
func (w Weights) Clone() Weights {
	c := make(Weights, len(w))
	for k, t := range w {
		c[k] = Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
	}
	return c
}
