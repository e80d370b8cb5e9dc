package report

import (
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// full is a typical run: a teacher, two students of different sizes, a
// baseline for each (listed out of order), and the stages.
func full() *Report {
	return &Report{
		Schema:  Schema,
		Recipe:  "mnist-mlp",
		Backend: "gorgonia",
		Device:  "cpu",
		Seed:    42,
		Dataset: Dataset{Name: "mnist", Train: 60000, Test: 10000},
		Models: []Model{
			{Name: "baseline-small", Role: RoleBaseline, Params: 25450, Bytes: 102104, Accuracy: 0.9602, Errors: 398, Agreement: 0.9671, ECE: 0.0213, Path: "models/baseline-small.json", TrainSeconds: 40.5},
			{Name: "teacher", Role: RoleTeacher, Params: 1199882, Bytes: 4800000, Accuracy: 0.9842, Errors: 158, Agreement: 1, ECE: 0.0123, Path: "models/teacher.json", TrainSeconds: 312.4},
			{Name: "student-small", Role: RoleStudent, Params: 25450, Bytes: 102104, Accuracy: 0.9689, Errors: 311, Agreement: 0.9774, ECE: 0.0151, Path: "models/student-small.json", Method: "kd", Temperature: 4, Alpha: 0.9, TrainSeconds: 52.25},
			{Name: "student-tiny", Role: RoleStudent, Params: 7960, Bytes: 32288, Accuracy: 0.9301, Errors: 699, Agreement: 0.9402, ECE: 0.0305, Path: "models/student-tiny.json", Method: "kd", Temperature: 2.5, Alpha: 0.5},
			{Name: "baseline-tiny", Role: RoleBaseline, Params: 7960, Bytes: 32288, Accuracy: 0.9312, Errors: 688, Agreement: 0.9350, ECE: 0.0299, Path: "models/baseline-tiny.json"},
		},
		Stages: []Stage{
			{Name: "data", Seconds: 1.25},
			{Name: "teacher", Seconds: 312.4},
			{Name: "student:small", Seconds: 52.25},
			{Name: "student:tiny", Seconds: 30},
			{Name: "baseline:small", Seconds: 40.5},
			{Name: "baseline:tiny", Seconds: 25},
			{Name: "eval", Seconds: 3.6},
		},
		Created: time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC),
		Version: "v0.1.0",
	}
}

// minimal has one model, no teacher, no stages and no schema set.
func minimal() *Report {
	return &Report{
		Recipe:  "smoke | test",
		Backend: "reference",
		Dataset: Dataset{Name: "synthetic", Train: 512, Test: 128},
		Models: []Model{
			{Name: "only", Role: RoleStudent, Params: 10, Bytes: 600, Accuracy: 0.5, Errors: 64, ECE: 0.25, Path: "models/only.json"},
		},
	}
}

func TestGolden(t *testing.T) {
	for name, r := range map[string]*Report{"full": full(), "minimal": minimal()} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			jsonPath := filepath.Join(dir, "report.json")
			mdPath := filepath.Join(dir, "report.md")
			if err := r.WriteJSON(jsonPath); err != nil {
				t.Fatal(err)
			}
			if err := r.WriteMarkdown(mdPath); err != nil {
				t.Fatal(err)
			}
			golden(t, jsonPath, filepath.Join("testdata", name+".json.golden"))
			golden(t, mdPath, filepath.Join("testdata", name+".md.golden"))
		})
	}
}

