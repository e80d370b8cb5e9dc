package cost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/report"
)

// Serving is a model's measured serving performance, as it goes into
// report.json.
type Serving = report.Serving

// DefaultBatches is the batch-size sweep Measure times by default.
var DefaultBatches = []int{1, 8, 32, 128, 256}

// Defaults of MeasureOptions.
const (
	DefaultDuration    = time.Second
	DefaultRepeats     = 3
	DefaultWarmup      = 100 * time.Millisecond
	DefaultMinRequests = 100
)

// heapMetric is the runtime/metrics sample whose high-water mark Measure
// reports: bytes of heap objects, live or not yet swept.
const heapMetric = "/memory/classes/heap/objects:bytes"

// heapSampleEvery is how often the heap sampler reads heapMetric.
const heapSampleEvery = 5 * time.Millisecond

// MeasureOptions say how Measure times a model. The zero value measures
// with the defaults: about 7 s per model.
type MeasureOptions struct {
	// Outputs is how many values Forward writes per example (the number
	// of classes). 0 takes it from the predictor's Spec() when it has
	// one (backend models and runtime programs do).
	Outputs int
	// Batches are the batch sizes whose throughput is timed; nil means
	// DefaultBatches.
	Batches []int
	// Duration is how long each batch size is timed, split into Repeats
	// equal windows; 0 means DefaultDuration.
	Duration time.Duration
	// Repeats is how many windows each batch size is timed in; the
	// median window's throughput is reported. 0 means DefaultRepeats.
	Repeats int
	// LatencyDuration is how long batch-1 requests are timed for the
	// latency percentiles; 0 means Duration.
	LatencyDuration time.Duration
	// MinRequests is the fewest batch-1 requests timed, even if that
	// takes longer than LatencyDuration (percentiles of few samples mean
	// little); 0 means DefaultMinRequests.
	MinRequests int
	// Warmup is how long the model runs untimed before the latency
	// measurement and before each batch size (at least two calls each):
	// first calls allocate buffers, compile graphs and fill caches. 0
	// means DefaultWarmup.
	Warmup time.Duration
	// Sample holds examples to feed the model, row-major, a multiple of
	// the input size long; they are repeated to fill larger batches. Nil
	// feeds uniform random inputs in [0, 1) drawn from Seed.
	Sample []float32
	// Seed seeds the random inputs.
	Seed uint64
	// KeepRSSPeak leaves the kernel's peak-RSS counter alone. By default
	// Measure resets it (writing 5 to /proc/self/clear_refs) so that the
	// peak is that of the measurement, not of the process's whole life.
	KeepRSSPeak bool
}

