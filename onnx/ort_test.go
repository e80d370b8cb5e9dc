//go:build cgo

package onnx

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/distill-dev/distill/model"
)

var (
	ortOnce sync.Once
	ortErr  error
	ortSkip string
)

// needORT initialises ONNX Runtime once per process, or skips the test
// when its library is not installed (fails instead when
// DISTILL_REQUIRE_ORT is set, as CI does once it installs it).
func needORT(t testing.TB) {
	t.Helper()
	ortOnce.Do(func() {
		lib, err := RuntimeLibrary()
		if err != nil {
			ortSkip = err.Error()
			return
		}
		ort.SetSharedLibraryPath(lib)
		ortErr = ort.InitializeEnvironment(ort.WithLogLevelError())
	})
	if ortSkip != "" {
		if os.Getenv("DISTILL_REQUIRE_ORT") != "" {
			t.Fatalf("DISTILL_REQUIRE_ORT is set but %s", ortSkip)
		}
		t.Skip(ortSkip)
	}
	if ortErr != nil {
		t.Fatalf("initialise ONNX Runtime: %v", ortErr)
	}
}

// ortConfig are the session options runORT sets.
type ortConfig struct {
	// optimized, if set, is where ONNX Runtime writes the graph it runs.
	optimized string
	// exact sets ExactU8S8Option: on x86 CPUs without VNNI, ONNX Runtime
	// otherwise multiplies uint8 by int8 with VPMADDUBSW, whose int16 pair
	// sums saturate.
	exact bool
}

// runORT runs an ONNX model on the n examples of x with one thread and
// returns the logits.
func runORT(t *testing.T, onnxModel []byte, x []float32, inShape []int, classes int, cfg ortConfig) []float32 {
	t.Helper()
	shape := make(ort.Shape, len(inShape))
	for i, d := range inShape {
		shape[i] = int64(d)
	}
	in, err := ort.NewTensor(shape, x)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(inShape[0]), int64(classes)))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if cfg.optimized != "" {
		if err := opts.SetOptimizedModelFilePath(cfg.optimized); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.exact {
		if err := opts.AddSessionConfigEntry(ExactU8S8Option, "1"); err != nil {
			t.Fatal(err)
		}
	}
	s, err := ort.NewAdvancedSessionWithONNXData(onnxModel, []string{InputName}, []string{OutputName},
		[]ort.Value{in}, []ort.Value{out}, opts)
	if err != nil {
		t.Fatalf("ONNX Runtime rejects the model: %v", err)
	}
	defer s.Destroy()
	if err := s.Run(); err != nil {
		t.Fatalf("ONNX Runtime: %v", err)
	}
	return slices.Clone(out.GetData())
}

// TestONNXRuntime runs the exported models in ONNX Runtime and compares
// their logits with package infer's.
func TestONNXRuntime(t *testing.T) {
	needORT(t)
	t.Logf("ONNX Runtime %s", ort.GetVersion())
	for _, c := range testCases(t) {
		t.Run(c.name, func(t *testing.T) {
			fp32, int8 := c.ours(t)
			fb, _ := c.exportFP32(t)
			checkFP32(t, "ORT FP32 vs runtime", runORT(t, fb, c.x, c.inputShape(), c.spec.Classes, ortConfig{}), fp32, c.spec.Classes)

			qb, _ := c.exportInt8(t)
			opt := filepath.Join(t.TempDir(), "optimized.onnx")
			got := runORT(t, qb, c.x, c.inputShape(), c.spec.Classes, ortConfig{optimized: opt, exact: true})
			checkInt8(t, "ORT QDQ ("+ExactU8S8Option+"=1) vs runtime INT8", got, int8, c.spec.Classes)

			// With default options the error depends on the CPU: none
			// with VNNI, saturation without it (logged, not checked).
			got = runORT(t, qb, c.x, c.inputShape(), c.spec.Classes, ortConfig{})
			a := compare(got, int8, c.spec.Classes)
			t.Logf("ORT QDQ (default options) vs runtime INT8: argmax agreement %.4f, max |Δ| %.3g (logits up to %.3g)", a.argmax, a.maxDiff, a.scale)

			// ONNX Runtime should run the quantized layers with integer
			// kernels, not dequantize the weights and compute in float
			// (it does compute in float a quantized layer whose output
			// goes through a ReLU to a layer kept in float32).
			b, err := os.ReadFile(opt)
			if err != nil {
				t.Fatal(err)
			}
			optOps := ops(decode(t, b).GetGraph())
			t.Logf("ONNX Runtime runs %v", optOps)
			fused := 0
			for _, op := range optOps {
				switch op {
				case "QGemm", "QLinearConv", "MatMulIntegerToFloat", "QLinearMatMul", "DynamicQuantizeMatMul":
					fused++
				}
			}
			if want := len(c.q.Layers); fused < want && len(c.q.Fallback) == 0 {
				t.Errorf("ONNX Runtime fused %d of the %d quantized layers into integer kernels (graph %v)", fused, want, optOps)
			}
		})
	}
}

// TestONNXRuntimeGraphs runs the exported graph networks in ONNX Runtime
// and compares them with the float64 reference, the Go interpreter of
// the same graphs and package infer, and their QDQ exports with the INT8
// runtime.
func TestONNXRuntimeGraphs(t *testing.T) {
	needORT(t)
	for _, c := range graphCases(t) {
		t.Run(c.name, func(t *testing.T) {
			fb, fm := c.exportFP32(t)
			got := runORT(t, fb, c.x, c.inputShape(), c.spec.Classes, ortConfig{})
			interp, err := run(fm, c.x, c.inputShape())
			if err != nil {
				t.Fatalf("FP32 graph: %v", err)
			}
			checkFP32(t, "ORT FP32 vs the Go interpreter", got, interp, c.spec.Classes)
			checkFP32(t, "ORT FP32 vs float64 reference", got, c.reference(t), c.spec.Classes)
			checkFP32(t, "ORT FP32 vs runtime", got, c.oursFP32(t), c.spec.Classes)
		})
	}
	for _, c := range graphInt8Cases(t) {
		t.Run(c.name+"/int8", func(t *testing.T) {
			qb, _ := c.exportInt8(t)
			opt := filepath.Join(t.TempDir(), "optimized.onnx")
			got := runORT(t, qb, c.x, c.inputShape(), c.spec.Classes, ortConfig{optimized: opt, exact: true})
			checkInt8Step(t, "ORT QDQ ("+ExactU8S8Option+"=1) vs runtime INT8", got, c.oursInt8(t), c)
			b, err := os.ReadFile(opt)
			if err != nil {
				t.Fatal(err)
			}
			optOps := ops(decode(t, b).GetGraph())
			t.Logf("ONNX Runtime runs %v", optOps)
			// ONNX Runtime fuses a quantized conv into QLinearConv when
			// its output is requantized, and a linear layer into QGemm
			// either way; a conv whose float32 output goes to float32
			// layers (a pool) it computes in float.
			want := 0
			for i, l := range c.q.Spec.Layers {
				if c.q.Quantized(l.Name) && (l.Kind == model.KindLinear || !c.q.FloatAfter(i)) {
					want++
				}
			}
			fused := 0
			for _, op := range optOps {
				if op == "QLinearConv" || op == "QGemm" {
					fused++
				}
			}
			if fused < want {
				t.Errorf("ONNX Runtime fused %d of the %d quantized layers with integer outputs into integer kernels (graph %v)", fused, want, optOps)
			}
		})
	}
}
