package cost

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
)

// quick keeps the measurements of the tests short.
var quick = MeasureOptions{Duration: 30 * time.Millisecond, LatencyDuration: 20 * time.Millisecond, Warmup: 2 * time.Millisecond, MinRequests: 10, Batches: []int{4, 1, 4, 2}}

// fake is a predictor that checks the buffers it gets, does a little
// work per example, and records the batch sizes and first inputs.
type fake struct {
	in, classes int
	err         error
	failAt      int // batch size whose calls fail with err
	mu          sync.Mutex
	batches     map[int]int
	firsts      []float32
}

func (f *fake) Forward(x []float32, n int, out []float32) error {
	if len(x) != n*f.in || len(out) != n*f.classes {
		return fmt.Errorf("fake: %d inputs and %d outputs for %d examples", len(x), len(out), n)
	}
	if f.err != nil && (f.failAt == 0 || f.failAt == n) {
		return f.err
	}
	f.mu.Lock()
	if f.batches == nil {
		f.batches = map[int]int{}
	}
	f.batches[n]++
	f.firsts = append(f.firsts, x[0])
	f.mu.Unlock()
	for i := range out {
		var s float32
		for _, v := range x[(i/f.classes)*f.in : (i/f.classes+1)*f.in] {
			s += v * v
		}
		out[i] = s
	}
	return nil
}

func TestMeasure(t *testing.T) {
	f := &fake{in: 16, classes: 3}
	o := quick
	o.Outputs = 3
	s, err := Measure(context.Background(), f, 16, o)
	if err != nil {
		t.Fatal(err)
	}
	// No timing thresholds: only the shape and the consistency of the
	// numbers, which hold on any machine.
	if s.Requests < quick.MinRequests {
		t.Errorf("%d requests, want at least %d", s.Requests, quick.MinRequests)
	}
	ordered := func(what string, p50, p95, p99, mean float64) {
		if !(0 < p50 && p50 <= p95 && p95 <= p99 && mean > 0) {
			t.Errorf("%s: p50 %v, p95 %v, p99 %v, mean %v", what, p50, p95, p99, mean)
		}
	}
	l := s.LatencyMS
	ordered("latency", l.P50, l.P95, l.P99, l.Mean)
	var got []int
	for _, p := range s.Throughput {
		got = append(got, p.Batch)
		b := p.BatchLatencyMS
		ordered(fmt.Sprintf("batch %d", p.Batch), b.P50, b.P95, b.P99, b.Mean)
		if p.RequestsPerSecond <= 0 || p.Batches < DefaultRepeats || p.Seconds <= 0 {
			t.Errorf("batch %d: %+v", p.Batch, p)
		}
		// The median window lies within the slowest and fastest.
		if !(p.RequestsPerSecondMin > 0 && p.RequestsPerSecondMin <= p.RequestsPerSecond && p.RequestsPerSecond <= p.RequestsPerSecondMax) {
			t.Errorf("batch %d: median %v requests/s outside its spread [%v, %v]", p.Batch, p.RequestsPerSecond, p.RequestsPerSecondMin, p.RequestsPerSecondMax)
		}
		// The rate cannot exceed what the fastest call allows, nor fall
		// below what the slowest allows (times the loop's own overhead).
		if limit := float64(p.Batch) / (b.P50 / 1000) * 100; p.RequestsPerSecond > limit {
			t.Errorf("batch %d: %v requests/s from calls of %v ms", p.Batch, p.RequestsPerSecond, b.P50)
		}
	}
	if !slices.Equal(got, []int{1, 2, 4}) {
		t.Errorf("batch sizes %v, want the options' sorted and without duplicates", got)
	}
	for _, n := range []int{1, 2, 4} {
		if f.batches[n] < 2 {
			t.Errorf("batch %d run %d times", n, f.batches[n])
		}
	}
	if len(f.batches) != 3 {
		t.Errorf("batch sizes run: %v", f.batches)
	}
	if s.PeakHeapBytes <= 0 || s.Threads != runtime.GOMAXPROCS(0) {
		t.Errorf("peak heap %d, threads %d", s.PeakHeapBytes, s.Threads)
	}
	for _, tp := range s.Throughput {
		if tp.ModelBytes != 0 {
			t.Errorf("batch %d: model bytes %d from a predictor that cannot say", tp.Batch, tp.ModelBytes)
		}
	}
	if runtime.GOOS == "linux" && s.PeakRSSBytes <= 0 {
		t.Errorf("peak RSS %d on Linux", s.PeakRSSBytes)
	}
	for _, want := range []string{"batch sizes 1, 2, 4", "30ms in 3 windows", "at least 10 requests", "uniform random inputs", "/memory/classes/heap/objects:bytes", fmt.Sprintf("GOMAXPROCS=%d", runtime.GOMAXPROCS(0))} {
		if !strings.Contains(s.Method, want) {
			t.Errorf("method %q does not mention %q", s.Method, want)
		}
	}
}

