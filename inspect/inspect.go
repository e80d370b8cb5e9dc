// Package inspect says what a model file holds, so that a user can write
// the recipe that loads it: its format, its tensors or its graph's
// inputs, outputs and named intermediate tensors, and its parameter
// count. It reads distill's model files, PyTorch state dicts saved as
// safetensors, ONNX models and PyTorch's zip archives (TorchScript and
// torch.save), and runs nothing a file contains: ONNX is decoded as a
// protobuf, and a PyTorch archive's pickle is decoded opcode by opcode
// without calling any of the functions it names.
package inspect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/distill-dev/distill/internal/fileio"
)

// Format is the kind of a model file.
type Format string

// Formats File recognises.
const (
	// Distill is a model written by distill (model.Save): a spec and its
	// weights.
	Distill Format = "distill"
	// StateDict is a safetensors file without distill's spec, typically
	// PyTorch's safetensors.torch.save_file(model.state_dict(), path).
	StateDict Format = "safetensors"
	// ONNX is an ONNX model (.onnx).
	ONNX Format = "onnx"
	// TorchScript is a zip archive written by torch.jit.save.
	TorchScript Format = "torchscript"
	// TorchSave is a zip archive written by torch.save: pickled Python
	// objects that only Python can rebuild.
	TorchSave Format = "torch.save"
)

// ErrNotModel is wrapped by the error File returns for a file in none of
// the formats it reads.
var ErrNotModel = errors.New("not a model file")

// Summary is what File finds in a model file. Exactly one of Tensors
// (with Spec for a distill model), Graph and Archive is set, by Format.
type Summary struct {
	Path   string `json:"path"`
	Format Format `json:"format"`
	// Bytes is the file's size; a distill model's two files' together.
	Bytes int64 `json:"bytes"`
	// Params counts the elements of the trainable tensors: a state dict's
	// floating-point tensors but batchnorm statistics, an ONNX model's
	// floating-point initializers (after the exporter's folding of
	// batchnorms, so fewer than the PyTorch module's), a TorchScript
	// module's parameters.
	Params int64 `json:"params"`
	// Buffers counts the elements of batchnorm running statistics (and
	// of a TorchScript module's other buffers).
	Buffers int64 `json:"buffers,omitempty"`

	Tensors *Tensors `json:"tensors,omitempty"`
	Spec    *Spec    `json:"spec,omitempty"`
	Graph   *Graph   `json:"graph,omitempty"`
	Archive *Archive `json:"archive,omitempty"`
	// Notes say what loading the file needs.
	Notes []string `json:"notes,omitempty"`
}

// sniffLen is how many leading bytes File looks at.
const sniffLen = 16

// File inspects the model file at path. It recognises the format by the
// file's content (a distill model's JSON file by its extension): a
// safetensors header, a zip archive, or an ONNX protobuf. A file in none
// of these formats gives an error wrapping ErrNotModel; a corrupt one
// gives an error that says what is wrong with it.
func File(path string) (*Summary, error) {
	fh, size, err := fileio.OpenSized(path)
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	head := make([]byte, sniffLen)
	k, err := io.ReadFull(fh, head)
	fh.Close()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("inspect: %s: %w", path, err)
	}
	head = head[:k]
	var s *Summary
	switch {
	case strings.EqualFold(filepath.Ext(path), ".json"):
		s, err = distillModel(path)
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		s, err = archive(path, size)
	case isSafetensors(head, size):
		s, err = safetensorsFile(path)
	case strings.EqualFold(filepath.Ext(path), ".onnx") || looksLikeONNX(head):
		s, err = onnxFile(path)
	case bytes.HasPrefix(head, []byte{0x80}) && len(head) > 1 && head[1] <= 5:
		return nil, fmt.Errorf("inspect: %s: %w: a pickle (an old torch.save file?), which distill does not read as it runs code; save the state_dict with safetensors.torch.save_file instead", path, ErrNotModel)
	default:
		return nil, fmt.Errorf("inspect: %s: %w: not safetensors, ONNX, a PyTorch zip archive or a distill model (it starts with %q)", path, ErrNotModel, head)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect: %s: %w", path, err)
	}
	s.Path = path
	if s.Bytes == 0 {
		s.Bytes = size
	}
	return s, nil
}

// isSafetensors reports whether head starts a safetensors file of size
// bytes: a header length that fits the file, then '{'.
func isSafetensors(head []byte, size int64) bool {
	if len(head) < 9 {
		return false
	}
	n := binary.LittleEndian.Uint64(head)
	return n >= 2 && n <= uint64(size-8) && head[8] == '{'
}

// looksLikeONNX reports whether head starts as ModelProto encodings do:
// field 1 (ir_version, a varint) first, as every exporter writes it.
func looksLikeONNX(head []byte) bool {
	return len(head) >= 2 && head[0] == 0x08 && head[1] > 0 && head[1] < 0x20
}
