package quantize

import (
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

// weightQuantizer quantizes the weight and bias of one layer with out
// output channels whose input has scale sIn.
type weightQuantizer func(weight, bias []float32, out int, sIn float32) (infer.QLayer, error)

// weightQuantizers is quantize's implementation of each quantizable
// layer kind; the other kinds have no weights to quantize (their
// activations are calibrated by infer.NeedsActParams).
var weightQuantizers = kindreg.New[weightQuantizer]("quantize", func(info model.KindInfo) bool { return info.Quantizable })

func init() {
	// Both store PyTorch's layout, one row of fan-in weights per output
	// channel, which is what quantizeLayer's per-channel scales need.
	weightQuantizers.Register(model.KindLinear, quantizeLayer)
	weightQuantizers.Register(model.KindConv2D, quantizeLayer)
}
