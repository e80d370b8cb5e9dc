package model

import (
	"fmt"
	"regexp"

	"github.com/distill-dev/distill/internal/vocab"
)

// BlockKind names a residual block type of a BlocksConfig stage.
type BlockKind string

// Block kinds.
const (
	// BlockBasic is ResNet's basic block (He et al. 2016): conv3×3-BN-act,
	// conv3×3-BN, plus the input (through a 1×1 conv-BN projection when
	// the stride or width changes), then act.
	BlockBasic BlockKind = "basic"
	// BlockInverted is MobileNetV2's inverted residual (Sandler et al.
	// 2018): a 1×1 expansion conv-BN-act (skipped when Expand is 1), a
	// depthwise 3×3 conv-BN-act carrying the stride, a 1×1 projection
	// conv-BN with no activation, plus the input when the stride is 1 and
	// the width unchanged.
	BlockInverted BlockKind = "inverted"
)

// DefaultBlock is the block kind of a stage that names none.
const DefaultBlock = BlockBasic

var blockKinds = vocab.Set[BlockKind]{BlockBasic, BlockInverted}

// BlockKinds lists the block kinds, DefaultBlock first.
func BlockKinds() []BlockKind { return blockKinds.Values() }

// ParseBlockKind returns the block kind named s, or an error listing them.
func ParseBlockKind(s string) (BlockKind, error) { return blockKinds.Parse("model", "block", s) }

// Stage is Repeat blocks of one kind and width; the first carries the
// stride.
type Stage struct {
	Block    BlockKind
	Channels int
	Repeat   int // 0 means 1
	Stride   int // 0 means 1
	Expand   int // inverted blocks: the expansion factor; 0 means 6
}

// StemConfig is the conv-BN-act (and optional max-pool) before the
// stages.
type StemConfig struct {
	Channels int
	Kernel   int // 0 means 3
	Stride   int // 0 means 1
	Pool     int // max-pool kernel and stride after the stem; 0 or 1: none
}

// BlocksConfig describes a residual network compactly: a stem, stages of
// blocks, then global average pooling and a linear classifier.
type BlocksConfig struct {
	Name   string
	Input  []int // [C, H, W]
	Stem   StemConfig
	Stages []Stage
	// Activation is used throughout; empty means relu for basic blocks,
	// relu6 when the first stage is inverted (as MobileNetV2).
	Activation Kind
	Classes    int
}

// Blocks builds the spec of a residual network. Node names follow
// torchvision's ResNet, so that PyTorch state dicts map onto them: the
// stem conv1, bn1, act1 (and maxpool); block b of stage s is
// layer<s>.<b> with its conv1, bn1, act1, conv2, bn2, … (downsample.0 and
// downsample.1 for a projection shortcut); avgpool; fc. The output of
// each block, the node that hints and attention maps name, is the node
// layer<s>.<b> itself: the final activation of a basic block, the add of
// an inverted one (an inverted block without a shortcut ends in its
// projection's batchnorm, named layer<s>.<b> too).
func Blocks(c BlocksConfig) (Spec, error) {
	if len(c.Input) != 3 {
		return Spec{}, fmt.Errorf("model: a residual network needs a [C,H,W] input, got %v", c.Input)
	}
	if c.Stem.Channels <= 0 {
		return Spec{}, fmt.Errorf("model: the stem needs channels > 0")
	}
	if len(c.Stages) == 0 {
		return Spec{}, fmt.Errorf("model: a residual network needs at least one stage")
	}
	act := c.Activation
	if act == "" {
		act = KindReLU
		if c.Stages[0].Block == BlockInverted {
			act = KindReLU6
		}
	}
	b := &blockBuilder{act: act}
	k := c.Stem.Kernel
	if k == 0 {
		k = 3
	}
	b.convBN("conv1", "bn1", c.Stem.Channels, k, max(c.Stem.Stride, 1), 1, "")
	b.add(Layer{Name: "act1", Kind: act})
	if c.Stem.Pool > 1 {
		b.add(Layer{Name: "maxpool", Kind: KindMaxPool, Kernel: c.Stem.Pool})
	}
	width := c.Stem.Channels
	for si, st := range c.Stages {
		kind := st.Block
		if kind == "" {
			kind = DefaultBlock
		}
		if _, err := ParseBlockKind(string(kind)); err != nil {
			return Spec{}, err
		}
		if st.Channels <= 0 || st.Repeat < 0 || st.Stride < 0 || st.Expand < 0 {
			return Spec{}, fmt.Errorf("model: stage %d needs channels > 0 and repeat, stride, expand >= 0", si+1)
		}
		for bi := range max(st.Repeat, 1) {
			stride := 1
			if bi == 0 {
				stride = max(st.Stride, 1)
			}
			name := fmt.Sprintf("layer%d.%d", si+1, bi)
			switch kind {
			case BlockBasic:
				b.basic(name, width, st.Channels, stride)
			case BlockInverted:
				expand := st.Expand
				if expand == 0 {
					expand = 6
				}
				b.inverted(name, width, st.Channels, stride, expand)
			}
			width = st.Channels
		}
	}
	b.add(Layer{Name: "avgpool", Kind: KindGlobalAvgPool})
	b.add(Layer{Name: "fc", Kind: KindLinear, Out: c.Classes})
	s := Spec{Name: c.Name, Input: append([]int(nil), c.Input...), Classes: c.Classes, Layers: compactInputs(b.layers)}
	return s, s.Validate()
}

