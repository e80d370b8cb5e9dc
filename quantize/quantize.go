package quantize

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
)

// Calibration yields the batches of inputs that calibration runs the
// float32 network on: each batch is a list of examples, each with the
// spec's input size.
type Calibration interface {
	// Next returns the next batch, or io.EOF after the last one.
	Next() ([][]float32, error)
}

// sliceCalibration is FromSlices' Calibration.
type sliceCalibration struct {
	examples [][]float32
	batch    int
	pos      int
}

// FromSlices returns a Calibration over in-memory examples, batchSize at
// a time (all at once if batchSize ≤ 0).
func FromSlices(examples [][]float32, batchSize int) Calibration {
	if batchSize <= 0 {
		batchSize = max(len(examples), 1)
	}
	return &sliceCalibration{examples: examples, batch: batchSize}
}

func (c *sliceCalibration) Next() ([][]float32, error) {
	if c.pos >= len(c.examples) {
		return nil, io.EOF
	}
	end := min(c.pos+c.batch, len(c.examples))
	b := c.examples[c.pos:end]
	c.pos = end
	return b, nil
}

// Config configures Quantize.
type Config struct {
	// Method chooses activation ranges; the zero value means
	// DefaultMethod.
	Method Method
	// Percentile is the percentile Percentile keeps, in (50, 100];
	// 0 means DefaultPercentile.
	Percentile float64
	// Batches caps the calibration batches used; 0 means all.
	Batches int
	// Bins is the number of histogram bins on each side of zero; 0 means
	// 2048.
	Bins int
}

func (c Config) withDefaults() (Config, error) {
	if c.Method == "" {
		c.Method = DefaultMethod
	}
	if _, err := ParseMethod(string(c.Method)); err != nil {
		return c, err
	}
	if c.Percentile == 0 {
		c.Percentile = DefaultPercentile
	}
	if !(c.Percentile > 50 && c.Percentile <= 100) {
		return c, fmt.Errorf("quantize: percentile %v outside (50, 100]", c.Percentile)
	}
	if c.Batches < 0 {
		return c, fmt.Errorf("quantize: negative batch count %d", c.Batches)
	}
	if c.Bins == 0 {
		c.Bins = 2048
	}
	if c.Bins < 256 || c.Bins > 1<<16 {
		return c, fmt.Errorf("quantize: bins %d outside [256, 65536]", c.Bins)
	}
	return c, nil
}

// Model is a post-training quantized network: the runtime's QuantModel
// and how it was made. It compiles with Compile (infer.CompileInt8)
// and is stored with Save and Load.
type Model struct {
	infer.QuantModel
	// Method and Percentile record the calibration.
	Method     Method
	Percentile float64
	// Fallback lists the linear and conv2d layers kept in float32.
	Fallback []string
	// Source is the network as given to Quantize when folding changed it
	// (batchnorms folded into the layers before them, biases added; Spec
	// is the folded network), so that WithFallback can fold the float
	// weights it is given the same way. Empty when Spec is the network
	// as given.
	Source model.Spec
}

// Compile compiles the model for the INT8 runtime.
func (m *Model) Compile() (*infer.Program, error) { return infer.CompileInt8(&m.QuantModel) }

// ErrNoCalibrationData is returned when the calibration yields no
// examples.
var ErrNoCalibrationData = errors.New("quantize: calibration yielded no examples")