// withDefaults checks o and fills in its defaults.
func (o MeasureOptions) withDefaults(p eval.Predictor, inputSize int) (MeasureOptions, error) {
	if p == nil {
		return o, errors.New("cost: measure: no predictor")
	}
	if inputSize < 1 {
		return o, fmt.Errorf("cost: measure: input size must be >= 1, got %d", inputSize)
	}
	if sp, ok := p.(interface{ Spec() model.Spec }); ok {
		spec := sp.Spec()
		if n := product(spec.Input); len(spec.Input) > 0 && n != inputSize {
			return o, fmt.Errorf("cost: measure: input size %d, but the model takes %v = %d values per example", inputSize, spec.Input, n)
		}
		if o.Outputs == 0 {
			o.Outputs = spec.Classes
		}
	}
	if o.Outputs < 1 {
		return o, errors.New("cost: measure: set MeasureOptions.Outputs to the number of values Forward writes per example (the model's classes)")
	}
	if o.Batches == nil {
		o.Batches = DefaultBatches
	}
	if len(o.Batches) == 0 {
		return o, errors.New("cost: measure: MeasureOptions.Batches is empty; leave it nil for the default sweep")
	}
	o.Batches = slices.Clone(o.Batches)
	slices.Sort(o.Batches)
	o.Batches = slices.Compact(o.Batches)
	if o.Batches[0] < 1 {
		return o, fmt.Errorf("cost: measure: batch size %d in MeasureOptions.Batches; batch sizes must be >= 1", o.Batches[0])
	}
	// Measure allocates the largest batch's inputs and outputs at once:
	// a size whose byte count does not even fit an int is refused here,
	// where make would panic or, wrapped around, allocate the wrong size.
	if b := o.Batches[len(o.Batches)-1]; !bufferFits(b, inputSize, o.Outputs) {
		return o, fmt.Errorf("cost: measure: batch size %d of %d-value examples is too large to allocate", b, inputSize)
	}
	if o.Duration < 0 || o.LatencyDuration < 0 || o.Warmup < 0 || o.Repeats < 0 || o.MinRequests < 0 {
		return o, errors.New("cost: measure: negative duration, repeat or request count in MeasureOptions")
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Repeats == 0 {
		o.Repeats = DefaultRepeats
	}
	if o.LatencyDuration == 0 {
		o.LatencyDuration = o.Duration
	}
	if o.MinRequests == 0 {
		o.MinRequests = DefaultMinRequests
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultWarmup
	}
	if o.Sample != nil && (len(o.Sample) == 0 || len(o.Sample)%inputSize != 0) {
		return o, fmt.Errorf("cost: measure: sample of %d values is not a whole number of %d-value examples", len(o.Sample), inputSize)
	}
	return o, nil
}

// bufferFits reports whether n examples of in float32 inputs and out
// float32 outputs have a byte count that fits an int; all are ≥ 1.
func bufferFits(n, in, out int) bool {
	const max = math.MaxInt / 4
	return in <= max/n && out <= max/n && n*in <= max-n*out
}

func product(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// Measure times p, a model taking inputSize values per example, the way
// a server would run it, and returns its latency, throughput and memory:
//
//   - Latency: after a warm-up, batch-1 requests are sent one after
//     another for opts.LatencyDuration (and at least opts.MinRequests),
//     each timed alone; the report gives the p50, p95 and p99 (nearest
//     rank) and the mean.
//   - Throughput: for each batch size, after a warm-up, whole batches
//     are run back to back in opts.Repeats windows that together last
//     opts.Duration (each window runs at least one batch); the
//     throughput is the median window's examples per second, and each
//     call's time gives the batch latency percentiles.
//   - Memory: for a predictor with a Bytes(batch int) (int64, error)
//     method (infer.Program), the model's own memory at each batch size
//     (Throughput.ModelBytes). Process-wide, and so dominated by
//     whatever else the process holds: a goroutine samples the Go heap
//     every 5 ms through runtime/metrics and keeps the maximum; on Linux
//     the process's peak RSS (VmHWM in /proc/self/status) is read at the
//     end, after resetting it at the start unless opts.KeepRSSPeak.
//
// One goroutine calls Forward, so the model uses whatever parallelism
// its backend has inside a call (GOMAXPROCS threads for the Go ones).
// Measure collects garbage once before starting. It takes about
// 1 + len(Batches) durations plus the warm-ups; cancelling ctx stops it
// with ctx's error.
func Measure(ctx context.Context, p eval.Predictor, inputSize int, opts MeasureOptions) (Serving, error) {
	o, err := opts.withDefaults(p, inputSize)
	if err != nil {
		return Serving{}, err
	}
	maxBatch := o.Batches[len(o.Batches)-1]
	x := make([]float32, maxBatch*inputSize)
	if o.Sample != nil {
		for i := range x {
			x[i] = o.Sample[i%len(o.Sample)]
		}
	} else {
		rng := rand.New(rand.NewPCG(o.Seed, 0x636f7374)) // "cost"
		for i := range x {
			x[i] = rng.Float32()
		}
	}
	out := make([]float32, maxBatch*o.Outputs)
	m := &meter{p: p, x: x, out: out, in: inputSize, classes: o.Outputs}

	runtime.GC()
	rssReset := false
	if !o.KeepRSSPeak {
		rssReset = resetPeakRSS()
	}
	heap := startHeapSampler()

	s, err := m.measure(ctx, o)
	s.PeakHeapBytes = heap.stop()
	if err != nil {
		return Serving{}, err
	}
	s.PeakRSSBytes = peakRSS()
	if mb, ok := p.(modelSizer); ok {
		for i := range s.Throughput {
			b, err := mb.Bytes(s.Throughput[i].Batch)
			if err != nil {
				return Serving{}, fmt.Errorf("cost: measure: the model's memory at batch %d: %w", s.Throughput[i].Batch, err)
			}
			s.Throughput[i].ModelBytes = b
		}
	}
	s.Threads = runtime.GOMAXPROCS(0)
	s.Method = describe(o, rssReset, s.PeakRSSBytes > 0)
	return s, nil
}

// modelSizer is a predictor that can say how much memory it needs to
// serve a batch (infer.Program does): Measure reports it per batch size
// as Throughput.ModelBytes, the model's own memory, where the heap and
// RSS peaks are the whole process's.
type modelSizer interface {
	Bytes(batch int) (int64, error)
}

// meter runs a predictor on a fixed input buffer.
type meter struct {
	p           eval.Predictor
	x, out      []float32
	in, classes int
}

// call runs one batch of n and returns how long it took.
func (m *meter) call(n int) (time.Duration, error) {
	start := time.Now()
	err := m.p.Forward(m.x[:n*m.in], n, m.out[:n*m.classes])
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("cost: measure: forward of a batch of %d: %w", n, err)
	}
	return d, nil
}

// warm runs batches of n for at least d and two calls.
func (m *meter) warm(ctx context.Context, n int, d time.Duration) error {
	start := time.Now()
	for i := 0; i < 2 || time.Since(start) < d; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := m.call(n); err != nil {
			return err
		}
	}
	return nil
}