func TestMeasureSample(t *testing.T) {
	f := &fake{in: 2, classes: 1}
	o := quick
	o.Outputs = 1
	o.Sample = []float32{7, 8, 9, 10}
	s, err := Measure(context.Background(), f, 2, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range f.firsts {
		if v != 7 {
			t.Fatalf("first input %v, want the sample's 7", v)
		}
	}
	if !strings.Contains(s.Method, "given sample") {
		t.Errorf("method %q", s.Method)
	}
}

func TestMeasureRuntimeProgram(t *testing.T) {
	spec, err := model.MLP(model.MLPConfig{Name: "m", Input: []int{1, 4, 4}, Hidden: []int{8}, Classes: 3})
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
	// The number of classes comes from the program's spec.
	s, err := Measure(context.Background(), p, 16, quick)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Throughput) != 3 || s.LatencyMS.P50 <= 0 {
		t.Errorf("serving %+v", s)
	}
	// The model's own memory comes from the program, per batch size.
	for _, tp := range s.Throughput {
		want, err := p.Bytes(tp.Batch)
		if err != nil {
			t.Fatal(err)
		}
		if tp.ModelBytes != want || want <= 0 {
			t.Errorf("batch %d: model bytes %d, want the program's %d", tp.Batch, tp.ModelBytes, want)
		}
	}
	if !strings.Contains(s.Method, "Model memory") {
		t.Errorf("method %q does not say how model memory is measured", s.Method)
	}
	if _, err := Measure(context.Background(), p, 15, quick); err == nil || !strings.Contains(err.Error(), "input size 15, but the model takes [1 4 4] = 16") {
		t.Errorf("wrong input size: %v", err)
	}
}

