package report

import (
	"fmt"
	"strings"
)

// This file holds the serving and cost fields of the report (added to
// schema distill.report/v1 without renaming anything: every one of them
// is optional, so reports written before they existed still read).
// Package cost measures the numbers and fills these fields in.

// Pricing tiers of a price table entry, in the order reports list them.
const (
	TierOnDemand = "on_demand" // pay as you go
	TierSpot     = "spot"      // interruptible capacity
	TierReserved = "reserved"  // committed use (e.g. 1-year reservation)
)

// Tiers lists the pricing tiers.
var Tiers = []string{TierOnDemand, TierSpot, TierReserved}

// TierPrices holds one amount of money per pricing tier. A tier the
// price table has no price for is 0 (and left out of the JSON), which
// readers must show as unknown rather than free.
type TierPrices struct {
	OnDemand float64 `json:"on_demand"`
	Spot     float64 `json:"spot,omitempty"`
	Reserved float64 `json:"reserved,omitempty"`
}

// Get returns the amount for tier (one of Tiers), 0 if unknown.
func (t TierPrices) Get(tier string) float64 {
	switch tier {
	case TierOnDemand:
		return t.OnDemand
	case TierSpot:
		return t.Spot
	case TierReserved:
		return t.Reserved
	}
	return 0
}

// Percentiles summarises a set of durations, in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Mean float64 `json:"mean"`
}

// Serving is a model's measured serving performance on the machine that
// wrote the report.
type Serving struct {
	// LatencyMS is the time to answer one request at batch size 1: one
	// Forward call on one example, as a client sending requests one
	// after another sees it.
	LatencyMS Percentiles `json:"latency_ms"`
	// Requests is how many timed batch-1 requests LatencyMS summarises.
	Requests int `json:"requests"`
	// Throughput holds one point per batch size of the sweep, in
	// increasing batch size.
	Throughput []Throughput `json:"throughput"`
	// Engine names what ran the model's Forward calls: EngineInfer
	// (distill's compiled CPU runtime, package infer), "torch cuda:0"
	// (the torch backend on that device) or a training backend's name
	// such as "gorgonia". Empty in reports written before it existed.
	// Report.Validate refuses a report whose models were measured on
	// different engines unless its EngineNote says why.
	Engine string `json:"engine,omitempty"`
	// Precision is the arithmetic the engine ran the model in:
	// PrecisionFP32 or PrecisionINT8.
	Precision string `json:"precision,omitempty"`
	// MeasuredAs names the model whose measurement this is when it is
	// shared: models with the same architecture, precision and engine
	// run the same computation, so they are measured once and share the
	// figure rather than differ by noise. Empty for a model measured
	// itself.
	MeasuredAs string `json:"measured_as,omitempty"`
	// PeakHeapBytes is the Go heap's high-water mark (live and not yet
	// swept objects) while measuring: the whole process's heap, so it
	// includes what the caller holds, such as the dataset. It says
	// nothing about the model; see Throughput[].ModelBytes.
	PeakHeapBytes int64 `json:"peak_heap_bytes"`
	// PeakRSSBytes is the process's peak resident set size (VmHWM),
	// which also counts memory outside the Go heap (e.g. libtorch's);
	// 0 where the platform does not report it. Process-wide too.
	PeakRSSBytes int64 `json:"peak_rss_bytes,omitempty"`
	// DeviceMemory is the device memory the model held while measured,
	// on an engine whose device counts it (libtorch on CUDA); absent
	// elsewhere. Unlike the process peaks it is the model's own:
	// weights and the activations of the largest batch, on a device
	// whose peaks were reset before.
	DeviceMemory *DeviceMemory `json:"device_memory,omitempty"`
	// Threads is GOMAXPROCS during the measurement.
	Threads int `json:"threads"`
	// Method describes how the numbers were measured, for people.
	Method string `json:"method"`
	// Server is the server scenario, measured through distill's HTTP
	// server; absent when it was not measured. LatencyMS is the
	// single-stream scenario and Throughput the offline one.
	Server *ServerScenario `json:"server,omitempty"`
}

