package compare

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/report"
)

var gen = flag.Bool("gen", false, "rewrite the fixed reports in testdata/*/report.json")

// sweep makes serving numbers for a model whose batch of n takes
// overhead + n × perExample milliseconds, with p95 and p99 at 1.2 and
// 1.5 times that, measured on engine in precision; a model on the infer
// engine holds weightBytes plus a 4 KiB arena per example.
func sweep(overheadMS, perExampleMS float64, heapMiB int64, engine, precision string, weightBytes int64) *report.Serving {
	pct := func(ms float64) report.Percentiles {
		return report.Percentiles{P50: ms, P95: 1.2 * ms, P99: 1.5 * ms, Mean: 1.05 * ms}
	}
	s := &report.Serving{
		LatencyMS: pct(overheadMS + perExampleMS), Requests: 4000, Engine: engine, Precision: precision,
		PeakHeapBytes: heapMiB << 20, PeakRSSBytes: (heapMiB + 40) << 20, Threads: 4,
		Method: "One client calling Forward back to back (GOMAXPROCS=4) on uniform random inputs in [0, 1) (seed 0), after 100ms of warm-up (at least 2 calls) before each measurement. Latency: batch-1 requests timed one by one for 1s (at least 100 requests), nearest-rank percentiles. Throughput: batch sizes 1, 8, 32, 128, 256, each timed for 1s in 3 windows, median window reported with the slowest and fastest as its spread. Peak heap: runtime/metrics /memory/classes/heap/objects:bytes sampled every 5ms after a GC; peak RSS: VmHWM of /proc/self/status, reset before measuring.",
	}
	for _, n := range cost.DefaultBatches {
		ms := overheadMS + float64(n)*perExampleMS
		rps := float64(n) / ms * 1000
		// The timing windows spread ±2% about the median.
		tp := report.Throughput{Batch: n, RequestsPerSecond: rps, BatchLatencyMS: pct(ms), Batches: int(1000 / ms), Seconds: 1,
			RequestsPerSecondMin: 0.98 * rps, RequestsPerSecondMax: 1.02 * rps}
		if engine == report.EngineInfer {
			tp.ModelBytes = weightBytes + int64(n)*4096
		}
		s.Throughput = append(s.Throughput, tp)
	}
	return s
}

