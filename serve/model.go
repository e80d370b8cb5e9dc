package serve

import (
	"fmt"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/quantize"
)

// Model computes logits for a batch: x holds n examples row-major
// (n × InputSize values) and out receives n × Classes logits. Forward
// must be safe for concurrent use when Config.Workers > 1.
// *infer.Program implements it.
type Model interface {
	Forward(x []float32, n int, out []float32) error
	InputSize() int
	Classes() int
}

// Info describes the served model for GET /v1/model.
type Info struct {
	Name      string `json:"name"`
	Input     []int  `json:"input"`
	Classes   int    `json:"classes"`
	Precision string `json:"precision"` // "fp32" or "int8"
}

// Precisions reported in Info.
const (
	FP32 = "fp32"
	INT8 = "int8"
)

// LoadProgram compiles the model saved at path (either file of the
// pair, or their shared stem) for the CPU runtime: an INT8 model
// written by quantize, or else a float32 model written by model.Save.
func LoadProgram(path string) (*infer.Program, Info, error) {
	// An INT8 model file is tried first: its JSON spec says so.
	q, qerr := quantize.Load(path)
	if qerr == nil {
		p, err := q.Compile()
		if err != nil {
			return nil, Info{}, fmt.Errorf("serve: compiling INT8 model %s: %w", path, err)
		}
		return p, infoOf(p, INT8), nil
	}
	spec, w, err := model.Load(path)
	if err != nil {
		// Both readers' errors: a damaged INT8 file fails the float32
		// reader too, and only the INT8 error says what is wrong.
		return nil, Info{}, fmt.Errorf("serve: %s is neither a float32 nor an INT8 distill model: %w (as INT8: %v)", path, err, qerr)
	}
	p, err := infer.Compile(spec, w)
	if err != nil {
		return nil, Info{}, fmt.Errorf("serve: compiling %s: %w", path, err)
	}
	return p, infoOf(p, FP32), nil
}

func infoOf(p *infer.Program, precision string) Info {
	s := p.Spec()
	return Info{Name: s.Name, Input: append([]int(nil), s.Input...), Classes: p.Classes(), Precision: precision}
}
