package pipeline

import (
	"errors"
	"strings"
	"testing"

	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
)

// TestPricingChecksBeforeWork: Run calls pricing before training, so a
// machine no price entry matches, or a named entry the table lacks,
// stops the run at the start with a message saying what to set.
func TestPricingChecksBeforeWork(t *testing.T) {
	rtx := report.Machine{Device: "cuda:0", GPU: "NVIDIA GeForce RTX 4090"}
	if _, err := pricing(recipe.Serving{}, rtx); !errors.Is(err, cost.ErrNoPriceMatch) || !strings.Contains(err.Error(), "serving.machine") {
		t.Errorf("unmatched GPU: %v", err)
	}
	if _, err := pricing(recipe.Serving{Machine: "aws-g6.xlarge"}, rtx); err != nil {
		t.Errorf("named entry: %v", err)
	}
	if _, err := pricing(recipe.Serving{Machine: "my-box"}, rtx); err == nil || !strings.Contains(err.Error(), "serving.machine") || !strings.Contains(err.Error(), `"my-box"`) {
		t.Errorf("unknown named entry: %v", err)
	}
	off := false
	if _, err := pricing(recipe.Serving{Measure: &off}, rtx); err != nil {
		t.Errorf("serving off: %v", err)
	}
	intel := report.Machine{Device: "cpu", Arch: "amd64", CPU: "Intel(R) Xeon(R)", CPUs: 2}
	if _, err := pricing(recipe.Serving{}, intel); err != nil {
		t.Errorf("2-core Intel: %v", err)
	}
}
