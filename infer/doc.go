// Package infer is a CPU inference engine for model.Spec networks.
//
// Compile turns a spec and its float32 weights into a Program: weights
// are packed once for the GEMM kernels of package internal/gemm (AVX-512,
// AVX2/FMA or portable Go, chosen at run time), linear and conv2d layers
// are fused with a ReLU that follows them, convolutions run as im2col +
// GEMM, dropout is the identity and flatten is free.
//
// CompileInt8 does the same for a post-training quantized network (a
// QuantModel, which package quantize produces): activations flow between
// layers as uint8 with a per-tensor scale and zero point, weights are
// int8 with a scale per output channel, products accumulate exactly in
// int32, and each GEMM requantizes its output for the next layer in its
// epilogue; the last layer produces float32 logits. Layers kept in
// float32 (the accuracy fallback of package quantize) are run in float,
// with a dequantization before and a quantization after them.
//
// A Program is immutable and safe for concurrent use: each Forward call
// takes its scratch buffers from a sync.Pool, so steady-state inference
// does not allocate.
package infer
