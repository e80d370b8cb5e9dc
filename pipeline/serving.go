package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/transfer"
)

// serving returns the serving measurement of model e (file path, loaded
// as m): the one recorded by an earlier run of this directory when the
// model file, the serving settings, the backend and the machine are the
// same and Options.Remeasure is off, else a new one, which it records.
// Rerunning a finished run thus rewrites report.json with the same
// numbers instead of new noise.
func (run *runner) serving(ctx context.Context, prog *evalProgress, e evalEntry, path string, spec model.Spec, m eval.Predictor) (*report.Serving, error) {
	sv := run.r.Serving
	js, st := model.Paths(path)
	files, err := transfer.HashFiles(js, st)
	if err != nil {
		return nil, fmt.Errorf("distill: measure %s: %w", e.name, err)
	}
	key := run.servingKey(files, e.int8)
	if !run.opts.Remeasure {
		if s, ok := run.servingRecorded(e.name, key); ok {
			prog.phase(e.name, "reusing the serving measurement of "+e.name+" (--remeasure measures again)")
			return s, nil
		}
	}
	prog.phase(e.name, "measuring serving latency and throughput of "+e.name)
	meas, err := cost.Measure(ctx, m, run.test.Size(), cost.MeasureOptions{
		Outputs:  spec.Classes,
		Batches:  sv.Batches,
		Duration: time.Duration(sv.Seconds * float64(time.Second)),
		Sample:   run.test.X[:min(run.test.Len(), 256)*run.test.Size()],
	})
	if err != nil {
		return nil, fmt.Errorf("distill: measure %s: %w", e.name, err)
	}
	if err := run.recordServing(e.name, key, meas); err != nil {
		return nil, err
	}
	return &meas, nil
}