type blockBuilder struct {
	layers []Layer
	act    Kind
}

// last is the name of the most recent node.
func (b *blockBuilder) last() string {
	if len(b.layers) == 0 {
		return InputName
	}
	return b.layers[len(b.layers)-1].Name
}

// add appends l, reading the previous node unless l says otherwise.
func (b *blockBuilder) add(l Layer) {
	if len(l.Inputs) == 0 {
		l.Inputs = []string{b.last()}
	}
	b.layers = append(b.layers, l)
}

// convBN appends a bias-free conv and its batchnorm, reading from (the
// previous node when empty).
func (b *blockBuilder) convBN(conv, bn string, out, kernel, stride, groups int, from string) {
	l := Layer{Name: conv, Kind: KindConv2D, Out: out, Kernel: kernel, Stride: stride, Padding: kernel / 2, Groups: groups, NoBias: true}
	if from != "" {
		l.Inputs = []string{from}
	}
	b.add(l)
	b.add(Layer{Name: bn, Kind: KindBatchNorm})
}

func (b *blockBuilder) basic(name string, in, out, stride int) {
	x := b.last()
	b.convBN(name+".conv1", name+".bn1", out, 3, stride, 1, "")
	b.add(Layer{Name: name + ".act1", Kind: b.act})
	b.convBN(name+".conv2", name+".bn2", out, 3, 1, 1, "")
	main := b.last()
	shortcut := x
	if stride != 1 || in != out {
		b.convBN(name+".downsample.0", name+".downsample.1", out, 1, stride, 1, x)
		shortcut = b.last()
	}
	b.add(Layer{Name: name + ".add", Kind: KindAdd, Inputs: []string{main, shortcut}})
	b.add(Layer{Name: name, Kind: b.act})
}

func (b *blockBuilder) inverted(name string, in, out, stride, expand int) {
	x := b.last()
	hidden := in * expand
	n := 1
	if expand != 1 {
		b.convBN(name+".conv1", name+".bn1", hidden, 1, 1, 1, "")
		b.add(Layer{Name: name + ".act1", Kind: b.act})
		n = 2
	}
	b.convBN(fmt.Sprintf("%s.conv%d", name, n), fmt.Sprintf("%s.bn%d", name, n), hidden, 3, stride, hidden, "")
	b.add(Layer{Name: fmt.Sprintf("%s.act%d", name, n), Kind: b.act})
	n++
	if stride == 1 && in == out {
		b.convBN(fmt.Sprintf("%s.conv%d", name, n), fmt.Sprintf("%s.bn%d", name, n), out, 1, 1, 1, "")
		b.add(Layer{Name: name, Kind: KindAdd, Inputs: []string{b.last(), x}})
		return
	}
	b.convBN(fmt.Sprintf("%s.conv%d", name, n), name, out, 1, 1, 1, "")
}

// BlockOutputs lists the block output nodes of a spec built by Blocks
// (layer1.0, layer1.1, …): the names hints and attention maps refer to.
func BlockOutputs(s Spec) []string {
	var names []string
	for _, l := range s.Layers {
		if blockName.MatchString(l.Name) {
			names = append(names, l.Name)
		}
	}
	return names
}

var blockName = regexp.MustCompile(`^layer[0-9]+\.[0-9]+$`)
