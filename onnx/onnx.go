// Package onnx exports distill's networks as ONNX models, so that they can
// be served by ONNX Runtime, TensorRT, OpenVINO and the other engines that
// read ONNX.
//
// ExportFP32 writes a float32 network (a model.Spec and its Weights);
// ExportInt8 writes a post-training quantized network (a *quantize.Model)
// in the QDQ form that ONNX Runtime's own quantizer emits and that the
// engines fuse into integer kernels:
//
//   - each quantized linear or conv2d layer reads its input through a
//     QuantizeLinear → DequantizeLinear pair (uint8, per-tensor scale and
//     zero point: the quantize.Model's activation parameters), its weight
//     through a DequantizeLinear of the int8 weights with one scale per
//     output channel (axis 0, zero points 0) and its bias through a
//     DequantizeLinear of the int32 bias with scale s_in·s_w[c];
//   - activations that distill's INT8 runtime keeps as uint8 (the output
//     of a quantized layer after its fused ReLU when a reader wants
//     uint8, of tanh, sigmoid and relu6 tables, of an add) are followed
//     by a QuantizeLinear → DequantizeLinear pair with their parameters,
//     so that the graph rounds where the runtime rounds;
//   - a residual add reads both inputs through DequantizeLinear (a
//     float32 input is quantized with its own parameters first), adds in
//     float32 and is requantized with the add's parameters, as the
//     runtime computes it; ONNX Runtime fuses it into QLinearAdd;
//   - layers kept in float32 by quantize.WithFallback are plain float
//     Gemm or Conv nodes, and the layers the runtime computes in float32
//     (avgpool, globalavgpool, silu, an unfolded batchnorm) are float
//     nodes between a DequantizeLinear and the next QuantizeLinear.
//
// The graph is the network as the inference engines run it
// (infer.Fold): each batchnorm that follows a conv2d or linear layer is
// folded into it, and the others are BatchNormalization nodes with the
// running statistics. Layers read the tensors of the layers the spec's
// graph names (a residual add reads two); a ReLU is fused with the
// conv2d or linear layer before it only when it is that layer's sole
// reader (infer.FusedReLU).
//
// Operators: Gemm (transB=1) for linear layers, Conv (with group for
// grouped and depthwise convs), Relu, Tanh, Sigmoid, Clip (relu6, with
// its bounds as inputs), Sigmoid and Mul (silu, x·σ(x)), MaxPool,
// AveragePool (count_include_pad=1, as PyTorch's default), Flatten,
// GlobalAveragePool followed by Flatten (distill's global pool outputs
// [C]), Add and BatchNormalization; dropout layers are omitted (they are
// the identity at inference). The graph has one input, "input", of shape [N, spec.Input...]
// with a dynamic batch dimension N, and one output, "logits", [N, classes].
// Models use opset 13 (the first with per-axis DequantizeLinear) and IR
// version 7, and carry the spec as JSON in the metadata property
// "distill.spec".
//
// There is no maintained Go library that writes ONNX (onnx-go only reads,
// and its protobuf types are internal), so the ONNX schema's Go types are
// generated from the vendored onnx.proto in package onnxpb with
// protoc-gen-go; see its documentation to regenerate them.
//
// ONNX Runtime runs the INT8 models with integer kernels (QGemm,
// QLinearConv). On x86 CPUs without VNNI its default uint8×int8 kernel
// saturates; set its session option ExactU8S8Option to "1" there to get
// distill's results exactly.
//
// The tests run the exported models in ONNX Runtime through
// github.com/yalue/onnxruntime_go (cgo) and compare them with package
// runtime; they need ONNX Runtime's shared library, which
// testdata/install-ort.sh installs from the npm package onnxruntime-node
// and RuntimeLibrary finds, and are skipped without it.
package onnx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx/onnxpb"
	"github.com/distill-dev/distill/quantize"
)

// Names of the graph's input and output.
const (
	InputName  = "input"
	OutputName = "logits"
)

// Opset is the version of the default ONNX operator set the models
// import, and IRVersion the ONNX IR version they declare.
const (
	Opset     = 13
	IRVersion = 7
)

