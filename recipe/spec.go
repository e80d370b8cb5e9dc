package recipe

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// Shape returns the dataset's per-example input shape and number of
// classes: [1, 28, 28] and 10 for MNIST, the synthetic section's shape
// and classes (or their defaults) for synthetic, nil and 0 for an
// unknown dataset.
func (d Data) Shape() (input []int, classes int) {
	switch d.Dataset {
	case "", "mnist", "fashion-mnist":
		return []int{1, 28, 28}, 10
	case "synthetic":
		input, classes = d.Synthetic.Shape, d.Synthetic.Classes
		if len(input) == 0 {
			input = defaultSynthShape
		}
		if classes == 0 {
			classes = DefaultSynthClass
		}
		return append([]int(nil), input...), classes
	}
	return nil, 0
}

// IsZero reports whether m describes no model (its section is absent).
func (m Model) IsZero() bool { return reflect.ValueOf(m).IsZero() }

// Spec builds the model.Spec of m for inputs of the given per-example
// shape and classes, through model.MLP, model.CNN or model.Blocks, or
// from its nodes for a graph. Zero-valued fields take their defaults
// (type mlp, activation relu, conv kernel 3 and stride 1, …). It reports
// an architecture that the recipe format allows but that does not fit
// the input, such as a kernel larger than the image.
func (m Model) Spec(name string, input []int, classes int) (model.Spec, error) {
	m = m.clone() // fillDefaults must not touch the caller's blocks and nodes
	m.fillDefaults(nil, "")
	if !isBlocks(m.Type) && (m.Stem != Stem{} || len(m.Stages) > 0) {
		return model.Spec{}, fmt.Errorf("recipe: model %q: stem and stages are only used by types resnet and mobilenet", name)
	}
	if m.Type != "graph" && len(m.Nodes) > 0 {
		return model.Spec{}, fmt.Errorf("recipe: model %q: nodes are only used by type graph", name)
	}
	switch m.Type {
	case "resnet", "mobilenet":
		if len(m.Conv) > 0 || len(m.Hidden) > 0 || m.Dropout != 0 || m.InputDropout != 0 {
			return model.Spec{}, fmt.Errorf("recipe: model %q: a %s takes stem, stages and activation, not conv, hidden, dropout or input_dropout", name, m.Type)
		}
		return m.blocksSpec(name, input, classes)
	case "graph":
		if len(m.Conv) > 0 || len(m.Hidden) > 0 || m.Dropout != 0 || m.InputDropout != 0 || m.Activation != "" {
			return model.Spec{}, fmt.Errorf("recipe: model %q: a graph takes only nodes (its activations and dropout are nodes too)", name)
		}
		return m.graphSpec(name, input, classes)
	}
	switch m.Type {
	case "mlp":
		if len(m.Conv) > 0 {
			return model.Spec{}, fmt.Errorf("recipe: model %q: conv blocks are only used by type cnn", name)
		}
		return model.MLP(model.MLPConfig{
			Name:         name,
			Input:        input,
			Hidden:       m.Hidden,
			Classes:      classes,
			Activation:   model.Kind(m.Activation),
			Dropout:      m.Dropout,
			InputDropout: m.InputDropout,
		})
	case "cnn":
		if len(m.Conv) == 0 {
			return model.Spec{}, fmt.Errorf("recipe: model %q: a cnn needs at least one conv block", name)
		}
		if m.InputDropout != 0 {
			return model.Spec{}, fmt.Errorf("recipe: model %q: input_dropout is only supported by type mlp", name)
		}
		blocks := make([]model.ConvBlock, len(m.Conv))
		for i, b := range m.Conv {
			blocks[i] = model.ConvBlock{Channels: b.Channels, Kernel: b.Kernel, Stride: b.Stride, Padding: b.Padding, Pool: b.Pool}
		}
		return model.CNN(model.CNNConfig{
			Name:       name,
			Input:      input,
			Conv:       blocks,
			Hidden:     m.Hidden,
			Classes:    classes,
			Activation: model.Kind(m.Activation),
			Dropout:    m.Dropout,
		})
	}
	return model.Spec{}, fmt.Errorf("recipe: model %q: type %q is not one of %s", name, m.Type, strings.Join(modelTypes, ", "))
}

// Features returns the student's feature terms as package loss takes
// them: the joint terms (attention, and hints unless they have their own
// stage) and the hint-stage terms.
func (d Distill) Features() (joint, hints []loss.Feature) {
	for _, h := range d.Hints {
		f := loss.Feature{Kind: loss.FeatureHint, Student: h.Student, Teacher: h.Teacher, Weight: h.Weight, Distance: h.Distance, Adapter: h.Adapter}
		hints = append(hints, f)
	}
	if d.HintEpochs == 0 {
		joint, hints = hints, nil
	}
	for _, a := range d.Attention {
		joint = append(joint, loss.Feature{Kind: loss.FeatureAttention, Student: a.Student, Teacher: a.Teacher, Weight: a.Weight, P: a.P})
	}
	return joint, hints
}
