package data

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
)

// maxClasses bounds the labels of users' data: a larger label is far
// more likely a mistake (a feature column taken as the label) than a
// real class count.
const maxClasses = 1 << 16

// LoadArrays loads a dataset from NumPy .npz files: trainPath and, if
// not "", testPath, each holding inputs under the array name x and
// integer labels under y (numpy.savez(path, x=..., y=...)). Inputs of
// shape [N, D] become examples of shape [D]; [N, H, W] become
// [1, H, W]; [N, C, H, W] (channels first) stay [C, H, W]. uint8 inputs
// are scaled by 1/255 like images; other dtypes are used as they are.
// Labels must be integers in [0, 65536); the class count is the largest
// label + 1 over both files. test is nil when testPath is "".
func LoadArrays(trainPath, testPath, x, y string) (train, test *Dataset, err error) {
	if train, err = loadArraysFile(trainPath, x, y); err != nil {
		return nil, nil, err
	}
	if testPath != "" {
		if test, err = loadArraysFile(testPath, x, y); err != nil {
			return nil, nil, err
		}
		if !slices.Equal(train.Shape, test.Shape) {
			return nil, nil, fmt.Errorf("load arrays: %s has examples of shape %v but %s has %v; both files must hold examples of one shape",
				trainPath, train.Shape, testPath, test.Shape)
		}
		train.Classes = max(train.Classes, test.Classes)
		test.Classes = train.Classes
	}
	return train, test, nil
}

func loadArraysFile(path, xName, yName string) (*Dataset, error) {
	if ext := strings.ToLower(filepath.Ext(path)); ext != ".npz" {
		return nil, fmt.Errorf("load arrays: %s is not a .npz file; save the inputs and labels together with numpy.savez(%q, x=inputs, y=labels)",
			path, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+".npz")
	}
	arrs, err := readNPZ(path, xName, yName)
	if err != nil {
		return nil, fmt.Errorf("load arrays: %w", err)
	}
	x, y := arrs[0], arrs[1]
	d, err := arraysDataset(x, y)
	if err != nil {
		return nil, fmt.Errorf("load arrays: %s: %w", path, err)
	}
	d.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return d, nil
}

// arraysDataset checks and converts an input and a label array.
func arraysDataset(x, y *NPY) (*Dataset, error) {
	var shape []int
	switch len(x.Shape) {
	case 2:
		shape = []int{x.Shape[1]}
	case 3:
		shape = []int{1, x.Shape[1], x.Shape[2]}
	case 4:
		shape = slices.Clone(x.Shape[1:])
	default:
		return nil, fmt.Errorf("inputs have shape %v; they must be [N, features], [N, height, width] or [N, channels, height, width]", x.Shape)
	}
	n := x.Shape[0]
	if n == 0 || slices.Contains(shape, 0) {
		return nil, fmt.Errorf("inputs have shape %v; a dataset needs at least one example of at least one value", x.Shape)
	}
	if len(y.Shape) != 1 {
		return nil, fmt.Errorf("labels have shape %v; they must be one class index per example, shape [%d]", y.Shape, n)
	}
	if !y.Integer {
		return nil, fmt.Errorf("labels have dtype %s; they must be integers (class indices), e.g. y.astype(numpy.int64)", y.Dtype)
	}
	if y.Shape[0] != n {
		return nil, fmt.Errorf("%d inputs but %d labels; there must be one label per example", n, y.Shape[0])
	}
	d := &Dataset{Shape: shape, X: x.Data, Y: make([]int32, n)}
	for i, v := range y.Data {
		if v < 0 || v >= maxClasses {
			return nil, fmt.Errorf("label %v of example %d is not a class index in [0, %d)", v, i, maxClasses)
		}
		d.Y[i] = int32(v)
		d.Classes = max(d.Classes, int(v)+1)
	}
	scale := float32(1)
	if x.Dtype == "|u1" {
		scale = 1.0 / 255
	}
	for i, v := range d.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("input value %d (example %d) is %v; inputs must be finite", i, i/d.Size(), v)
		}
		d.X[i] = v * scale
	}
	return d, nil
}
