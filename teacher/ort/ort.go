//go:build cgo

package ort

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	onnxrt "github.com/yalue/onnxruntime_go"

	"github.com/distill-dev/distill/model"
)

var (
	envMu  sync.Mutex
	envLib string // the library this package initialised ONNX Runtime from
)

// Check loads ONNX Runtime's shared library (path, or what Library
// finds) into the process, once, and returns its version. Call it while
// validating, before any work: its error says how to provide the
// library. ONNX Runtime is process-wide, so asking for a second library
// after one is loaded is an error.
func Check(path string) (string, error) {
	lib, err := Library(path)
	if err != nil {
		return "", err
	}
	envMu.Lock()
	defer envMu.Unlock()
	if onnxrt.IsInitialized() {
		if envLib != "" && envLib != lib && path != "" {
			return "", fmt.Errorf("teacher/ort: ONNX Runtime is already loaded from %s in this process; it cannot also load %s: give every ONNX teacher the same library", envLib, lib)
		}
		return onnxrt.GetVersion(), nil
	}
	onnxrt.SetSharedLibraryPath(lib)
	if err := onnxrt.InitializeEnvironment(onnxrt.WithLogLevelError()); err != nil {
		return "", fmt.Errorf("teacher/ort: load ONNX Runtime from %s: %w; %s", lib, err, howToInstall)
	}
	envLib = lib
	return onnxrt.GetVersion(), nil
}

// Teacher is an ONNX model run by ONNX Runtime. It implements
// backend.FeatureModel. Its methods are safe for concurrent use (calls
// are serialised: ONNX Runtime parallelises each run itself).
type Teacher struct {
	mu   sync.Mutex
	path string
	spec model.Spec

	inName  string
	inSize  int   // per-example input size
	inShape []int // per-example
	// batch is the batch size the model fixes, 0 when dynamic: runs go
	// in chunks of batch examples, the last one padded with zeros.
	batch int

	base *onnxrt.DynamicAdvancedSession // input → logits
	// feats returns the logits then each feature tensor; nil without
	// Options.Features.
	feats     *onnxrt.DynamicAdvancedSession
	featNames []string // the features session's outputs, logits first
	featSizes []int    // their per-example sizes
	featShape [][]int  // and shapes
	classes   int

	inBuf  []float32
	outBuf [][]float32
	closed bool
}

// Open opens the ONNX model at path as a teacher: it loads ONNX Runtime
// (see Check), creates a session (an operator ONNX Runtime does not
// support fails here), and runs one probe batch of zeros to learn the
// per-example shapes of the logits and of each of opts.Features.
func Open(path string, opts Options) (*Teacher, error) {
	if _, err := Check(opts.Library); err != nil {
		return nil, err
	}
	m, _, err := readModel(path)
	if err != nil {
		return nil, err
	}
	gr, err := parse(path, m, opts.Output, opts.Features)
	if err != nil {
		return nil, err
	}
	t := &Teacher{path: path, inName: gr.input.Name}
	if err := t.inputShape(gr.input, opts.Input); err != nil {
		return nil, err
	}
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	// From the file, so that ONNX Runtime finds external data beside it.
	t.base, err = onnxrt.NewDynamicAdvancedSession(path, []string{t.inName}, []string{gr.output.Name}, so)
	if err != nil {
		return nil, fmt.Errorf("teacher/ort: ONNX Runtime %s rejects %s: %w", onnxrt.GetVersion(), path, err)
	}
	t.featNames = []string{gr.output.Name}
	for _, f := range opts.Features {
		if !slices.Contains(t.featNames, f) {
			t.featNames = append(t.featNames, f)
		}
	}
	// Graph order, so that the Spec lists its layers as the model
	// computes them.
	slices.SortStableFunc(t.featNames[1:], func(a, b string) int { return gr.order[a] - gr.order[b] })
	probe := t.base
	if len(t.featNames) > 1 {
		if gr.external {
			t.Close()
			return nil, fmt.Errorf("teacher/ort: %s keeps its weights in external data files, which reading intermediate tensors does not support: save it as one .onnx file (under 2 GiB) to use features", path)
		}
		b, err := withOutputs(m, t.featNames[1:])
		if err != nil {
			t.Close()
			return nil, err
		}
		t.feats, err = onnxrt.NewDynamicAdvancedSessionWithONNXData(b, []string{t.inName}, t.featNames, so)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("teacher/ort: ONNX Runtime %s rejects %s with tensors %q as outputs: %w", onnxrt.GetVersion(), path, t.featNames[1:], err)
		}
		probe = t.feats
	}
	shapes, err := t.probe(probe, len(t.featNames))
	if err != nil {
		t.Close()
		return nil, err
	}
	if len(shapes[0]) != 1 {
		t.Close()
		return nil, fmt.Errorf("teacher/ort: %s: output %q has per-example shape %v; a teacher's logits are one vector per example ([batch, classes])", path, gr.output.Name, shapes[0])
	}
	t.classes = shapes[0][0]
	t.featShape = shapes
	t.featSizes = make([]int, len(shapes))
	for i, s := range shapes {
		t.featSizes[i] = model.Numel(s)
	}
	t.spec = model.Spec{
		Name:    strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)),
		Input:   slices.Clone(t.inShape),
		Classes: t.classes,
	}
	// The logits come last: a spec's last layer is its output. Each
	// node reads the one before it, which only orders them.
	for i := range t.featNames {
		j := (i + 1) % len(t.featNames)
		t.spec.Layers = append(t.spec.Layers, model.Layer{Name: t.featNames[j], Kind: model.KindExternal, Shape: shapes[j]})
	}
	if err := t.spec.Validate(); err != nil {
		t.Close()
		return nil, fmt.Errorf("teacher/ort: %s: %w", path, err)
	}
	return t, nil
}

