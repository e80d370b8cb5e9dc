// Package infer is a CPU inference engine for model.Spec networks.
//
// Compile turns a spec and its float32 weights into a Program. It runs
// the network as Fold returns it (batchnorms folded into the conv2d and
// linear layers before them, model.Inference), walking the graph of
// layers in order through Spec.InputIndices: weights are packed once for
// the GEMM kernels of package internal/gemm (AVX-512, AVX2/FMA or
// portable Go, chosen at run time), a linear or conv2d layer is fused
// with a ReLU that is the only reader of its output, convolutions run as
// im2col + one GEMM per group (depthwise ones as a direct loop), dropout
// is the identity and flatten is free. Each layer's output is a value
// that lives in an arena buffer from its producer to its last reader, so
// a residual's shortcut is kept exactly as long as needed and buffers
// are reused along the network.
//
// CompileInt8 does the same for a post-training quantized network (a
// QuantModel, which package quantize produces): activations flow between
// layers as uint8 with a per-tensor scale and zero point, weights are
// int8 with a scale per output channel, products accumulate exactly in
// int32, and each GEMM requantizes its output for the next layer in its
// epilogue; the last layer produces float32 logits. Adds requantize both
// inputs to their output's scale, max-pool, relu, relu6, tanh and
// sigmoid run on uint8. Layers kept in float32 (the accuracy fallback of
// package quantize), and avgpool, globalavgpool, silu and a batchnorm
// that did not fold, run in float, with a dequantization before and a
// quantization after them.
//
// A Program is immutable and safe for concurrent use: each Forward call
// takes its scratch buffers from a sync.Pool. Large layers are split
// across package gemm's threads; ForwardInline keeps the small ones on
// the calling goroutine, for servers whose other goroutines need the
// cores. A linear layer run on one goroutine allocates nothing in steady
// state (an MLP's batch-1 ForwardInline allocates nothing at all); a
// layer split across threads, and a convolution, allocate a few small
// objects per call for the hand-off.
package infer
