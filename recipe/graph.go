package recipe

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/distill-dev/distill/internal/vocab"
	"github.com/distill-dev/distill/model"
)

// This file is the recipe side of residual networks (types resnet and
// mobilenet, built by model.Blocks) and of graphs written node by node
// (type graph): their defaults, their specs, and checks that name the
// key at fault (teacher.model.nodes[3].inputs[1]) where package model
// would only name a layer.

// Vocabularies that package model owns: the kinds a node may have and
// the blocks a stage may use.
var (
	nodeKinds  = vocab.Names(model.ComputedKinds())
	blockKinds = vocab.Names(model.BlockKinds())
)

// Defaults of residual networks and graph nodes. Those of batchnorm are
// model's (PyTorch's).
const (
	DefaultRepeat = 1
	DefaultExpand = 6 // MobileNetV2's expansion factor
)

var (
	defaultBNMomentum = model.Layer{}.BNMomentum()
	defaultBNEps      = model.Layer{}.BNEps()
)

// blockTypes maps the residual model types to the block their stages use
// by default and the activation the network uses by default.
var blockTypes = map[string]struct {
	block      model.BlockKind
	activation model.Kind
}{
	"resnet":    {model.BlockBasic, model.KindReLU},
	"mobilenet": {model.BlockInverted, model.KindReLU6},
}

// isBlocks reports whether type t is a residual network of stages.
func isBlocks(t string) bool { _, ok := blockTypes[t]; return ok }

// nodeKeys lists, for every node kind, the keys besides name, kind and
// inputs that it uses; a node that gives another is an error (the value
// would be ignored). required are those it cannot do without.
var nodeKeys = map[model.Kind]struct{ uses, required []string }{
	model.KindLinear:        {[]string{"out", "bias"}, []string{"out"}},
	model.KindConv2D:        {[]string{"out", "kernel", "stride", "padding", "groups", "bias"}, []string{"out", "kernel"}},
	model.KindMaxPool:       {[]string{"kernel", "stride"}, []string{"kernel"}},
	model.KindAvgPool:       {[]string{"kernel", "stride", "padding"}, []string{"kernel"}},
	model.KindFlatten:       {},
	model.KindReLU:          {},
	model.KindTanh:          {},
	model.KindSigmoid:       {},
	model.KindReLU6:         {},
	model.KindSiLU:          {},
	model.KindDropout:       {[]string{"rate"}, nil},
	model.KindBatchNorm:     {[]string{"momentum", "eps"}, nil},
	model.KindAdd:           {},
	model.KindGlobalAvgPool: {},
}

// given lists the keys of n, besides name, kind and inputs, that hold a
// value.
func (n Node) given() []string {
	var keys []string
	for _, k := range []struct {
		key string
		set bool
	}{
		{"out", n.Out != 0}, {"kernel", n.Kernel != 0}, {"stride", n.Stride != 0},
		{"padding", n.Padding != 0}, {"groups", n.Groups != 0}, {"bias", n.Bias != nil},
		{"rate", n.Rate != 0}, {"momentum", n.Momentum != 0}, {"eps", n.Eps != 0},
	} {
		if k.set {
			keys = append(keys, k.key)
		}
	}
	return keys
}

// fillBlocks sets the defaults of a resnet's or mobilenet's stem and
// stages; given marks explicit zeros, which validation reports.
func (m *Model) fillBlocks(given map[string]bool, path string) {
	bt := blockTypes[m.Type]
	def := func(key string, v *int, d int) {
		if *v == 0 && !given[path+"."+key] {
			*v = d
		}
	}
	def("stem.kernel", &m.Stem.Kernel, DefaultKernel)
	def("stem.stride", &m.Stem.Stride, DefaultStride)
	for i := range m.Stages {
		s := &m.Stages[i]
		p := fmt.Sprintf("stages[%d]", i)
		if s.Block == "" && !given[path+"."+p+".block"] {
			s.Block = string(bt.block)
		}
		def(p+".repeat", &s.Repeat, DefaultRepeat)
		def(p+".stride", &s.Stride, DefaultStride)
		if s.Block == string(model.BlockInverted) {
			def(p+".expand", &s.Expand, DefaultExpand)
		}
	}
}

