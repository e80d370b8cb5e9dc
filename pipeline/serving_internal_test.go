package pipeline

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/report"
)

// cudaBackend stands in for the torch backend on a GPU: servingTarget
// only asks a backend its name and device.
type cudaBackend struct{ backend.Backend }

func (cudaBackend) Name() string   { return "torch" }
func (cudaBackend) Device() string { return "cuda:0" }

type fakeModel struct{}

func (fakeModel) Forward([]float32, int, []float32) error { return nil }

// TestServingTargetCUDA checks the engines of a CUDA run: float models on
// the backend itself, INT8 models on the CPU runtime, and a note that
// lets the report mixing them be written; without the note it could not.
func TestServingTargetCUDA(t *testing.T) {
	spec, err := model.MLP(model.MLPConfig{Name: "m", Input: []int{6}, Hidden: []int{4}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := infer.Compile(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	run := &runner{be: cudaBackend{}}
	ss := newServingSet()
	fp, err := run.servingTarget(ss, evalEntry{name: "small"}, "", spec, fakeModel{})
	if err != nil {
		t.Fatal(err)
	}
	if fp.engine != "torch cuda:0" || fp.precision != report.PrecisionFP32 || fp.p != (fakeModel{}) {
		t.Errorf("float model on CUDA measured on %q in %q with %T, want the backend's model on torch cuda:0", fp.engine, fp.precision, fp.p)
	}
	if len(ss.notes) != 0 {
		t.Errorf("notes %q for a float model on CUDA", ss.notes)
	}
	q, err := run.servingTarget(ss, evalEntry{name: "small-int8", int8: true}, "", spec, program{p})
	if err != nil {
		t.Fatal(err)
	}
	if q.engine != report.EngineInfer || q.precision != report.PrecisionINT8 {
		t.Errorf("INT8 model on a CUDA run measured on %q in %q, want %q in int8", q.engine, q.precision, report.EngineInfer)
	}
	if len(ss.notes) != 1 || !strings.Contains(ss.notes[0], "cuda:0") {
		t.Fatalf("notes %q, want one saying INT8 runs on the CPU beside cuda:0", ss.notes)
	}

	rep := &report.Report{Models: []report.Model{
		{Name: "small", Role: report.RoleStudent, Serving: &report.Serving{Engine: fp.engine, Precision: fp.precision}},
		{Name: "small-int8", Role: report.RoleStudentInt8, Serving: &report.Serving{Engine: q.engine, Precision: q.precision}},
	}}
	path := filepath.Join(t.TempDir(), "report.json")
	if err := rep.WriteJSON(path); err == nil {
		t.Error("a report mixing engines without a note was written")
	}
	rep.EngineNote = strings.Join(ss.notes, " ")
	if err := rep.WriteJSON(path); err != nil {
		t.Errorf("with the pipeline's note: %v", err)
	}
}

// TestServingTargetCPU checks that a float model of a CPU run is timed on
// the compiled runtime, not on the training backend it was loaded on.
func TestServingTargetCPU(t *testing.T) {
	spec, err := model.MLP(model.MLPConfig{Name: "m", Input: []int{6}, Hidden: []int{4}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.json")
	if err := model.Save(path, spec, w); err != nil {
		t.Fatal(err)
	}
	be, err := backend.Open("gorgonia", backend.Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	m, err := be.Load(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	run := &runner{be: be}
	ss := newServingSet()
	tg, err := run.servingTarget(ss, evalEntry{name: "m"}, path, spec, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tg.p.(*infer.Program); !ok || tg.engine != report.EngineInfer || tg.precision != report.PrecisionFP32 {
		t.Errorf("float model on the CPU measured with %T on %q in %q, want an *infer.Program on %q", tg.p, tg.engine, tg.precision, report.EngineInfer)
	}
	if len(ss.notes) != 0 {
		t.Errorf("notes %q on a CPU run", ss.notes)
	}
}

// TestPoolServerNoise: a model whose three searches agreed gets the
// range the report's pooled spread predicts, not its own bracket; one
// whose own scatter is wider keeps its own; a model sharing another's
// figure has the same range and does not count twice in the pool.
func TestPoolServerNoise(t *testing.T) {
	search := func(pass, fail float64) report.ServerSearch {
		return report.ServerSearch{RequestsPerSecond: pass, FailedRequestsPerSecond: fail}
	}
	scenario := func(searches ...report.ServerSearch) *report.Serving {
		sc := &report.ServerScenario{
			Searches: searches,
			Trials:   []report.ServerTrial{{RateRPS: 1e6}},
		}
		sc.RequestsPerSecond = searches[1].RequestsPerSecond
		sc.RequestsPerSecondLow, sc.RequestsPerSecondHigh = searches[0].RequestsPerSecond, searches[2].FailedRequestsPerSecond
		return &report.Serving{Server: sc}
	}
	lucky := scenario(search(1000, 1100), search(1000, 1100), search(1000, 1100))
	noisy := scenario(search(800, 900), search(1000, 1100), search(1300, 1400))
	twin := *noisy
	twin.MeasuredAs = "noisy"
	twin.Server = new(report.ServerScenario)
	*twin.Server = *noisy.Server
	models := []report.Model{{Name: "lucky", Serving: lucky}, {Name: "noisy", Serving: noisy}, {Name: "twin", Serving: &twin}, {Name: "unmeasured"}}
	poolServerNoise(models)

	if !strings.Contains(lucky.Server.Method, "pooled over the report's server scenarios (4 degrees of freedom)") {
		t.Errorf("method %q does not say the range was pooled", lucky.Server.Method)
	}
	if lo, hi := lucky.Server.RequestsPerSecondLow, lucky.Server.RequestsPerSecondHigh; !(lo < 1000 && hi > 1100) {
		t.Errorf("lucky model's range %v–%v: want wider than its bracket 1000–1100", lo, hi)
	}
	if twin.Server.RequestsPerSecondLow != noisy.Server.RequestsPerSecondLow || twin.Server.RequestsPerSecondHigh != noisy.Server.RequestsPerSecondHigh {
		t.Errorf("twin's range %v–%v differs from the model it shares %v–%v", twin.Server.RequestsPerSecondLow, twin.Server.RequestsPerSecondHigh, noisy.Server.RequestsPerSecondLow, noisy.Server.RequestsPerSecondHigh)
	}
	// The pool has the noisy model's 2 degrees of freedom and the lucky
	// one's 2 (with no scatter): 4 in all, t = 2.776. The lucky model's
	// half-width on the log scale is t · √(SS/4) · √(2/3).
	logs := []float64{math.Log(math.Sqrt(800 * 900)), math.Log(math.Sqrt(1000 * 1100)), math.Log(math.Sqrt(1300 * 1400))}
	mean := (logs[0] + logs[1] + logs[2]) / 3
	ss := 0.0
	for _, l := range logs {
		ss += (l - mean) * (l - mean)
	}
	half := 2.776445 * math.Sqrt(ss/4) * math.Sqrt(2.0/3)
	center := math.Sqrt(1000 * 1100)
	if lo := lucky.Server.RequestsPerSecondLow; math.Abs(lo-center*math.Exp(-half)) > 1e-3*lo {
		t.Errorf("lucky model's low end %v, want %v from the pooled spread", lo, center*math.Exp(-half))
	}
	if hi := lucky.Server.RequestsPerSecondHigh; math.Abs(hi-center*math.Exp(half)) > 1e-3*hi {
		t.Errorf("lucky model's high end %v, want %v from the pooled spread", hi, center*math.Exp(half))
	}
	// The noisy model's own scatter (2 degrees of freedom, t = 4.303)
	// gives a wider interval than the pooled one: it keeps its own.
	noisyHalf := 4.302653 * math.Sqrt(ss/2) * math.Sqrt(2.0/3)
	if lo, want := noisy.Server.RequestsPerSecondLow, math.Exp(mean-noisyHalf); math.Abs(lo-want) > 1e-3*lo {
		t.Errorf("noisy model's low end %v, want %v from its own spread", lo, want)
	}
	if hi, want := noisy.Server.RequestsPerSecondHigh, math.Exp(mean+noisyHalf); math.Abs(hi-want) > 1e-3*hi {
		t.Errorf("noisy model's high end %v, want %v from its own spread", hi, want)
	}
}