// Scenarios a Cost is priced from.
const (
	ScenarioServer  = "server"
	ScenarioOffline = "offline"
)

// ServerScenario is MLPerf Inference's server scenario: requests of one
// example arrive as a Poisson process at a fixed rate and are answered
// by a server that batches them dynamically; the figure is the highest
// rate whose p99 latency stays within a bound.
type ServerScenario struct {
	// MaxBatch and MaxWaitMS are the server's dynamic-batching settings.
	MaxBatch  int     `json:"max_batch"`
	MaxWaitMS float64 `json:"max_wait_ms"`
	// LatencyBoundMS is the bound on the p99 request latency, client
	// side, from each request's scheduled arrival to its answer.
	LatencyBoundMS float64 `json:"latency_bound_ms"`
	// RequestsPerSecond is the highest rate tried that the server
	// sustained within the bound (every request answered, none
	// refused), in the median of Searches; 0 when even the lowest rate
	// tried failed.
	RequestsPerSecond float64 `json:"requests_per_second"`
	// FailedRequestsPerSecond is the lowest rate tried that failed in
	// the same search: the sustainable rate lies between the two. 0
	// when every rate passed.
	FailedRequestsPerSecond float64 `json:"failed_requests_per_second,omitempty"`
	// RequestsPerSecondLow and RequestsPerSecondHigh are the noise
	// range of RequestsPerSecond, where a repeated measurement's figure
	// should fall: every rate any search passed or failed and, where
	// the searches disagree, the 95% prediction interval of a repeat
	// (serve.MeasureServer says how). 0 in reports written before
	// searches were repeated.
	RequestsPerSecondLow  float64 `json:"requests_per_second_low,omitempty"`
	RequestsPerSecondHigh float64 `json:"requests_per_second_high,omitempty"`
	// Searches is each search's outcome, in order of passing rate.
	Searches []ServerSearch `json:"searches,omitempty"`
	// LatencyMS is the request latency at RequestsPerSecond.
	LatencyMS Percentiles `json:"latency_ms"`
	// Trials lists every rate tried, in order.
	Trials []ServerTrial `json:"trials"`
	// Method describes how the numbers were measured, for people.
	Method string `json:"method"`
}

// ServerSearch is the outcome of one search for the sustainable rate:
// the highest rate that passed and the lowest that failed (0 when none
// did).
type ServerSearch struct {
	RequestsPerSecond       float64 `json:"requests_per_second"`
	FailedRequestsPerSecond float64 `json:"failed_requests_per_second,omitempty"`
}

// ServerTrial is one rate tried in the server scenario.
type ServerTrial struct {
	RateRPS float64 `json:"rate_rps"`
	// AchievedRPS is the answered requests per second.
	AchievedRPS float64 `json:"achieved_rps"`
	Requests    int     `json:"requests"`
	// Failed counts requests refused (503), answered with another error
	// status, or not answered.
	Failed int     `json:"failed"`
	P99MS  float64 `json:"p99_ms"`
	Passed bool    `json:"passed"`
}

// Throughput is the sustained rate at one batch size.
type Throughput struct {
	Batch int `json:"batch"`
	// RequestsPerSecond is examples answered per second (batches per
	// second × Batch), the median over the repeats.
	RequestsPerSecond float64 `json:"requests_per_second"`
	// BatchLatencyMS summarises the time of one Forward call of Batch
	// examples: what a request waits once its batch is full.
	BatchLatencyMS Percentiles `json:"batch_latency_ms"`
	// Batches is how many timed Forward calls the point is made of.
	Batches int `json:"batches"`
	// Seconds is the time spent timing them.
	Seconds float64 `json:"seconds"`
	// ModelBytes is the memory the model itself needs to serve batches
	// of Batch: its parameters as the engine holds them plus the
	// activation arena at that batch, counted from the engine's buffers
	// (infer.Program.Bytes). 0 where the engine cannot say.
	ModelBytes int64 `json:"model_bytes,omitempty"`
	// RequestsPerSecondMin and RequestsPerSecondMax are the slowest and
	// fastest window's throughput: the spread RequestsPerSecond, their
	// median, is subject to. 0 in reports written before they were
	// recorded.
	RequestsPerSecondMin float64 `json:"requests_per_second_min,omitempty"`
	RequestsPerSecondMax float64 `json:"requests_per_second_max,omitempty"`
}

