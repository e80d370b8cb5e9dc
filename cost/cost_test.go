package cost

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/distill-dev/distill/report"
)

// near reports whether got equals want to 1e-9 relative.
func near(got, want float64) bool {
	return got == want || math.Abs(got-want) <= 1e-9*math.Max(math.Abs(got), math.Abs(want))
}

func TestPerMillion(t *testing.T) {
	for _, tc := range []struct {
		usdPerHour, rps, want float64
	}{
		{3.6, 1000, 1},              // 3.6 / 3,600,000 × 10⁶
		{0.18, 200, 0.25},           // 0.18 / 720,000 × 10⁶
		{0.18, 2000, 0.025},         // ten times the throughput, a tenth of the cost
		{0.1785, 50, 0.1785 / 0.18}, // 0.1785 / 180,000 × 10⁶ = 0.99166…
		{3.20, 1e6, 3.20 / 3600},    // a million requests per second: one second per million
		{0, 100, 0}, {3.2, 0, 0},    // unknown
		{-1, 100, 0}, {1, math.NaN(), 0}, // nonsense is unknown, not negative
	} {
		if got := PerMillion(tc.usdPerHour, tc.rps); !near(got, tc.want) {
			t.Errorf("PerMillion(%v, %v) = %v, want %v", tc.usdPerHour, tc.rps, got, tc.want)
		}
	}
}

func TestTrainingUSD(t *testing.T) {
	for _, tc := range []struct {
		seconds, usdPerHour, want float64
	}{
		{3600, 3.2, 3.2},
		{1000, 0.18, 0.05},
		{90, 0.96, 0.024},
		{0, 1, 0},
		{100, 0, 0},
	} {
		if got := TrainingUSD(tc.seconds, tc.usdPerHour); !near(got, tc.want) {
			t.Errorf("TrainingUSD(%v, %v) = %v, want %v", tc.seconds, tc.usdPerHour, got, tc.want)
		}
	}
}

