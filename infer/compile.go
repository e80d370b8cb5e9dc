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
// produces it. Spec is the network the runtime runs, as Fold returns it:
// every conv2d and linear layer with a bias and no batchnorm left that
// would fold (Validate checks it).
//
// Activations are quantized per tensor: Input for the network input and
// Act[name] for the output of each layer with parameters of its own (see
// NeedsActParams: linear and conv2d, after the ReLU fused with them,
// add, the pools, batchnorm and the activations but relu). Max-pool,
// flatten, dropout and a ReLU that is not fused keep their input's
// parameters.
//
// Each linear and conv2d layer is either in Layers (run in INT8) or has
// its float32 "<name>.weight" and "<name>.bias" in Float (run in
// float32, the accuracy fallback). Float also holds the parameters and
// running statistics of the batchnorms left in Spec.
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

// FloatAfter reports whether the output of layer i of the spec is
// wanted as float32 rather than uint8: it is the logits, or none of the
// layers that read it wants uint8. A quantized linear or conv layer's
// output is requantized to uint8 otherwise (and dequantized for the
// readers that want float32); ONNX export follows the same rule so both
// round at the same places.
//
// A reader wants uint8 when it is a quantized linear or conv2d layer, an
// add, tanh, sigmoid or relu6 with activation parameters (they run on
// uint8), or a layer that keeps its input's quantization (max-pool,
// flatten, relu, dropout) one of whose own readers wants uint8. Every
// other reader (a float fallback layer, avgpool, globalavgpool, silu,
// batchnorm) runs in float32.
func (qm *QuantModel) FloatAfter(i int) bool {
	if qm == nil {
		return true
	}
	cons, err := qm.Spec.Consumers()
	if err != nil || i < 0 || i >= len(cons) {
		return true
	}
	return !qm.readU8(cons, i)
}

// readU8 reports whether some reader of layer i's output wants uint8
// (see FloatAfter).
func (qm *QuantModel) readU8(cons [][]int, i int) bool {
	last := len(qm.Spec.Layers) - 1
	for _, j := range cons[i] {
		l := qm.Spec.Layers[j]
		info, _ := model.Describe(l.Kind)
		switch {
		case info.Quantizable:
			if qm.Quantized(l.Name) {
				return true
			}
		case info.KeepsQuantParams:
			if j != last && qm.readU8(cons, j) {
				return true
			}
		default:
			if _, ok := qm.Act[l.Name]; ok && u8Readers[l.Kind] {
				return true
			}
		}
	}
	return false
}

// Compile compiles a float32 network for inference. It runs the network
// as Fold returns it: batchnorms folded into the conv2d and linear layers
// before them.
func Compile(spec model.Spec, w model.Weights) (*Program, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	if err := spec.Check(w); err != nil {
		return nil, fmt.Errorf("infer: weights do not fit spec %q: %w", spec.Name, err)
	}
	fs, fw, err := Fold(spec, w)
	if err != nil {
		return nil, err
	}
	p, err := build(fs, fw, nil)
	if err != nil {
		return nil, err
	}
	p.spec = spec
	return p, nil
}

// Fold returns the network the runtimes run: model.Inference applied
// until nothing more folds (a batchnorm after a batchnorm folds only once
// the first has), so that compiling its result again changes nothing.
// Package quantize calibrates and quantizes this network, and a
// QuantModel's Spec is one.
func Fold(spec model.Spec, w model.Weights) (model.Spec, model.Weights, error) {
	if !foldable(spec) {
		// Nothing to do: spare the copy of the weights model.Inference
		// makes, which would double a large network's peak memory.
		if err := spec.Validate(); err != nil {
			return model.Spec{}, nil, fmt.Errorf("infer: %w", err)
		}
		if err := spec.Check(w); err != nil {
			return model.Spec{}, nil, fmt.Errorf("infer: weights do not fit spec %q: %w", spec.Name, err)
		}
		return spec, w, nil
	}
	for {
		fs, fw, err := model.Inference(spec, w)
		if err != nil {
			return model.Spec{}, nil, fmt.Errorf("infer: %w", err)
		}
		if len(fs.Layers) == len(spec.Layers) {
			return fs, fw, nil
		}
		spec, w = fs, fw
	}
}