// Engines and precisions of Serving.
const (
	// EngineInfer is distill's compiled CPU runtime (package infer),
	// which serves FP32 and INT8 models alike.
	EngineInfer   = "infer"
	PrecisionFP32 = "fp32"
	PrecisionINT8 = "int8"
)

// EngineLabel is how tables show the engine: "infer (INT8)"; "" when
// the report predates the field.
func (s *Serving) EngineLabel() string {
	if s == nil || s.Engine == "" {
		return ""
	}
	if s.Precision == "" {
		return s.Engine
	}
	return s.Engine + " (" + strings.ToUpper(s.Precision) + ")"
}

// BestThroughput is the offline scenario's figure: the highest
// throughput of the batch sweep (0 when nothing was measured).
func (s *Serving) BestThroughput() float64 {
	best := 0.0
	if s != nil {
		for _, t := range s.Throughput {
			best = max(best, t.RequestsPerSecond)
		}
	}
	return best
}

// ModelBytesAt returns Throughput's ModelBytes at batch, or at the
// largest batch measured when batch is 0. A batch the sweep did not
// measure (a server's largest dynamic batch) gets the largest measured
// batch below it, a lower bound. A model measured on a device that counts
// its memory, where the sweep has no ModelBytes, gets the device's
// allocated peak over the whole measurement (an upper bound for any
// batch). 0 when unknown.
func (s *Serving) ModelBytesAt(batch int) int64 {
	if s == nil {
		return 0
	}
	var at int64
	for _, t := range s.Throughput {
		if batch == 0 || t.Batch <= batch {
			at = t.ModelBytes
		}
	}
	if at == 0 && s.DeviceMemory != nil {
		return s.DeviceMemory.AllocatedPeakBytes
	}
	return at
}

// Cost is what serving a model costs at the report's price.
type Cost struct {
	// Scenario is what the cost is priced from: ScenarioServer (the
	// server scenario's sustained rate, Serving.Server) when it was
	// measured and some rate passed, else ScenarioOffline (the offline
	// throughput at Batch). Empty in reports written before it existed,
	// which are offline.
	Scenario string `json:"scenario,omitempty"`
	// Batch is the batch size the cost assumes: offline, the one with
	// the highest throughput whose p99 batch latency stays within
	// LatencyTargetMS; server, the server's largest dynamic batch.
	Batch int `json:"batch"`
	// RequestsPerSecond is the measured throughput at Batch.
	RequestsPerSecond float64 `json:"requests_per_second"`
	// RequestsPerSecondMin and RequestsPerSecondMax are the slowest and
	// fastest window's throughput at Batch (see Throughput); 0 when not
	// recorded.
	RequestsPerSecondMin float64 `json:"requests_per_second_min,omitempty"`
	RequestsPerSecondMax float64 `json:"requests_per_second_max,omitempty"`
	// LatencyTargetMS is the latency target Batch was chosen under.
	LatencyTargetMS float64 `json:"latency_target_ms"`
	// USDPerMillion is the price of serving one million requests at each
	// tier: price per hour ÷ (3600 × RequestsPerSecond) × 10⁶.
	USDPerMillion TierPrices `json:"usd_per_million"`
	// USDPerMillionLow and USDPerMillionHigh are the on-demand cost per
	// million requests at the fastest and the slowest window's
	// throughput: the range USDPerMillion.OnDemand is measured within
	// (see WithinNoise). 0 when the spread was not recorded.
	USDPerMillionLow  float64 `json:"usd_per_million_low,omitempty"`
	USDPerMillionHigh float64 `json:"usd_per_million_high,omitempty"`
	// WithinTarget is false when no batch size met the latency target;
	// Batch is then 1, the lowest-latency choice, and the cost is that
	// of missing the target.
	WithinTarget bool `json:"within_target"`
	// Reference names the teacher the savings are relative to.
	Reference string `json:"reference,omitempty"`
	// SavingsPercent is how much cheaper serving this model is than
	// serving Reference, in percent of the reference's cost (on-demand
	// tier; every tier gives the same figure, since both models are
	// priced on the same machine). Negative when it costs more. Absent
	// for the reference itself and when either cost is unknown.
	SavingsPercent *float64 `json:"savings_percent,omitempty"`
	// TrainingUSD is the model's train_seconds at the on-demand price:
	// what making it cost. Absent when its training time is unknown.
	TrainingUSD float64 `json:"training_usd,omitempty"`
	// BreakEvenRequests is how many requests served by this model
	// instead of Reference save as much as making it cost: TrainingUSD ÷
	// the saving per request. Absent when the model saves nothing or its
	// training time is unknown.
	BreakEvenRequests *float64 `json:"break_even_requests,omitempty"`
}

