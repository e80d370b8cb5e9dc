//go:build !cgo

package main

import (
	"errors"

	"github.com/distill-dev/distill/model"
)

// ortEngines needs cgo: github.com/yalue/onnxruntime_go calls ONNX
// Runtime's C API.
func ortEngines(model.Spec, string, string, int, bool) ([]engine, string, error) {
	return nil, "", errors.New("this build has no cgo, which github.com/yalue/onnxruntime_go needs: build with CGO_ENABLED=1 and a C compiler")
}