// fixedReports are the runs of the golden tests: a CPU run and a GPU run
// of one recipe, and a report from before serving was measured.
func fixedReports() map[string]*report.Report {
	infer, torch := report.EngineInfer, "torch cuda:0"
	fp32, int8 := report.PrecisionFP32, report.PrecisionINT8
	shared := func(s *report.Serving, as string) *report.Serving { s.MeasuredAs = as; return s }
	created := time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
	cpu := &report.Report{
		Recipe: "mnist-hinton", Backend: "gorgonia", Device: "cpu", Seed: 1,
		Dataset: report.Dataset{Name: "mnist", Train: 60000, Test: 10000},
		Models: []report.Model{
			{Name: "teacher", Role: report.RoleTeacher, Params: 1199882, Bytes: 4799528, Accuracy: 0.9842, Errors: 158, Agreement: 1, ECE: 0.0123, Path: "models/teacher.json", Serving: sweep(0.05, 0.8, 60, infer, fp32, 4799528)},
			{Name: "small", Role: report.RoleStudent, Params: 25450, Bytes: 101800, Accuracy: 0.9689, Errors: 311, Agreement: 0.9774, ECE: 0.0151, Path: "models/small.json", Method: "response", Temperature: 4, Alpha: 0.9, Serving: sweep(0.02, 0.02, 30, infer, fp32, 101800)},
			{Name: "small-baseline", Role: report.RoleBaseline, Params: 25450, Bytes: 101800, Accuracy: 0.9602, Errors: 398, Agreement: 0.9671, ECE: 0.0213, Path: "models/small-baseline.json", Method: "hard-labels", Serving: shared(sweep(0.02, 0.02, 30, infer, fp32, 101800), "small")},
			{Name: "tiny", Role: report.RoleStudent, Params: 7960, Bytes: 31840, Accuracy: 0.9301, Errors: 699, Agreement: 0.9402, ECE: 0.0305, Path: "models/tiny.json", Method: "response", Temperature: 2.5, Alpha: 0.5, Serving: sweep(0.015, 0.007, 25, infer, fp32, 31840)},
			{Name: "small-int8", Role: report.RoleStudentInt8, Params: 25450, Bytes: 26720, Accuracy: 0.9681, Errors: 319, Agreement: 0.9765, ECE: 0.0160, Path: "models/small-int8.json", Method: "int8 percentile", Calibration: "percentile", Source: "small", Serving: sweep(0.012, 0.009, 28, infer, int8, 26720)},
		},
		Stages:  []report.Stage{{Name: "data", Seconds: 1.2}, {Name: "teacher", Seconds: 1812.4}, {Name: "student:small", Seconds: 252.3}, {Name: "baseline:small", Seconds: 190.5}, {Name: "student:tiny", Seconds: 130}, {Name: "quantize:small", Seconds: 3.1}, {Name: "eval", Seconds: 40.6}},
		Created: created, Version: "0.1.0-dev",
		Machine: &report.Machine{OS: "linux", Arch: "amd64", CPU: "Intel(R) Xeon(R) Platinum 8488C", CPUs: 4, GOMAXPROCS: 4, Device: "cpu", GoVersion: "go1.26.8"},
	}
	gpu := &report.Report{
		Recipe: "mnist-hinton", Backend: "torch", Device: "cuda:0", Seed: 1,
		Dataset: report.Dataset{Name: "mnist", Train: 60000, Test: 10000},
		Models: []report.Model{
			{Name: "teacher", Role: report.RoleTeacher, Params: 1199882, Bytes: 4799528, Accuracy: 0.9851, Errors: 149, Agreement: 1, ECE: 0.0119, Path: "models/teacher.json", Serving: sweep(0.12, 0.004, 220, torch, fp32, 0)},
			{Name: "small", Role: report.RoleStudent, Params: 25450, Bytes: 101800, Accuracy: 0.9712, Errors: 288, Agreement: 0.9790, ECE: 0.0144, Path: "models/small.json", Method: "response", Temperature: 4, Alpha: 0.9, Serving: sweep(0.09, 0.0004, 200, torch, fp32, 0)},
		},
		Stages:  []report.Stage{{Name: "data", Seconds: 1.1}, {Name: "teacher", Seconds: 95.2}, {Name: "student:small", Seconds: 31.7}, {Name: "eval", Seconds: 3.3}},
		Created: created, Version: "0.1.0-dev",
		Machine: &report.Machine{OS: "linux", Arch: "amd64", CPU: "AMD EPYC 7R32", CPUs: 96, GOMAXPROCS: 96, Device: "cuda:0", GoVersion: "go1.26.8", GPU: "NVIDIA H100 80GB HBM3", GPUMemoryMiB: 81559},
	}
	old := &report.Report{
		Recipe: "synthetic-tiny", Backend: "gorgonia", Device: "cpu", Seed: 1,
		Dataset: report.Dataset{Name: "synthetic", Train: 512, Test: 256},
		Models: []report.Model{
			{Name: "teacher", Role: report.RoleTeacher, Params: 2212, Bytes: 9168, Accuracy: 0.9375, Errors: 16, Agreement: 1, ECE: 0.04, Path: "models/teacher.json"},
			{Name: "tiny", Role: report.RoleStudent, Params: 556, Bytes: 2544, Accuracy: 0.8984, Errors: 26, Agreement: 0.9141, ECE: 0.06, Path: "models/tiny.json", Method: "response", Temperature: 4, Alpha: 0.9},
		},
		Stages:  []report.Stage{{Name: "data", Seconds: 0.01}, {Name: "teacher", Seconds: 0.1}, {Name: "student:tiny", Seconds: 0.05}},
		Created: created, Version: "0.1.0-dev",
	}
	return map[string]*report.Report{"mnist-cpu": cpu, "mnist-gpu": gpu, "synthetic-old": old}
}

// TestGenerateTestdata rewrites the fixed reports under -gen, priced by
// cost.Apply with the default price table.
func TestGenerateTestdata(t *testing.T) {
	if !*gen {
		t.Skip("pass -gen to rewrite testdata/*/report.json")
	}
	for name, r := range fixedReports() {
		if r.Models[0].Serving != nil {
			// The CPU run has a traffic forecast, so its deployment
			// shows a monthly bill; the GPU run's has none.
			o := cost.Options{}
			if name == "mnist-cpu" {
				o.RequestsPerDay = 5e6
			}
			if err := cost.Apply(r, o); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.WriteJSON(filepath.Join("testdata", name, "report.json")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join("testdata", "mnist-cpu", "report.json")); err != nil {
		t.Fatal(err)
	}
}
