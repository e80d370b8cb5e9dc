package model

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/distill-dev/distill/internal/fileio"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/safetensors"
)

// FileFormat is the "format" field of a model's JSON file.
const FileFormat = "distill.model/v1"

// Metadata keys of a model's safetensors file. "format": "pt" tells
// Hugging Face tools (transformers, safetensors.torch) that the tensors
// are a PyTorch state dict; the distill.* keys make the file complete on
// its own.
const (
	metaFormat     = "format"
	metaDistill    = "distill.format"
	metaSpec       = "distill.spec"
	metaDataset    = "distill.dataset"
	metaClassNames = "distill.class_names"
)

// maxJSONSize bounds the JSON file Load reads; real ones take a few KB.
const maxJSONSize = 16 << 20

// Info is the optional description saved with a model.
type Info struct {
	// Dataset names the data the model was trained on, e.g. "mnist".
	Dataset string `json:"dataset,omitempty"`
	// ClassNames names the logits in order; empty or Spec.Classes long.
	ClassNames []string `json:"class_names,omitempty"`
}

// fileDoc is the content of <name>.json: the spec's fields, the format,
// the Info fields and the hash of <name>.safetensors.
type fileDoc struct {
	Format string `json:"format"`
	Spec
	Info
	SHA256 string `json:"sha256,omitempty"`
}

// Paths returns the two files of the model at path, which may be the
// .json file, the .safetensors file, or the stem they share: "runs/mlp",
// "runs/mlp.json" and "runs/mlp.safetensors" all give "runs/mlp.json"
// and "runs/mlp.safetensors".
func Paths(path string) (jsonPath, weightsPath string) {
	stem := path
	switch filepath.Ext(path) {
	case ".json", ".safetensors":
		stem = strings.TrimSuffix(path, filepath.Ext(path))
	}
	return stem + ".json", stem + ".safetensors"
}

// Save writes a model as two files side by side (see Paths): the weights
// as <name>.safetensors, float32 tensors named as PyTorch names them
// ("fc1.weight", shape [out, in]) so that torch's load_state_dict accepts
// them, and the spec as <name>.json with the weights file's SHA-256.
// Each file is replaced atomically, the weights first, so that an
// interrupted Save leaves a JSON file whose hash does not match, which
// Load reports, rather than a silently mismatched pair.
//
// Save refuses a spec that does not validate or weights that do not fit it.
func Save(path string, spec Spec, w Weights) error {
	return SaveWithInfo(path, spec, w, Info{})
}

// SaveWithInfo is Save, also recording the dataset and class names.
func SaveWithInfo(path string, spec Spec, w Weights, info Info) error {
	jsonPath, weightsPath := Paths(path)
	if err := checkModel(spec, w, info); err != nil {
		return fmt.Errorf("model: save %s: %w", jsonPath, err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("model: save %s: %w", jsonPath, err)
	}
	f := &safetensors.File{
		Tensors: make(map[string]safetensors.Tensor, len(w)),
		Metadata: map[string]string{
			metaFormat:  "pt",
			metaDistill: FileFormat,
			metaSpec:    string(specJSON),
		},
	}
	if info.Dataset != "" {
		f.Metadata[metaDataset] = info.Dataset
	}
	if len(info.ClassNames) > 0 {
		names, err := json.Marshal(info.ClassNames)
		if err != nil {
			return fmt.Errorf("model: save %s: %w", jsonPath, err)
		}
		f.Metadata[metaClassNames] = string(names)
	}
	for name, t := range w {
		f.Tensors[name] = safetensors.F32(t.Shape, t.Data)
	}

	sum, err := safetensors.WriteFileSHA256(weightsPath, f)
	if err != nil {
		return fmt.Errorf("model: save: %w", err)
	}

	doc, err := json.MarshalIndent(fileDoc{
		Format: FileFormat,
		Spec:   spec,
		Info:   info,
		SHA256: sum,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("model: save %s: %w", jsonPath, err)
	}
	if err := atomicfile.WriteFile(jsonPath, append(doc, '\n'), 0o644); err != nil {
		return fmt.Errorf("model: save: %w", err)
	}
	return nil
}

// checkModel is what Save and Load require of a model.
func checkModel(spec Spec, w Weights, info Info) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := spec.Check(w); err != nil {
		return fmt.Errorf("weights do not fit spec %q: %w", spec.Name, err)
	}
	if n := len(info.ClassNames); n > 0 && n != spec.Classes {
		return fmt.Errorf("%d class names for %d classes", n, spec.Classes)
	}
	return nil
}

// Load reads a model written by Save. path may be the .json file, the
// .safetensors file or their stem (see Paths). Given the JSON file or the
// stem, Load reads the spec from the JSON file and checks the weights
// file against its SHA-256; given the .safetensors file, it reads the
// spec from the file's "distill.spec" metadata. Either way the spec must
// validate and the weights must fit it exactly: same names, same shapes,
// finite values. Errors name the file at fault.
func Load(path string) (Spec, Weights, error) {
	spec, w, _, err := LoadWithInfo(path)
	return spec, w, err
}

// LoadWithInfo is Load, also returning the dataset and class names.
func LoadWithInfo(path string) (Spec, Weights, Info, error) {
	jsonPath, weightsPath := Paths(path)
	var (
		spec Spec
		info Info
		want string // SHA-256 of the weights file, if known
		errf = func(err error) error { return fmt.Errorf("model: %s: %w", weightsPath, err) }
	)
	if filepath.Ext(path) == ".safetensors" {
		f, _, err := readWeights(weightsPath)
		if err != nil {
			return Spec{}, nil, Info{}, err
		}
		spec, info, err = fromMetadata(f.Metadata)
		if err != nil {
			return Spec{}, nil, Info{}, errf(err)
		}
		w, err := weightsOf(f, spec, info)
		if err != nil {
			return Spec{}, nil, Info{}, errf(err)
		}
		return spec, w, info, nil
	}

	doc, err := readDoc(jsonPath)
	if err != nil {
		return Spec{}, nil, Info{}, err
	}
	spec, info, want = doc.Spec, doc.Info, doc.SHA256
	if err := spec.Validate(); err != nil {
		return Spec{}, nil, Info{}, fmt.Errorf("model: %s: %w", jsonPath, err)
	}
	f, sum, err := readWeights(weightsPath)
	if err != nil {
		return Spec{}, nil, Info{}, err
	}
	// A JSON file written by hand may leave the hash out.
	if want != "" && !strings.EqualFold(want, sum) {
		return Spec{}, nil, Info{}, fmt.Errorf("model: %s does not match %s: its SHA-256 is %s, the JSON file expects %s (the weights were replaced, or a save was interrupted)", weightsPath, jsonPath, sum, want)
	}
	w, err := weightsOf(f, spec, info)
	if err != nil {
		return Spec{}, nil, Info{}, errf(err)
	}
	return spec, w, info, nil
}

// readDoc reads and checks a model's JSON file.
func readDoc(path string) (*fileDoc, error) {
	b, err := fileio.ReadFileMax(path, maxJSONSize, "a model file")
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	var doc fileDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("model: %s: not a valid model file: %w", path, err)
	}
	switch doc.Format {
	case FileFormat:
	case "":
		return nil, fmt.Errorf("model: %s: no \"format\" field; not a distill model file (want %q)", path, FileFormat)
	default:
		return nil, fmt.Errorf("model: %s: format %q, this version reads %q", path, doc.Format, FileFormat)
	}
	if doc.SHA256 != "" {
		if b, err := hex.DecodeString(doc.SHA256); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("model: %s: sha256 %q is not a SHA-256 in hex", path, doc.SHA256)
		}
	}
	return &doc, nil
}

