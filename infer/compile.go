package infer

import (
	"errors"
	"fmt"
	"math"

	"github.com/distill-dev/distill/model"
)

// QParams are the parameters of an asymmetric uint8 quantization of a
// tensor: x ≈ Scale·(q − ZeroPoint), q in [0, 255].
type QParams struct {
	Scale     float32 `json:"scale"`
	ZeroPoint int32   `json:"zero_point"`
}

// Check reports whether the parameters are usable: a finite positive
// scale and a zero point in [0, 255].
func (q QParams) Check() error {
	if !(q.Scale > 0) || math.IsInf(float64(q.Scale), 0) {
		return fmt.Errorf("scale %v is not finite and positive", q.Scale)
	}
	if q.ZeroPoint < 0 || q.ZeroPoint > 255 {
		return fmt.Errorf("zero point %d is outside [0, 255]", q.ZeroPoint)
	}
	return nil
}

// QLayer is a quantized linear or conv2d layer: symmetric int8 weights
// with one scale per output channel, w ≈ Scale[c]·Weight, and an int32
// bias in units of s_in·Scale[c], where s_in is the scale of the
// layer's input activation.
type QLayer struct {
	Weight []int8    // PyTorch layout: [out, in] or [out, in, kh, kw]
	Scale  []float32 // [out]
	Bias   []int32   // [out]
}

// QuantModel is a post-training quantized network, as package quantize
// produces it.
//
// Activations are quantized per tensor: Input for the network input and
// Act[name] for the output of each linear and conv2d layer (after the
// ReLU fused with it, i.e. a relu layer that follows it, possibly after
// dropout layers) and of each tanh and sigmoid layer. Max-pool, flatten,
// dropout and a ReLU that is not fused keep their input's parameters.
//
// Each linear and conv2d layer is either in Layers (run in INT8) or has
// its float32 "<name>.weight" and "<name>.bias" in Float (run in
// float32, the accuracy fallback).
type QuantModel struct {
	Spec   model.Spec
	Input  QParams
	Act    map[string]QParams
	Layers map[string]QLayer
	Float  model.Weights
}

// Quantized reports whether layer name runs in INT8 (false for a nil
// model: a float32 program).
func (qm *QuantModel) Quantized(name string) bool {
	if qm == nil {
		return false
	}
	_, ok := qm.Layers[name]
	return ok
}

// FloatAfter reports whether the first consumer after layer i of the
// spec wants float32 input rather than uint8: a float (fallback) linear
// or conv layer, an activation without INT8 parameters, or the logits.
// A quantized layer's output is requantized to uint8 otherwise; ONNX
// export follows the same rule so both round at the same places.
func (qm *QuantModel) FloatAfter(i int) bool {
	if qm == nil {
		return true
	}
	for k := i + 1; k < len(qm.Spec.Layers); k++ {
		l := qm.Spec.Layers[k]
		info, _ := model.Describe(l.Kind)
		switch {
		case info.Quantizable:
			return !qm.Quantized(l.Name)
		case !info.KeepsQuantParams:
			_, ok := qm.Act[l.Name]
			return !ok
		}
	}
	return true // the logits
}

// Compile compiles a float32 network for inference.
func Compile(spec model.Spec, w model.Weights) (*Program, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	if err := spec.Check(w); err != nil {
		return nil, fmt.Errorf("infer: weights do not fit spec %q: %w", spec.Name, err)
	}
	return build(spec, w, nil)
}

// CompileInt8 compiles a quantized network. Layers in m.Layers run in
// INT8 with uint8 activations between them; the others run in float32.
func CompileInt8(m *QuantModel) (*Program, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return build(m.Spec, m.Float, m)
}

// NeedsActParams reports whether the output of a layer of kind k has
// activation parameters of its own in a QuantModel; the other kinds keep
// their input's.
func NeedsActParams(k model.Kind) bool {
	info, ok := model.Describe(k)
	return ok && !info.KeepsQuantParams
}

func identityAtInference(k model.Kind) bool {
	info, ok := model.Describe(k)
	return ok && info.IdentityAtInference
}

// Quantizable reports whether layer name of spec can run in INT8.
func Quantizable(spec model.Spec, name string) bool {
	l, _, ok := spec.Layer(name)
	if !ok {
		return false
	}
	info, ok := model.Describe(l.Kind)
	return ok && info.Quantizable
}

