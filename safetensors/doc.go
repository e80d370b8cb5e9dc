// Package safetensors reads and writes the safetensors format of Hugging
// Face, which PyTorch users get from safetensors.torch.save_file and
// which the Hugging Face Hub serves model weights in.
//
// A file is an 8-byte little-endian header length N, then N bytes of
// UTF-8 JSON, then a byte buffer:
//
//	{"__metadata__": {"format": "pt"},
//	 "fc1.weight": {"dtype": "F32", "shape": [128, 784], "data_offsets": [0, 401408]},
//	 ...}
//
// Each tensor's data_offsets are relative to the start of the buffer; the
// tensors tile it exactly, row-major, little-endian. The header is padded
// with spaces to a multiple of 8 bytes. "__metadata__" is an optional map
// of strings.
//
// Read and ReadFile check every one of these rules (and bound what they
// allocate by the input's size), so a truncated, corrupt or hostile file
// yields an error wrapping ErrInvalid, never a panic. Write and WriteFile
// lay files out as the reference implementation does, byte for byte but
// for the order of metadata keys (sorted here, in hash order there), and
// deterministically; WriteFile replaces its target atomically.
//
// A Tensor keeps its elements as raw bytes with their DType. F32, F16,
// BF16, I8, ... build tensors from Go slices and Tensor.Float32,
// Tensor.Int8, ... decode them.
//
// This package does not depend on package model; model.Save and
// model.Load use it for distill's model files.
package safetensors
