package recipe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/internal/fileio"
	"github.com/distill-dev/distill/model"
)

// CheckFiles checks that every file and directory the recipe reads
// exists and can be read, without reading their contents: the teacher's
// and the ensemble's checkpoints (the model's .json and .safetensors
// files), the TorchScript, ONNX, ONNX Runtime library and state_dict
// files, the IDX files of data.dir and of
// transfer.unlabelled.dir, and the price table. Each must be a regular
// file: a named pipe, which would block the run, is refused too. Run it
// before any work, so that a wrong path fails in seconds rather than
// after the data is loaded and a teacher is trained.
//
// It returns an *Error with one problem per unusable input, nil when
// all are there. A problem names the key, the path as written, the
// absolute path it resolved to and what it was resolved against: the
// recipe file's directory for paths that Parse resolved, else the
// working directory.
func (r *Recipe) CheckFiles() error {
	var ps problems
	file := func(key, path string) {
		if path == "" {
			return
		}
		if err := fileio.Check(path); err != nil {
			ps.add(key, "%s: %s", r.describePath(key, path), explain(path, path, err))
		}
	}
	checkpoint := func(key, path string) {
		if path == "" {
			return
		}
		// model.Load reads the JSON file and its weights, or the weights
		// alone when given the .safetensors file.
		js, st := model.Paths(path)
		files := []string{js, st}
		if filepath.Ext(path) == ".safetensors" {
			files = files[1:]
		}
		for _, f := range files {
			if err := fileio.Check(f); err != nil {
				ps.add(key, "%s: %s", r.describePath(key, path), explain(path, f, err))
				return
			}
		}
	}
	// dataDir checks the directory of a dataset that has one.
	dataDir := func(key, dataset, dir string) {
		var err error
		switch {
		case dataset == "mnist" && dir != "":
			err = data.CheckMNISTDir(dir)
		case dataset == "fashion-mnist":
			err = data.CheckFashionMNISTDir(dir)
		case dataset == "idx" && dir != "":
			err = data.CheckIDXDir(dir)
		case dataset == "images" && dir != "":
			err = data.CheckImageFolder(dir)
		default:
			return
		}
		if err != nil {
			if dir == "" {
				ps.add(key, "%v", err)
			} else {
				ps.add(key, "%s: %v", r.describePath(key, dir), err)
			}
		}
	}

	dataDir("data.dir", r.Data.Dataset, r.Data.Dir)
	if d := r.Data; d.Dataset == "arrays" || d.Dataset == "csv" {
		file("data.train_file", d.TrainFile)
		file("data.test_file", d.TestFile)
	}
	checkpoint("teacher.checkpoint", r.Teacher.Checkpoint)
	file("teacher.torchscript", r.Teacher.TorchScript)
	file("teacher.onnx", r.Teacher.ONNX)
	file("teacher.runtime", r.Teacher.Runtime)
	file("teacher.safetensors", r.Teacher.Safetensors)
	for i, e := range r.Ensemble {
		p := fmt.Sprintf("ensemble[%d]", i)
		checkpoint(p+".checkpoint", e.Checkpoint)
		file(p+".onnx", e.ONNX)
		file(p+".runtime", e.Runtime)
		file(p+".safetensors", e.Safetensors)
	}
	if u := r.Transfer.Unlabelled; r.Transfer.Enabled && u.Enabled &&
		!(u.Dir == r.Data.Dir && u.Dataset == r.Data.Dataset) { // the same directory is reported once
		dataDir("transfer.unlabelled.dir", u.Dataset, u.Dir)
	}
	if r.Serving.MeasureEnabled() {
		file("serving.prices", r.Serving.Prices)
	}
	return r.newError(ps.list)
}

// describePath says which path key gave and how it was resolved:
// `"ckpt/t.json", resolved against the recipe's directory /w/recipes, is
// /w/recipes/ckpt/t.json`.
func (r *Recipe) describePath(key, path string) string {
	if w, ok := r.written[key]; ok && resolve(r.dir, w) == path {
		return fmt.Sprintf("%q, resolved against the recipe's directory %s, is %s", w, abs(r.dir), abs(path))
	}
	if filepath.IsAbs(path) {
		return fmt.Sprintf("%q", path)
	}
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Sprintf("%q, relative to the working directory", path)
	}
	return fmt.Sprintf("%q, resolved against the working directory %s, is %s", path, wd, filepath.Join(wd, path))
}

// abs makes path absolute for messages, leaving it as it is when the
// working directory is unknown.
func abs(path string) string {
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}

// explain says why file, read for the key's path, cannot be used.
func explain(path, file string, err error) string {
	what := "it"
	if file != path {
		what = abs(file)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return what + " does not exist"
	case errors.Is(err, fileio.ErrNotRegular):
		fi, serr := os.Stat(file)
		if serr == nil {
			return fmt.Sprintf("%s is %s, not a regular file", what, fileio.Describe(fi.Mode()))
		}
		return fmt.Sprintf("%s is not a regular file", what)
	case errors.Is(err, fs.ErrPermission):
		return what + " cannot be read: permission denied"
	}
	return err.Error()
}

// File is the recipe's file name as given to Parse or Load ("" for a
// recipe parsed without one): checks made outside this package put it on
// their problems, as CheckFiles does.
func (r *Recipe) File() string { return r.file }
