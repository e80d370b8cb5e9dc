package report_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/internal/jsonschema"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/report"
)

// validate checks the report.json at path against schema.json, and that
// the schema declares every field in it (so the schema cannot fall
// behind the Go types).
func validate(t *testing.T, path string) {
	t.Helper()
	s, err := jsonschema.Compile(report.JSONSchema())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ValidateJSON(b, jsonschema.Options{Undeclared: true}); err != nil {
		t.Errorf("%s does not match report/schema.json:\n%v", path, err)
	}
}

func TestSchemaMatchesGoldenReports(t *testing.T) {
	paths, _ := filepath.Glob("testdata/*.json.golden")
	more, _ := filepath.Glob("../compare/testdata/*/report.json")
	paths = append(paths, more...)
	if len(paths) < 3 {
		t.Fatalf("only %d reports found", len(paths))
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) { validate(t, p) })
	}
}

// TestSchemaMatchesMeasuredReport validates a report with serving
// numbers measured for real and priced by package cost.
func TestSchemaMatchesMeasuredReport(t *testing.T) {
	spec, err := model.MLP(model.MLPConfig{Name: "m", Input: []int{16}, Hidden: []int{8}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := spec.Init(1)
	prog, err := infer.Compile(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cost.Measure(context.Background(), prog, 16, cost.MeasureOptions{Batches: []int{1, 4}, Duration: 20 * time.Millisecond, Warmup: time.Millisecond, MinRequests: 5})
	if err != nil {
		t.Fatal(err)
	}
	r := &report.Report{Recipe: "measured", Backend: "runtime", Device: "cpu",
		Models: []report.Model{
			{Name: "teacher", Role: report.RoleTeacher, Accuracy: 0.9, Agreement: 1, Serving: &s},
			{Name: "student", Role: report.RoleStudent, Accuracy: 0.8, Agreement: 0.9, Serving: &s},
		},
		Stages: []report.Stage{{Name: "teacher", Seconds: 2}, {Name: "student:student", Seconds: 1}},
	}
	priceAndValidate(t, r)
}

// priceAndValidate prices r on this machine as cost.Apply does, writes
// it and checks the file against the schema.
func priceAndValidate(t *testing.T, r *report.Report) {
	t.Helper()
	m := cost.Host("cpu")
	r.Machine = &m
	if err := cost.Apply(r, cost.Options{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	validate(t, path)
}

func TestCheckSchema(t *testing.T) {
	good, err := os.ReadFile("testdata/costed.json.golden")
	if err != nil {
		t.Fatal(err)
	}
	if err := report.CheckSchema(good); err != nil {
		t.Error(err)
	}
	// Fields of later versions are allowed.
	if err := report.CheckSchema([]byte(`{"schema":"distill.report/v1","recipe":"r","backend":"b","device":"cpu","seed":1,"dataset":{"name":"d","train":1,"test":1},"models":[],"stages":[],"created":"2025-01-01T00:00:00Z","future":{"x":1}}`)); err != nil {
		t.Errorf("a later version's field: %v", err)
	}
	bad := strings.Replace(string(good), `"batch": 32`, `"batch": -1`, 1)
	bad = strings.Replace(bad, `"role": "teacher"`, `"role": "Teacher"`, 1)
	err = report.CheckSchema([]byte(bad))
	for _, want := range []string{"does not match schema distill.report/v1", `/models/1/role: "Teacher" is not one of`, "/models/0/serving/throughput/2/batch: -1 is less than the minimum 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
}

// TestDeviceMemoryInReport: the device memory of stages and of a model's
// serving measurement, as a CUDA run of the torch backend records them,
// passes the schema and shows in report.md: a stage column, and the
// model memory cell of a model measured without ModelBytes.
func TestDeviceMemoryInReport(t *testing.T) {
	gpu := &report.DeviceMemory{AllocatedPeakBytes: 12 << 20, ReservedPeakBytes: 20 << 20}
	s := report.Serving{
		LatencyMS: report.Percentiles{P50: 0.2, P95: 0.3, P99: 0.4, Mean: 0.25}, Requests: 100,
		Throughput:   []report.Throughput{{Batch: 64, RequestsPerSecond: 50000, BatchLatencyMS: report.Percentiles{P50: 1, P95: 1, P99: 1, Mean: 1}, Batches: 10, Seconds: 1}},
		Engine:       "torch cuda:0",
		Precision:    report.PrecisionFP32,
		DeviceMemory: gpu,
		Threads:      16, Method: "test",
	}
	r := &report.Report{Recipe: "gpu", Backend: "torch", Device: "cuda:0",
		Models: []report.Model{{Name: "teacher", Role: report.RoleTeacher, Accuracy: 0.9, Agreement: 1, Serving: &s}},
		Stages: []report.Stage{
			{Name: "data", Seconds: 1},
			{Name: "teacher", Seconds: 2, DeviceMemory: &report.DeviceMemory{AllocatedPeakBytes: 300 << 20, ReservedPeakBytes: 512 << 20}},
		},
	}
	priceAndValidate(t, r)
	if got := s.ModelBytesAt(1); got != gpu.AllocatedPeakBytes {
		t.Errorf("ModelBytesAt = %d, want the device's allocated peak %d", got, gpu.AllocatedPeakBytes)
	}
	md := r.Markdown()
	for _, want := range []string{
		"| Stage | Seconds | Share | Device memory peak |",
		"| data | 1.0 | 33.3% | — |",
		"| teacher | 2.0 | 66.7% | 300.0 MiB (reserved 512.0 MiB) |",
		"12.0 MiB (reserved 20.0 MiB)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	r.Stages[1].DeviceMemory = nil
	if md := r.Markdown(); strings.Contains(md, "Device memory peak") {
		t.Errorf("a report without device memory has its column:\n%s", md)
	}
}