func TestSavingsPercent(t *testing.T) {
	for _, tc := range []struct {
		ref, v, want float64
		ok           bool
	}{
		{0.25, 0.025, 90, true},
		{0.25, 0.1, 60, true},
		{1, 1.5, -50, true},
		{2, 2, 0, true},
		{0, 1, 0, false},
		{1, 0, 0, false},
	} {
		got, ok := SavingsPercent(tc.ref, tc.v)
		if ok != tc.ok || !near(got, tc.want) {
			t.Errorf("SavingsPercent(%v, %v) = %v, %v; want %v, %v", tc.ref, tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBreakEven(t *testing.T) {
	for _, tc := range []struct {
		name             string
		training, ref, v float64
		want             float64
		ok               bool
	}{
		// $0.05 ÷ ($0.225 per million) = 222,222.2 requests.
		{"student", 0.05, 0.25, 0.025, 0.05 / 0.225e-6, true},
		// $3.20 ÷ ($3.20 per million) = one million requests.
		{"a million", 3.2, 4, 0.8, 1e6, true},
		{"no saving", 1, 1, 1, 0, false},
		{"costs more", 1, 1, 2, 0, false},
		{"training cost unknown", 0, 1, 0.5, 0, false},
		{"serving cost unknown", 1, 1, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := BreakEven(tc.training, tc.ref, tc.v)
			if ok != tc.ok || !near(got, tc.want) {
				t.Errorf("BreakEven(%v, %v, %v) = %v, %v; want %v, %v", tc.training, tc.ref, tc.v, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// point is a throughput point at batch n with rps and p99 in ms.
func point(n int, rps, p99 float64) report.Throughput {
	return report.Throughput{Batch: n, RequestsPerSecond: rps, BatchLatencyMS: report.Percentiles{P50: p99 / 2, P95: p99 * 0.9, P99: p99}}
}

func TestBestBatch(t *testing.T) {
	sweep := []report.Throughput{point(1, 100, 2), point(8, 600, 20), point(32, 1500, 80), point(128, 2000, 300), point(256, 1900, 700)}
	for _, tc := range []struct {
		name      string
		points    []report.Throughput
		target    float64
		wantBatch int
		within    bool
	}{
		{"default target", sweep, 100, 32, true},
		{"at the target exactly", sweep, 20, 8, true},
		{"largest batch is not the fastest", sweep, 1000, 128, true},
		{"nothing meets it: lowest latency", sweep, 1, 1, false},
		{"unordered", []report.Throughput{point(32, 1500, 80), point(1, 100, 2)}, 50, 1, true},
		{"no points", nil, 100, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, within := BestBatch(tc.points, tc.target)
			if got.Batch != tc.wantBatch || within != tc.within {
				t.Errorf("BestBatch(target %v) = batch %d, %v; want %d, %v", tc.target, got.Batch, within, tc.wantBatch, tc.within)
			}
		})
	}
}

func TestStageSeconds(t *testing.T) {
	r := &report.Report{
		Models: []report.Model{{Name: "small", Role: report.RoleStudent}, {Name: "teacher", Role: report.RoleTeacher}},
		Stages: []report.Stage{{Name: "data", Seconds: 1}, {Name: "teacher", Seconds: 300}, {Name: "student:small", Seconds: 50}, {Name: "baseline:small", Seconds: 40},
			{Name: "quantize:small", Seconds: 2}, {Name: "quantize:teacher", Seconds: 5}, {Name: "wide", Seconds: 120}},
	}
	for _, tc := range []struct {
		m    report.Model
		want float64
	}{
		{report.Model{Name: "teacher", Role: report.RoleTeacher}, 300},
		// An ensemble member's stage is its own, not the main teacher's.
		{report.Model{Name: "wide", Role: report.RoleTeacher}, 120},
		{report.Model{Name: "small", Role: report.RoleStudent}, 50},
		{report.Model{Name: "small-baseline", Role: report.RoleBaseline}, 40},
		{report.Model{Name: "small", Role: report.RoleStudent, TrainSeconds: 7}, 7},
		{report.Model{Name: "other", Role: report.RoleStudent}, 0},
		// INT8 models: quantizing, plus making the source student.
		{report.Model{Name: "small-int8", Role: report.RoleStudentInt8, Source: "small"}, 52},
		{report.Model{Name: "small-int8", Role: report.RoleStudentInt8}, 52},
		{report.Model{Name: "small-int8", Role: report.RoleStudentInt8, TrainSeconds: 99}, 52},
		{report.Model{Name: "teacher-int8", Role: report.RoleTeacherInt8, Source: "teacher"}, 5},
		{report.Model{Name: "x-int8", Role: report.RoleStudentInt8, Source: "x"}, 0},
	} {
		if got := StageSeconds(r, tc.m); got != tc.want {
			t.Errorf("StageSeconds(%s %s) = %v, want %v", tc.m.Role, tc.m.Name, got, tc.want)
		}
	}
}

const testPrices = `currency: USD
machines:
  box:
    description: a test box
    on_demand: 0.18
    spot: 0.09
    source: made up for the tests
    as_of: 2025-01-02
`

// priced is a report whose costs are worked out by hand in TestApply.
func priced() *report.Report {
	serving := func(points ...report.Throughput) *report.Serving {
		return &report.Serving{Throughput: points}
	}
	return &report.Report{
		Device: "cpu",
		Models: []report.Model{
			{Name: "teacher", Role: report.RoleTeacher, Serving: serving(point(1, 100, 5), point(8, 200, 50), point(32, 250, 150))},
			{Name: "s", Role: report.RoleStudent, Serving: serving(point(1, 1000, 1), point(8, 2000, 5), point(32, 2400, 120))},
			{Name: "s-baseline", Role: report.RoleBaseline, Serving: serving(point(1, 500, 150))},
			{Name: "unmeasured", Role: report.RoleStudent, Cost: &report.Cost{Batch: 99}},
		},
		Stages: []report.Stage{{Name: "data", Seconds: 40}, {Name: "teacher", Seconds: 7200}, {Name: "student:s", Seconds: 1000}, {Name: "baseline:s", Seconds: 360}},
	}
}

func TestApply(t *testing.T) {
	table, err := ParsePrices("test", []byte(testPrices))
	if err != nil {
		t.Fatal(err)
	}
	r := priced()
	if err := Apply(r, Options{Prices: table, Machine: "box"}); err != nil {
		t.Fatal(err)
	}
	if p := r.Price; p.Machine != "box" || p.USDPerHour.OnDemand != 0.18 || p.USDPerHour.Spot != 0.09 || p.LatencyTargetMS != 100 || p.Table != "test" || p.AsOf != "2025-01-02" {
		t.Errorf("Price = %+v", p)
	}
	// 8,600 s of stages at $0.18/h and $0.09/h.
	if tc := r.TrainingCost; tc.Seconds != 8600 || !near(tc.USD.OnDemand, 0.43) || !near(tc.USD.Spot, 0.215) || tc.USD.Reserved != 0 {
		t.Errorf("TrainingCost = %+v", tc)
	}
	f := func(v float64) *float64 { return &v }
	for i, want := range []*report.Cost{
		// The teacher: batch 8 (p99 50 ms; batch 32 misses 100 ms) at
		// 200/s: $0.18 / 720,000 × 10⁶ = $0.25 per million on demand,
		// $0.125 on spot, reserved unknown; 7,200 s = $0.36.
		{Batch: 8, RequestsPerSecond: 200, LatencyTargetMS: 100, WithinTarget: true,
			USDPerMillion: report.TierPrices{OnDemand: 0.25, Spot: 0.125}, TrainingUSD: 0.36},
		// The student: batch 8 at 2,000/s = $0.025 per million, 90%
		// cheaper; 1,000 s = $0.05 ÷ $0.225 per million saved =
		// 222,222.2 requests to break even.
		{Batch: 8, RequestsPerSecond: 2000, LatencyTargetMS: 100, WithinTarget: true,
			USDPerMillion: report.TierPrices{OnDemand: 0.025, Spot: 0.0125}, TrainingUSD: 0.05,
			Reference: "teacher", SavingsPercent: f(90), BreakEvenRequests: f(0.05 / 0.225e-6)},
		// The baseline misses the target at its only batch size, 1, at
		// 500/s = $0.10 per million, 60% cheaper; 360 s = $0.018 ÷
		// $0.15 per million = 120,000 requests.
		{Batch: 1, RequestsPerSecond: 500, LatencyTargetMS: 100, WithinTarget: false,
			USDPerMillion: report.TierPrices{OnDemand: 0.1, Spot: 0.05}, TrainingUSD: 0.018,
			Reference: "teacher", SavingsPercent: f(60), BreakEvenRequests: f(120000)},
		// Not measured: a stale cost is removed.
		nil,
	} {
		got := r.Models[i].Cost
		if !costEqual(got, want) {
			t.Errorf("model %s: cost\n%s\nwant\n%s", r.Models[i].Name, costString(got), costString(want))
		}
	}
	if r.Models[0].TrainSeconds != 7200 || r.Models[2].TrainSeconds != 360 {
		t.Errorf("train seconds not filled in from the stages: %v, %v", r.Models[0].TrainSeconds, r.Models[2].TrainSeconds)
	}

	// Relative to another model, with a tighter target.
	r = priced()
	if err := Apply(r, Options{Prices: table, Machine: "box", Reference: "s-baseline", LatencyTarget: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// Student: batch 1 at 1,000/s = $0.05 per million vs the baseline's
	// $0.10: 50% cheaper. Teacher: batch 1 (5 ms, over target) at
	// 100/s = $0.50: 400% dearer, never breaks even.
	if c := r.Models[1].Cost; c.Batch != 1 || !near(*c.SavingsPercent, 50) || c.Reference != "s-baseline" {
		t.Errorf("student vs baseline: %s", costString(c))
	}
	if c := r.Models[0].Cost; c.Batch != 1 || c.WithinTarget || !near(*c.SavingsPercent, -400) || c.BreakEvenRequests != nil {
		t.Errorf("teacher vs baseline: %s", costString(c))
	}
	if r.Models[2].Cost.SavingsPercent != nil {
		t.Error("the reference has savings relative to itself")
	}
}

func TestApplyDefaults(t *testing.T) {
	r := priced()
	if err := Apply(r, Options{}); err != nil {
		t.Fatal(err)
	}
	want := DefaultPrices().Machines[DefaultCPUMachine]
	if r.Price.Machine != DefaultCPUMachine || r.Price.USDPerHour != want.Hourly() || r.Price.Table != DefaultTableName {
		t.Errorf("Price = %+v", r.Price)
	}
	if got := r.Models[0].Cost.USDPerMillion.OnDemand; !near(got, PerMillion(want.OnDemand, 200)) {
		t.Errorf("teacher $/1M = %v", got)
	}
	r = priced()
	r.Device = "cuda:0"
	if err := Apply(r, Options{}); err != nil || r.Price.Machine != DefaultGPUMachine || !strings.HasPrefix(r.Price.Chosen, "assumed") {
		t.Errorf("GPU report priced as %v, %q (%v)", r.Price.Machine, r.Price.Chosen, err)
	}
	// A report that records its hardware is priced at the matching entry,
	// and one whose hardware nothing matches is an error, not a guess.
	r = priced()
	r.Machine = &report.Machine{Device: "cuda:0", GPU: "NVIDIA H100 80GB HBM3"}
	if err := Apply(r, Options{}); err != nil || r.Price.Machine != "aws-h100-80gb" || !strings.Contains(r.Price.Chosen, "H100") {
		t.Errorf("H100 report priced as %v, %q (%v)", r.Price.Machine, r.Price.Chosen, err)
	}
	r.Machine.GPU = "NVIDIA GeForce RTX 4090"
	if err := Apply(r, Options{}); !errors.Is(err, ErrNoPriceMatch) {
		t.Errorf("RTX 4090 report: error %v, want ErrNoPriceMatch", err)
	}
	if err := Apply(r, Options{Machine: "aws-g6.xlarge"}); err != nil || r.Price.Chosen != "named by the user" {
		t.Errorf("named machine: %q, %v", r.Price.Chosen, err)
	}
	// Without a teacher there is nothing to save against.
	r = priced()
	r.Models = r.Models[1:]
	if err := Apply(r, Options{}); err != nil || r.Models[0].Cost == nil || r.Models[0].Cost.SavingsPercent != nil {
		t.Errorf("no teacher: %v, %+v", err, r.Models[0].Cost)
	}
}

func TestApplyErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"unknown machine", Options{Machine: "cray-1"}, `no machine "cray-1"; choose one of aws-a100-80gb, `},
		{"unknown reference", Options{Reference: "nobody"}, `reference model "nobody" is not in the report`},
		{"negative target", Options{LatencyTarget: -time.Second}, "latency target -1s is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Apply(priced(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func costEqual(a, b *report.Cost) bool {
	if a == nil || b == nil {
		return a == b
	}
	opt := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || near(*x, *y)) }
	tiers := func(x, y report.TierPrices) bool {
		return near(x.OnDemand, y.OnDemand) && near(x.Spot, y.Spot) && near(x.Reserved, y.Reserved)
	}
	return a.Batch == b.Batch && near(a.RequestsPerSecond, b.RequestsPerSecond) && a.LatencyTargetMS == b.LatencyTargetMS &&
		a.WithinTarget == b.WithinTarget && tiers(a.USDPerMillion, b.USDPerMillion) && near(a.TrainingUSD, b.TrainingUSD) &&
		a.Reference == b.Reference && opt(a.SavingsPercent, b.SavingsPercent) && opt(a.BreakEvenRequests, b.BreakEvenRequests)
}

func costString(c *report.Cost) string {
	if c == nil {
		return "<nil>"
	}
	opt := func(p *float64) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("%+v savings=%s break-even=%s", *c, opt(c.SavingsPercent), opt(c.BreakEvenRequests))
}

// TestApplySpread checks that Apply turns the priced batch's slowest and
// fastest windows into the cost's range, and that an identical twin's
// saving is within noise while a clearly cheaper model's is not.
func TestApplySpread(t *testing.T) {
	table, err := ParsePrices("test", []byte(testPrices))
	if err != nil {
		t.Fatal(err)
	}
	spread := func(rps, lo, hi float64) []report.Throughput {
		p := point(8, rps, 50)
		p.RequestsPerSecondMin, p.RequestsPerSecondMax = lo, hi
		return []report.Throughput{p}
	}
	r := &report.Report{Device: "cpu", Models: []report.Model{
		{Name: "teacher", Role: report.RoleTeacher, Serving: &report.Serving{Throughput: spread(200, 190, 210)}},
		{Name: "twin", Role: report.RoleTeacher, Serving: &report.Serving{Throughput: spread(205, 195, 215)}},
		{Name: "student", Role: report.RoleStudent, Serving: &report.Serving{Throughput: spread(2000, 1900, 2100)}},
		{Name: "old", Role: report.RoleBaseline, Serving: &report.Serving{Throughput: spread(200, 0, 0)}},
	}}
	if err := Apply(r, Options{Prices: table, Machine: "box"}); err != nil {
		t.Fatal(err)
	}
	// $0.18/h: $0.25 per million at 200/s; the fastest window (210/s)
	// gives the low end, the slowest (190/s) the high end.
	c := r.Models[0].Cost
	if c.RequestsPerSecondMin != 190 || c.RequestsPerSecondMax != 210 || !near(c.USDPerMillionLow, 0.18/(3600*210)*1e6) || !near(c.USDPerMillionHigh, 0.18/(3600*190)*1e6) {
		t.Errorf("teacher's cost spread: %s", costString(c))
	}
	if lo, hi := c.Range(); !(lo < c.USDPerMillion.OnDemand && c.USDPerMillion.OnDemand < hi) {
		t.Errorf("teacher's range [%v, %v] does not hold its cost %v", lo, hi, c.USDPerMillion.OnDemand)
	}
	for _, tc := range []struct {
		i    int
		want bool
	}{{1, true}, {2, false}, {3, true}} {
		m := r.Models[tc.i]
		if got := report.CostWithinNoise(m.Cost, c); got != tc.want {
			t.Errorf("%s: within noise of the teacher = %v, want %v (%s)", m.Name, got, tc.want, costString(m.Cost))
		}
	}
	// Without a recorded spread only the figure itself is known.
	if o := r.Models[3].Cost; o.USDPerMillionLow != 0 || o.USDPerMillionHigh != 0 {
		t.Errorf("a spread made up for a point without one: %s", costString(o))
	}
}

// TestApplyServer: a model with a server scenario is priced from the
// rate it sustained, its range reaching to the rate that failed; one
// measured under a looser bound than the target, or whose every rate
// failed, is priced offline as before.
func TestApplyServer(t *testing.T) {
	table, err := ParsePrices("test", []byte(testPrices))
	if err != nil {
		t.Fatal(err)
	}
	r := priced()
	r.Models[1].Serving.Server = &report.ServerScenario{MaxBatch: 64, LatencyBoundMS: 100, RequestsPerSecond: 1000, FailedRequestsPerSecond: 1250}
	r.Models[0].Serving.Server = &report.ServerScenario{MaxBatch: 64, LatencyBoundMS: 100}
	if err := Apply(r, Options{Prices: table, Machine: "box"}); err != nil {
		t.Fatal(err)
	}
	c := r.Models[1].Cost
	// $0.18/h at 1,000/s = $0.05 per million; at 1,250/s $0.04.
	if c.Scenario != report.ScenarioServer || c.Batch != 64 || c.RequestsPerSecond != 1000 || !near(c.USDPerMillion.OnDemand, 0.05) ||
		!near(c.USDPerMillionHigh, 0.05) || !near(c.USDPerMillionLow, 0.04) || !c.WithinTarget || !near(c.TrainingUSD, 0.05) {
		t.Errorf("server-priced student: %s", costString(c))
	}
	if lo, hi := c.Range(); !near(lo, 0.04) || !near(hi, 0.05) {
		t.Errorf("range %v..%v", lo, hi)
	}
	if c := r.Models[0].Cost; c.Scenario != report.ScenarioOffline || c.Batch != 8 {
		t.Errorf("teacher with no passing rate: %s", costString(c))
	}
	// Repeated searches: the range is the searches' lowest pass and
	// highest rate tried, the figure the median search's.
	r.Models[1].Serving.Server = &report.ServerScenario{MaxBatch: 64, LatencyBoundMS: 100, RequestsPerSecond: 1000, FailedRequestsPerSecond: 1100,
		RequestsPerSecondLow: 900, RequestsPerSecondHigh: 1250}
	if err := Apply(r, Options{Prices: table, Machine: "box"}); err != nil {
		t.Fatal(err)
	}
	// $0.18/h at 900/s = $0.0556 per million; at 1,250/s $0.04.
	if c := r.Models[1].Cost; !near(c.USDPerMillion.OnDemand, 0.05) || !near(c.USDPerMillionHigh, 0.18/3600/900*1e6) || !near(c.USDPerMillionLow, 0.04) ||
		c.RequestsPerSecondMin != 900 || c.RequestsPerSecondMax != 1250 {
		t.Errorf("server-priced student over 3 searches: %s", costString(c))
	}
	r.Models[1].Serving.Server = &report.ServerScenario{MaxBatch: 64, LatencyBoundMS: 100, RequestsPerSecond: 1000, FailedRequestsPerSecond: 1250}
	if err := Apply(r, Options{Prices: table, Machine: "box"}); err != nil {
		t.Fatal(err)
	}
	if s := r.Models[1].Cost.SavingsPercent; s == nil || !near(*s, 80) {
		t.Errorf("savings %v, want 80%% ($0.05 vs $0.25)", s)
	}
	// A tighter target than the scenario's bound: offline pricing.
	r.Models[1].Cost = nil
	if err := Apply(r, Options{Prices: table, Machine: "box", LatencyTarget: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if c := r.Models[1].Cost; c.Scenario != report.ScenarioOffline {
		t.Errorf("target 50 ms, bound 100 ms: priced %s", costString(c))
	}
}

// TestDeploy prices a CPU report on every Intel entry, scaled by vCPUs,
// bills a forecast by whole machines, and marks the cheapest that fits.
func TestDeploy(t *testing.T) {
	r := priced()
	r.Machine = &report.Machine{Device: "cpu", Arch: "amd64", CPU: "Intel(R) Xeon(R)", CPUs: 2}
	if err := Apply(r, Options{RequestsPerDay: 864e6}); err != nil {
		t.Fatal(err)
	}
	d := r.Deployment
	if d == nil || d.RequestsPerDay != 864e6 || !strings.Contains(d.Method, "scaled by each entry's vCPUs") {
		t.Fatalf("deployment %+v", d)
	}
	tab := DefaultPrices()
	var student []report.DeploymentOption
	for _, o := range d.Options {
		if o.Model == "s" {
			student = append(student, o)
		}
		if o.Model == "unmeasured" {
			t.Error("a model without a cost has deployment options")
		}
	}
	// Intel entries: c7i.large (2), c7i.xlarge, gcp c3, azure d4s (4),
	// c7i.2xlarge (8).
	if len(student) != 5 {
		t.Fatalf("student options %+v", student)
	}
	for i, o := range student {
		p := tab.Machines[o.Machine]
		if o.Scale != float64(p.Match.VCPUs)/2 || !near(o.RequestsPerSecond, 2000*o.Scale) || !near(o.USDPerMillion.OnDemand, PerMillion(p.OnDemand, o.RequestsPerSecond)) {
			t.Errorf("option %+v", o)
		}
		// 864M a day = 10,000/s on average.
		if want := int(math.Ceil(10000 / o.RequestsPerSecond)); o.Machines != want || !near(o.MonthlyUSD.OnDemand, float64(want)*p.OnDemand*HoursPerMonth) {
			t.Errorf("%s: %d machines, $%v a month; want %d", o.Machine, o.Machines, o.MonthlyUSD.OnDemand, want)
		}
		// With a forecast, cheapest means the smallest monthly bill.
		if i > 0 && o.MonthlyUSD.OnDemand < student[i-1].MonthlyUSD.OnDemand {
			t.Error("options not cheapest bill first")
		}
		if o.Cheapest != (i == 0) {
			t.Errorf("option %d cheapest=%v", i, o.Cheapest)
		}
	}
	// Light traffic: one machine of any size serves it, so the smallest
	// is cheapest, although every Intel entry has the same $/1M.
	if err := Apply(r, Options{RequestsPerDay: 1000}); err != nil {
		t.Fatal(err)
	}
	for _, o := range r.Deployment.Options {
		if o.Model == "s" && o.Cheapest && o.Machine != "aws-c7i.large" {
			t.Errorf("1000 requests a day: cheapest %s (%d machines, $%v a month), want aws-c7i.large", o.Machine, o.Machines, o.MonthlyUSD.OnDemand)
		}
	}
	// Without a forecast, equal $/1M goes to the smaller machine.
	if err := Apply(r, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, o := range r.Deployment.Options {
		if o.Model == "s" && o.Cheapest && o.Scale != 1 {
			t.Errorf("no forecast: cheapest %s at scale %v, want a 2-vCPU machine", o.Machine, o.Scale)
		}
	}
	if MachinesFor(1, 1000) != 1 || MachinesFor(86400*2500, 1000) != 3 || MachinesFor(5, 0) != 0 {
		t.Error("MachinesFor")
	}
	// A model too big for a machine is not its cheapest option.
	r = priced()
	r.Machine = &report.Machine{Device: "cuda:0", GPU: "Tesla T4"}
	r.Models[1].Serving.Throughput[1].ModelBytes = 20 << 30 // 20 GiB at batch 8, more than a T4's 16
	if err := Apply(r, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, o := range r.Deployment.Options {
		if o.Model == "s" && (o.FitsMemory || o.Cheapest || o.Machine != "aws-g4dn.xlarge" || o.Scale != 1 || o.Machines != 0) {
			t.Errorf("T4 option %+v", o)
		}
	}
	// Without the hardware, no deployment.
	r = priced()
	if err := Apply(r, Options{}); err != nil || r.Deployment != nil {
		t.Errorf("no hardware: %+v, %v", r.Deployment, err)
	}
	if err := Apply(r, Options{RequestsPerDay: -1}); err == nil {
		t.Error("negative forecast accepted")
	}
}

// TestApplyTransferSeconds prices the teacher passes a transfer set
// saved at the reference teacher's best offline throughput.
func TestApplyTransferSeconds(t *testing.T) {
	r := priced()
	r.Transfer = &report.TransferUse{Rows: 100, TeacherExamplesAvoided: 5000}
	if err := Apply(r, Options{}); err != nil {
		t.Fatal(err)
	}
	// The teacher's best throughput is 250/s (batch 32).
	if got := r.Transfer.TeacherSecondsAvoided; !near(got, 20) {
		t.Errorf("seconds avoided %v, want 5000 / 250 = 20", got)
	}
}
