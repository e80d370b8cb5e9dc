//go:build !cgo

package ort

import (
	"errors"
	"strings"
	"testing"
)

// TestNoCgo: a build without cgo fails to open an ONNX teacher with an
// error saying how to get one that can.
func TestNoCgo(t *testing.T) {
	_, err := Open("teacher.onnx", Options{})
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "CGO_ENABLED=1") {
		t.Errorf("Open without cgo: %v", err)
	}
	if _, err := Check(""); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Check without cgo: %v", err)
	}
}