// fillNodes sets the defaults of graph nodes, each only for the kinds
// that use the key, so that writing a default out changes nothing.
func (m *Model) fillNodes(given map[string]bool, path string) {
	for i := range m.Nodes {
		n := &m.Nodes[i]
		p := fmt.Sprintf("%s.nodes[%d].", path, i)
		switch model.Kind(n.Kind) {
		case model.KindLinear, model.KindConv2D:
			if n.Bias == nil {
				on := true
				n.Bias = &on
			}
		}
		switch model.Kind(n.Kind) {
		case model.KindConv2D:
			if n.Stride == 0 && !given[p+"stride"] {
				n.Stride = DefaultStride
			}
			if n.Groups == 0 && !given[p+"groups"] {
				n.Groups = 1
			}
		case model.KindMaxPool, model.KindAvgPool:
			if n.Stride == 0 && !given[p+"stride"] {
				n.Stride = n.Kernel
			}
		case model.KindBatchNorm:
			if n.Momentum == 0 && !given[p+"momentum"] {
				n.Momentum = defaultBNMomentum
			}
			if n.Eps == 0 && !given[p+"eps"] {
				n.Eps = defaultBNEps
			}
		}
	}
}

// blocksSpec builds a resnet or mobilenet through model.Blocks.
func (m Model) blocksSpec(name string, input []int, classes int) (model.Spec, error) {
	stages := make([]model.Stage, len(m.Stages))
	for i, s := range m.Stages {
		stages[i] = model.Stage{Block: model.BlockKind(s.Block), Channels: s.Channels, Repeat: s.Repeat, Stride: s.Stride, Expand: s.Expand}
	}
	return model.Blocks(model.BlocksConfig{
		Name:       name,
		Input:      input,
		Stem:       model.StemConfig{Channels: m.Stem.Channels, Kernel: m.Stem.Kernel, Stride: m.Stem.Stride, Pool: m.Stem.Pool},
		Stages:     stages,
		Activation: model.Kind(m.Activation),
		Classes:    classes,
	})
}

// layers turns the nodes into model layers, in the order written.
func (m Model) layers() []model.Layer {
	ls := make([]model.Layer, len(m.Nodes))
	for i, n := range m.Nodes {
		ls[i] = model.Layer{
			Name: n.Name, Kind: model.Kind(n.Kind), Inputs: slices.Clone(n.Inputs),
			Out: n.Out, Kernel: n.Kernel, Stride: n.Stride, Padding: n.Padding, Groups: n.Groups,
			NoBias: n.Bias != nil && !*n.Bias, Rate: n.Rate, Momentum: n.Momentum, Eps: n.Eps,
		}
	}
	return ls
}

// graphSpec builds a graph's spec: its nodes in an order where each
// comes after the nodes it reads.
func (m Model) graphSpec(name string, input []int, classes int) (model.Spec, error) {
	if len(m.Nodes) == 0 {
		return model.Spec{}, fmt.Errorf("recipe: model %q: a graph needs at least one node", name)
	}
	layers, err := model.SortLayers(m.layers())
	if err != nil {
		return model.Spec{}, err
	}
	s := model.Spec{Name: name, Input: slices.Clone(input), Classes: classes, Layers: layers}
	return s, s.Validate()
}

// blocks checks a resnet's or mobilenet's stem and stages.
func (ps *problems) blocks(path string, m Model) {
	if m.Stem.Channels == 0 {
		ps.add(path+".stem.channels", "is required: the stem's output channels, such as stem: {channels: 16}")
	} else {
		ps.atLeast(path+".stem.channels", m.Stem.Channels, 1)
	}
	ps.atLeast(path+".stem.kernel", m.Stem.Kernel, 1)
	ps.atLeast(path+".stem.stride", m.Stem.Stride, 1)
	ps.atLeast(path+".stem.pool", m.Stem.Pool, 0)
	if len(m.Stages) == 0 {
		ps.add(path+".stages", "a %s needs at least one stage, such as stages: [{channels: 16}, {channels: 32, stride: 2}]", m.Type)
	}
	for i, s := range m.Stages {
		p := fmt.Sprintf("%s.stages[%d]", path, i)
		ps.oneOf(p+".block", s.Block, blockKinds)
		ps.atLeast(p+".channels", s.Channels, 1)
		ps.atLeast(p+".repeat", s.Repeat, 1)
		ps.atLeast(p+".stride", s.Stride, 1)
		if s.Block == string(model.BlockInverted) {
			ps.atLeast(p+".expand", s.Expand, 1)
		} else if s.Expand != 0 {
			ps.add(p+".expand", "is only used by %s blocks; remove it", model.BlockInverted)
		}
	}
}

