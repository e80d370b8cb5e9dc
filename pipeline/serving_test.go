package pipeline_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/report"
)

// TestServingOneEngine checks that every model of a CPU run is timed on
// distill's compiled runtime, FP32 and INT8 alike, with the model's own
// memory per batch size, and that a student and its same-architecture
// baseline share one measurement.
func TestServingOneEngine(t *testing.T) {
	var shared []string
	rep, err := pipeline.Run(context.Background(), loadTiny(t), pipeline.Options{OutDir: t.TempDir(), Progress: func(e pipeline.Event) {
		if e.Stage == "eval" && strings.HasPrefix(e.Message, "sharing the serving measurement") {
			shared = append(shared, e.Message)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.EngineNote != "" {
		t.Errorf("engine note %q on a run whose models share one engine", rep.EngineNote)
	}
	byName := map[string]report.Model{}
	int8s := 0
	for _, m := range rep.Models {
		byName[m.Name] = m
		s := m.Serving
		if s == nil {
			t.Fatalf("model %s was not measured", m.Name)
		}
		want := report.PrecisionFP32
		if m.Role == report.RoleStudentInt8 || m.Role == report.RoleTeacherInt8 {
			want = report.PrecisionINT8
			int8s++
		}
		if s.Engine != report.EngineInfer || s.Precision != want {
			t.Errorf("model %s measured on %q in %q, want %q in %q", m.Name, s.Engine, s.Precision, report.EngineInfer, want)
		}
		for _, tp := range s.Throughput {
			if tp.ModelBytes <= 0 {
				t.Errorf("model %s: no model memory at batch %d", m.Name, tp.Batch)
			}
		}
	}
	if int8s == 0 {
		t.Fatal("the recipe made no INT8 model; the test needs one")
	}
	st, bl := byName["tiny"], byName["tiny-baseline"]
	if st.Serving == nil || bl.Serving == nil {
		t.Fatalf("no tiny or tiny-baseline in %v", byName)
	}
	if bl.Serving.MeasuredAs != "tiny" || len(shared) == 0 {
		t.Errorf("tiny-baseline measured as %q (events %q), want it to share tiny's measurement", bl.Serving.MeasuredAs, shared)
	}
	a, b := *st.Serving, *bl.Serving
	b.MeasuredAs = ""
	if !reflect.DeepEqual(a, b) {
		t.Errorf("tiny and tiny-baseline differ in serving:\n%+v\n%+v", a, b)
	}
}
