package inspect

import (
	"archive/zip"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"

	"github.com/distill-dev/distill/internal/fileio"
	"github.com/distill-dev/distill/safetensors"
)

// Archive describes a PyTorch zip archive (torch.jit.save or torch.save).
type Archive struct {
	// Root is the archive's top directory, named after the file when saved.
	Root    string  `json:"root"`
	Entries []Entry `json:"entries"`
	// Tensors are the module's parameters and buffers (TorchScript) or
	// the pickled state dict's tensors (torch.save), read from data.pkl
	// without running it; empty when its pickle holds something else.
	Tensors []ArchiveTensor `json:"tensors,omitempty"`
	// Modules are a TorchScript archive's submodules by path ("" is the
	// root, "layer1.0.relu"), with their classes
	// ("torch.nn.modules.activation.ReLU"): the points whose outputs a
	// TorchScript teacher may expose for hints.
	Modules []Module `json:"modules,omitempty"`
	// PickleError says why data.pkl could not be read, if it could not.
	PickleError string `json:"pickle_error,omitempty"`
}

// Module is a submodule of a TorchScript archive.
type Module struct {
	Name  string `json:"name"`
	Class string `json:"class"`
}

// Entry is a file of an archive.
type Entry struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// ArchiveTensor is a tensor of a PyTorch archive, named by its path from
// the root module ("layer1.0.conv1.weight") or its state-dict key.
type ArchiveTensor struct {
	Name   string `json:"name"`
	DType  string `json:"dtype"`
	Shape  []int  `json:"shape"`
	Buffer bool   `json:"buffer,omitempty"`
}

// maxCode bounds the TorchScript code read for the classes' parameter
// lists; past it, tensors of unread classes are told apart by name.
const maxCode = 64 << 20

// maxPickle bounds the data.pkl read: it holds the object structure, the
// tensors' data lies in separate entries.
const maxPickle = 64 << 20

func archive(p string, size int64) (*Summary, error) {
	fh, err := fileio.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	zr, err := zip.NewReader(fh, size)
	if err != nil {
		return nil, fmt.Errorf("a corrupt zip archive: %w", err)
	}
	a := &Archive{}
	var dataPkl *zip.File
	code := map[string]string{} // code/ Python files, for the classes' parameter lists
	isScript := false
	codeBytes := int64(0) // bounds what the code/ files may take in memory
	for _, f := range zr.File {
		a.Entries = append(a.Entries, Entry{Name: f.Name, Bytes: int64(f.UncompressedSize64)})
		root, rest, _ := strings.Cut(f.Name, "/")
		if a.Root == "" {
			a.Root = root
		}
		switch {
		case rest == "data.pkl":
			dataPkl = f
		case rest == "constants.pkl" || strings.HasPrefix(rest, "code/"):
			isScript = true
			if strings.HasPrefix(rest, "code/") && path.Ext(rest) == ".py" && f.UncompressedSize64 < 1<<20 && codeBytes < maxCode {
				codeBytes += int64(f.UncompressedSize64)
				b, err := readEntry(f, 1<<20)
				if err != nil {
					return nil, err
				}
				code[strings.TrimPrefix(rest, "code/")] = string(b)
			}
		}
	}
	if dataPkl == nil {
		return nil, fmt.Errorf("%w: a zip archive without data.pkl, so not written by torch.save or torch.jit.save", ErrNotModel)
	}
	s := &Summary{Format: TorchSave, Archive: a}
	if isScript {
		s.Format = TorchScript
	}
	b, err := readEntry(dataPkl, maxPickle)
	if err != nil {
		return nil, err
	}
	root, err := unpickle(b)
	if err == nil {
		a.Tensors, a.Modules, err = archiveTensors(root, classParams(code))
	}
	if err != nil {
		a.PickleError = err.Error()
	}
	for _, t := range a.Tensors {
		if !isFloat(safetensors.DType(t.DType)) {
			continue // num_batches_tracked
		}
		n := int64(1)
		for _, d := range t.Shape {
			n *= int64(d)
		}
		if t.Buffer {
			s.Buffers += n
		} else {
			s.Params += n
		}
	}
	if isScript {
		s.Notes = append(s.Notes, "TorchScript runs its own code when loaded: distill loads it only with the torch backend (build tag torch) and trusted: true in the recipe")
	} else {
		s.Notes = append(s.Notes, "torch.save pickles Python objects, which distill does not load (unpickling runs code): save the state dict with safetensors.torch.save_file(model.state_dict(), path) and load that with a spec")
	}
	return s, nil
}

func readEntry(f *zip.File, max int64) ([]byte, error) {
	if int64(f.UncompressedSize64) > max {
		return nil, fmt.Errorf("archive entry %s holds %d bytes, more than the %d read", f.Name, f.UncompressedSize64, max)
	}
	r, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("archive entry %s: %w", f.Name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("archive entry %s: %w", f.Name, err)
	}
	return b, nil
}

var (
	classLine  = regexp.MustCompile(`(?m)^class (\w+)\(`)
	paramsLine = regexp.MustCompile(`(?m)^\s+__parameters__ = \[(.*)\]`)
)

// classParams reads the parameter lists that TorchScript's code/ files
// declare for each class (`__parameters__ = ["weight", "bias", ]`), by
// qualified class name ("__torch__.torch.nn.modules.conv.Conv2d"). It
// reads text; it runs nothing.
func classParams(code map[string]string) map[string][]string {
	out := map[string][]string{}
	for file, src := range code {
		module := strings.ReplaceAll(strings.TrimSuffix(file, ".py"), "/", ".")
		locs := classLine.FindAllStringSubmatchIndex(src, -1)
		for i, loc := range locs {
			end := len(src)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			body := src[loc[1]:end]
			m := paramsLine.FindStringSubmatch(body)
			if m == nil {
				continue
			}
			var names []string
			for _, n := range strings.Split(m[1], ",") {
				if n = strings.Trim(strings.TrimSpace(n), `"'`); n != "" {
					names = append(names, n)
				}
			}
			out[module+"."+src[loc[2]:loc[3]]] = names
		}
	}
	return out
}