func TestMeasureErrors(t *testing.T) {
	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	with := func(edit func(*MeasureOptions)) MeasureOptions {
		o := quick
		edit(&o)
		return o
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		p    *fake
		in   int
		o    MeasureOptions
		want string
		is   error
	}{
		{"no outputs", context.Background(), &fake{in: 2, classes: 1}, 2, with(func(o *MeasureOptions) {}), "set MeasureOptions.Outputs", nil},
		{"input size", context.Background(), &fake{in: 2, classes: 1}, 0, with(func(o *MeasureOptions) { o.Outputs = 1 }), "input size must be >= 1, got 0", nil},
		{"empty batches", context.Background(), &fake{in: 2, classes: 1}, 2, with(func(o *MeasureOptions) { o.Outputs, o.Batches = 1, []int{} }), "Batches is empty", nil},
		{"batch 0", context.Background(), &fake{in: 2, classes: 1}, 2, with(func(o *MeasureOptions) { o.Outputs, o.Batches = 1, []int{8, 0} }), "batch size 0", nil},
		{"batch whose buffer overflows", context.Background(), &fake{in: 2, classes: 1}, 2, with(func(o *MeasureOptions) { o.Outputs, o.Batches = 1, []int{1, 1 << 61} }), "batch size 2305843009213693952 of 2-value examples is too large to allocate", nil},
		{"batch whose byte count overflows", context.Background(), &fake{in: 1 << 40, classes: 1}, 1 << 40, with(func(o *MeasureOptions) { o.Outputs, o.Batches = 1, []int{1 << 21} }), "too large to allocate", nil},
		{"negative duration", context.Background(), &fake{in: 2, classes: 1}, 2, with(func(o *MeasureOptions) { o.Outputs, o.Duration = 1, -time.Second }), "negative duration", nil},
		{"sample", context.Background(), &fake{in: 2, classes: 1}, 2, with(func(o *MeasureOptions) { o.Outputs, o.Sample = 1, []float32{1, 2, 3} }), "sample of 3 values is not a whole number of 2-value examples", nil},
		{"forward", context.Background(), &fake{in: 2, classes: 1, err: boom}, 2, with(func(o *MeasureOptions) { o.Outputs = 1 }), "forward of a batch of 1: boom", boom},
		{"forward at batch 4", context.Background(), &fake{in: 2, classes: 1, err: boom, failAt: 4}, 2, with(func(o *MeasureOptions) { o.Outputs = 1 }), "forward of a batch of 4: boom", boom},
		{"cancelled", cancelled, &fake{in: 2, classes: 1}, 2, with(func(o *MeasureOptions) { o.Outputs = 1 }), "canceled", context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Measure(tc.ctx, tc.p, tc.in, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := Measure(context.Background(), nil, 2, quick); err == nil {
		t.Error("nil predictor: no error")
	}
}

func TestSummarize(t *testing.T) {
	msd := func(v ...float64) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x * float64(time.Millisecond))
		}
		return out
	}
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[99-i] = float64(i + 1) // 100, 99, …, 1: unsorted
	}
	for _, tc := range []struct {
		name                string
		ds                  []time.Duration
		p50, p95, p99, mean float64
	}{
		{"1..100 ms", msd(hundred...), 50, 95, 99, 50.5},
		{"three", msd(3, 1, 2), 2, 3, 3, 2},
		{"one", msd(4.5), 4.5, 4.5, 4.5, 4.5},
		{"none", nil, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.ds)
			got := Summarize(tc.ds)
			if !near(got.P50, tc.p50) || !near(got.P95, tc.p95) || !near(got.P99, tc.p99) || !near(got.Mean, tc.mean) {
				t.Errorf("Summarize = %+v, want %v %v %v %v", got, tc.p50, tc.p95, tc.p99, tc.mean)
			}
			if !slices.Equal(in, tc.ds) {
				t.Error("Summarize reordered its argument")
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		v    []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{5}, 5}} {
		if got := median(tc.v); got != tc.want {
			t.Errorf("median = %v, want %v", got, tc.want)
		}
	}
}

func TestParseVmHWM(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   int64
	}{
		{"Name:\tgo\nVmPeak:\t  900 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n", 1234 * 1024},
		{"Name:\tgo\n", 0},
		{"VmHWM:\t12 MB\n", 0},
		{"VmHWM:\tlots kB\n", 0},
	} {
		if got := parseVmHWM(strings.NewReader(tc.status)); got != tc.want {
			t.Errorf("parseVmHWM(%q) = %d, want %d", tc.status, got, tc.want)
		}
	}
}

func TestHost(t *testing.T) {
	h := Host("cpu")
	if h.OS != runtime.GOOS || h.Arch != runtime.GOARCH || h.CPUs != runtime.NumCPU() || h.GOMAXPROCS != runtime.GOMAXPROCS(0) || h.Device != "cpu" || h.GoVersion == "" {
		t.Errorf("Host = %+v", h)
	}
	if runtime.GOOS == "linux" && h.CPU == "" {
		t.Log("no model name in /proc/cpuinfo") // some architectures have none
	}
}
