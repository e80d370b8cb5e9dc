package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/serve"
)

// servingSet holds the serving measurements of one evaluation: what each
// engine key was measured as, so that models that would run the same
// computation (same architecture, precision and engine; weight values do
// not change a dense network's speed) share one figure instead of
// differing by noise, and the notes the report must carry when the
// models' engines differ.
type servingSet struct {
	byKey map[string]sharedServing
	notes []string
}

type sharedServing struct {
	name string // the model measured
	s    report.Serving
}

func newServingSet() *servingSet { return &servingSet{byKey: map[string]sharedServing{}} }

// note adds a line to the report's engine note, once.
func (ss *servingSet) note(s string) {
	if !slices.Contains(ss.notes, s) {
		ss.notes = append(ss.notes, s)
	}
}

// servingTarget is what a model is measured with.
type servingTarget struct {
	engine, precision string
	p                 eval.Predictor
	// arch identifies the computation: the compiled program's steps, or
	// the spec without its name for a backend model.
	arch string
}

// onCUDA reports whether the run's backend computes on a CUDA device.
func (run *runner) onCUDA() bool { return strings.HasPrefix(run.be.Device(), "cuda") }

// servingTarget picks the engine model e would be served on, the same
// for every model of a run: on a CUDA device the backend itself (the
// torch backend's Forward copies the logits to the host, so each call
// is timed to the device's completion); on a CPU distill's compiled
// runtime for FP32 and INT8 alike, not the training backend. INT8
// models always run on the compiled runtime (no backend runs INT8), so
// on CUDA they differ from the float models, and ss's note says so.
// m is the model as loaded for evaluation: a backend model, or for INT8
// a compiled program.
func (run *runner) servingTarget(ss *servingSet, e evalEntry, path string, spec model.Spec, m eval.Predictor) (servingTarget, error) {
	named := spec
	named.Name = ""
	if e.int8 {
		p, ok := m.(program)
		if !ok {
			return servingTarget{}, fmt.Errorf("distill: measure %s: an INT8 model loaded as %T, not a compiled program", e.name, m)
		}
		if run.onCUDA() {
			ss.note(fmt.Sprintf("INT8 models are measured on distill's CPU runtime (%s), since no engine on %s runs INT8; the float models on %s %s. Their savings compare a CPU with a GPU as well as the precisions.",
				report.EngineInfer, run.be.Device(), run.be.Name(), run.be.Device()))
		}
		return servingTarget{engine: report.EngineInfer, precision: report.PrecisionINT8, p: p.Program, arch: keyOf(named, p.String())}, nil
	}
	if run.onCUDA() {
		return servingTarget{engine: run.be.Name() + " " + run.be.Device(), precision: string(backend.PrecisionOf(run.be)), p: m, arch: keyOf(named)}, nil
	}
	_, w, err := model.Load(path)
	if err != nil {
		return servingTarget{}, fmt.Errorf("distill: measure %s: %w", e.name, err)
	}
	p, err := infer.Compile(spec, w)
	if err != nil {
		return servingTarget{}, fmt.Errorf("distill: measure %s: compile it for %s, the engine CPU models are served on: %w", e.name, report.EngineInfer, err)
	}
	return servingTarget{engine: report.EngineInfer, precision: report.PrecisionFP32, p: p, arch: keyOf(named, p.String())}, nil
}

