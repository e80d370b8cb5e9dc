package pipeline

import (
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