// golden compares the file at got with the golden file, or rewrites the
// golden file under -update.
func golden(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(want, g, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(g) != string(w) {
		t.Errorf("%s differs from %s (run go test -update if the change is intended):\n%s", got, want, g)
	}
}

func TestRoundTrip(t *testing.T) {
	for name, build := range map[string]func() *Report{"full": full, "minimal": minimal} {
		t.Run(name, func(t *testing.T) {
			r := build()
			path := filepath.Join(t.TempDir(), "report.json")
			if err := r.WriteJSON(path); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, build()) {
				t.Error("WriteJSON modified the report")
			}
			got, err := ReadJSON(path)
			if err != nil {
				t.Fatal(err)
			}
			want := build()
			want.Schema = Schema
			if want.Stages == nil {
				want.Stages = []Stage{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ReadJSON = %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestContract pins the field names of schema v1: later versions may add
// fields, never rename them.
func TestContract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.json")
	if err := full().WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) map[string]bool {
		out := map[string]bool{}
		for k := range m {
			out[k] = true
		}
		return out
	}
	need := func(what string, got map[string]bool, want ...string) {
		for _, k := range want {
			if !got[k] {
				t.Errorf("%s has no %q field", what, k)
			}
		}
	}
	need("report", keys(doc), "schema", "recipe", "backend", "device", "seed", "dataset", "models", "stages", "created", "version")
	need("dataset", keys(doc["dataset"].(map[string]any)), "name", "train", "test")
	m := doc["models"].([]any)[2].(map[string]any)
	need("model", keys(m), "name", "role", "params", "bytes", "accuracy", "errors", "agreement", "ece", "path", "method", "temperature", "alpha", "train_seconds")
	need("stage", keys(doc["stages"].([]any)[0].(map[string]any)), "name", "seconds")
	if doc["schema"] != "distill.report/v1" {
		t.Errorf("schema = %v", doc["schema"])
	}
	// Optional fields are left out when unset.
	tiny := doc["models"].([]any)[4].(map[string]any)
	for _, k := range []string{"method", "temperature", "alpha", "train_seconds"} {
		if _, ok := tiny[k]; ok {
			t.Errorf("unset %q is written", k)
		}
	}
}

func TestReadJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"not JSON", "schema: distill.report/v1", "not a JSON report"},
		{"no schema", `{"recipe":"x"}`, `no "schema" field`},
		{"schema null", `{"schema":null}`, `no "schema" field`},
		{"other schema", `{"schema":"distill.report/v2","models":"changed"}`, `schema "distill.report/v2", this version reads "distill.report/v1"`},
		{"wrong type", `{"schema":"distill.report/v1","seed":"one"}`, "seed"},
		{"trailing data", `{"schema":"distill.report/v1"} {}`, "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadJSON(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v, want one naming %s and containing %q", err, path, tc.want)
			}
		})
	}
	if _, err := ReadJSON(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReadJSONIgnoresNewFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.json")
	content := `{"schema":"distill.report/v1","recipe":"r","future":{"x":1},"models":[{"name":"m","role":"student","quantized_bytes":12}]}`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Recipe != "r" || len(r.Models) != 1 || r.Models[0].Name != "m" {
		t.Errorf("ReadJSON = %+v", r)
	}
}

func TestWriteJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Report)
		want string
	}{
		{"other schema", func(r *Report) { r.Schema = "distill.report/v0" }, `schema "distill.report/v0"`},
		{"NaN", func(r *Report) { r.Models[1].ECE = math.NaN() }, `model "teacher": ece is NaN`},
		{"Inf", func(r *Report) { r.Stages[0].Seconds = math.Inf(1) }, `stage "data": seconds is +Inf`},
		{"role", func(r *Report) { r.Models[0].Role = "Student" }, `role "Student"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := full()
			tc.edit(r)
			path := filepath.Join(t.TempDir(), "report.json")
			err := r.WriteJSON(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v, want one naming %s and containing %q", err, path, tc.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Error("WriteJSON wrote a file despite the error")
			}
		})
	}
}

func TestOrder(t *testing.T) {
	m := func(name string, role Role, params int) Model { return Model{Name: name, Role: role, Params: params} }
	for _, tc := range []struct {
		name   string
		models []Model
		rows   string
		pairs  string
	}{
		{"empty", nil, "", ""},
		{"by params", []Model{m("b1", RoleBaseline, 1), m("b2", RoleBaseline, 2), m("t", RoleTeacher, 9), m("s2", RoleStudent, 2), m("s1", RoleStudent, 1)},
			"t s2 b2 s1 b1", "s2:b2 s1:b1"},
		{"by order when sizes differ", []Model{m("s1", RoleStudent, 1), m("s2", RoleStudent, 2), m("b3", RoleBaseline, 3), m("b4", RoleBaseline, 4)},
			"s1 b3 s2 b4", "s1:b3 s2:b4"},
		{"same-size pairs first", []Model{m("sA", RoleStudent, 1), m("sB", RoleStudent, 2), m("bB", RoleBaseline, 2)},
			"sA sB bB", "sB:bB"},
		{"leftovers", []Model{m("x", "quantized", 1), m("b", RoleBaseline, 1), m("t1", RoleTeacher, 5), m("t2", RoleTeacher, 6)},
			"t1 t2 b x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, pairs := order(tc.models)
			var rs, ps []string
			for _, r := range rows {
				rs = append(rs, r.Name)
			}
			for _, p := range pairs {
				ps = append(ps, p[0].Name+":"+p[1].Name)
			}
			if got := strings.Join(rs, " "); got != tc.rows {
				t.Errorf("rows %q, want %q", got, tc.rows)
			}
			if got := strings.Join(ps, " "); got != tc.pairs {
				t.Errorf("pairs %q, want %q", got, tc.pairs)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		s, b int
		want string
	}{
		{311, 398, "87 fewer than its baseline **b** (398): distillation cut errors by 21.9%"},
		{400, 398, "2 more than its baseline **b** (398): distillation added 0.5% errors"},
		{398, 398, "as many as its baseline **b**"},
		{3, 0, "3 more than its baseline **b**, which made none"},
		{0, 0, "as many as its baseline"},
		{0, 5, "5 fewer than its baseline **b** (5): distillation cut errors by 100.0%"},
	} {
		// An unknown test-set size (0) leaves only the counts to judge.
		got := compare(Model{Name: "s", Errors: tc.s, Accuracy: 0.9}, Model{Name: "b", Errors: tc.b, Accuracy: 0.8}, 0)
		if !strings.Contains(got, tc.want) || !strings.Contains(got, "(+10.00 points)") || strings.Contains(got, WithinNoise) {
			t.Errorf("compare(%d, %d) = %q, want it to contain %q and no noise verdict", tc.s, tc.b, got, tc.want)
		}
	}
}

// TestCompareNoise checks the noise verdict of "distillation added N
// errors": a difference a two-proportion test cannot tell from chance
// keeps its count and says so; a clear one does not.
func TestCompareNoise(t *testing.T) {
	const n = 10000
	m := func(name string, errors int) Model {
		return Model{Name: name, Errors: errors, Accuracy: 1 - float64(errors)/n}
	}
	for _, tc := range []struct {
		s, b  int
		want  string
		noise bool
	}{
		{228, 220, "8 more than its baseline **b** (220): distillation added 3.6% errors, within noise. Accuracy", true},
		{220, 228, "8 fewer than its baseline **b** (228): distillation cut errors by 3.5%, within noise. Accuracy", true},
		{164, 228, "64 fewer than its baseline **b** (228): distillation cut errors by 28.1%. Accuracy", false},
		{300, 220, "80 more than its baseline **b** (220): distillation added 36.4% errors. Accuracy", false},
		{3, 0, "3 more than its baseline **b**, which made none, within noise.", true},
		{228, 228, "as many as its baseline **b**. Accuracy 97.72% vs 97.72% (+0.00 points; 95% intervals 97.41–97.99% and 97.41–97.99%).", false},
	} {
		got := compare(m("s", tc.s), m("b", tc.b), n)
		if !strings.Contains(got, tc.want) || strings.Contains(got, WithinNoise) != tc.noise {
			t.Errorf("compare(%d, %d) = %q, want it to contain %q", tc.s, tc.b, got, tc.want)
		}
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{thousands(0), "0"},
		{thousands(999), "999"},
		{thousands(1000), "1,000"},
		{thousands(1199882), "1,199,882"},
		{thousands(-1234567), "-1,234,567"},
		{size(0), "—"},
		{size(512), "512 B"},
		{size(1536), "1.5 KiB"},
		{size(4800000), "4.6 MiB"},
		{size(3 << 30), "3.0 GiB"},
		{size(5 << 40), "5.0 TiB"},
		{size(5 << 50), "5120.0 TiB"},
		{percent(0.98765), "98.77%"},
		{cell("a|b\nc"), `a\|b c`},
		{role(Model{Role: RoleStudent, Method: "kd", Temperature: 4, Alpha: 0.9}), "student (kd, T=4, α=0.9)"},
		{role(Model{Role: RoleBaseline}), "baseline"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// costed is full() with serving measurements and costs, as cost.Apply
// leaves them (numbers made up, but consistent).
func costed() *Report {
	r := full()
	r.Machine = &Machine{OS: "linux", Arch: "amd64", CPU: "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", CPUs: 4, GOMAXPROCS: 4, Device: "cpu", GoVersion: "go1.26.8"}
	r.Price = &Pricing{Machine: "aws-c7i.xlarge", Description: "AWS c7i.xlarge, 4 vCPU, 8 GiB", Currency: "USD",
		USDPerHour: TierPrices{OnDemand: 0.1785, Spot: 0.068, Reserved: 0.1124}, Source: "https://aws.amazon.com/ec2/pricing/on-demand/", AsOf: "2025-06-01",
		Table: "default", LatencyTargetMS: 100, Chosen: "4× Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz (amd64) matches aws-c7i.xlarge by vendor and vCPUs"}
	r.TrainingCost = &TrainingCost{Seconds: 465, USD: TierPrices{OnDemand: 0.023056, Spot: 0.008783, Reserved: 0.014518}}
	serving := func(p50 float64, rps ...float64) *Serving {
		s := &Serving{LatencyMS: Percentiles{P50: p50, P95: p50 * 1.5, P99: p50 * 2.5, Mean: p50 * 1.1}, Requests: 5000,
			Engine: EngineInfer, Precision: PrecisionFP32,
			PeakHeapBytes: 48 << 20, PeakRSSBytes: 120 << 20, Threads: 4, Method: "One client calling Forward back to back."}
		for i, b := range []int{1, 8, 32} {
			s.Throughput = append(s.Throughput, Throughput{Batch: b, RequestsPerSecond: rps[i],
				BatchLatencyMS: Percentiles{P50: 1000 * float64(b) / rps[i], P95: 1200 * float64(b) / rps[i], P99: 1500 * float64(b) / rps[i], Mean: 1050 * float64(b) / rps[i]},
				Batches:        300,
				Seconds:        1,
				ModelBytes:     int64(p50*(1<<20)) + int64(b)*4096,
			})
		}
		return s
	}
	f := func(v float64) *float64 { return &v }
	r.Models[1].Serving = serving(1.2, 800, 2400, 3000)
	r.Models[1].Cost = &Cost{Batch: 32, RequestsPerSecond: 3000, LatencyTargetMS: 100, WithinTarget: true,
		USDPerMillion: TierPrices{OnDemand: 0.016528, Spot: 0.006296, Reserved: 0.010407}, TrainingUSD: 0.015490}
	r.Models[2].Serving = serving(0.05, 20000, 90000, 150000)
	r.Models[2].Cost = &Cost{Batch: 32, RequestsPerSecond: 150000, LatencyTargetMS: 100, WithinTarget: true,
		USDPerMillion: TierPrices{OnDemand: 0.000331, Spot: 0.000126, Reserved: 0.000208}, TrainingUSD: 0.002591,
		Reference: "teacher", SavingsPercent: f(98), BreakEvenRequests: f(160000),
		RequestsPerSecondMin: 130000, RequestsPerSecondMax: 160000, USDPerMillionLow: 0.000309896, USDPerMillionHigh: 0.000381410}
	r.Models[2].Serving.Throughput[2].RequestsPerSecondMin, r.Models[2].Serving.Throughput[2].RequestsPerSecondMax = 130000, 160000
	r.Models[2].Serving.Server = &ServerScenario{MaxBatch: 64, MaxWaitMS: 2, LatencyBoundMS: 100, RequestsPerSecond: 12000, FailedRequestsPerSecond: 15000,
		LatencyMS: Percentiles{P50: 0.8, P95: 2.1, P99: 3.5, Mean: 1}, Method: "Poisson arrivals over loopback HTTP.",
		Trials: []ServerTrial{{RateRPS: 150000, AchievedRPS: 14000, Requests: 150000, P99MS: 900}, {RateRPS: 12000, AchievedRPS: 11990, Requests: 12000, P99MS: 3.5, Passed: true}, {RateRPS: 15000, AchievedRPS: 14100, Requests: 15000, P99MS: 210}}}
	r.Models[1].Cost.Scenario = ScenarioOffline
	r.Transfer = &TransferUse{Rows: 60000, TeacherExamplesAvoided: 1800000, TeacherSecondsAvoided: 120}
	r.Deployment = &Deployment{RequestsPerDay: 50e6, Method: "Scaled by vCPUs.", Options: []DeploymentOption{
		{Model: "teacher", Machine: "aws-c7i.large", Scale: 0.5, RequestsPerSecond: 1500, USDPerMillion: TierPrices{OnDemand: 0.0165, Spot: 0.0063}, FitsMemory: true, Machines: 1, MonthlyUSD: TierPrices{OnDemand: 65.15, Spot: 24.82}, Cheapest: true},
		{Model: "teacher", Machine: "aws-c7i.xlarge", Scale: 1, RequestsPerSecond: 3000, USDPerMillion: TierPrices{OnDemand: 0.0165, Spot: 0.0063}, FitsMemory: true, Machines: 1, MonthlyUSD: TierPrices{OnDemand: 130.3, Spot: 49.64}},
		{Model: "student-small", Machine: "aws-c7i.large", Scale: 0.5, RequestsPerSecond: 75000, USDPerMillion: TierPrices{OnDemand: 0.00033, Spot: 0.000126}, FitsMemory: true, Machines: 1, MonthlyUSD: TierPrices{OnDemand: 65.15, Spot: 24.82}, Cheapest: true},
	}}
	r.Models[0].Serving = serving(0.05, 21000, 91000, 140000)
	r.Models[0].Cost = &Cost{Batch: 32, RequestsPerSecond: 140000, LatencyTargetMS: 100, WithinTarget: true,
		USDPerMillion: TierPrices{OnDemand: 0.000354, Spot: 0.000135, Reserved: 0.000223}, TrainingUSD: 0.002008,
		Reference: "teacher", SavingsPercent: f(97.86), BreakEvenRequests: f(124200),
		RequestsPerSecondMin: 135000, RequestsPerSecondMax: 145000, USDPerMillionLow: 0.000341954, USDPerMillionHigh: 0.000367284}
	r.Models[0].Serving.Throughput[2].RequestsPerSecondMin, r.Models[0].Serving.Throughput[2].RequestsPerSecondMax = 135000, 145000
	// A model slower than the teacher, missing the target, and one not
	// measured at all.
	r.Models[3].Serving = serving(150, 6, 7, 7.5)
	r.Models[3].Cost = &Cost{Batch: 1, RequestsPerSecond: 6, LatencyTargetMS: 100, WithinTarget: false,
		USDPerMillion: TierPrices{OnDemand: 8.263889, Spot: 3.148148, Reserved: 5.203704}, TrainingUSD: 0.001488,
		Reference: "teacher", SavingsPercent: f(-49900)}
	return r
}

func TestCostedGolden(t *testing.T) {
	dir := t.TempDir()
	r := costed()
	if err := r.WriteJSON(filepath.Join(dir, "report.json")); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteMarkdown(filepath.Join(dir, "report.md")); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join(dir, "report.json"), filepath.Join("testdata", "costed.json.golden"))
	golden(t, filepath.Join(dir, "report.md"), filepath.Join("testdata", "costed.md.golden"))
	got, err := ReadJSON(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := costed()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", got, want)
	}
}

// TestCostContract pins the names of the serving and cost fields.
func TestCostContract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.json")
	if err := costed().WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	obj := func(v any) map[string]bool {
		out := map[string]bool{}
		for k := range v.(map[string]any) {
			out[k] = true
		}
		return out
	}
	need := func(what string, got map[string]bool, want ...string) {
		for _, k := range want {
			if !got[k] {
				t.Errorf("%s has no %q field", what, k)
			}
		}
	}
	need("report", obj(doc), "machine", "price", "training_cost")
	need("machine", obj(doc["machine"]), "os", "arch", "cpu", "cpus", "gomaxprocs", "device", "go_version")
	need("price", obj(doc["price"]), "machine", "description", "currency", "usd_per_hour", "source", "as_of", "table", "latency_target_ms")
	need("price.usd_per_hour", obj(doc["price"].(map[string]any)["usd_per_hour"]), "on_demand", "spot", "reserved")
	need("training_cost", obj(doc["training_cost"]), "seconds", "usd")
	m := doc["models"].([]any)[2].(map[string]any)
	need("model", obj(m), "serving", "cost")
	s := m["serving"].(map[string]any)
	need("serving", obj(s), "latency_ms", "requests", "throughput", "engine", "precision", "peak_heap_bytes", "peak_rss_bytes", "threads", "method")
	need("serving.latency_ms", obj(s["latency_ms"]), "p50", "p95", "p99", "mean")
	need("serving.throughput[0]", obj(s["throughput"].([]any)[0]), "batch", "requests_per_second", "batch_latency_ms", "batches", "seconds", "model_bytes")
	need("cost", obj(m["cost"]), "batch", "requests_per_second", "latency_target_ms", "usd_per_million", "within_target", "reference", "savings_percent", "training_usd", "break_even_requests")
	// Unmeasured models have neither.
	tiny := doc["models"].([]any)[4].(map[string]any)
	for _, k := range []string{"serving", "cost"} {
		if _, ok := tiny[k]; ok {
			t.Errorf("unmeasured model has %q", k)
		}
	}
}

func TestWriteJSONCostErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Report)
		want string
	}{
		{"latency", func(r *Report) { r.Models[1].Serving.LatencyMS.P99 = math.NaN() }, `model "teacher": serving.latency_ms.p99 is NaN`},
		{"throughput", func(r *Report) { r.Models[1].Serving.Throughput[2].RequestsPerSecond = math.Inf(1) }, `model "teacher": serving.throughput[batch 32].requests_per_second is +Inf`},
		{"cost", func(r *Report) { r.Models[2].Cost.USDPerMillion.Spot = math.NaN() }, `model "student-small": cost.usd_per_million.spot is NaN`},
		{"savings", func(r *Report) { v := math.Inf(-1); r.Models[2].Cost.SavingsPercent = &v }, `cost.savings_percent is -Inf`},
		{"price", func(r *Report) { r.Price.USDPerHour.OnDemand = math.NaN() }, `price.usd_per_hour.on_demand is NaN`},
		{"training cost", func(r *Report) { r.TrainingCost.USD.Reserved = math.Inf(1) }, `training_cost.usd.reserved is +Inf`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := costed()
			tc.edit(r)
			err := r.WriteJSON(filepath.Join(t.TempDir(), "report.json"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestWriteJSONMixedEngines: a report whose models were timed on
// different engines is refused unless it says why, since its savings
// would then measure the engines as much as the models.
func TestWriteJSONMixedEngines(t *testing.T) {
	r := costed()
	r.Models[2].Serving.Engine = "gorgonia"
	path := filepath.Join(t.TempDir(), "report.json")
	err := r.WriteJSON(path)
	if err == nil || !strings.Contains(err.Error(), `model "student-small" on "gorgonia"`) || !strings.Contains(err.Error(), "engine_note") {
		t.Fatalf("WriteJSON of a report mixing engines: error %v, want one naming the models, the engines and engine_note", err)
	}
	// Precision is not an engine: INT8 and FP32 on the same runtime mix.
	r = costed()
	r.Models[2].Serving.Precision = PrecisionINT8
	if err := r.WriteJSON(path); err != nil {
		t.Errorf("FP32 and INT8 on one engine: %v", err)
	}
	r.Models[2].Serving.Engine = "gorgonia"
	r.EngineNote = "the student was also timed on the training backend"
	if err := r.WriteJSON(path); err != nil {
		t.Fatalf("mixed engines with a note: %v", err)
	}
	got, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.EngineNote != r.EngineNote {
		t.Errorf("engine_note read back as %q, want %q", got.EngineNote, r.EngineNote)
	}
	if !strings.Contains(got.Markdown(), r.EngineNote) {
		t.Error("report.md does not show the engine note")
	}
}

func TestFormatNumbers(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{FormatUSD(0), "$0"},
		{FormatUSD(0.000331), "$0.000331"},
		{FormatUSD(0.0123456), "$0.0123"},
		{FormatUSD(0.04), "$0.0400"},
		{FormatUSD(1.2345), "$1.23"},
		{FormatUSD(12.345), "$12.3"},
		{FormatUSD(99.96), "$100"},
		{FormatUSD(1234.5), "$1,235"},
		{FormatUSD(-0.5), "-$0.500"},
		{FormatMS(0.0123), "0.0123 ms"},
		{FormatMS(1.5), "1.50 ms"},
		{FormatMS(123.4), "123 ms"},
		{FormatMS(999.9), "1,000 ms"},
		{FormatMS(12345), "12,345 ms"},
		{FormatCount(950), "950"},
		{FormatCount(12345.4), "12,345"},
		{FormatCount(999999), "999,999"},
		{FormatCount(1234567), "1.23M"},
		{FormatCount(4.56e9), "4.56B"},
		{FormatCount(7.891e12), "7.89T"},
		{FormatCount(-2e6), "-2.00M"},
		{FormatBytes(1536), "1.5 KiB"},
		{FormatPercent(95.06), "+95.1%"},
		{FormatPercent(-3), "-3.0%"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestSavingsNoise checks the savings column's noise verdict: a saving
// whose cost range overlaps the reference's keeps its number and says
// "within noise"; a clear one does not; twins get the same verdict.
func TestSavingsNoise(t *testing.T) {
	const hourly = 0.1785
	perM := func(rps float64) float64 { return hourly / (3600 * rps) * 1e6 }
	mk := func(name string, rps, lo, hi float64) Model {
		c := &Cost{Batch: 32, RequestsPerSecond: rps, LatencyTargetMS: 100, WithinTarget: true,
			USDPerMillion:        TierPrices{OnDemand: perM(rps)},
			RequestsPerSecondMin: lo, RequestsPerSecondMax: hi, USDPerMillionLow: perM(hi), USDPerMillionHigh: perM(lo)}
		return Model{Name: name, Role: RoleTeacher, Cost: c}
	}
	ref := mk("teacher", 100000, 97000, 103000)
	twin := mk("twin", 102670, 99000, 105000)   // 2.6% cheaper, ranges overlap
	twin2 := mk("twin2", 102670, 99000, 105000) // the same figure again
	fast := mk("fast", 200000, 195000, 205000)  // clearly cheaper
	r := &Report{Recipe: "noise", Models: []Model{ref, twin, twin2, fast}}
	if err := cost(r); err != nil {
		t.Fatal(err)
	}
	md := r.Markdown()
	for _, want := range []string{
		"| twin | — | — | — | — | 32 | 102,670/s (±2.9%) |",
		"+2.6% (within noise) |",
		"| fast | — | — | — | — | 32 | 200,000/s (±2.5%) |",
		"+50.0% |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	rows := map[string]string{}
	for _, line := range strings.Split(md, "\n") {
		if name, rest, ok := strings.Cut(strings.TrimPrefix(line, "| "), " |"); ok && strings.Contains(rest, "$") {
			rows[name] = rest
		}
	}
	if rows["twin"] == "" || rows["twin"] != rows["twin2"] {
		t.Errorf("the twins' cost rows differ:\n%s\n%s", rows["twin"], rows["twin2"])
	}
}

// cost fills in the savings of r's models against its first model, as
// cost.Apply does (package cost cannot be imported here).
func cost(r *Report) error {
	ref := r.Models[0]
	for i := 1; i < len(r.Models); i++ {
		c := r.Models[i].Cost
		c.Reference = ref.Name
		s := 100 * (ref.Cost.USDPerMillion.OnDemand - c.USDPerMillion.OnDemand) / ref.Cost.USDPerMillion.OnDemand
		c.SavingsPercent = &s
	}
	return r.validate()
}

// TestPrecisionInHeader: a bf16 run says so in the header and in the JSON;
// an fp32 run (Precision empty) says nothing, as reports did before.
func TestPrecisionInHeader(t *testing.T) {
	r := full()
	if md := r.Markdown(); strings.Contains(md, "mixed precision") {
		t.Errorf("an fp32 report mentions mixed precision:\n%s", md)
	}
	r.Precision = "bf16"
	if md := r.Markdown(); !strings.Contains(md, "- **Backend:** "+r.Backend+" on "+r.Device+", BF16 mixed precision\n") {
		t.Errorf("a bf16 report's header does not name it:\n%s", md)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Precision != "bf16" {
		t.Errorf("precision after a JSON round trip: %q (%v)", back.Precision, err)
	}
}

// TestCUDAStatusInMachine: the CUDA runtime's version and the device
// memory in use appear beside the GPU's name, the libtorch version after
// it; a CPU machine has neither CUDA figure.
func TestCUDAStatusInMachine(t *testing.T) {
	r := full()
	r.Models[0].Serving = &Serving{Throughput: []Throughput{{Batch: 1, ModelBytes: 10}}} // the machine shows with serving figures
	r.Machine = &Machine{OS: "linux", Arch: "amd64", CPUs: 16, GOMAXPROCS: 16, Device: "cuda:0",
		GPU: "NVIDIA H100 80GB HBM3", GPUMemoryMiB: 81559, GPUDriver: "550.54.15", CUDARuntime: "12.8", GPUMemoryInUseMiB: 1234,
		Library: "libtorch 2.11.0+cu128"}
	want := "device cuda:0 (NVIDIA H100 80GB HBM3, 81559 MiB, driver 550.54.15, CUDA runtime 12.8, 1234 MiB in use at the end of the run), libtorch 2.11.0+cu128\n"
	if md := r.Markdown(); !strings.Contains(md, want) {
		t.Errorf("the machine line lacks %q:\n%s", want, md)
	}
	r.Machine = &Machine{OS: "linux", Arch: "amd64", CPUs: 2, GOMAXPROCS: 2, Device: "cpu"}
	if md := r.Markdown(); strings.Contains(md, "CUDA runtime") || strings.Contains(md, "in use at the end") {
		t.Errorf("a CPU report names CUDA:\n%s", md)
	}
}
