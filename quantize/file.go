package quantize

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/distill-dev/distill/internal/fileio"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/safetensors"
)

// FileFormat is the "format" field of a quantized model's JSON file.
const FileFormat = "distill.quantized/v1"

// maxJSONSize bounds the JSON file Load reads.
const maxJSONSize = 16 << 20

// ErrInvalidFile wraps every error Load reports about file contents (as
// opposed to I/O errors).
var ErrInvalidFile = errors.New("invalid quantized model file")

// fileDoc is the content of <name>.json.
type fileDoc struct {
	Format      string                   `json:"format"`
	Spec        model.Spec               `json:"spec"`
	Method      Method                   `json:"method"`
	Percentile  float64                  `json:"percentile,omitempty"`
	Fallback    []string                 `json:"fallback,omitempty"`
	Source      *model.Spec              `json:"source,omitempty"` // Model.Source
	Input       infer.QParams            `json:"input"`
	Activations map[string]infer.QParams `json:"activations"`
	SHA256      string                   `json:"sha256"`
}

// Tensor names in the safetensors file, for layer L and activation A:
//
//	L.weight              I8 (F32 for a float fallback layer), PyTorch shape
//	B.weight, B.bias,     F32 [C]     a batchnorm B that did not fold
//	B.running_mean, B.running_var
//	L.weight_scale        F32 [out]   (quantized layers)
//	L.bias                I32 [out]   (F32 for a float layer)
//	input.scale           F32 []      the network input's scale
//	input.zero_point      U8 []
//	A.output_scale        F32 []      for each activation of Activations
//	A.output_zero_point   U8 []
const (
	sufWeight      = ".weight"
	sufWeightScale = ".weight_scale"
	sufBias        = ".bias"
	sufOutScale    = ".output_scale"
	sufOutZero     = ".output_zero_point"
	inputScale     = "input.scale"
	inputZero      = "input.zero_point"
)

// Save writes the model as two files side by side (see model.Paths):
// <name>.safetensors with the int8 weights, int32 biases, float32 scales
// and uint8 zero points (and the float32 tensors of fallback layers), and
// <name>.json with the spec, the calibration method, the activation
// scales and zero points and the SHA-256 of the safetensors file. Each
// is replaced atomically, the tensors first.
func (m *Model) Save(path string) error {
	jsonPath, stPath := model.Paths(path)
	if err := m.Validate(); err != nil {
		return fmt.Errorf("quantize: save %s: %w", jsonPath, err)
	}
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{}, Metadata: map[string]string{"format": FileFormat}}
	params, _ := m.Spec.Tensors()
	for _, p := range params {
		if ql, ok := m.Layers[p.Layer]; ok {
			if len(p.Shape) > 1 {
				f.Tensors[p.Name] = safetensors.I8(p.Shape, ql.Weight)
				f.Tensors[p.Layer+sufWeightScale] = safetensors.F32([]int{len(ql.Scale)}, ql.Scale)
			} else {
				f.Tensors[p.Name] = safetensors.I32(p.Shape, ql.Bias)
			}
			continue
		}
		t := m.Float[p.Name]
		f.Tensors[p.Name] = safetensors.F32(t.Shape, t.Data)
	}
	f.Tensors[inputScale] = safetensors.F32([]int{}, []float32{m.Input.Scale})
	f.Tensors[inputZero] = safetensors.U8([]int{}, []uint8{uint8(m.Input.ZeroPoint)})
	for name, q := range m.Act {
		f.Tensors[name+sufOutScale] = safetensors.F32([]int{}, []float32{q.Scale})
		f.Tensors[name+sufOutZero] = safetensors.U8([]int{}, []uint8{uint8(q.ZeroPoint)})
	}
	sum, err := safetensors.WriteFileSHA256(stPath, f)
	if err != nil {
		return fmt.Errorf("quantize: save: %w", err)
	}
	fd := fileDoc{
		Format: FileFormat, Spec: m.Spec, Method: m.Method, Percentile: m.Percentile,
		Fallback: m.Fallback, Input: m.Input, Activations: m.Act,
		SHA256: sum,
	}
	if len(m.Source.Layers) > 0 {
		fd.Source = &m.Source
	}
	doc, err := json.MarshalIndent(fd, "", "  ")
	if err != nil {
		return fmt.Errorf("quantize: save %s: %w", jsonPath, err)
	}
	if err := atomicfile.WriteFile(jsonPath, append(doc, '\n'), 0o644); err != nil {
		return fmt.Errorf("quantize: save: %w", err)
	}
	return nil
}

