// Package quantize does post-training static INT8 quantization of
// model.Spec networks for the CPU runtime.
//
// Quantize works on the network the runtime runs (infer.Fold: batchnorms
// folded into the conv2d and linear layers before them; one that cannot
// fold stays in float32). It runs that network on calibration batches,
// streams a histogram of each activation (bounded memory: 2×2048 bins
// whose width doubles as the range grows), and picks each activation's clipping range
// with one of four methods: MinMax, Percentile, Entropy (TensorRT's
// KL-divergence search) or MSE (least expected squared quantization
// error). Activations become per-tensor asymmetric uint8 (scale and zero
// point), weights per-output-channel symmetric int8, biases int32 with
// scale s_in·s_w[c]. The resulting Model compiles with
// infer.CompileInt8 (or Model.Compile) into a program that runs INT8
// end to end with fused requantization between layers and produces
// float32 logits.
//
// WithFallback trades speed for accuracy: given an evaluation function
// and a budget (an absolute or relative drop against float32), it ranks
// the folded network's linear and conv2d layers by sensitivity and keeps the most sensitive ones in float32
// until the budget is met, reporting a *BudgetError with the best model
// found when it cannot be.
//
// Save and Load store a Model as <name>.safetensors (int8 weights,
// int32 biases, float32 scales, uint8 zero points, the float32 tensors of
// fallback layers and unfolded batchnorms) and <name>.json (the folded
// spec, the network as given when folding changed it, the calibration
// method, the activation scales and zero points, and the tensors file's
// SHA-256); Load checks shapes and ranges. Files of sequential networks
// without batchnorm are the same as before graph models.
package quantize