// graph checks a graph's nodes: each on its own, then how they connect,
// then, when the input shape is known, that their shapes fit. It reports
// whether they are sound enough to build a spec from.
func (ps *problems) graph(path string, m Model, input []int, classes int) bool {
	before := len(ps.list)
	if len(m.Nodes) == 0 {
		ps.add(path+".nodes", "a graph needs at least one node, such as nodes: [{name: flat, kind: flatten}, {name: fc, kind: linear, out: 10}]")
		return false
	}
	index := map[string]int{} // node name → position in nodes
	for i, n := range m.Nodes {
		p := fmt.Sprintf("%s.nodes[%d]", path, i)
		switch {
		case n.Name == "":
			ps.add(p+".name", "is required: the name other nodes' inputs and feature terms refer to")
		case strings.ContainsAny(n.Name, " \t\n/"):
			ps.add(p+".name", "must not contain spaces or slashes, got %q", n.Name)
		case n.Name == model.InputName:
			ps.add(p+".name", "%q names the network's input in inputs lists; choose another name", n.Name)
		default:
			if j, dup := index[n.Name]; dup {
				ps.add(p+".name", "%q is already the name of nodes[%d]; node names must be unique", n.Name, j)
			} else {
				index[n.Name] = i
			}
		}
		ps.oneOf(p+".kind", n.Kind, nodeKinds)
	}
	// The nodes' names and kinds are what the connections are checked
	// by; a problem with a node's other keys does not hide them.
	named := len(ps.list) == before
	for i, n := range m.Nodes {
		if slices.Contains(nodeKinds, n.Kind) {
			ps.node(fmt.Sprintf("%s.nodes[%d]", path, i), n)
		}
	}
	if !named {
		return false
	}

	// How the nodes connect: every input names a node (or the input),
	// each node reads as many as its kind takes, and there is no cycle.
	connected := len(ps.list)
	for i, n := range m.Nodes {
		p := fmt.Sprintf("%s.nodes[%d]", path, i)
		want := model.Arity(model.Kind(n.Kind))
		if len(n.Inputs) == 0 {
			if want != 1 {
				ps.add(p+".inputs", "is required: a node of kind %s reads %d inputs, such as inputs: [a, b]", n.Kind, want)
			}
			continue
		}
		if len(n.Inputs) != want {
			ps.add(p+".inputs", "a node of kind %s reads %d input(s), got %d: %q", n.Kind, want, len(n.Inputs), n.Inputs)
		}
		for k, in := range n.Inputs {
			q := fmt.Sprintf("%s.inputs[%d]", p, k)
			switch j, ok := index[in]; {
			case in == model.InputName:
			case !ok:
				ps.add(q, "%q is not a node; the nodes are %s, and %q is the network's input", in, strings.Join(nodeNames(m.Nodes), ", "), model.InputName)
			case j == i:
				ps.add(q, "node %q reads its own output", n.Name)
			}
		}
	}
	if len(ps.list) > connected {
		return false
	}
	layers, err := model.SortLayers(m.layers())
	if err != nil {
		i, k := cycleEdge(m.Nodes, index)
		key := fmt.Sprintf("%s.nodes[%d]", path, i)
		if k >= 0 {
			key += fmt.Sprintf(".inputs[%d]", k)
		}
		ps.add(key, "%s", strings.TrimPrefix(err.Error(), "model: "))
		return false
	}
	if len(ps.list) > before || input == nil {
		return len(ps.list) == before
	}

	// Shapes, node by node in the order they compute, so that a problem
	// is put at the node that has it.
	sorted := model.Spec{Layers: layers}
	shapes := map[string][]int{model.InputName: input}
	readers := map[string]int{}
	for li, l := range layers {
		p := fmt.Sprintf("%s.nodes[%d]", path, index[l.Name])
		info, _ := model.Describe(l.Kind)
		var ins [][]int
		for _, in := range sorted.InputNames(li) {
			ins = append(ins, shapes[in])
			readers[in]++
		}
		out, err := info.OutShape(l, ins)
		if err != nil {
			ps.addProblem(Problem{Key: p, whole: true, Message: fmt.Sprintf("does not fit the data's input shape %v: %s", input, strings.TrimPrefix(err.Error(), "model: "))})
			return false
		}
		shapes[l.Name] = out
	}
	last := layers[len(layers)-1]
	for _, l := range layers[:len(layers)-1] {
		if readers[l.Name] == 0 {
			ps.add(fmt.Sprintf("%s.nodes[%d]", path, index[l.Name]), "the output of node %q is never read: only the network's output (%q, the node computed last) may be unread; check the inputs of the nodes that should read it", l.Name, last.Name)
		}
	}
	if got := shapes[last.Name]; len(got) != 1 || got[0] != classes {
		ps.add(fmt.Sprintf("%s.nodes[%d]", path, index[last.Name]), "node %q is the network's output (no node reads it) and gives shape %v, but the output must be the %d class logits, such as a linear node with out: %d", last.Name, got, classes, classes)
	}
	return len(ps.list) == before
}