// foldable reports whether model.Inference would change spec: it has a
// batchnorm, or a conv2d or linear layer without a bias.
func foldable(spec model.Spec) bool {
	for _, l := range spec.Layers {
		if l.Kind == model.KindBatchNorm || (l.NoBias && (l.Kind == model.KindConv2D || l.Kind == model.KindLinear)) {
			return true
		}
	}
	return false
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

// LayerInputParams returns, for each linear and conv2d layer of spec,
// the quantization parameters of the activation it reads: the input's,
// or those of the layer that produced it, where layers that keep their
// input's quantization (max-pool, flatten, dropout, relu) pass it on.
// A quantized layer's int32 bias is in units of this scale times its
// weight scale.
func LayerInputParams(spec model.Spec, input QParams, act map[string]QParams) map[string]QParams {
	ins, err := spec.InputIndices()
	if err != nil {
		return nil
	}
	params := make([]QParams, len(spec.Layers))
	of := func(j int) QParams {
		if j < 0 {
			return input
		}
		return params[j]
	}
	out := map[string]QParams{}
	for i, l := range spec.Layers {
		in := of(ins[i][0])
		if Quantizable(spec, l.Name) {
			out[l.Name] = in
		}
		params[i] = in
		if NeedsActParams(l.Kind) {
			params[i] = act[l.Name]
		}
	}
	return out
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
	params, err := m.Spec.Tensors() // a batchnorm's running statistics too
	if err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	var errs []error
	if err := inferenceForm(m.Spec); err != nil {
		errs = append(errs, err)
	}
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

// inferenceForm checks that spec is a network as Fold returns it: every
// conv2d and linear layer with a bias, no batchnorm left that would fold.
// A QuantModel holds the folded network's layers; the runtime does not
// fold again.
func inferenceForm(spec model.Spec) error {
	ins, err := spec.InputIndices()
	if err != nil {
		return err
	}
	for i, l := range spec.Layers {
		info, _ := model.Describe(l.Kind)
		if info.Quantizable && l.NoBias {
			return fmt.Errorf("layer %q has no bias: a quantized model's spec is the folded network (infer.Fold), where every conv2d and linear layer has one", l.Name)
		}
		if j := ins[i][0]; l.Kind == model.KindBatchNorm && j >= 0 && spec.OnlyConsumer(j) == i {
			if k := spec.Layers[j].Kind; k == model.KindConv2D || k == model.KindLinear {
				return fmt.Errorf("batchnorm %q would fold into %q: a quantized model's spec is the folded network (infer.Fold)", l.Name, spec.Layers[j].Name)
			}
		}
	}
	return nil
}

// FusedReLU returns the index of the relu layer that layer i of layers
// is fused with when compiled, or -1: the relu must be the only reader of
// layer i's output (looking through layers that are the identity at
// inference, each the only reader of the one before), so that a conv
// whose output also feeds a shortcut keeps its pre-ReLU output. The ONNX
// exporter mirrors the same fusion.
func FusedReLU(layers []model.Layer, i int) int {
	s := model.Spec{Layers: layers}
	j := s.OnlyConsumer(i)
	for j >= 0 && identityAtInference(layers[j].Kind) {
		j = s.OnlyConsumer(j)
	}
	if j >= 0 && layers[j].Kind == model.KindReLU {
		return j
	}
	return -1
}

// valState is what the compiler knows of one value of the program.
type valState struct {
	u8       bool    // held as uint8
	q        QParams // its quantization parameters, if qok
	qok      bool
	dim      int    // elements per example
	producer string // layer that produced it ("input" for the network input)
	// conv is 1 + the value holding the same tensor converted to the
	// other type (float32 ↔ uint8), or 0 when none was made yet.
	conv int
}

// node is one layer as its implementation sees it: the values it reads
// (one per input) and the per-example shapes of its first input and its
// output.
type node struct {
	l   model.Layer
	in  []int
	inS []int
	out []int
}

// compiler is the state of build between layers; the per-kind
// implementations in kinds.go append the ops of one layer each and
// return the value holding its output.
type compiler struct {
	spec   model.Spec
	w      model.Weights
	qm     *QuantModel // nil for a float32 program
	p      *Program
	vals   []valState
	nodeOf []int  // layer index -> value holding its output
	fused  []bool // layers absorbed into an earlier one's op
	// i is the index of the layer being compiled.
	i int
}

// emit appends op o reading values in and returns the value it writes:
// dim elements per example, uint8 with parameters q or float32.
func (c *compiler) emit(o op, in []int, u8 bool, dim int, q QParams, qok bool) int {
	id := len(c.vals)
	c.vals = append(c.vals, valState{u8: u8, q: q, qok: qok, dim: dim, producer: o.name()})
	_, conversion := o.(*quantizeOp)
	if _, ok := o.(*dequantizeOp); ok {
		conversion = true
	}
	c.p.steps = append(c.p.steps, step{op: o, in: in, out: id, u8: u8, observe: !conversion})
	return id
}

// asF32 returns value id as float32, dequantizing it (once) if needed.
func (c *compiler) asF32(id int) int {
	v := c.vals[id]
	if !v.u8 {
		return id
	}
	if v.conv == 0 {
		f := c.emit(&dequantizeOp{layer: v.producer, q: v.q}, []int{id}, false, v.dim, v.q, true)
		c.vals[f].producer = v.producer
		c.vals[f].conv, c.vals[id].conv = id+1, f+1
	}
	return c.vals[id].conv - 1
}

// asU8 returns value id as uint8, quantizing it (once) with its
// parameters if needed.
func (c *compiler) asU8(id int, reader string) (int, error) {
	v := c.vals[id]
	if v.u8 {
		return id, nil
	}
	if !v.qok {
		return 0, fmt.Errorf("infer: layer %q runs in INT8 but the output of %q it reads has no quantization parameters", reader, v.producer)
	}
	if v.conv == 0 {
		u := c.emit(&quantizeOp{layer: v.producer, q: v.q}, []int{id}, true, v.dim, v.q, true)
		c.vals[u].producer = v.producer
		c.vals[u].conv, c.vals[id].conv = id+1, u+1
	}
	return c.vals[id].conv - 1, nil
}

// actParams are the quantization parameters of layer l's float32 output
// in an INT8 program: its own calibrated ones, or its input's for a kind
// that keeps them.
func (c *compiler) actParams(l model.Layer, in int) (QParams, bool) {
	if c.qm == nil {
		return QParams{}, false
	}
	if NeedsActParams(l.Kind) {
		q, ok := c.qm.Act[l.Name]
		return q, ok
	}
	return c.vals[in].q, c.vals[in].qok
}

func build(spec model.Spec, w model.Weights, qm *QuantModel) (*Program, error) {
	shapes, err := spec.Shapes()
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	ins, err := spec.InputIndices()
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	c := &compiler{spec: spec, w: w, qm: qm, nodeOf: make([]int, len(spec.Layers)), fused: make([]bool, len(spec.Layers)),
		p: &Program{spec: spec, inSize: model.Numel(spec.Input), classes: spec.Classes, int8: qm != nil}}
	in := valState{dim: c.p.inSize, producer: model.InputName}
	if qm != nil {
		in.q, in.qok = qm.Input, true
	}
	c.vals = append(c.vals, in)
	valueOf := func(j int) int {
		if j < 0 {
			return 0
		}
		return c.nodeOf[j]
	}
	for c.i = 0; c.i < len(spec.Layers); c.i++ {
		l := spec.Layers[c.i]
		nd := node{l: l, inS: spec.InputShape(shapes, c.i), out: shapes[c.i]}
		for _, j := range ins[c.i] {
			nd.in = append(nd.in, valueOf(j))
		}
		if c.fused[c.i] || identityAtInference(l.Kind) {
			// Its output is its input: a dropout, or a relu the layer
			// before applied.
			c.nodeOf[c.i] = nd.in[0]
			continue
		}
		f32, err := f32Kinds.Lookup(l.Kind)
		if err != nil {
			return nil, fmt.Errorf("infer: layer %q: %w", l.Name, err)
		}
		if qm != nil {
			i8, err := i8Kinds.Lookup(l.Kind)
			if err != nil {
				return nil, fmt.Errorf("infer: layer %q: %w", l.Name, err)
			}
			out, done, err := i8(c, nd)
			if err != nil {
				return nil, err
			}
			if done {
				c.nodeOf[c.i] = out
				continue
			}
			for k, id := range nd.in {
				nd.in[k] = c.asF32(id)
			}
		}
		out, err := f32(c, nd)
		if err != nil {
			return nil, err
		}
		if out != nd.in[0] && !c.vals[out].u8 {
			c.vals[out].q, c.vals[out].qok = c.actParams(l, nd.in[0])
		}
		c.nodeOf[c.i] = out
	}
	c.p.nvals = len(c.vals)
	c.p.result = c.nodeOf[len(spec.Layers)-1]
	c.p.fusePairs()
	c.p.assignBuffers(func(st *step) bool {
		ip, ok := st.op.(interface{ inPlace() bool })
		return ok && ip.inPlace()
	})
	return c.p, nil
}

// Fusions of two consecutive ops of an INT8 program into one pass, each
// giving the same bits as the two; tests turn them off to compare.
var (
	// fuseAddTables: an add with the table that is its only reader (see
	// addLUT).
	fuseAddTables = true
	// fuseGAPU8: a dequantization with the global average pool that is
	// its only reader (see gapU8).
	fuseGAPU8 = true
)

// fused returns the op that runs first then second, where second's first
// input is first's output and its only reader, or nil when they do not
// fuse.
func fused(first, second op) op {
	switch f := first.(type) {
	case *addI8:
		if lut, ok := second.(*lutU8); ok && fuseAddTables {
			return fuseAddLUT(f, lut)
		}
	case *dequantizeOp:
		if gap, ok := second.(*globalAvgPoolOp); ok && fuseGAPU8 {
			return &gapU8{gap: gap, lut: dequantTable(f.q)}
		}
	}
	return nil
}

// fusePairs replaces each step whose first input only it reads (and is
// not the result), and that fused fuses with the step writing that
// input, by one step at the first one's place writing its output.
func (p *Program) fusePairs() {
	readers := make([]int, p.nvals)
	for _, st := range p.steps {
		for _, id := range st.in {
			readers[id]++
		}
	}
	steps := make([]step, 0, len(p.steps))
	at := make([]int, p.nvals) // value -> index in steps of the step writing it
	for _, st := range p.steps {
		if in := st.in[0]; in > 0 && in != p.result && readers[in] == 1 {
			first := &steps[at[in]]
			if o := fused(first.op, st.op); o != nil {
				first.op, first.out, first.u8 = o, st.out, st.u8
				first.observe = first.observe || st.observe
				at[st.out] = at[in]
				continue
			}
		}
		at[st.out] = len(steps)
		steps = append(steps, st)
	}
	p.steps = steps
}
