//go:build torch

package main

// The libtorch backend, so that -tags torch builds can measure -backend torch
// (scripts/gpu/run.sh does).
import _ "github.com/distill-dev/distill/backend/torch"