// serving returns the serving measurement of model e (file path, loaded
// as m), measured on the engine servingTarget picks: a figure already
// measured in this evaluation for the same computation on the same
// engine (marked MeasuredAs the model it was measured on), else the one
// recorded by an earlier run of this directory when the computation,
// the serving settings, the engine and the machine are the same and
// Options.Remeasure is off, else a new one, which it records. Rerunning
// a finished run thus rewrites report.json with the same numbers
// instead of new noise.
func (run *runner) serving(ctx context.Context, prog *evalProgress, ss *servingSet, e evalEntry, path string, spec model.Spec, m eval.Predictor) (*report.Serving, error) {
	sv := run.r.Serving
	tg, err := run.servingTarget(ss, e, path, spec, m)
	if err != nil {
		return nil, err
	}
	key := keyOf(tg.arch, tg.engine, tg.precision, sv.Batches, sv.Seconds, run.be.Name(), run.be.Device(), cost.Host(run.be.Device()))
	if sc := sv.Server; sc.MeasureEnabled() {
		// Only when on, so that keys recorded before the server scenario
		// existed still hold for runs that turn it off.
		key = keyOf(key, sc.MaxBatch, sc.MaxWaitMS, sc.TrialSeconds, sc.Steps, sc.Searches, sv.LatencyTargetMS)
	}
	if sh, ok := ss.byKey[key]; ok {
		prog.phase(e.name, "sharing the serving measurement of "+sh.name+" (same architecture, precision and engine)")
		s := sh.s
		s.MeasuredAs = sh.name
		if err := run.recordServing(e.name, key, s); err != nil {
			return nil, err
		}
		return &s, nil
	}
	if !run.opts.Remeasure {
		if s, ok := run.servingRecorded(e.name, key); ok {
			prog.phase(e.name, "reusing the serving measurement of "+e.name+" (--remeasure measures again)")
			// A record shared from another model stays shared; one of
			// this model's own is shared from here on.
			src := e.name
			if s.MeasuredAs != "" {
				src = s.MeasuredAs
			}
			ss.byKey[key] = sharedServing{name: src, s: withoutShare(*s)}
			return s, nil
		}
	}
	what := "measuring serving latency and throughput of " + e.name + " on " + tg.engine
	if sv.Server.MeasureEnabled() {
		what += ", then the server scenario through distill's HTTP server"
	}
	prog.phase(e.name, what)
	// A model served by the backend itself (libtorch on CUDA) gets the
	// device memory it held; the CPU runtime's own bytes are ModelBytes.
	onDevice := tg.engine != report.EngineInfer
	if onDevice {
		run.begin()
	}
	meas, err := cost.Measure(ctx, tg.p, run.test.Size(), cost.MeasureOptions{
		Outputs:  spec.Classes,
		Batches:  sv.Batches,
		Duration: time.Duration(sv.Seconds * float64(time.Second)),
		Sample:   run.test.X[:min(run.test.Len(), 256)*run.test.Size()],
	})
	if err != nil {
		return nil, fmt.Errorf("distill: measure %s: %w", e.name, err)
	}
	meas.Engine, meas.Precision = tg.engine, tg.precision
	if sc := sv.Server; sc.MeasureEnabled() {
		srv, err := serve.MeasureServer(ctx, servedModel{tg.p, run.test.Size(), spec.Classes}, serve.ScenarioConfig{
			LatencyBound: time.Duration(sv.LatencyTargetMS * float64(time.Millisecond)),
			MaxRate:      meas.BestThroughput(),
			MaxBatch:     sc.MaxBatch,
			MaxWait:      time.Duration(sc.MaxWaitMS * float64(time.Millisecond)),
			Trial:        time.Duration(sc.TrialSeconds * float64(time.Second)),
			Steps:        sc.Steps,
			Searches:     sc.Searches,
			Sample:       run.test.X[:run.test.Size()],
			Seed:         uint64(run.r.Seed),
		})
		if err != nil {
			return nil, fmt.Errorf("distill: measure the server scenario of %s: %w", e.name, err)
		}
		meas.Server = &srv
	}
	if onDevice {
		meas.DeviceMemory = run.devicePeak()
	}
	if err := run.recordServing(e.name, key, meas); err != nil {
		return nil, err
	}
	ss.byKey[key] = sharedServing{name: e.name, s: meas}
	return &meas, nil
}

// servedModel gives a model measured for serving the shape serve.Server
// needs.
type servedModel struct {
	eval.Predictor
	inputSize, classes int
}

func (m servedModel) InputSize() int { return m.inputSize }
func (m servedModel) Classes() int   { return m.classes }

func withoutShare(s report.Serving) report.Serving {
	s.MeasuredAs = ""
	return s
}
