//go:build torch

package main

// The libtorch backend, in builds with -tags torch (see docs/torch.md).
import _ "github.com/distill-dev/distill/backend/torch"
