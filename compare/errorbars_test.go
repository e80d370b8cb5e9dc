package compare

import (
	"math"
	"testing"

	"gonum.org/v1/plot/plotter"

	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/report"
)

// TestErrorBars: each cost-chart point carries its cost range (the
// slowest and fastest measuring window) and its accuracy's 95% Wilson
// interval, as distances from the point.
func TestErrorBars(t *testing.T) {
	r := Row{Model: report.Model{Accuracy: 0.9, Cost: &report.Cost{
		USDPerMillion: report.TierPrices{OnDemand: 2}, USDPerMillionLow: 1.5, USDPerMillionHigh: 3}}}
	var b errorBars
	b.add(plotter.XY{X: 2, Y: 90}, r, 1000)
	lo, hi := b.XError(0)
	if lo != 0.5 || hi != 1 {
		t.Errorf("cost bar %v..%v below/above, want 0.5 and 1", lo, hi)
	}
	wlo, whi := eval.Wilson(900, 1000)
	dlo, dhi := b.YError(0)
	if math.Abs(dlo-(90-100*wlo)) > 1e-9 || math.Abs(dhi-(100*whi-90)) > 1e-9 || dlo <= 0 || dhi <= 0 {
		t.Errorf("accuracy bar %v, %v; want the Wilson interval %v..%v around 90", dlo, dhi, 100*wlo, 100*whi)
	}
	// Without a recorded spread or test count, the bars have no length.
	r.Model.Cost.USDPerMillionLow, r.Model.Cost.USDPerMillionHigh = 0, 0
	b = errorBars{}
	b.add(plotter.XY{X: 2, Y: 90}, r, 0)
	if lo, hi := b.XError(0); lo != 0 || hi != 0 {
		t.Errorf("no spread: %v, %v", lo, hi)
	}
	if lo, hi := b.YError(0); lo != 0 || hi != 0 {
		t.Errorf("no test count: %v, %v", lo, hi)
	}
}