// inputShape sets the per-example input shape and the fixed batch, if
// any, from the graph input's dimensions and the user's shape.
func (t *Teacher) inputShape(in Tensor, user []int) error {
	if len(in.Shape) == 0 {
		if len(user) == 0 {
			return fmt.Errorf("teacher/ort: %s: input %q has no stated shape: give the per-example input shape", t.path, in.Name)
		}
		in.Shape = append([]int{-1}, user...)
	}
	if in.Shape[0] > 0 {
		t.batch = in.Shape[0]
	}
	per := in.Shape[1:]
	if len(user) > 0 {
		if len(user) != len(per) {
			return fmt.Errorf("teacher/ort: %s: input %q has shape %v (batch first); the input shape %v given has another rank", t.path, in.Name, in.Shape, user)
		}
		for i, d := range per {
			if d > 0 && d != user[i] {
				return fmt.Errorf("teacher/ort: %s: input %q has shape %v (batch first), which does not fit the input shape %v given", t.path, in.Name, in.Shape, user)
			}
		}
		per = user
	}
	for _, d := range per {
		if d <= 0 {
			return fmt.Errorf("teacher/ort: %s: input %q has shape %v (-1: dynamic): give the per-example input shape", t.path, in.Name, in.Shape)
		}
	}
	t.inShape = slices.Clone(per)
	t.inSize = model.Numel(per)
	return nil
}

// sessionOptions sets the thread count and the execution provider.
func sessionOptions(opts Options) (*onnxrt.SessionOptions, error) {
	so, err := onnxrt.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("teacher/ort: %w", err)
	}
	if opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
			so.Destroy()
			return nil, fmt.Errorf("teacher/ort: %w", err)
		}
	}
	dev := opts.Device
	switch {
	case dev == "" || dev == "cpu":
	case dev == "cuda" || strings.HasPrefix(dev, "cuda:"):
		id := "0"
		if i := strings.IndexByte(dev, ':'); i >= 0 {
			id = dev[i+1:]
			if n, err := strconv.Atoi(id); err != nil || n < 0 {
				so.Destroy()
				return nil, fmt.Errorf("teacher/ort: device %q: want cuda:N with N a GPU index", dev)
			}
		}
		if err := appendCUDA(so, id); err != nil {
			so.Destroy()
			return nil, fmt.Errorf("teacher/ort: device %s: this ONNX Runtime library cannot use CUDA (%w): use a GPU build of ONNX Runtime (with libonnxruntime_providers_cuda.so beside it, and CUDA and cuDNN installed) or the cpu device", dev, err)
		}
	default:
		so.Destroy()
		return nil, fmt.Errorf("teacher/ort: device %q: want cpu, cuda or cuda:N", dev)
	}
	return so, nil
}

