package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/quantize"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/serve"
	"github.com/distill-dev/distill/teacher"
	"github.com/distill-dev/distill/teacher/ort"
)

// evalEntry names a model to evaluate and how it was made.
type evalEntry struct {
	name, key string
	role      report.Role
	method    string
	soft      loss.SoftTargets // a distilled student's
	int8      bool             // an INT8 model file (package quantize)
	source    string           // the float model an INT8 one came from
	// teacher is a teacher's spec: it is opened as the students saw it
	// (an ONNX teacher from its file, a teacher with its preprocessing).
	teacher *teacher.Spec
}

// externalTeacher reports whether e is a teacher run from its own file
// (teacher.Spec.External), which has no distill model file.
func (e evalEntry) externalTeacher() bool { return e.teacher != nil && e.teacher.External() }

func (run *runner) evaluate(ctx context.Context, entries []evalEntry) (*report.Report, error) {
	rep := &report.Report{
		Schema:  report.Schema,
		Recipe:  run.r.Name,
		Backend: run.be.Name(),
		Device:  run.be.Device(),
		// fp32 is the default and stays unwritten, as in older reports.
		Precision: strings.TrimPrefix(string(backend.PrecisionOf(run.be)), string(backend.PrecisionFP32)),
		Seed:      run.r.Seed,
		Dataset:   report.Dataset{Name: run.r.Data.Dataset, Train: run.train.Len(), Test: run.test.Len()},
		Created:   time.Now().UTC(),
		Version:   Version,
	}
	var teacherLogits []float32
	phases := len(entries)
	if run.r.Serving.MeasureEnabled() {
		phases *= 2
	}
	prog := newEvalProgress(run.opts.Progress, phases)
	defer prog.end()
	ss := newServingSet()
	for _, e := range entries {
		prog.phase(e.name, "evaluating "+e.name)
		path := run.modelPath(e.name)
		if e.externalTeacher() {
			path = e.teacher.ExternalFile()
		}
		spec, m, calibration, fallback, err := run.loadForEval(e, path)
		if err != nil {
			return nil, fmt.Errorf("distill: eval %s: %w", e.name, err)
		}
		// A batch larger than the test set is the whole set at once
		// (recipe.Eval); eval.Logits would allocate all of it.
		batch := max(min(run.r.Eval.BatchSize, run.test.Len()), 1)
		logits, err := eval.Logits(ctx, m, run.test, run.test.Size(), spec.Classes, batch)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("distill: eval %s: %w", e.name, err)
		}
		var serving *report.Serving
		switch {
		case run.r.Serving.MeasureEnabled() && e.externalTeacher():
			// The serving engines run distill models; ONNX Runtime's or
			// a TorchScript module's own serving cost is not what a
			// distilled student replaces here.
			engine := "ONNX Runtime"
			if e.teacher.ONNX == "" {
				engine = "libtorch as a TorchScript module of an architecture distill does not know"
			}
			ss.note(fmt.Sprintf("Teacher %s runs in %s and has no serving measurement (distill measures its own engines).", e.name, engine))
		case run.r.Serving.MeasureEnabled():
			if serving, err = run.serving(ctx, prog, ss, e, path, spec, m); err != nil {
				m.Close()
				return nil, err
			}
		}
		params, _ := spec.ParamCount()
		if e.externalTeacher() && e.teacher.ONNX == "" && len(spec.Layers) == 0 {
			params = scriptParams(m) // its spec has no distill layers to count
		}
		m.Close()
		if e.name == "teacher" {
			teacherLogits = logits // agreement is with the main teacher
		}
		met, err := eval.Compute(logits, run.test.Y, teacherLogits, spec.Classes, run.r.Eval.ECEBins)
		if err != nil {
			return nil, fmt.Errorf("distill: eval %s: %w", e.name, err)
		}
		rel, _ := filepath.Rel(run.out, path)
		bytes := fileSize(path)
		if e.externalTeacher() {
			rel = path // outside the run directory
			if fi, err := os.Stat(path); err == nil {
				bytes = fi.Size()
			}
			if e.teacher.ONNX != "" {
				if info, err := ort.Inspect(path); err == nil {
					params = int(info.Params) // its spec has no distill layers to count
				}
			}
		}
		rep.Models = append(rep.Models, report.Model{
			Name: e.name, Role: e.role, Params: params, Bytes: bytes,
			Accuracy: met.Accuracy, Errors: met.Errors, Agreement: met.Agreement, ECE: met.ECE,
			Path: filepath.ToSlash(rel), Method: e.method, Alpha: e.soft.Alpha, Temperature: e.soft.Temperature,
			Calibration: calibration, FallbackLayers: fallback, Source: e.source,
			Serving: serving,
		})
		prog.end()
		run.log.Info("evaluated", "model", e.name, "accuracy", roundFraction(met.Accuracy), "errors", met.Errors, "agreement", roundFraction(met.Agreement), "ece", roundFraction(met.ECE))
	}
	prog.finish()
	poolServerNoise(rep.Models)
	rep.EngineNote = strings.Join(ss.notes, " ")
	return rep, nil
}

