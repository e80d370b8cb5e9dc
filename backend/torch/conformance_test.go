//go:build torch

package torch_test

import (
	"os"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/backendtest"
	_ "github.com/distill-dev/distill/backend/torch"
)

// TestConformance runs the suite every backend passes: logits, losses and
// gradients against the float64 reference, partial batches, optimizer
// state, learning.
func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Registered("torch", backend.Options{Device: os.Getenv("DISTILL_TORCH_TEST_DEVICE")}))
}
