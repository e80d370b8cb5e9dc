package recipe

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
)

// resnet8 is a ResNet-8-ish teacher in the compact form.
const resnet8 = `
teacher:
  model:
    type: resnet
    stem: {channels: 8}
    stages:
      - {channels: 8}
      - {channels: 16, stride: 2}
      - {channels: 32, stride: 2}
`

// graphStudent is a small residual network written node by node, in no
// particular order.
const graphStudent = `
students:
  - name: g
    model:
      type: graph
      nodes:
        - {name: fc, kind: linear, inputs: [gap], out: 10}
        - {name: conv1, kind: conv2d, inputs: [input], out: 8, kernel: 3, padding: 1, bias: false}
        - {name: bn1, kind: batchnorm, inputs: [conv1]}
        - {name: act1, kind: relu}
        - {name: conv2, kind: conv2d, inputs: [act1], out: 8, kernel: 3, padding: 1, groups: 8}
        - {name: add, kind: add, inputs: [conv2, act1]}
        - {name: pool, kind: avgpool, inputs: [add], kernel: 2}
        - {name: gap, kind: globalavgpool, inputs: [pool]}
`

func TestGraphAndBlocksSpecs(t *testing.T) {
	r := mustParse(t, resnet8+graphStudent)
	ts, err := r.Teacher.Model.Spec("teacher", []int{1, 28, 28}, 10)
	if err != nil {
		t.Fatal(err)
	}
	want, err := model.Blocks(model.BlocksConfig{Name: "teacher", Input: []int{1, 28, 28}, Classes: 10,
		Stem:   model.StemConfig{Channels: 8},
		Stages: []model.Stage{{Channels: 8}, {Channels: 16, Stride: 2}, {Channels: 32, Stride: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, wantBlocks := model.BlockOutputs(ts), model.BlockOutputs(want); !slices.Equal(got, wantBlocks) {
		t.Errorf("resnet blocks %v, want %v", got, wantBlocks)
	}
	if a, b := fmt.Sprint(ts.Layers), fmt.Sprint(want.Layers); a != b {
		t.Errorf("resnet spec differs from model.Blocks':\n%s\n%s", a, b)
	}
	if r.Teacher.Model.Activation != "relu" || r.Teacher.Model.Stages[1].Block != "basic" || r.Teacher.Model.Stages[1].Repeat != 1 {
		t.Errorf("resnet defaults not filled: %+v", r.Teacher.Model)
	}

	ss, err := r.Students[0].Model.Spec("g", []int{1, 28, 28}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, l := range ss.Layers {
		order = append(order, l.Name)
	}
	if want := []string{"conv1", "bn1", "act1", "conv2", "add", "pool", "gap", "fc"}; !slices.Equal(order, want) {
		t.Errorf("graph order %v, want %v", order, want)
	}
	conv1, _, _ := ss.Layer("conv1")
	conv2, _, _ := ss.Layer("conv2")
	if !conv1.NoBias || conv2.NoBias || conv2.ConvGroups() != 8 {
		t.Errorf("bias/groups not carried: conv1 %+v conv2 %+v", conv1, conv2)
	}
	if names := ss.InputNames(2); !slices.Equal(names, []string{"bn1"}) {
		t.Errorf("act1 reads %v, want the node listed before it, bn1", names)
	}
	bn, _, _ := ss.Layer("bn1")
	if bn.BNMomentum() != 0.1 || bn.BNEps() != 1e-5 {
		t.Errorf("batchnorm defaults: %+v", bn)
	}
}

func TestMobilenetDefaults(t *testing.T) {
	r := mustParse(t, `
teacher:
  model: {type: mobilenet, stem: {channels: 8, stride: 2}, stages: [{channels: 8, expand: 1}, {channels: 16, stride: 2, repeat: 2}]}
students:
  - name: s
    model: {type: mobilenet, stem: {channels: 8}, stages: [{channels: 8}, {block: basic, channels: 16, stride: 2}]}
`)
	m := r.Teacher.Model
	if m.Activation != "relu6" || m.Stages[0].Block != "inverted" || m.Stages[0].Expand != 1 || m.Stages[1].Expand != DefaultExpand {
		t.Errorf("mobilenet defaults: %+v", m)
	}
	if s := r.Students[0].Model.Stages[1]; s.Block != "basic" || s.Expand != 0 {
		t.Errorf("a basic stage of a mobilenet: %+v", s)
	}
	spec, err := m.Spec("t", []int{1, 28, 28}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := model.BlockOutputs(spec); !slices.Equal(got, []string{"layer1.0", "layer2.0", "layer2.1"}) {
		t.Errorf("block outputs %v", got)
	}
}

// TestGraphProblems: every kind of bad graph or residual network is
// reported at the key that has to change.
func TestGraphProblems(t *testing.T) {
	students := "students:\n  - name: s\n    model: {hidden: [8]}\n"
	graph := func(nodes ...string) string {
		return "teacher:\n  model:\n    type: graph\n    nodes:\n" +
			"      - " + strings.Join(nodes, "\n      - ") + "\n" + students
	}
	head := []string{"{name: flat, kind: flatten}", "{name: fc, kind: linear, out: 10}"}
	for _, c := range []struct {
		name, yaml, key, want string
	}{
		{"cycle", graph(
			"{name: a, kind: conv2d, inputs: [input], out: 4, kernel: 3}",
			"{name: b, kind: relu, inputs: [d]}",
			"{name: c, kind: conv2d, inputs: [b], out: 4, kernel: 3}",
			"{name: d, kind: add, inputs: [a, c]}",
			"{name: flat, kind: flatten, inputs: [d]}", "{name: fc, kind: linear, out: 10}"),
			"teacher.model.nodes[1].inputs[0]", `the layers form a cycle: "c" → "d" → "b" → "c"`},
		{"cycle through an implicit input", graph(
			"{name: a, kind: relu, inputs: [b]}", "{name: b, kind: relu}", "{name: flat, kind: flatten, inputs: [b]}", "{name: fc, kind: linear, out: 10}"),
			"teacher.model.nodes[0].inputs[0]", "cycle"},
		{"dangling input", graph("{name: flat, kind: flatten}", "{name: fc, kind: linear, inputs: [flatt], out: 10}"),
			"teacher.model.nodes[1].inputs[0]", `"flatt" is not a node; the nodes are flat, fc, and "input" is the network's input`},
		{"second input dangling", graph(
			"{name: a, kind: relu}", "{name: s, kind: add, inputs: [a, b]}", head[0], head[1]),
			"teacher.model.nodes[1].inputs[1]", `"b" is not a node`},
		{"reads itself", graph("{name: a, kind: relu, inputs: [a]}", head[0], head[1]),
			"teacher.model.nodes[0].inputs[0]", `node "a" reads its own output`},
		{"add shapes", graph(
			"{name: c, kind: conv2d, inputs: [input], out: 4, kernel: 3}",
			"{name: s, kind: add, inputs: [c, input]}", head[0], head[1]),
			"teacher.model.nodes[1]", `"c" gives [4 26 26], "input" gives [1 28 28]`},
		{"add arity", graph("{name: a, kind: relu}", "{name: s, kind: add, inputs: [a]}", head[0], head[1]),
			"teacher.model.nodes[1].inputs", "a node of kind add reads 2 input(s), got 1"},
		{"add without inputs", graph("{name: a, kind: relu}", "{name: s, kind: add}", head[0], head[1]),
			"teacher.model.nodes[1].inputs", "is required: a node of kind add reads 2 inputs"},
		{"unknown kind", graph("{name: a, kind: gelu}", head[0], head[1]),
			"teacher.model.nodes[0].kind", "must be one of " + strings.Join(nodeKinds, ", ") + `, got "gelu"`},
		{"key of another kind", graph("{name: a, kind: relu, out: 3}", head[0], head[1]),
			"teacher.model.nodes[0].out", "is not used by a node of kind relu (it takes only name, kind and inputs)"},
		{"bias on batchnorm", graph("{name: a, kind: batchnorm, bias: false}", head[0], head[1]),
			"teacher.model.nodes[0].bias", "is not used by a node of kind batchnorm (it takes momentum, eps)"},
		{"missing out", graph(head[0], "{name: fc, kind: linear}"),
			"teacher.model.nodes[1].out", "is required by a node of kind linear"},
		{"missing kernel", graph("{name: c, kind: conv2d, out: 4}", head[0], head[1]),
			"teacher.model.nodes[0].kernel", "is required by a node of kind conv2d"},
		{"bad out", graph(head[0], "{name: fc, kind: linear, out: -2}"),
			"teacher.model.nodes[1].out", "must be at least 1, got -2"},
		{"bad stride", graph("{name: c, kind: conv2d, out: 4, kernel: 3, stride: 0}", head[0], head[1]),
			"teacher.model.nodes[0].stride", "must be at least 1, got 0"},
		{"bad groups", graph("{name: c, kind: conv2d, out: 4, kernel: 3, groups: -1}", head[0], head[1]),
			"teacher.model.nodes[0].groups", "must be at least 1, got -1"},
		{"groups that do not divide", graph("{name: c, kind: conv2d, out: 3, kernel: 3, groups: 2}", head[0], head[1]),
			"teacher.model.nodes[0]", "has 2 groups, which must divide its 1 input and 3 output channels"},
		{"bad rate", graph("{name: d, kind: dropout, rate: 1}", head[0], head[1]),
			"teacher.model.nodes[0].rate", "must be in [0, 1), got 1"},
		{"bad momentum", graph("{name: b, kind: batchnorm, momentum: 0}", head[0], head[1]),
			"teacher.model.nodes[0].momentum", "must be in (0, 1]"},
		{"bad eps", graph("{name: b, kind: batchnorm, eps: -1}", head[0], head[1]),
			"teacher.model.nodes[0].eps", "must be a finite number > 0, got -1"},
		{"kernel too large", graph("{name: c, kind: conv2d, out: 4, kernel: 29}", head[0], head[1]),
			"teacher.model.nodes[0]", `does not fit the data's input shape [1 28 28]: layer "c" (conv2d) kernel 29 does not fit input [1 28 28]`},
		{"duplicate name", graph("{name: flat, kind: relu}", head[0], head[1]),
			"teacher.model.nodes[1].name", `"flat" is already the name of nodes[0]`},
		{"reserved name", graph("{name: input, kind: relu}", head[0], head[1]),
			"teacher.model.nodes[0].name", "names the network's input"},
		{"missing name", graph("{kind: relu}", head[0], head[1]),
			"teacher.model.nodes[0].name", "is required"},
		{"name with a slash", graph("{name: a/b, kind: relu}", head[0], head[1]),
			"teacher.model.nodes[0].name", "must not contain spaces or slashes"},
		{"unread node", graph("{name: a, kind: relu}", "{name: flat, kind: flatten, inputs: [input]}", head[1]),
			"teacher.model.nodes[0]", `the output of node "a" is never read: only the network's output ("fc"`},
		{"output not logits", graph(head[0], "{name: fc, kind: linear, out: 7}"),
			"teacher.model.nodes[1]", `node "fc" is the network's output (no node reads it) and gives shape [7], but the output must be the 10 class logits`},
		{"no nodes", "teacher:\n  model: {type: graph}\n" + students,
			"teacher.model.nodes", "a graph needs at least one node"},
		{"activation on a graph", "teacher:\n  model: {type: graph, activation: relu, nodes: [" + head[0] + ", " + head[1] + "]}\n" + students,
			"teacher.model.activation", "is not used by type graph"},
		{"conv on a graph", "teacher:\n  model: {type: graph, conv: [{channels: 4}], nodes: [" + head[0] + ", " + head[1] + "]}\n" + students,
			"teacher.model.conv", "is not used by type graph"},
		{"nodes on an mlp", "teacher:\n  model: {hidden: [8], nodes: [" + head[0] + "]}\n" + students,
			"teacher.model.nodes", "is not used by type mlp"},
		{"stages on a cnn", "teacher:\n  model: {type: cnn, conv: [{channels: 4}], stages: [{channels: 4}]}\n" + students,
			"teacher.model.stages", "is not used by type cnn"},
		{"resnet without stem", "teacher:\n  model: {type: resnet, stages: [{channels: 4}]}\n" + students,
			"teacher.model.stem.channels", "is required"},
		{"resnet without stages", "teacher:\n  model: {type: resnet, stem: {channels: 4}}\n" + students,
			"teacher.model.stages", "a resnet needs at least one stage"},
		{"unknown block", "teacher:\n  model: {type: resnet, stem: {channels: 4}, stages: [{block: bottleneck, channels: 4}]}\n" + students,
			"teacher.model.stages[0].block", `must be one of basic, inverted, got "bottleneck"`},
		{"bad repeat", "teacher:\n  model: {type: resnet, stem: {channels: 4}, stages: [{channels: 4, repeat: 0}]}\n" + students,
			"teacher.model.stages[0].repeat", "must be at least 1, got 0"},
		{"bad channels", "teacher:\n  model: {type: resnet, stem: {channels: 4}, stages: [{channels: -4}]}\n" + students,
			"teacher.model.stages[0].channels", "must be at least 1, got -4"},
		{"expand on a basic block", "teacher:\n  model: {type: resnet, stem: {channels: 4}, stages: [{channels: 4, expand: 2}]}\n" + students,
			"teacher.model.stages[0].expand", "is only used by inverted blocks"},
		{"bad expand", "teacher:\n  model: {type: mobilenet, stem: {channels: 4}, stages: [{channels: 4, expand: 0}]}\n" + students,
			"teacher.model.stages[0].expand", "must be at least 1, got 0"},
		{"hidden on a resnet", "teacher:\n  model: {type: resnet, hidden: [8], stem: {channels: 4}, stages: [{channels: 4}]}\n" + students,
			"teacher.model.hidden", "is not used by type resnet"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "test.yaml")
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			for _, p := range problemsOf(t, err) {
				if p.Key == c.key && strings.Contains(p.Message, c.want) {
					if p.Line == 0 {
						t.Errorf("problem at %s has no line", p.Key)
					}
					return
				}
			}
			t.Errorf("want a problem at %s saying %q, got:\n%v", c.key, c.want, err)
		})
	}
}

// TestFeatureNamesOfGraphs: feature terms may name any node of a graph or
// residual network, and a wrong name is told the names there are.
func TestFeatureNamesOfGraphs(t *testing.T) {
	student := `
students:
  - name: s
    model: {type: resnet, stem: {channels: 4}, stages: [{channels: 4}, {channels: 8, stride: 2}]}
    distill:
      hints: [{student: %s, teacher: %s}]
      attention: [{student: layer1.0, teacher: layer1.0.add}]
`
	mustParse(t, resnet8+fmt.Sprintf(student, "layer2.0", "layer2.0"))
	mustParse(t, resnet8+fmt.Sprintf(student, "layer1.0.bn2", "bn1"))

	_, err := Parse([]byte(resnet8+fmt.Sprintf(student, "layer3.0", "layer9.0")), "test.yaml")
	if err == nil {
		t.Fatal("unknown layers accepted")
	}
	var sawStudent, sawTeacher bool
	for _, p := range problemsOf(t, err) {
		switch p.Key {
		case "students[0].distill.hints[0].student":
			sawStudent = strings.Contains(p.Message, `has no layer "layer3.0"; its block outputs are layer1.0, layer2.0;`)
		case "students[0].distill.hints[0].teacher":
			sawTeacher = strings.Contains(p.Message, `the teacher has no layer "layer9.0"; its block outputs are layer1.0, layer2.0, layer3.0;`) &&
				strings.Contains(p.Message, "layer3.0.downsample.1")
		}
	}
	if !sawStudent || !sawTeacher {
		t.Errorf("want problems at hints[0].student and .teacher listing the block outputs, got:\n%v", err)
	}

	// A loaded teacher's names are checked when it loads; the student's
	// are still checked here.
	_, err = Parse([]byte("teacher: {checkpoint: t.json}\n"+fmt.Sprintf(student, "nope", "anything")), "test.yaml")
	if err == nil || !strings.Contains(err.Error(), `students[0].distill.hints[0].student: the student "s" has no layer "nope"`) ||
		strings.Contains(err.Error(), "hints[0].teacher") {
		t.Errorf("with a loaded teacher: %v", err)
	}
}

// TestNodeKeysCoverKinds: every kind model knows has its keys listed, so
// that a kind added to model is either usable in recipes or fails here.
func TestNodeKeysCoverKinds(t *testing.T) {
	for _, k := range model.ComputedKinds() {
		if _, ok := nodeKeys[k]; !ok {
			t.Errorf("nodeKeys has no entry for kind %s", k)
		}
	}
	if len(nodeKeys) != len(model.ComputedKinds()) {
		t.Errorf("nodeKeys has %d kinds, model computes %d", len(nodeKeys), len(model.ComputedKinds()))
	}
}

// TestGraphDefaultsHash: writing a node's or stage's defaults out does
// not change the recipe's hash, and the canonical YAML reads back.
func TestGraphDefaultsHash(t *testing.T) {
	short := mustParse(t, resnet8+graphStudent)
	long := mustParse(t, strings.NewReplacer(
		"stem: {channels: 8}", "stem: {channels: 8, kernel: 3, stride: 1}",
		"{channels: 16, stride: 2}", "{block: basic, channels: 16, stride: 2, repeat: 1}",
		"kind: batchnorm, inputs: [conv1]}", "kind: batchnorm, inputs: [conv1], momentum: 0.1, eps: 1.0e-5}",
		"out: 10}", "out: 10, bias: true}",
		"kernel: 2}", "kernel: 2, stride: 2}",
	).Replace(resnet8+graphStudent))
	if short.Hash() != long.Hash() {
		t.Error("spelling out defaults changed the hash")
	}
	roundTrip(t, short)
	if other := mustParse(t, strings.Replace(resnet8+graphStudent, "out: 10}", "out: 10, bias: false}", 1)); other.Hash() == short.Hash() {
		t.Error("bias: false did not change the hash")
	}
}

// TestReadmeModelExamples keeps the residual network and graph examples
// of recipes/README.md valid models.
func TestReadmeModelExamples(t *testing.T) {
	for _, heading := range []string{"### model.stem and model.stages[]", "### model.nodes[]"} {
		lines := readmeSection(t, heading)
		start := slices.Index(lines, "```yaml")
		end := slices.Index(lines[start+1:], "```")
		if start < 0 || end < 0 {
			t.Fatalf("%s: no ```yaml block", heading)
		}
		example := strings.Join(lines[start+1:start+1+end], "\n  ")
		r := mustParse(t, "teacher:\n  "+example+"\nstudents: [{name: s, model: {hidden: [8]}}]\n")
		if typ := r.Teacher.Model.Type; typ != "resnet" && typ != "graph" {
			t.Errorf("%s: the example is a %s", heading, typ)
		}
		if _, err := r.Teacher.Model.Spec("teacher", []int{1, 28, 28}, 10); err != nil {
			t.Errorf("%s: %v", heading, err)
		}
	}
}