func appendCUDA(so *onnxrt.SessionOptions, id string) error {
	co, err := onnxrt.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer co.Destroy()
	if err := co.Update(map[string]string{"device_id": id}); err != nil {
		return err
	}
	return so.AppendExecutionProviderCUDA(co)
}

// probe runs one batch of zeros through s and returns the per-example
// shape of each of its k outputs, checking that each is float32 and
// batch-major.
func (t *Teacher) probe(s *onnxrt.DynamicAdvancedSession, k int) ([][]int, error) {
	b := max(t.batch, 1)
	in, err := onnxrt.NewTensor(batchShape(b, t.inShape), make([]float32, b*t.inSize))
	if err != nil {
		return nil, fmt.Errorf("teacher/ort: %w", err)
	}
	defer in.Destroy()
	outs := make([]onnxrt.Value, k)
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	if err := s.Run([]onnxrt.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("teacher/ort: ONNX Runtime cannot run %s on a batch of %d zero examples of shape %v: %w", t.path, b, t.inShape, err)
	}
	shapes := make([][]int, k)
	for i, o := range outs {
		if _, ok := o.(*onnxrt.Tensor[float32]); !ok {
			return nil, fmt.Errorf("teacher/ort: %s: tensor %q is not a float32 tensor (%s, element type %d); a teacher's logits and features are float32", t.path, t.featNames[i], o.GetONNXType(), o.DataType())
		}
		sh := o.GetShape()
		if len(sh) < 2 || sh[0] != int64(b) {
			return nil, fmt.Errorf("teacher/ort: %s: tensor %q has shape %v for a batch of %d examples; it must be batch-major, [batch, ...]", t.path, t.featNames[i], sh, b)
		}
		for _, d := range sh[1:] {
			shapes[i] = append(shapes[i], int(d))
		}
	}
	return shapes, nil
}

// batchShape is [n, per...].
func batchShape(n int, per []int) onnxrt.Shape {
	s := onnxrt.Shape{int64(n)}
	for _, d := range per {
		s = append(s, int64(d))
	}
	return s
}

// Spec describes the model: its per-example input shape, class count,
// and one external layer per feature tensor, then the logits, named
// after the ONNX tensors.
func (t *Teacher) Spec() model.Spec {
	s := t.spec
	s.Input = slices.Clone(s.Input)
	s.Layers = slices.Clone(s.Layers)
	return s
}

// Path is the ONNX file the teacher was opened from.
func (t *Teacher) Path() string { return t.path }

// FixedBatch is the batch size the model fixes, 0 when its batch
// dimension is dynamic.
func (t *Teacher) FixedBatch() int { return t.batch }

// Forward computes the logits of the n examples x.
func (t *Teacher) Forward(x []float32, n int, out []float32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkIO(x, n, out, "logits", t.classes); err != nil {
		return err
	}
	return t.run(t.base, 1, x, n, [][]float32{out})
}

// ForwardFeatures computes the logits, unless logits is nil, and the
// tensors named by layers (Options.Features, or the logits' name) of the
// n examples x, as backend.FeatureModel says.
func (t *Teacher) ForwardFeatures(x []float32, n int, layers []string, logits []float32, feats [][]float32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(feats) != len(layers) {
		return fmt.Errorf("teacher/ort: %d feature buffers for %d layers", len(feats), len(layers))
	}
	if logits != nil {
		if err := t.checkIO(x, n, logits, "logits", t.classes); err != nil {
			return err
		}
	}
	// dst[o] is where session output o goes: the first buffer asking
	// for it, or nil (a scratch buffer) when nobody does.
	k := len(t.featNames)
	dst := make([][]float32, k)
	dst[0] = logits
	idx := make([]int, len(layers))
	for i, name := range layers {
		o := slices.Index(t.featNames, name)
		if o < 0 {
			return fmt.Errorf("teacher/ort: %s has no feature %q: open it with that tensor in Options.Features (it has %q)", t.path, name, t.featNames)
		}
		if err := t.checkIO(x, n, feats[i], fmt.Sprintf("feature %q", name), t.featSizes[o]); err != nil {
			return err
		}
		idx[i] = o
		if dst[o] == nil {
			dst[o] = feats[i]
		}
	}
	s := t.feats
	if s == nil { // no features: only the logits can be asked for
		s, k = t.base, 1
	}
	if err := t.run(s, k, x, n, dst[:k]); err != nil {
		return err
	}
	for i, o := range idx {
		if sz := n * t.featSizes[o]; &feats[i][0] != &dst[o][0] {
			copy(feats[i][:sz], dst[o][:sz])
		}
	}
	return nil
}

