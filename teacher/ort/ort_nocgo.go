//go:build !cgo

package ort

import (
	"errors"
	"fmt"

	"github.com/distill-dev/distill/model"
)

// errNoCgo is what every ONNX Runtime call returns in a build without
// cgo.
var errNoCgo = fmt.Errorf("teacher/ort: this distill was built without cgo, which ONNX Runtime's Go binding (github.com/yalue/onnxruntime_go) needs: build it with CGO_ENABLED=1 and a C compiler to use ONNX teachers: %w", errors.ErrUnsupported)

// Check fails: without cgo there is no ONNX Runtime.
func Check(string) (string, error) { return "", errNoCgo }

// Open fails: without cgo there is no ONNX Runtime.
func Open(string, Options) (*Teacher, error) { return nil, errNoCgo }

// Teacher is an ONNX model run by ONNX Runtime; a build without cgo
// cannot open one, so its methods only fail.
type Teacher struct{}

func (*Teacher) Spec() model.Spec                        { return model.Spec{} }
func (*Teacher) Path() string                            { return "" }
func (*Teacher) FixedBatch() int                         { return 0 }
func (*Teacher) Forward([]float32, int, []float32) error { return errNoCgo }
func (*Teacher) Weights() (model.Weights, error)         { return nil, errNoCgo }
func (*Teacher) Close() error                            { return nil }
func (*Teacher) ForwardFeatures([]float32, int, []string, []float32, [][]float32) error {
	return errNoCgo
}