// node checks the keys of node n at p against its kind.
func (ps *problems) node(p string, n Node) {
	keys := nodeKeys[model.Kind(n.Kind)]
	for _, k := range n.given() {
		if !slices.Contains(keys.uses, k) {
			ps.add(p+"."+k, "is not used by a node of kind %s%s; remove it", n.Kind, usesList(keys.uses))
		}
	}
	for _, k := range keys.required {
		if !slices.Contains(n.given(), k) {
			ps.add(p+"."+k, "is required by a node of kind %s", n.Kind)
		}
	}
	// Defaults fill every optional key a kind uses, so what is zero here
	// was written so.
	uses := func(k string) bool { return slices.Contains(keys.uses, k) }
	if uses("out") && n.Out != 0 {
		ps.atLeast(p+".out", n.Out, 1)
	}
	if uses("kernel") && n.Kernel != 0 {
		ps.atLeast(p+".kernel", n.Kernel, 1)
	}
	if uses("stride") {
		ps.atLeast(p+".stride", n.Stride, 1)
	}
	if uses("padding") {
		ps.atLeast(p+".padding", n.Padding, 0)
	}
	if uses("groups") {
		ps.atLeast(p+".groups", n.Groups, 1)
	}
	if uses("rate") {
		ps.rate(p+".rate", n.Rate)
	}
	if uses("momentum") && !(n.Momentum > 0 && n.Momentum <= 1) {
		ps.add(p+".momentum", "must be in (0, 1] (the weight of each batch in the running statistics), got %v", n.Momentum)
	}
	if uses("eps") && (!(n.Eps > 0) || math.IsInf(n.Eps, 0)) {
		ps.add(p+".eps", "must be a finite number > 0, got %v", n.Eps)
	}
}

// usesList says which keys a kind takes, for messages.
func usesList(keys []string) string {
	if len(keys) == 0 {
		return " (it takes only name, kind and inputs)"
	}
	return " (it takes " + strings.Join(keys, ", ") + ")"
}

// nodeNames lists the nodes' names.
func nodeNames(nodes []Node) []string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return names
}

// cycleEdge finds, in file order, the first node i and input k whose
// reading closes a cycle (the node read depends on i), for the key of a
// cycle problem; k is -1 when the node reads the one listed before it
// implicitly.
func cycleEdge(nodes []Node, index map[string]int) (i, k int) {
	reads := func(i int) []int {
		if len(nodes[i].Inputs) == 0 {
			if i == 0 {
				return nil
			}
			return []int{i - 1}
		}
		var js []int
		for _, in := range nodes[i].Inputs {
			if j, ok := index[in]; ok {
				js = append(js, j)
			}
		}
		return js
	}
	// dependsOn reports whether node from reads node to, directly or not.
	dependsOn := func(from, to int) bool {
		seen := make([]bool, len(nodes))
		stack := []int{from}
		for len(stack) > 0 {
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if c == to {
				return true
			}
			if seen[c] {
				continue
			}
			seen[c] = true
			stack = append(stack, reads(c)...)
		}
		return false
	}
	for i := range nodes {
		for k, j := range reads(i) {
			if dependsOn(j, i) {
				if len(nodes[i].Inputs) == 0 {
					return i, -1
				}
				return i, inputPos(nodes[i].Inputs, nodes[j].Name, k)
			}
		}
	}
	return 0, -1
}

// inputPos is the position of name in inputs, preferring k.
func inputPos(inputs []string, name string, k int) int {
	if k < len(inputs) && inputs[k] == name {
		return k
	}
	return slices.Index(inputs, name)
}

// featureNames says, for a message, which names a model's feature terms
// may use: the block outputs of a residual network first, then every
// node.
func featureNames(spec model.Spec) string {
	names := make([]string, len(spec.Layers))
	for i, l := range spec.Layers {
		names[i] = l.Name
	}
	if blocks := model.BlockOutputs(spec); len(blocks) > 0 {
		return fmt.Sprintf("its block outputs are %s; any of its layers may be named: %s", strings.Join(blocks, ", "), strings.Join(names, ", "))
	}
	return "its layers are " + strings.Join(names, ", ")
}