// Machine describes the computer the serving numbers were measured on.
type Machine struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
	CPU  string `json:"cpu,omitempty"` // model name, where known
	// CPUVendor is the vendor the CPU reports (x86's vendor_id, e.g.
	// "GenuineIntel", "AuthenticAMD"), where known.
	CPUVendor  string `json:"cpu_vendor,omitempty"`
	CPUs       int    `json:"cpus"` // logical CPUs
	GOMAXPROCS int    `json:"gomaxprocs"`
	Device     string `json:"device,omitempty"` // e.g. "cpu", "cuda:0"
	GoVersion  string `json:"go_version,omitempty"`
	// GPU, GPUMemoryMiB and GPUDriver describe a CUDA device as
	// nvidia-smi reports it; empty on a CPU.
	GPU          string `json:"gpu,omitempty"`
	GPUMemoryMiB int    `json:"gpu_memory_mib,omitempty"`
	GPUDriver    string `json:"gpu_driver,omitempty"`
	// CUDARuntime is the version of the CUDA runtime the backend loaded
	// ("12.8"); empty on a CPU.
	CUDARuntime string `json:"cuda_runtime,omitempty"`
	// GPUMemoryInUseMiB is the device memory in use when the models
	// were measured (total − free, as the CUDA runtime reports it).
	// libtorch's caching allocator keeps what it reserves, so it is at
	// least the most the run reserved, plus the CUDA context and other
	// processes' memory. 0 on a CPU.
	GPUMemoryInUseMiB int `json:"gpu_memory_in_use_mib,omitempty"`
	// Library is the native library the backend computed with and its
	// version ("libtorch 1.13.0"); empty for the pure-Go backend.
	Library string `json:"library,omitempty"`
}

// Pricing is the price the report's costs assume: the price table entry
// of the machine type the models would be served (and were trained) on.
type Pricing struct {
	// Machine is the entry's name in the price table, e.g. "aws-c7i.xlarge".
	Machine string `json:"machine"`
	// Chosen says how Machine was chosen: named by the user, matched to
	// the measuring hardware (and how well), or assumed.
	Chosen      string `json:"chosen,omitempty"`
	Description string `json:"description,omitempty"`
	Currency    string `json:"currency"` // always "USD" for now
	// USDPerHour is the entry's price at each tier.
	USDPerHour TierPrices `json:"usd_per_hour"`
	// Source and AsOf say where the prices come from and when they were
	// read; prices change, so check them before deciding anything.
	Source string `json:"source,omitempty"`
	AsOf   string `json:"as_of,omitempty"`
	// Table names the price table: "default" for the one compiled into
	// distill, or the path of the user's file.
	Table string `json:"table,omitempty"`
	// LatencyTargetMS is the latency target the batch sizes were chosen
	// under.
	LatencyTargetMS float64 `json:"latency_target_ms"`
}

