//go:build torch

package distill

// TestEpochAccuracyChangesNothing runs on the torch backend too.
import _ "github.com/distill-dev/distill/backend/torch"
