package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/transfer"
)

// servingRecord is a finished serving measurement: the key of what
// determined it, and the numbers.
type servingRecord struct {
	Key     string         `json:"key"`
	Serving report.Serving `json:"serving"`
}

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
	key := keyOf(files, e.int8, sv.Batches, sv.Seconds, run.be.Name(), run.be.Device(), cost.Host(run.be.Device()))
	rec := filepath.Join(run.out, "stages", "serving", e.name+".json")
	if !run.opts.Remeasure {
		var r servingRecord
		if b, err := os.ReadFile(rec); err == nil && json.Unmarshal(b, &r) == nil && r.Key == key {
			prog.phase(e.name, "reusing the serving measurement of "+e.name+" (--remeasure measures again)")
			return &r.Serving, nil
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
	b, err := json.Marshal(servingRecord{Key: key, Serving: meas})
	if err != nil {
		return nil, fmt.Errorf("distill: record the serving measurement of %s: %w", e.name, err)
	}
	if err := os.MkdirAll(filepath.Dir(rec), 0o755); err != nil {
		return nil, fmt.Errorf("distill: record the serving measurement of %s: %w", e.name, err)
	}
	if err := atomicfile.WriteFile(rec, b, 0o644); err != nil {
		return nil, fmt.Errorf("distill: record the serving measurement of %s: %w", e.name, err)
	}
	return &meas, nil
}
