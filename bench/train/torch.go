//go:build torch

package main

// With the torch tag the benchmark can measure the libtorch backend too
// (-backend torch).
import _ "github.com/distill-dev/distill/backend/torch"