func (m *meter) measure(ctx context.Context, o MeasureOptions) (Serving, error) {
	var s Serving
	// Batch-1 latency.
	if err := m.warm(ctx, 1, o.Warmup); err != nil {
		return s, err
	}
	var lat []time.Duration
	start := time.Now()
	for len(lat) < o.MinRequests || time.Since(start) < o.LatencyDuration {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		d, err := m.call(1)
		if err != nil {
			return s, err
		}
		lat = append(lat, d)
	}
	s.LatencyMS = Summarize(lat)
	s.Requests = len(lat)

	// Throughput sweep.
	window := o.Duration / time.Duration(o.Repeats)
	for _, n := range o.Batches {
		if err := m.warm(ctx, n, o.Warmup); err != nil {
			return s, err
		}
		var calls []time.Duration
		var rates []float64
		var total time.Duration
		for range o.Repeats {
			start := time.Now()
			batches := 0
			for batches == 0 || time.Since(start) < window {
				if err := ctx.Err(); err != nil {
					return s, err
				}
				d, err := m.call(n)
				if err != nil {
					return s, err
				}
				calls = append(calls, d)
				batches++
			}
			el := time.Since(start)
			total += el
			rates = append(rates, float64(batches*n)/el.Seconds())
		}
		s.Throughput = append(s.Throughput, report.Throughput{
			Batch:             n,
			RequestsPerSecond: median(rates),
			// The slowest and fastest windows bound the noise the median
			// is subject to; verdicts compare figures against it.
			RequestsPerSecondMin: slices.Min(rates),
			RequestsPerSecondMax: slices.Max(rates),
			BatchLatencyMS:       Summarize(calls),
			Batches:              len(calls),
			Seconds:              total.Seconds(),
		})
	}
	return s, nil
}

