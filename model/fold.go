package model

import (
	"fmt"
	"math"
	"slices"
)

// Inference returns the network as the inference engines (the FP32 and
// INT8 runtimes, quantization, ONNX export) run it, computing the same
// function as spec in eval mode:
//
//   - a batchnorm that reads a conv2d or linear layer whose output
//     nothing else reads is folded into it (W' = W·γ/√(var+ε) per output
//     unit, b' = (b−mean)·γ/√(var+ε) + β), and the layers that read the
//     batchnorm read the folded layer instead;
//   - every conv2d and linear layer has a bias (zeros where the spec has
//     NoBias), so engines never handle a missing one.
//
// A batchnorm that cannot be folded (one after an add, or on the input)
// stays, for the engines to run as a per-channel affine map with its
// running statistics. The weights are copied; w is not modified.
func Inference(spec Spec, w Weights) (Spec, Weights, error) {
	if err := spec.Validate(); err != nil {
		return Spec{}, nil, err
	}
	if err := spec.Check(w); err != nil {
		return Spec{}, nil, fmt.Errorf("model: weights of %q: %w", spec.Name, err)
	}
	ins, _ := spec.InputIndices()
	out := spec
	out.Layers = make([]Layer, len(spec.Layers))
	for i, l := range spec.Layers {
		l.Inputs = slices.Clone(spec.InputNames(i)) // explicit while layers move
		out.Layers[i] = l
	}
	ow := w.Clone()

	rename := map[string]string{} // folded batchnorm -> the layer it went into
	drop := make([]bool, len(spec.Layers))
	for i, l := range spec.Layers {
		if l.Kind != KindBatchNorm {
			continue
		}
		j := ins[i][0]
		if j < 0 || spec.OnlyConsumer(j) != i {
			continue
		}
		prev := &out.Layers[j]
		if prev.Kind != KindConv2D && prev.Kind != KindLinear {
			continue
		}
		foldInto(prev, l, ow)
		drop[i] = true
		rename[l.Name] = prev.Name
	}
	kept := out.Layers[:0]
	for i, l := range out.Layers {
		if drop[i] {
			continue
		}
		for k, n := range l.Inputs {
			if to, ok := rename[n]; ok {
				l.Inputs[k] = to
			}
		}
		if (l.Kind == KindConv2D || l.Kind == KindLinear) && l.NoBias {
			l.NoBias = false
			ow[l.Name+".bias"] = NewTensor(l.Out)
		}
		kept = append(kept, l)
	}
	out.Layers = compactInputs(kept)
	if err := out.Validate(); err != nil {
		return Spec{}, nil, fmt.Errorf("model: folding batchnorm of %q: %w", spec.Name, err)
	}
	if err := out.Check(ow); err != nil {
		return Spec{}, nil, fmt.Errorf("model: folding batchnorm of %q: %w", spec.Name, err)
	}
	return out, ow, nil
}

// foldInto folds batchnorm bn into the conv2d or linear layer prev,
// rewriting prev's weight and bias in w and removing bn's tensors.
func foldInto(prev *Layer, bn Layer, w Weights) {
	gamma, beta := w[bn.Name+".weight"].Data, w[bn.Name+".bias"].Data
	mean, variance := w[bn.Name+".running_mean"].Data, w[bn.Name+".running_var"].Data
	wt := w[prev.Name+".weight"]
	per := len(wt.Data) / prev.Out // weights per output unit
	bias := make([]float32, prev.Out)
	if !prev.NoBias {
		copy(bias, w[prev.Name+".bias"].Data)
	}
	for o := range prev.Out {
		// In float64: the fold must not add error beyond float32's last bit.
		scale := float64(gamma[o]) / math.Sqrt(float64(variance[o])+bn.BNEps())
		for k := o * per; k < (o+1)*per; k++ {
			wt.Data[k] = float32(float64(wt.Data[k]) * scale)
		}
		bias[o] = float32((float64(bias[o])-float64(mean[o]))*scale + float64(beta[o]))
	}
	prev.NoBias = false
	w[prev.Name+".bias"] = Tensor{Shape: []int{prev.Out}, Data: bias}
	for _, suffix := range []string{".weight", ".bias", ".running_mean", ".running_var"} {
		delete(w, bn.Name+suffix)
	}
}

// compactInputs drops each Inputs list that says what the sequential
// default already says, so that a sequential network stays written as one.
func compactInputs(layers []Layer) []Layer {
	for i := range layers {
		want := InputName
		if i > 0 {
			want = layers[i-1].Name
		}
		if len(layers[i].Inputs) == 1 && layers[i].Inputs[0] == want {
			layers[i].Inputs = nil
		}
	}
	return layers
}