// TrainingCost is what the whole run cost: the sum of its stages' times
// at the report's price.
type TrainingCost struct {
	Seconds float64    `json:"seconds"`
	USD     TierPrices `json:"usd"`
}

// numbers passes each floating-point field, named with prefix, to check.
func (t TierPrices) numbers(prefix string, check func(string, float64)) {
	check(prefix+"on_demand", t.OnDemand)
	check(prefix+"spot", t.Spot)
	check(prefix+"reserved", t.Reserved)
}

func (p Percentiles) numbers(prefix string, check func(string, float64)) {
	check(prefix+"p50", p.P50)
	check(prefix+"p95", p.P95)
	check(prefix+"p99", p.P99)
	check(prefix+"mean", p.Mean)
}

func (s *Serving) numbers(prefix string, check func(string, float64)) {
	s.LatencyMS.numbers(prefix+"latency_ms.", check)
	for _, t := range s.Throughput {
		p := fmt.Sprintf("%sthroughput[batch %d].", prefix, t.Batch)
		check(p+"requests_per_second", t.RequestsPerSecond)
		check(p+"seconds", t.Seconds)
		check(p+"requests_per_second_min", t.RequestsPerSecondMin)
		check(p+"requests_per_second_max", t.RequestsPerSecondMax)
		t.BatchLatencyMS.numbers(p+"batch_latency_ms.", check)
	}
}

func (c *Cost) numbers(prefix string, check func(string, float64)) {
	check(prefix+"requests_per_second", c.RequestsPerSecond)
	check(prefix+"latency_target_ms", c.LatencyTargetMS)
	check(prefix+"requests_per_second_min", c.RequestsPerSecondMin)
	check(prefix+"requests_per_second_max", c.RequestsPerSecondMax)
	check(prefix+"usd_per_million_low", c.USDPerMillionLow)
	check(prefix+"usd_per_million_high", c.USDPerMillionHigh)
	c.USDPerMillion.numbers(prefix+"usd_per_million.", check)
	check(prefix+"training_usd", c.TrainingUSD)
	if c.SavingsPercent != nil {
		check(prefix+"savings_percent", *c.SavingsPercent)
	}
	if c.BreakEvenRequests != nil {
		check(prefix+"break_even_requests", *c.BreakEvenRequests)
	}
}

// Deployment is where each model could be served and what it would cost
// there: every price table entry its measurement speaks for (the GPU it
// ran on, at each provider; or CPU machines of the same architecture and
// vendor, scaled by vCPUs), with a traffic forecast turned into a
// monthly bill.
type Deployment struct {
	// RequestsPerDay is the traffic forecast; 0 when none was given.
	RequestsPerDay float64 `json:"requests_per_day,omitempty"`
	// Options lists every model × machine priced, cheapest first within
	// each model, models in report order.
	Options []DeploymentOption `json:"options"`
	// Method says how the options were priced, for people.
	Method string `json:"method"`
}

// DeploymentOption is one model served on one machine type.
type DeploymentOption struct {
	Model   string `json:"model"`
	Machine string `json:"machine"`
	// Scale is the factor applied to the measured rate: the entry's
	// vCPUs over the CPUs measured on (1 for the machine itself or a
	// GPU). A scaled rate assumes throughput grows with cores.
	Scale             float64    `json:"scale"`
	RequestsPerSecond float64    `json:"requests_per_second"`
	USDPerMillion     TierPrices `json:"usd_per_million"`
	// FitsMemory is false when the model's serving memory exceeds the
	// entry's memory (unknown memory fits).
	FitsMemory bool `json:"fits_memory"`
	// Machines and MonthlyUSD answer the traffic forecast: how many such
	// machines serve RequestsPerDay at the average rate (at least one:
	// a machine is paid for by the hour, busy or not), and what they
	// cost in a month of 730 hours at each tier. 0 without a forecast.
	Machines   int        `json:"machines,omitempty"`
	MonthlyUSD TierPrices `json:"monthly_usd,omitempty"`
	// Cheapest marks the model's cheapest option that fits, on demand.
	Cheapest bool `json:"cheapest,omitempty"`
}
