//go:build cgo

package main

import (
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx"
)

// ortEngines initialises ONNX Runtime and returns its engines: the FP32
// model, the QDQ model with default options and with exact uint8×int8
// products.
func ortEngines(spec model.Spec, fpPath, qPath string, threads int, exact bool) ([]engine, string, error) {
	lib, err := onnx.RuntimeLibrary()
	if err != nil {
		return nil, "", err
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, "", fmt.Errorf("initialise %s: %w", lib, err)
	}
	mk := func(name, path string, exact bool) engine {
		var sessions []func()
		return engine{
			name:    name,
			int8:    path == qPath,
			threads: threads,
			prepare: func(x []float32, n int) (func() error, func() []float32, error) {
				s, out, done, err := ortSession(spec, path, x, n, threads, exact)
				if err != nil {
					return nil, nil, err
				}
				sessions = append(sessions, done)
				return s.Run, out.GetData, nil
			},
			close: func() {
				for _, d := range sessions {
					d()
				}
			},
		}
	}
	es := []engine{mk("ORT FP32", fpPath, false), mk("ORT INT8 (QDQ, default)", qPath, false)}
	if exact {
		es = append(es, mk("ORT INT8 (QDQ, x64quantprec)", qPath, true))
	}
	return es, ort.GetVersion(), nil
}

// ortSession opens path for batches of n examples of x.
func ortSession(spec model.Spec, path string, x []float32, n, threads int, exact bool) (*ort.AdvancedSession, *ort.Tensor[float32], func(), error) {
	shape := ort.Shape{int64(n)}
	for _, d := range spec.Input {
		shape = append(shape, int64(d))
	}
	in, err := ort.NewTensor(shape, x)
	if err != nil {
		return nil, nil, nil, err
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(spec.Classes)))
	if err != nil {
		in.Destroy()
		return nil, nil, nil, err
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, nil, nil, err
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		return nil, nil, nil, err
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, nil, nil, err
	}
	if exact {
		if err := opts.AddSessionConfigEntry(onnx.ExactU8S8Option, "1"); err != nil {
			return nil, nil, nil, err
		}
	}
	s, err := ort.NewAdvancedSession(path, []string{onnx.InputName}, []string{onnx.OutputName}, []ort.Value{in}, []ort.Value{out}, opts)
	if err != nil {
		in.Destroy()
		out.Destroy()
		return nil, nil, nil, err
	}
	return s, out, func() { s.Destroy(); in.Destroy(); out.Destroy() }, nil
}