// Load reads a model written by Save (path is either file or their
// shared stem). It checks everything before returning: the JSON format,
// the safetensors file's hash, every tensor's dtype and shape against the
// spec, int8 weights in [−127, 127], scales finite and positive, zero
// points in [0, 255], the activation parameters in both files equal, and
// no tensor missing or unexpected. Errors about contents wrap
// ErrInvalidFile.
func Load(path string) (*Model, error) {
	jsonPath, stPath := model.Paths(path)
	b, err := readLimited(jsonPath)
	if err != nil {
		return nil, err
	}
	fh, size, err := fileio.OpenSized(stPath)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	f, err := safetensors.Read(bufio.NewReaderSize(io.TeeReader(fh, h), 1<<16), size)
	if err != nil {
		return nil, fmt.Errorf("quantize: %s: %w: %w", stPath, ErrInvalidFile, err)
	}
	m, err := decode(b, f, hex.EncodeToString(h.Sum(nil)))
	if err != nil {
		return nil, fmt.Errorf("quantize: %s: %w: %w", jsonPath, ErrInvalidFile, err)
	}
	return m, nil
}

// loadBytes is Load from the two files' contents.
func loadBytes(jsonBytes, st []byte) (*Model, error) {
	f, err := safetensors.Read(bytes.NewReader(st), int64(len(st)))
	if err != nil {
		return nil, fmt.Errorf("quantize: %w: %w", ErrInvalidFile, err)
	}
	sum := sha256.Sum256(st)
	m, err := decode(jsonBytes, f, hex.EncodeToString(sum[:]))
	if err != nil {
		return nil, fmt.Errorf("quantize: %w: %w", ErrInvalidFile, err)
	}
	return m, nil
}

func readLimited(path string) ([]byte, error) {
	b, err := fileio.ReadFileMax(path, maxJSONSize, "an INT8 model file")
	if errors.Is(err, fileio.ErrTooLarge) {
		return nil, fmt.Errorf("quantize: %s: %w: larger than %d bytes", path, ErrInvalidFile, maxJSONSize)
	}
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	return b, nil
}

// maxElements bounds the per-example size of every tensor of a loaded
// spec, so that a hostile file cannot make the runtime allocate without
// bound (or overflow int).
const maxElements = 1 << 28

func checkSizes(spec model.Spec) error {
	shapes, err := spec.Shapes()
	if err != nil {
		return err
	}
	for i, sh := range append([][]int{spec.Input}, shapes...) {
		n := 1
		for _, d := range sh {
			if d <= 0 || d > maxElements || n > maxElements/d {
				name := "input"
				if i > 0 {
					name = spec.Layers[i-1].Name
				}
				return fmt.Errorf("%s: shape %v is empty or larger than %d elements", name, sh, maxElements)
			}
			n *= d
		}
	}
	return nil
}

