package inspect

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/safetensors"
)

// Tensors describes a safetensors file's tensors.
type Tensors struct {
	// Prefix is the dotted prefix every tensor name shares ("module."),
	// which model.LoadStateDict finds and strips; empty when none.
	Prefix string `json:"prefix,omitempty"`
	// DTypes counts the tensors of each dtype.
	DTypes   map[string]int    `json:"dtypes"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Groups are the tensors by layer: by their name up to the last dot,
	// in the order of the layers' first tensors' names.
	Groups []Group `json:"groups"`
}

// Group is the tensors of one layer.
type Group struct {
	Layer string `json:"layer"`
	// Guess is the PyTorch module the tensors suggest, for writing a spec:
	// "conv2d 1→8 3×3 no bias", "batchnorm 8", "linear 16→10".
	Guess   string   `json:"guess,omitempty"`
	Tensors []Tensor `json:"tensors"`
}

// Tensor is one tensor of a file; Name is relative to its group's layer.
type Tensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
}

// Spec is a distill model's spec as inspect shows it.
type Spec struct {
	Name       string   `json:"name"`
	Input      []int    `json:"input"`
	Classes    int      `json:"classes"`
	Dataset    string   `json:"dataset,omitempty"`
	ClassNames []string `json:"class_names,omitempty"`
	Layers     []Layer  `json:"layers"`
}

// Layer is one node of a distill spec.
type Layer struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Inputs are the nodes it reads, when not just the previous one.
	Inputs  []string `json:"inputs,omitempty"`
	Output  []int    `json:"output"`
	Params  int64    `json:"params"`
	Buffers int64    `json:"buffers,omitempty"`
}

// batchNormStats are the state-dict entries of a batchnorm that are not
// trained.
var batchNormStats = []string{"running_mean", "running_var", "num_batches_tracked"}

func safetensorsFile(path string) (*Summary, error) {
	h, err := safetensors.ReadHeaderFile(path)
	if err != nil {
		return nil, err
	}
	if _, ok := h.Metadata["distill.spec"]; ok {
		return distillModel(path)
	}
	s := &Summary{Format: StateDict, Tensors: tensorsOf(h)}
	s.Params, s.Buffers = counts(h)
	s.Notes = append(s.Notes, "a state dict holds weights, not the architecture: describe the network in the recipe (e.g. model.Blocks, whose names follow torchvision's ResNet) and load the file with model.LoadStateDict, mapping names that differ")
	return s, nil
}

// counts returns the elements of h's trainable tensors and of its
// batchnorm statistics.
func counts(h *safetensors.Header) (params, buffers int64) {
	for name, t := range h.Tensors {
		n := int64(model.Numel(t.Shape))
		_, last := splitName(name)
		switch {
		case slices.Contains(batchNormStats, last):
			if isFloat(t.DType) {
				buffers += n
			}
		case isFloat(t.DType):
			params += n
		}
	}
	return params, buffers
}

func isFloat(d safetensors.DType) bool {
	switch d {
	case safetensors.Float64, safetensors.Float32, safetensors.Float16, safetensors.BFloat16, safetensors.Float8E4M3, safetensors.Float8E5M2:
		return true
	}
	return false
}

// splitName splits "layer1.0.conv1.weight" into "layer1.0.conv1" and "weight".
func splitName(name string) (layer, last string) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

func tensorsOf(h *safetensors.Header) *Tensors {
	ts := &Tensors{DTypes: map[string]int{}, Metadata: h.Metadata}
	names := h.Names()
	byLayer := map[string]int{}
	for _, name := range names {
		t := h.Tensors[name]
		ts.DTypes[string(t.DType)]++
		layer, last := splitName(name)
		i, ok := byLayer[layer]
		if !ok {
			i = len(ts.Groups)
			byLayer[layer] = i
			ts.Groups = append(ts.Groups, Group{Layer: layer})
		}
		ts.Groups[i].Tensors = append(ts.Groups[i].Tensors, Tensor{Name: last, DType: string(t.DType), Shape: slices.Clone(t.Shape)})
	}
	for i := range ts.Groups {
		ts.Groups[i].Guess = guess(ts.Groups[i].Tensors)
	}
	ts.Prefix = commonPrefix(names)
	return ts
}

// commonPrefix is the longest dotted prefix ("module.") of all names,
// keeping at least one dot-separated part of each name after it.
func commonPrefix(names []string) string {
	if len(names) < 2 {
		return ""
	}
	prefix := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	// "m.conv.weight" and "m.conv.bias" share "m.conv.", which ends in a
	// layer: a prefix leaves a layer name before each tensor's name.
	for {
		i := strings.LastIndexByte(prefix, '.')
		if i < 0 {
			return ""
		}
		prefix = prefix[:i+1]
		if !slices.ContainsFunc(names, func(n string) bool { return !strings.Contains(n[len(prefix):], ".") }) {
			return prefix
		}
		prefix = prefix[:i]
	}
}

// guess names the PyTorch module whose state-dict entries ts are.
func guess(ts []Tensor) string {
	get := func(name string) []int {
		for _, t := range ts {
			if t.Name == name {
				return t.Shape
			}
		}
		return nil
	}
	w, b := get("weight"), get("bias")
	bias := ""
	if w != nil && b == nil {
		bias = ", no bias"
	}
	switch {
	case get("running_mean") != nil && len(w) == 1:
		return fmt.Sprintf("batchnorm %d", w[0])
	case get("running_mean") != nil:
		return fmt.Sprintf("batchnorm %d, no affine", get("running_mean")[0])
	case len(w) == 4:
		g := fmt.Sprintf("conv2d %d→%d %d×%d%s", w[1], w[0], w[2], w[3], bias)
		if w[1] == 1 && w[0] > 1 {
			g += fmt.Sprintf(" (depthwise if groups=%d)", w[0])
		}
		return g
	case len(w) == 2:
		return fmt.Sprintf("linear %d→%d%s", w[1], w[0], bias)
	case len(w) == 1 && len(b) == 1:
		return fmt.Sprintf("per-channel affine %d (layernorm or batchnorm without statistics?)", w[0])
	}
	return ""
}

// distillModel inspects a model written by model.Save.
func distillModel(path string) (*Summary, error) {
	spec, _, info, err := model.LoadWithInfo(path)
	if err != nil {
		return nil, err
	}
	jsonPath, weightsPath := model.Paths(path)
	h, err := safetensors.ReadHeaderFile(weightsPath)
	if err != nil {
		return nil, err
	}
	shapes, err := spec.Shapes()
	if err != nil {
		return nil, err
	}
	ins, err := spec.InputIndices()
	if err != nil {
		return nil, err
	}
	params, err := spec.Params()
	if err != nil {
		return nil, err
	}
	bufs, err := spec.Buffers()
	if err != nil {
		return nil, err
	}
	perLayer, bufPerLayer := map[string]int64{}, map[string]int64{}
	for _, p := range params {
		perLayer[p.Layer] += int64(model.Numel(p.Shape))
	}
	for _, b := range bufs {
		bufPerLayer[b.Layer] += int64(model.Numel(b.Shape))
	}
	sp := &Spec{Name: spec.Name, Input: spec.Input, Classes: spec.Classes, Dataset: info.Dataset, ClassNames: info.ClassNames}
	for i, l := range spec.Layers {
		ly := Layer{Name: l.Name, Kind: string(l.Kind), Output: shapes[i], Params: perLayer[l.Name], Buffers: bufPerLayer[l.Name]}
		if !(len(ins[i]) == 1 && ins[i][0] == i-1) {
			ly.Inputs = spec.InputNames(i)
		}
		sp.Layers = append(sp.Layers, ly)
	}
	s := &Summary{Format: Distill, Tensors: tensorsOf(h), Spec: sp}
	for _, n := range perLayer {
		s.Params += n
	}
	for _, n := range bufPerLayer {
		s.Buffers += n
	}
	// The model is both files.
	for _, p := range []string{jsonPath, weightsPath} {
		if st, err := os.Stat(p); err == nil {
			s.Bytes += st.Size()
		}
	}
	return s, nil
}