// readWeights reads a safetensors file and hashes it on the way.
func readWeights(path string) (*safetensors.File, string, error) {
	fh, err := fileio.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("model: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("model: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, "", fmt.Errorf("model: %s: not a regular file", path)
	}
	h := sha256.New()
	f, err := safetensors.Read(bufio.NewReaderSize(io.TeeReader(fh, h), 1<<16), st.Size())
	if err != nil {
		return nil, "", fmt.Errorf("model: %s: %w", path, err)
	}
	return f, hex.EncodeToString(h.Sum(nil)), nil
}

// fromMetadata recovers the spec and info that Save stores in a
// safetensors file's metadata.
func fromMetadata(meta map[string]string) (Spec, Info, error) {
	var spec Spec
	var info Info
	raw, ok := meta[metaSpec]
	if !ok {
		return spec, info, fmt.Errorf("no %q metadata, so no spec: not written by distill (load PyTorch weights with LoadSafetensorsWeights and a spec)", metaSpec)
	}
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return spec, info, fmt.Errorf("metadata %q is not a valid spec: %w", metaSpec, err)
	}
	if err := spec.Validate(); err != nil {
		return spec, info, fmt.Errorf("metadata %q: %w", metaSpec, err)
	}
	info.Dataset = meta[metaDataset]
	if raw, ok := meta[metaClassNames]; ok {
		if err := json.Unmarshal([]byte(raw), &info.ClassNames); err != nil {
			return spec, info, fmt.Errorf("metadata %q is not a list of names: %w", metaClassNames, err)
		}
	}
	return spec, info, nil
}

// weightsOf converts f's tensors, which must be exactly spec's
// parameters, to Weights.
func weightsOf(f *safetensors.File, spec Spec, info Info) (Weights, error) {
	w := make(Weights, len(f.Tensors))
	for name, t := range f.Tensors {
		mt, err := toTensor(name, t)
		if err != nil {
			return nil, err
		}
		w[name] = mt
	}
	if err := checkModel(spec, w, info); err != nil {
		return nil, err
	}
	return w, nil
}

// toTensor decodes a floating-point tensor.
func toTensor(name string, t safetensors.Tensor) (Tensor, error) {
	data, err := t.Float32()
	if err != nil {
		return Tensor{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	return Tensor{Shape: slices.Clone(t.Shape), Data: data}, nil
}

// LoadSafetensorsWeights reads weights for spec from a safetensors file
// written by other tools, typically PyTorch's
//
//	safetensors.torch.save_file(model.state_dict(), "model.safetensors")
//
// for an nn.Module whose submodules are named as spec's layers (fc1,
// conv1, ...). It is LoadStateDict without a map; see there.
func LoadSafetensorsWeights(path string, spec Spec) (Weights, error) {
	return LoadStateDict(path, spec, StateDictOptions{})
}

// sample lists a few names for an error message.
func sample(names []string) string {
	const n = 8
	if len(names) == 0 {
		return "no tensors"
	}
	var b bytes.Buffer
	for i, name := range names {
		if i == n {
			fmt.Fprintf(&b, ", ... (%d in all)", len(names))
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", name)
	}
	return b.String()
}