func (t *Teacher) checkIO(x []float32, n int, out []float32, what string, size int) error {
	if t.closed {
		return fmt.Errorf("teacher/ort: %s is closed", t.path)
	}
	if n <= 0 || len(x) < n*t.inSize {
		return fmt.Errorf("teacher/ort: %d examples of size %d need %d inputs, got %d", n, t.inSize, n*t.inSize, len(x))
	}
	if len(out) < n*size {
		return fmt.Errorf("teacher/ort: %s of %d examples need %d values, the buffer holds %d", what, n, n*size, len(out))
	}
	return nil
}

// run computes the k outputs of s (featNames[:k]) for the n
// examples x into dst (nil entries are computed and dropped). A model
// with a dynamic batch runs once, reading x and writing dst in place; one
// with a fixed batch runs per chunk of that many examples through
// buffers, the last chunk padded with zeros.
func (t *Teacher) run(s *onnxrt.DynamicAdvancedSession, k int, x []float32, n int, dst [][]float32) error {
	sizes := t.featSizes[:k]
	chunk := n
	if t.batch > 0 {
		chunk = t.batch
	}
	if len(t.outBuf) < len(sizes) {
		t.outBuf = make([][]float32, len(sizes))
	}
	ins := make([]onnxrt.Value, 1)
	outs := make([]onnxrt.Value, len(sizes))
	for start := 0; start < n; start += chunk {
		m := min(chunk, n-start)
		xs := x[start*t.inSize : (start+m)*t.inSize]
		if m < chunk { // only with a fixed batch
			t.inBuf = grow(t.inBuf, chunk*t.inSize)
			copy(t.inBuf, xs)
			clear(t.inBuf[len(xs):])
			xs = t.inBuf
		}
		direct := t.batch == 0
		err := func() error {
			in, err := onnxrt.NewTensor(batchShape(chunk, t.inShape), xs)
			if err != nil {
				return err
			}
			defer in.Destroy()
			ins[0] = in
			for o, sz := range sizes {
				var buf []float32
				if direct && dst[o] != nil {
					buf = dst[o][:n*sz]
				} else {
					t.outBuf[o] = grow(t.outBuf[o], chunk*sz)
					buf = t.outBuf[o]
				}
				// ONNX Runtime checks a given output's full shape.
				v, err := onnxrt.NewTensor(batchShape(chunk, t.featShape[o]), buf)
				if err != nil {
					return err
				}
				defer v.Destroy()
				outs[o] = v
			}
			return s.Run(ins, outs)
		}()
		if err != nil {
			return fmt.Errorf("teacher/ort: ONNX Runtime on %s: %w", t.path, err)
		}
		if !direct {
			for o, sz := range sizes {
				if dst[o] != nil {
					copy(dst[o][start*sz:(start+m)*sz], t.outBuf[o][:m*sz])
				}
			}
		}
	}
	return nil
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// Weights fails: an ONNX teacher's weights are ONNX initializers that
// distill's engines cannot run (its layers are external).
func (t *Teacher) Weights() (model.Weights, error) {
	return nil, fmt.Errorf("teacher/ort: %s is an ONNX model run by ONNX Runtime; it has no distill weights: %w", t.path, errors.ErrUnsupported)
}

// Close releases the sessions. The ONNX Runtime environment stays loaded
// for other teachers.
func (t *Teacher) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	for _, s := range []*onnxrt.DynamicAdvancedSession{t.base, t.feats} {
		if s != nil {
			errs = append(errs, s.Destroy())
		}
	}
	t.base, t.feats = nil, nil
	return errors.Join(errs...)
}