// Summarize returns the p50, p95 and p99 (nearest rank: the smallest
// duration at least that share of the durations are at or below) and
// the mean of ds, in milliseconds; zeros for none. ds is not modified.
func Summarize(ds []time.Duration) report.Percentiles {
	if len(ds) == 0 {
		return report.Percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		return ms(s[max(i, 0)])
	}
	return report.Percentiles{P50: rank(50), P95: rank(95), P99: rank(99), Mean: ms(sum) / float64(len(s))}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the median of v (the mean of the middle two for an
// even count); v is sorted in place.
func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// describe states the method of a measurement with options o.
func describe(o MeasureOptions, rssReset, rssKnown bool) string {
	var b strings.Builder
	input := fmt.Sprintf("uniform random inputs in [0, 1) (seed %d)", o.Seed)
	if o.Sample != nil {
		input = "the given sample inputs, repeated to fill batches"
	}
	batches := make([]string, len(o.Batches))
	for i, n := range o.Batches {
		batches[i] = strconv.Itoa(n)
	}
	fmt.Fprintf(&b, "One client calling Forward back to back (GOMAXPROCS=%d) on %s, after %s of warm-up (at least 2 calls) before each measurement. ", runtime.GOMAXPROCS(0), input, o.Warmup)
	fmt.Fprintf(&b, "Latency: batch-1 requests timed one by one for %s (at least %d requests), nearest-rank percentiles. ", o.LatencyDuration, o.MinRequests)
	fmt.Fprintf(&b, "Throughput: batch sizes %s, each timed for %s in %d windows, median window reported with the slowest and fastest as its spread. ", strings.Join(batches, ", "), o.Duration, o.Repeats)
	b.WriteString("Model memory: the engine's parameters plus its activation arena at each batch size, where the engine reports it. Process-wide peak heap: runtime/metrics " + heapMetric + " sampled every 5ms after a GC")
	switch {
	case rssKnown && rssReset:
		b.WriteString("; peak RSS: VmHWM of /proc/self/status, reset before measuring.")
	case rssKnown:
		b.WriteString("; peak RSS: VmHWM of /proc/self/status over the process's life.")
	default:
		b.WriteString("; peak RSS not available on this platform.")
	}
	return b.String()
}

// heapSampler tracks the high-water mark of heapMetric.
type heapSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak uint64 // written only by the sampler goroutine until stop
}

func readHeap(s []metrics.Sample) uint64 {
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{done: make(chan struct{})}
	s := []metrics.Sample{{Name: heapMetric}}
	h.peak = readHeap(s)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(heapSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-h.done:
				h.peak = max(h.peak, readHeap(s))
				return
			case <-t.C:
				h.peak = max(h.peak, readHeap(s))
			}
		}
	}()
	return h
}

// stop ends sampling and returns the peak in bytes.
func (h *heapSampler) stop() int64 {
	close(h.done)
	h.wg.Wait()
	return int64(h.peak)
}

// resetPeakRSS asks Linux to reset the process's peak RSS (VmHWM) to its
// current RSS and reports whether it did.
func resetPeakRSS() bool {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	_, err = f.Write([]byte("5"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err == nil
}

// peakRSS returns VmHWM from /proc/self/status in bytes, 0 if unknown.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseVmHWM(f)
}

// parseVmHWM finds the "VmHWM:   1234 kB" line of a /proc status file.
func parseVmHWM(f io.Reader) int64 {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb < 0 {
			return 0
		}
		return kb * 1024
	}
	return 0
}

// Host describes the machine this process runs on, for
// report.Report.Machine; device is the backend's device (e.g. "cpu").
func Host(device string) report.Machine {
	m := report.Machine{
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		CPU:        cpuInfo("model name"),
		CPUVendor:  cpuInfo("vendor_id"),
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Device:     device,
		GoVersion:  runtime.Version(),
	}
	if idx, ok := cudaIndex(device); ok {
		m.GPU, m.GPUMemoryMiB, m.GPUDriver = queryGPU(idx)
	}
	return m
}

// cudaIndex returns the GPU index of a CUDA device name ("cuda" is 0).
func cudaIndex(device string) (int, bool) {
	rest, ok := strings.CutPrefix(strings.ToLower(device), "cuda")
	if !ok {
		return 0, false
	}
	if rest == "" {
		return 0, true
	}
	i, err := strconv.Atoi(strings.TrimPrefix(rest, ":"))
	return i, err == nil && i >= 0 && strings.HasPrefix(rest, ":")
}

// queryGPU asks nvidia-smi for GPU idx's name, memory and driver; it
// returns zeros when nvidia-smi is missing or fails (within 10 s), and
// pricing then asks the user to name the machine.
func queryGPU(idx int) (name string, memMiB int, driver string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nvidia-smi", "--query-gpu=name,memory.total,driver_version",
		"--format=csv,noheader,nounits", "-i", strconv.Itoa(idx)).Output()
	if err != nil {
		return "", 0, ""
	}
	return parseGPUQuery(string(out))
}

// parseGPUQuery reads one line of nvidia-smi's
// --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits.
func parseGPUQuery(out string) (name string, memMiB int, driver string) {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	f := strings.Split(line, ",")
	if len(f) != 3 {
		return "", 0, ""
	}
	mem, err := strconv.Atoi(strings.TrimSpace(f[1]))
	if err != nil || mem < 0 {
		mem = 0
	}
	return strings.TrimSpace(f[0]), mem, strings.TrimSpace(f[2])
}

// cpuInfo returns the first value of key in /proc/cpuinfo, or "".
func cpuInfo(key string) string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}