// decode builds and checks a Model from the JSON document and the
// tensors whose file hashed to sum.
func decode(jsonBytes []byte, f *safetensors.File, sum string) (*Model, error) {
	var doc fileDoc
	dec := json.NewDecoder(bytes.NewReader(jsonBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a quantized model file: %w", err)
	}
	if doc.Format != FileFormat {
		return nil, fmt.Errorf("format %q, this version reads %q", doc.Format, FileFormat)
	}
	if !strings.EqualFold(doc.SHA256, sum) {
		return nil, fmt.Errorf("the tensors file's SHA-256 is %s, the JSON file expects %q (replaced file or interrupted save)", sum, doc.SHA256)
	}
	if err := doc.Spec.Validate(); err != nil {
		return nil, err
	}
	if err := checkSizes(doc.Spec); err != nil {
		return nil, err
	}
	if doc.Method != "" {
		// Load adds the "quantize: <file>" prefix ParseMethod's would repeat.
		if _, err := methods.Parse("", "calibration method", string(doc.Method)); err != nil {
			return nil, err
		}
	}
	params, err := doc.Spec.Tensors()
	if err != nil {
		return nil, err
	}
	m := &Model{Method: doc.Method, Percentile: doc.Percentile, Fallback: doc.Fallback}
	m.Spec = doc.Spec
	if doc.Source != nil {
		if err := doc.Source.Validate(); err != nil {
			return nil, fmt.Errorf("source network: %w", err)
		}
		if err := checkSizes(*doc.Source); err != nil {
			return nil, fmt.Errorf("source network: %w", err)
		}
		m.Source = *doc.Source
	}
	m.Layers = map[string]infer.QLayer{}
	m.Float = model.Weights{}
	m.Act = map[string]infer.QParams{}
	float := map[string]bool{}
	for _, name := range doc.Fallback {
		if !infer.Quantizable(doc.Spec, name) {
			return nil, fmt.Errorf("fallback layer %q is not a linear or conv2d layer of the spec", name)
		}
		float[name] = true
	}
	used := map[string]bool{}
	get := func(name string, dt safetensors.DType, shape []int) (safetensors.Tensor, error) {
		t, ok := f.Tensors[name]
		if !ok {
			return t, fmt.Errorf("missing tensor %q", name)
		}
		used[name] = true
		if t.DType != dt {
			return t, fmt.Errorf("tensor %q is %s, want %s", name, t.DType, dt)
		}
		if !slices.Equal(t.Shape, shape) {
			return t, fmt.Errorf("tensor %q has shape %v, want %v", name, t.Shape, shape)
		}
		return t, nil
	}
	for _, p := range params {
		// Float fallback layers, and batchnorms that did not fold.
		if float[p.Layer] || !infer.Quantizable(doc.Spec, p.Layer) {
			t, err := get(p.Name, safetensors.Float32, p.Shape)
			if err != nil {
				return nil, err
			}
			data, err := t.Float32()
			if err != nil {
				return nil, err
			}
			m.Float[p.Name] = model.Tensor{Shape: slices.Clone(p.Shape), Data: data}
			continue
		}
		ql := m.Layers[p.Layer]
		if len(p.Shape) > 1 {
			t, err := get(p.Name, safetensors.Int8, p.Shape)
			if err != nil {
				return nil, err
			}
			if ql.Weight, err = t.Int8(); err != nil {
				return nil, err
			}
			if i := slices.Index(ql.Weight, -128); i >= 0 {
				return nil, fmt.Errorf("tensor %q holds −128 at %d; symmetric weights are in [−127, 127]", p.Name, i)
			}
			t, err = get(p.Layer+sufWeightScale, safetensors.Float32, p.Shape[:1])
			if err != nil {
				return nil, err
			}
			if ql.Scale, err = t.Float32(); err != nil {
				return nil, err
			}
		} else {
			t, err := get(p.Name, safetensors.Int32, p.Shape)
			if err != nil {
				return nil, err
			}
			if ql.Bias, err = t.Int32(); err != nil {
				return nil, err
			}
		}
		m.Layers[p.Layer] = ql
	}
	scalar := func(scaleName, zeroName string, want infer.QParams) (infer.QParams, error) {
		t, err := get(scaleName, safetensors.Float32, []int{})
		if err != nil {
			return infer.QParams{}, err
		}
		s, err := t.Float32()
		if err != nil {
			return infer.QParams{}, err
		}
		t, err = get(zeroName, safetensors.Uint8, []int{})
		if err != nil {
			return infer.QParams{}, err
		}
		z, err := t.Uint8()
		if err != nil {
			return infer.QParams{}, err
		}
		q := infer.QParams{Scale: s[0], ZeroPoint: int32(z[0])}
		if err := q.Check(); err != nil {
			return q, fmt.Errorf("%s: %w", scaleName, err)
		}
		if math.Float32bits(q.Scale) != math.Float32bits(want.Scale) || q.ZeroPoint != want.ZeroPoint {
			return q, fmt.Errorf("%s/%s are %v/%d, the JSON file says %v/%d", scaleName, zeroName, q.Scale, q.ZeroPoint, want.Scale, want.ZeroPoint)
		}
		return q, nil
	}
	if m.Input, err = scalar(inputScale, inputZero, doc.Input); err != nil {
		return nil, err
	}
	for name, want := range doc.Activations {
		if _, _, ok := doc.Spec.Layer(name); !ok {
			return nil, fmt.Errorf("activation of unknown layer %q", name)
		}
		if m.Act[name], err = scalar(name+sufOutScale, name+sufOutZero, want); err != nil {
			return nil, err
		}
	}
	for name := range f.Tensors {
		if !used[name] {
			return nil, fmt.Errorf("unexpected tensor %q", name)
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
