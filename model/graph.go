package model

import (
	"fmt"
	"slices"
	"strings"
)

// InputNames returns the names Layers[i] reads, with the sequential
// default filled in: the previous layer, or InputName for the first.
func (s Spec) InputNames(i int) []string {
	if len(s.Layers[i].Inputs) > 0 {
		return s.Layers[i].Inputs
	}
	if i == 0 {
		return []string{InputName}
	}
	return []string{s.Layers[i-1].Name}
}

// InputIndices returns, for each layer, the indices of the layers it
// reads, -1 standing for the network's input. Every engine walks a
// graph through it: keep the output of each layer by index, feed layer i
// the outputs at InputIndices()[i].
//
// It fails if a layer reads a name that no earlier layer has (a dangling
// input, a later layer, or itself); Validate says which of these it is.
func (s Spec) InputIndices() ([][]int, error) {
	index := make(map[string]int, len(s.Layers))
	out := make([][]int, len(s.Layers))
	for i, l := range s.Layers {
		names := s.InputNames(i)
		out[i] = make([]int, len(names))
		for k, n := range names {
			if n == InputName {
				out[i][k] = -1
				continue
			}
			j, ok := index[n]
			if !ok {
				return nil, s.inputError(i, n)
			}
			out[i][k] = j
		}
		index[l.Name] = i
	}
	return out, nil
}

// inputError explains why layer i cannot read name.
func (s Spec) inputError(i int, name string) error {
	l := s.Layers[i]
	if _, j, ok := s.Layer(name); ok {
		if _, err := SortLayers(s.Layers); err != nil {
			return err // a cycle: name it rather than the symptom
		}
		if j == i {
			return fmt.Errorf("model: layer %q reads its own output", l.Name)
		}
		return fmt.Errorf("model: layer %q reads %q, which comes after it: list layers in the order they compute (model.SortLayers does)", l.Name, name)
	}
	return fmt.Errorf("model: layer %q reads %q, which is neither a layer nor %q (the network's input)", l.Name, name, InputName)
}

// checkGraph checks what Shapes does not: that every layer's output is
// used, by a later layer or as the network's output (the last layer).
// A dead branch is almost always a typo in an Inputs list.
func (s Spec) checkGraph() error {
	ins, err := s.InputIndices()
	if err != nil {
		return err
	}
	used := make([]bool, len(s.Layers))
	for _, idx := range ins {
		for _, j := range idx {
			if j >= 0 {
				used[j] = true
			}
		}
	}
	for i, l := range s.Layers[:len(s.Layers)-1] {
		if !used[i] {
			return fmt.Errorf("model: the output of layer %q is never read: only the last layer (%q) may be unused; check the inputs of the layers after it", l.Name, s.Layers[len(s.Layers)-1].Name)
		}
	}
	return nil
}

// Consumers returns, for each layer, the indices of the layers that read
// its output, in order.
func (s Spec) Consumers() ([][]int, error) {
	ins, err := s.InputIndices()
	if err != nil {
		return nil, err
	}
	out := make([][]int, len(s.Layers))
	for i, idx := range ins {
		for _, j := range idx {
			if j >= 0 && !slices.Contains(out[j], i) {
				out[j] = append(out[j], i)
			}
		}
	}
	return out, nil
}

// OnlyConsumer returns the index of the one layer that reads Layers[i]'s
// output, or -1 if none or several do (or the spec is not a valid graph).
// Engines fuse a layer with what follows only through it: a conv whose
// output also feeds a shortcut must not be fused with its ReLU.
func (s Spec) OnlyConsumer(i int) int {
	cs, err := s.Consumers()
	if err != nil || i < 0 || i >= len(cs) || len(cs[i]) != 1 {
		return -1
	}
	return cs[i][0]
}

// Sequential reports whether every layer reads just the one before it
// (the first, the input).
func (s Spec) Sequential() bool {
	for i := range s.Layers {
		names := s.InputNames(i)
		want := InputName
		if i > 0 {
			want = s.Layers[i-1].Name
		}
		if len(names) != 1 || names[0] != want {
			return false
		}
	}
	return true
}

// SortLayers returns layers in an order where each reads only earlier
// layers (or the input), keeping the given order wherever the graph
// allows it. A layer without Inputs reads the layer listed before it, as
// in a Spec, so Inputs are made explicit where moving a layer would
// change what it reads. It fails on a cycle, naming the layers on it.
func SortLayers(layers []Layer) ([]Layer, error) {
	n := len(layers)
	index := make(map[string]int, n)
	for i, l := range layers {
		index[l.Name] = i
	}
	deps := make([][]int, n)
	explicit := make([]Layer, n)
	for i, l := range layers {
		explicit[i] = l
		names := l.Inputs
		if len(names) == 0 {
			names = []string{InputName}
			if i > 0 {
				names = []string{layers[i-1].Name}
			}
			explicit[i].Inputs = names
		}
		for _, name := range names {
			if j, ok := index[name]; ok && name != InputName {
				deps[i] = append(deps[i], j)
			}
		}
	}
	// Kahn's algorithm, always taking the lowest ready index so that an
	// already sorted list comes back unchanged.
	state := make([]int, n) // 0 pending, 1 done
	out := make([]Layer, 0, n)
	for len(out) < n {
		next := -1
		for i := range n {
			if state[i] != 0 {
				continue
			}
			ready := true
			for _, j := range deps[i] {
				if state[j] == 0 {
					ready = false
					break
				}
			}
			if ready {
				next = i
				break
			}
		}
		if next < 0 {
			return nil, cycleError(layers, deps, state)
		}
		state[next] = 1
		out = append(out, explicit[next])
	}
	// Where the order did not change, keep the original (implicit) Inputs.
	same := true
	for i := range out {
		if out[i].Name != layers[i].Name {
			same = false
			break
		}
	}
	if same {
		return slices.Clone(layers), nil
	}
	return compactInputs(out), nil
}

// cycleError names one cycle among the pending layers.
func cycleError(layers []Layer, deps [][]int, state []int) error {
	start := -1
	for i := range layers {
		if state[i] == 0 {
			start = i
			break
		}
	}
	// Follow pending dependencies until a layer repeats.
	var path []int
	pos := map[int]int{}
	for cur := start; ; {
		if p, ok := pos[cur]; ok {
			path = path[p:]
			break
		}
		pos[cur] = len(path)
		path = append(path, cur)
		nxt := -1
		for _, j := range deps[cur] {
			if state[j] == 0 {
				nxt = j
				break
			}
		}
		if nxt < 0 { // cannot happen: a pending layer always has a pending dependency
			break
		}
		cur = nxt
	}
	names := make([]string, 0, len(path)+1)
	for k := len(path) - 1; k >= 0; k-- {
		names = append(names, fmt.Sprintf("%q", layers[path[k]].Name))
	}
	if len(path) > 0 {
		names = append(names, fmt.Sprintf("%q", layers[path[len(path)-1]].Name))
	}
	return fmt.Errorf("model: the layers form a cycle: %s (each feeds the next); a network must be acyclic", strings.Join(names, " → "))
}