// Validate checks that m is complete and consistent: every linear and
// conv2d layer quantized with tensors of the right sizes, finite positive
// scales, or in float32 with finite weights of the right shapes; the
// activation parameters the program needs present and in range.
func (m *QuantModel) Validate() error {
	if err := m.Spec.Validate(); err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	params, err := m.Spec.Params()
	if err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	var errs []error
	if err := m.Input.Check(); err != nil {
		errs = append(errs, fmt.Errorf("input: %w", err))
	}
	for _, p := range params {
		q, quant := m.Layers[p.Layer]
		if !quant {
			t, ok := m.Float[p.Name]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("layer %q is neither quantized nor has float tensor %q", p.Layer, p.Name))
			case len(t.Data) != model.Numel(p.Shape) || model.Numel(t.Shape) != len(t.Data):
				errs = append(errs, fmt.Errorf("float tensor %q has shape %v, want %v", p.Name, t.Shape, p.Shape))
			default:
				for _, v := range t.Data {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						errs = append(errs, fmt.Errorf("float tensor %q holds NaN or Inf", p.Name))
						break
					}
				}
			}
			continue
		}
		out := p.Shape[0]
		if len(p.Shape) > 1 { // weight
			if len(q.Weight) != model.Numel(p.Shape) {
				errs = append(errs, fmt.Errorf("layer %q: %d int8 weights, want %d (shape %v)", p.Layer, len(q.Weight), model.Numel(p.Shape), p.Shape))
			}
			if len(q.Scale) != out {
				errs = append(errs, fmt.Errorf("layer %q: %d weight scales, want %d", p.Layer, len(q.Scale), out))
			}
			for c, s := range q.Scale {
				if !(s > 0) || math.IsInf(float64(s), 0) {
					errs = append(errs, fmt.Errorf("layer %q: weight scale %d is %v, want finite and positive", p.Layer, c, s))
					break
				}
			}
		} else if len(q.Bias) != out {
			errs = append(errs, fmt.Errorf("layer %q: %d int32 biases, want %d", p.Layer, len(q.Bias), out))
		}
	}
	for _, l := range m.Spec.Layers {
		if !NeedsActParams(l.Kind) {
			continue
		}
		q, ok := m.Act[l.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("no activation parameters for the output of layer %q", l.Name))
		} else if err := q.Check(); err != nil {
			errs = append(errs, fmt.Errorf("activation of layer %q: %w", l.Name, err))
		}
	}
	for name := range m.Layers {
		if !Quantizable(m.Spec, name) {
			errs = append(errs, fmt.Errorf("quantized layer %q is not a linear or conv2d layer of the spec", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("infer: invalid quantized model %q: %w", m.Spec.Name, err)
	}
	return nil
}

// FusedReLU returns the index of the relu layer that layer i of layers is
// fused with when compiled (skipping layers that are the identity at
// inference), or -1. The ONNX exporter mirrors the same fusion.
func FusedReLU(layers []model.Layer, i int) int {
	j := i + 1
	for j < len(layers) && identityAtInference(layers[j].Kind) {
		j++
	}
	if j < len(layers) && layers[j].Kind == model.KindReLU {
		return j
	}
	return -1
}

// tensorState is what the builder knows of the activation between steps.
type tensorState struct {
	u8       bool    // held as uint8
	q        QParams // its quantization parameters, if known
	qok      bool
	producer string // layer that produced it ("input" at first)
}

// compiler is the state of build between layers; the per-kind
// implementations in kinds.go append the ops of one layer each.
type compiler struct {
	spec model.Spec
	w    model.Weights
	qm   *QuantModel // nil for a float32 program
	p    *Program
	st   tensorState
	// i is the index of the layer being compiled; an implementation that
	// fuses the layers after it advances i past them.
	i int
}

func build(spec model.Spec, w model.Weights, qm *QuantModel) (*Program, error) {
	shapes, err := spec.Shapes()
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	c := &compiler{spec: spec, w: w, qm: qm, st: tensorState{producer: "input"},
		p: &Program{spec: spec, inSize: model.Numel(spec.Input), classes: spec.Classes, int8: qm != nil}}
	if qm != nil {
		c.st.q, c.st.qok = qm.Input, true
	}
	cur := spec.Input
	for c.i = 0; c.i < len(spec.Layers); c.i++ {
		l := spec.Layers[c.i]
		out := shapes[c.i]
		if identityAtInference(l.Kind) {
			cur = out
			continue
		}
		f32, err := f32Kinds.Lookup(l.Kind)
		if err != nil {
			return nil, fmt.Errorf("infer: layer %q: %w", l.Name, err)
		}
		done := false
		if qm != nil {
			i8, err := i8Kinds.Lookup(l.Kind)
			if err != nil {
				return nil, fmt.Errorf("infer: layer %q: %w", l.Name, err)
			}
			if done, err = i8(c, l, cur, out); err != nil {
				return nil, err
			}
		}
		if !done {
			if c.st.u8 {
				c.p.ops = append(c.p.ops, &dequantizeOp{layer: c.st.producer})
				c.st.u8 = false
			}
			if err := f32(c, l, cur, out); err != nil {
				return nil, err
			}
			if NeedsActParams(l.Kind) {
				c.st = tensorState{producer: l.Name}
				if qm != nil {
					c.st.q, c.st.qok = qm.Act[l.Name]
				}
			}
		}
		cur = out
	}
	return c.p, nil
}