// ExportFP32 writes the float32 network spec with weights w to out as an
// ONNX model.
func ExportFP32(out io.Writer, spec model.Spec, w model.Weights) error {
	m, err := buildFP32(spec, w)
	if err != nil {
		return err
	}
	return write(out, m)
}

// ExportInt8 writes the quantized network m to out as an ONNX model in
// QDQ form (see the package documentation).
func ExportInt8(out io.Writer, m *quantize.Model) error {
	pm, err := buildInt8(m)
	if err != nil {
		return err
	}
	return write(out, pm)
}

// WriteFileFP32 is ExportFP32 to a file, replaced atomically: readers see
// the old file or the complete new one.
func WriteFileFP32(path string, spec model.Spec, w model.Weights) error {
	m, err := buildFP32(spec, w)
	if err != nil {
		return err
	}
	return writeFile(path, m)
}

// WriteFileInt8 is ExportInt8 to a file, replaced atomically.
func WriteFileInt8(path string, m *quantize.Model) error {
	pm, err := buildInt8(m)
	if err != nil {
		return err
	}
	return writeFile(path, pm)
}

func marshal(m *onnxpb.ModelProto) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("onnx: encode model: %w", err)
	}
	// A protobuf message over 2 GiB cannot be read back; ONNX stores
	// such models' tensors in external files, which this package does
	// not write.
	if len(b) >= 1<<31 {
		return nil, fmt.Errorf("onnx: the model encodes to %d bytes, over protobuf's 2 GiB limit", len(b))
	}
	return b, nil
}

func write(out io.Writer, m *onnxpb.ModelProto) error {
	b, err := marshal(m)
	if err != nil {
		return err
	}
	if _, err := out.Write(b); err != nil {
		return fmt.Errorf("onnx: write model: %w", err)
	}
	return nil
}

func writeFile(path string, m *onnxpb.ModelProto) error {
	b, err := marshal(m)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	return nil
}

// ExactU8S8Option is the ONNX Runtime session configuration key that,
// set to "1", makes its CPU provider multiply uint8 activations by int8
// weights without saturation on x86 CPUs that lack VNNI (AVX2 and
// AVX-512 without VNNI). By default ONNX Runtime uses VPMADDUBSW there,
// whose int16 pair sums saturate when weights fall outside [−64, 63], so
// its results for the models ExportInt8 writes differ from distill's
// runtime (which is exact on every CPU). With the option they match
// bit for bit, at some cost in speed.
const ExactU8S8Option = "session.x64quantprecision"

// RuntimeLibraryEnv is the environment variable that RuntimeLibrary reads
// first.
const RuntimeLibraryEnv = "ONNXRUNTIME_LIB"

// ortRelPath is where testdata/install-ort.sh puts the library, relative
// to its installation directory.
const ortRelPath = "node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"

// RuntimeLibrary returns the path of ONNX Runtime's shared library
// (libonnxruntime.so) for the tests of this package and bench/int8: the
// file named by $ONNXRUNTIME_LIB, else the one that testdata/install-ort.sh
// installs under $DISTILL_ORT_DIR or the user's cache directory
// (~/.cache/distill-ort). The error says how to install it.
func RuntimeLibrary() (string, error) {
	if p := os.Getenv(RuntimeLibraryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("onnx: %s=%s: %w: point it at libonnxruntime.so (ONNX Runtime ≥ 1.24)", RuntimeLibraryEnv, p, err)
		}
		return p, nil
	}
	dir := os.Getenv("DISTILL_ORT_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("onnx: no cache directory to look for ONNX Runtime in (%v): set %s to libonnxruntime.so", err, RuntimeLibraryEnv)
		}
		dir = filepath.Join(cache, "distill-ort")
	}
	p := filepath.Join(dir, ortRelPath)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("onnx: ONNX Runtime is not installed (no %s): run onnx/testdata/install-ort.sh (needs npm), or set %s to libonnxruntime.so", p, RuntimeLibraryEnv)
		}
		return "", fmt.Errorf("onnx: ONNX Runtime: %w", err)
	}
	return p, nil
}