// Quantize quantizes a float32 network after training (static
// quantization). It works on the network as infer.Fold returns it
// (batchnorms folded into the conv2d and linear layers they follow), the
// Model's Spec; a batchnorm that cannot fold stays in float32. It runs the network on the calibration batches,
// streaming a histogram of every activation that will be quantized (the
// input and the output of every layer with parameters of its own:
// linear and conv2d after a fused ReLU, add, the pools, batchnorm and
// the activations but relu; see infer.NeedsActParams), chooses each one's clipping range with cfg.Method, and
// quantizes weights per output channel to symmetric int8 (scale =
// max|w|/127) and biases to int32 in units of input scale × weight scale.
// Activations are asymmetric uint8 per tensor.
func Quantize(ctx context.Context, spec model.Spec, w model.Weights, calib Calibration, cfg Config) (*Model, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	source := spec
	// Calibrate and quantize the network the runtime runs: batchnorms
	// folded, every activation it quantizes named after a layer of it.
	spec, w, err = infer.Fold(spec, w)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	prog, err := infer.Compile(spec, w)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	hists := map[string]*histogram{"": newHistogram(cfg.Bins)} // "" is the input
	for _, l := range spec.Layers {
		if infer.NeedsActParams(l.Kind) {
			hists[l.Name] = newHistogram(cfg.Bins)
		}
	}
	in := prog.InputSize()
	var x, out []float32
	seen := 0
	for b := 0; cfg.Batches == 0 || b < cfg.Batches; b++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("quantize: calibration: %w", err)
		}
		batch, err := calib.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("quantize: calibration batch %d: %w", b, err)
		}
		n := len(batch)
		if n == 0 {
			continue
		}
		x = slices.Grow(x[:0], n*in)[:n*in]
		for i, ex := range batch {
			if len(ex) != in {
				return nil, fmt.Errorf("quantize: calibration batch %d example %d has %d values, the spec's input has %d", b, i, len(ex), in)
			}
			copy(x[i*in:], ex)
		}
		out = slices.Grow(out[:0], n*prog.Classes())[:n*prog.Classes()]
		if err := nonFinite(spec, "input", x, n, seen); err != nil {
			return nil, err
		}
		hists[""].add(x)
		var bad error
		err = prog.Observe(x, n, out, func(layer string, data []float32) {
			if bad == nil && layer != "" {
				bad = nonFinite(spec, fmt.Sprintf("layer %q output", layer), data, n, seen)
			}
			if h := hists[layer]; h != nil && layer != "" {
				h.add(data)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("quantize: calibration batch %d: %w", b, err)
		}
		if bad == nil {
			bad = nonFinite(spec, "logit", out, n, seen)
		}
		if bad != nil {
			return nil, bad
		}
		seen += n
	}
	if seen == 0 {
		return nil, ErrNoCalibrationData
	}
	m := &Model{Method: cfg.Method, Percentile: cfg.Percentile}
	m.Spec = spec
	if !sameSpec(source, spec) {
		m.Source = source
	}
	m.Act = make(map[string]infer.QParams, len(hists))
	for name, h := range hists {
		a, b := clipRange(h, cfg.Method, cfg.Percentile)
		q := actParams(a, b)
		if name == "" {
			m.Input = q
		} else {
			m.Act[name] = q
		}
	}
	if m.Layers, err = quantizeWeights(spec, w, m.Input, m.Act); err != nil {
		return nil, err
	}
	m.Float = model.Weights{}
	tensors, err := spec.Tensors()
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	for _, t := range tensors {
		if !infer.Quantizable(spec, t.Layer) { // a batchnorm that did not fold
			m.Float[t.Name] = w[t.Name]
		}
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	return m, nil
}

// nonFinite reports the first NaN or infinity in a calibration batch's
// values (n examples, the first being example first): the histograms
// would drop or clamp it and yield a model that computes garbage. Huge
// but finite weights get here through activations that overflow.
func nonFinite(spec model.Spec, what string, vals []float32, n, first int) error {
	for i, v := range vals {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			per := len(vals) / n
			return fmt.Errorf("quantize: model %q: calibration example %d: %s %d is %v; the float model's activations must be finite (check its weights: values whose products overflow float32) and so must its inputs",
				spec.Name, first+i/per, what, i%per, v)
		}
	}
	return nil
}

// sameSpec reports whether two specs describe the same network, field
// by field.
func sameSpec(a, b model.Spec) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// quantizeWeights quantizes every quantizable layer.
func quantizeWeights(spec model.Spec, w model.Weights, input infer.QParams, act map[string]infer.QParams) (map[string]infer.QLayer, error) {
	ins := infer.LayerInputParams(spec, input, act)
	layers := map[string]infer.QLayer{}
	for _, l := range spec.Layers {
		if !infer.Quantizable(spec, l.Name) {
			continue
		}
		quantizeLayer, err := weightQuantizers.Lookup(l.Kind)
		if err != nil {
			return nil, fmt.Errorf("quantize: layer %q: %w", l.Name, err)
		}
		ql, err := quantizeLayer(w[l.Name+".weight"].Data, w[l.Name+".bias"].Data, l.Out, ins[l.Name].Scale)
		if err != nil {
			return nil, fmt.Errorf("quantize: layer %q: %w", l.Name, err)
		}
		layers[l.Name] = ql
	}
	return layers, nil
}

// quantizeLayer quantizes one layer's weights (per output channel,
// symmetric, [−127, 127]) and bias (int32, scale sIn·sW[c]).
func quantizeLayer(wt, bias []float32, out int, sIn float32) (infer.QLayer, error) {
	fan := len(wt) / out
	ql := infer.QLayer{Weight: make([]int8, len(wt)), Scale: make([]float32, out), Bias: make([]int32, out)}
	for c := 0; c < out; c++ {
		row := wt[c*fan : (c+1)*fan]
		var m float64
		for _, v := range row {
			m = max(m, math.Abs(float64(v)))
		}
		s := float32(m / 127)
		if !(s > 0) {
			s = 1 // an all-zero channel
		}
		ql.Scale[c] = s
		for k, v := range row {
			q := math.RoundToEven(float64(v) / float64(s))
			ql.Weight[c*fan+k] = int8(min(max(q, -127), 127))
		}
		bq := math.RoundToEven(float64(bias[c]) / (float64(sIn) * float64(s)))
		if bq > math.MaxInt32 || bq < math.MinInt32 {
			return ql, fmt.Errorf("bias %d = %v overflows int32 at scale %v·%v", c, bias[c], sIn, s)
		}
		ql.Bias[c] = int32(bq)
	}
	return ql, nil
}
