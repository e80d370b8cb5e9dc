//go:build torch

package pipeline

// TestEpochAccuracyChangesNothing runs on the torch backend too.
import _ "github.com/distill-dev/distill/backend/torch"