// poolServerNoise widens each model's server-scenario range to what the
// spread of all the report's searches, pooled, predicts for a repeat:
// the models were measured on one machine by one method, and three
// searches of one model often agree by luck, which made one run call a
// saving real that the next called noise. A figure shared by models of
// the same computation counts once.
func poolServerNoise(models []report.Model) {
	var pooled serve.Spread
	var scenarios []*report.ServerScenario
	for _, m := range models {
		if m.Serving == nil || m.Serving.Server == nil {
			continue
		}
		if m.Serving.MeasuredAs == "" {
			pooled = pooled.Add(serve.SearchSpread(m.Serving.Server.Searches))
		}
		scenarios = append(scenarios, m.Serving.Server)
	}
	serve.PoolRanges(scenarios, pooled)
}

// closablePredictor is a model to evaluate.
type closablePredictor interface {
	eval.Predictor
	Close() error
}

type program struct{ *infer.Program }

func (program) Close() error { return nil }

// loadForEval loads a float model onto the run's backend, or an INT8
// model into the INT8 runtime.
func (run *runner) loadForEval(e evalEntry, path string) (model.Spec, closablePredictor, string, []string, error) {
	if e.int8 {
		q, err := quantize.Load(path)
		if err != nil {
			return model.Spec{}, nil, "", nil, err
		}
		p, err := q.Compile()
		if err != nil {
			return model.Spec{}, nil, "", nil, err
		}
		return q.Spec, program{p}, string(q.Method), q.Fallback, nil
	}
	if e.teacher != nil {
		m, err := run.openTeacher(*e.teacher)
		if err != nil {
			return model.Spec{}, nil, "", nil, err
		}
		return m.Spec(), m, "", nil, nil
	}
	spec, w, err := model.Load(path)
	if err != nil {
		return model.Spec{}, nil, "", nil, err
	}
	m, err := run.be.Load(spec, w)
	return spec, m, "", nil, err
}

// scriptParams counts the parameters a model holds by its weights (a
// TorchScript module's named parameters), 0 when it cannot tell.
func scriptParams(m closablePredictor) int {
	wm, ok := m.(interface{ Weights() (model.Weights, error) })
	if !ok {
		return 0
	}
	w, err := wm.Weights()
	if err != nil {
		return 0
	}
	n := 0
	for _, t := range w {
		n += len(t.Data)
	}
	return n
}

// fileSize is the size of a model's weights file: what it costs to ship.
func fileSize(jsonPath string) int64 {
	st := jsonPath[:len(jsonPath)-len(".json")] + ".safetensors"
	fi, err := os.Stat(st)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return 0
	}
	return fi.Size()
}
