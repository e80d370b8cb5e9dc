package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/quantize"
)

func tinySpec(t testing.TB) (model.Spec, model.Weights) {
	t.Helper()
	spec, err := model.MLP(model.MLPConfig{Name: "tiny", Input: []int{2, 2, 2}, Hidden: []int{16}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	return spec, w
}

func tinyProgram(t testing.TB) *infer.Program {
	t.Helper()
	spec, w := tinySpec(t)
	p, err := infer.Compile(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// slowModel delays every call, so that tests can fill the queue.
type slowModel struct {
	Model
	delay time.Duration
	calls atomic.Int64
	seen  atomic.Int64 // examples
}

func (m *slowModel) Forward(x []float32, n int, out []float32) error {
	m.calls.Add(1)
	m.seen.Add(int64(n))
	time.Sleep(m.delay)
	return m.Model.Forward(x, n, out)
}

// start serves s on a loopback port and returns its base URL; the
// server is shut down when the test ends.
func start(t *testing.T, s *Server) (string, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return "http://" + l.Addr().String(), done
}

func newServer(t *testing.T, m Model, cfg Config) *Server {
	t.Helper()
	s, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomInputs(rng *rand.Rand, n, size int) []float32 {
	x := make([]float32, n*size)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func jsonBody(x []float32, n int) []byte {
	size := len(x) / n
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = x[i*size : (i+1)*size]
	}
	b, _ := json.Marshal(map[string]any{"inputs": rows})
	return b
}

func post(t *testing.T, url, ct string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.Post(url, ct, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	return resp.StatusCode, b, resp.Header
}

func closeEnough(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-5*(1+math.Abs(float64(b[i]))) {
			return false
		}
	}
	return true
}

// TestConcurrentClients checks that answers to many concurrent requests,
// batched together in different ways, equal calling the program
// directly, in both body formats.
func TestConcurrentClients(t *testing.T) {
	p := tinyProgram(t)
	s := newServer(t, p, Config{MaxBatch: 8, MaxWait: time.Millisecond})
	url, _ := start(t, s)
	const clients, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for i := range each {
				n := 1 + rng.IntN(4)
				x := randomInputs(rng, n, p.InputSize())
				want := make([]float32, n*p.Classes())
				if err := p.Forward(x, n, want); err != nil {
					errs <- err
					return
				}
				var got []float32
				var classes []int
				if i%2 == 0 {
					resp, err := http.Post(url+"/v1/predict", "application/json", bytes.NewReader(jsonBody(x, n)))
					if err != nil {
						errs <- err
						return
					}
					var r predictResponse
					err = json.NewDecoder(resp.Body).Decode(&r)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						errs <- fmt.Errorf("JSON: status %d, %v", resp.StatusCode, err)
						return
					}
					for _, row := range r.Logits {
						got = append(got, row...)
					}
					classes = r.Classes
				} else {
					resp, err := http.Post(url+"/v1/predict", ContentTypeTensor, bytes.NewReader(tensorBody(x)))
					if err != nil {
						errs <- err
						return
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentTypeTensor {
						errs <- fmt.Errorf("binary: status %d, %v: %s", resp.StatusCode, err, b)
						return
					}
					for i := 0; i+4 <= len(b); i += 4 {
						got = append(got, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
					}
				}
				if !closeEnough(got, want) {
					errs <- fmt.Errorf("client %d request %d: logits %v, direct call %v", c, i, got, want)
					return
				}
				for e, k := range classes {
					row := want[e*p.Classes() : (e+1)*p.Classes()]
					for _, v := range row {
						if v > row[k] {
							errs <- fmt.Errorf("class %d is not the argmax of %v", k, row)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := counter(t, s, MetricRequests, "200"); got != clients*each {
		t.Errorf("%s{code=200} = %v, want %d", MetricRequests, got, clients*each)
	}
}

// counter reads a counter (or, with label "", a histogram's count) from
// the server's registry.
func counter(t *testing.T, s *Server, name, code string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if code != "" && !hasLabel(m, "code", code) {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				sum += float64(h.GetSampleCount())
			} else {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestOverload floods a slow model behind a tiny queue: the excess gets
// 503 with Retry-After, nothing crashes, every accepted request is
// computed once, and the server answers normally afterwards.
func TestOverload(t *testing.T) {
	m := &slowModel{Model: tinyProgram(t), delay: 20 * time.Millisecond}
	s := newServer(t, m, Config{MaxBatch: 1, MaxQueue: 2})
	url, _ := start(t, s)
	body := tensorBody(make([]float32, m.InputSize()))
	res, err := Load(context.Background(), url+"/v1/predict", LoadConfig{
		Requests: 60, Duration: 20 * time.Second, Concurrency: 30, Body: body, ContentType: ContentTypeTensor,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 {
		t.Errorf("%d requests got no answer, first: %v", res.Errors, res.FirstError)
	}
	if res.Status[http.StatusServiceUnavailable] == 0 || res.Status[http.StatusOK] == 0 {
		t.Errorf("statuses %v: want both 200 and 503 under overload", res.Status)
	}
	if res.Status[200]+res.Status[503] != 60 {
		t.Errorf("statuses %v: want only 200 and 503, 60 in all", res.Status)
	}
	if got := m.seen.Load(); got != int64(res.Status[200]) {
		t.Errorf("model computed %d examples for %d answered requests", got, res.Status[200])
	}
	// The 503 says when to come back.
	resp, err := http.Post(url+"/v1/predict", ContentTypeTensor, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the flood: status %d, want 200", resp.StatusCode)
	}
	// Fill the queue deterministically and check the header.
	s2 := newServer(t, &slowModel{Model: tinyProgram(t), delay: 200 * time.Millisecond}, Config{MaxBatch: 1, MaxQueue: 1})
	url2, _ := start(t, s2)
	var wg sync.WaitGroup
	for range 2 { // one running, one queued
		wg.Add(1)
		go func() {
			defer wg.Done()
			post(t, url2+"/v1/predict", ContentTypeTensor, body)
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s2.waiting.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	code, msg, h := post(t, url2+"/v1/predict", ContentTypeTensor, body)
	wg.Wait()
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(string(msg), "queue full") {
		t.Errorf("full queue: status %d, Retry-After %q, body %s; want 503 with Retry-After", code, h.Get("Retry-After"), msg)
	}
}

// TestBadRequests checks that every malformed request gets a 4xx with a
// message saying what is wrong, and never reaches the model.
func TestBadRequests(t *testing.T) {
	m := &slowModel{Model: tinyProgram(t)}
	s := newServer(t, m, Config{MaxBatch: 4, MaxBody: 1024})
	url, _ := start(t, s)
	in := m.InputSize()
	nan := make([]float32, 2*in)
	nan[in+3] = float32(math.NaN())
	inf := make([]float32, in)
	inf[5] = float32(math.Inf(-1))
	for _, c := range []struct {
		name, ct string
		body     []byte
		status   int
		msg      string
	}{
		{"malformed JSON", "application/json", []byte(`{"inputs": [[1, 2`), 400, "malformed JSON"},
		{"not JSON at all", "", []byte(`hello`), 400, "malformed JSON"},
		{"no inputs", "application/json", []byte(`{"input": [[1]]}`), 400, `no "inputs"`},
		{"no examples", "application/json", []byte(`{"inputs": []}`), 400, "no examples"},
		{"short example", "application/json", []byte(`{"inputs": [[1, 2, 3]]}`), 400, "inputs[0] has 3 values; the model takes 8"},
		{"second example long", "application/json", []byte(`{"inputs": [[0,0,0,0,0,0,0,0], [0,0,0,0,0,0,0,0,0]]}`), 400, "inputs[1] has 9 values"},
		{"string value", "application/json", []byte(`{"inputs": [[0,0,0,"x",0,0,0,0]]}`), 400, "inputs[0]: not an array of numbers"},
		{"beyond float32", "application/json", []byte(`{"inputs": [[0,0,0,1e999,0,0,0,0]]}`), 400, "outside float32's range"},
		{"binary not a multiple", ContentTypeTensor, make([]byte, 4*in+2), 400, "must be a positive multiple of 32"},
		{"binary empty", ContentTypeTensor, nil, 400, "binary body of 0 bytes"},
		{"binary NaN", ContentTypeTensor, tensorBody(nan), 400, "value 11 (example 1, index 3) is NaN"},
		{"binary Inf", ContentTypeTensor, tensorBody(inf), 400, "index 5) is -Inf"},
		{"too many examples", ContentTypeTensor, tensorBody(make([]float32, 5*in)), 413, "at most 4"},
		{"body too large", ContentTypeTensor, make([]byte, 2048), 413, "larger than 1024 bytes"},
		{"unknown content type", "text/csv", []byte("1,2"), 415, "Content-Type"},
	} {
		code, b, _ := post(t, url+"/v1/predict", c.ct, c.body)
		var e errorResponse
		if err := json.Unmarshal(b, &e); err != nil {
			t.Errorf("%s: answer %q is not a JSON error: %v", c.name, b, err)
		}
		if code != c.status || !strings.Contains(e.Error, c.msg) {
			t.Errorf("%s: status %d %q, want %d with %q", c.name, code, e.Error, c.status, c.msg)
		}
	}
	// Nested by the input shape [2, 2, 2] is accepted too.
	code, b, _ := post(t, url+"/v1/predict", "application/json", []byte(`{"inputs": [[[[1,2],[3,4]],[[5,6],[7,8]]]]}`))
	if code != 200 {
		t.Errorf("nested input: status %d: %s", code, b)
	}
	if m.seen.Load() != 1 {
		t.Errorf("the model saw %d examples; only the nested one was valid", m.seen.Load())
	}
	resp, err := http.Get(url + "/v1/predict")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/predict: %d, want 405", resp.StatusCode)
	}
}

// TestShutdownDuringLoad shuts the server down while clients keep
// sending: every request the server accepted is answered, the clients
// see exactly the answers the server counted, and Serve returns
// http.ErrServerClosed.
func TestShutdownDuringLoad(t *testing.T) {
	m := &slowModel{Model: tinyProgram(t), delay: 2 * time.Millisecond}
	s := newServer(t, m, Config{MaxBatch: 4})
	url, served := start(t, s)
	body := tensorBody(make([]float32, 2*m.InputSize()))
	type out struct {
		res LoadResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := Load(context.Background(), url+"/v1/predict", LoadConfig{
			Requests: 3000, Duration: 10 * time.Second, Concurrency: 16, Body: body, ContentType: ContentTypeTensor,
		})
		done <- out{res, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for m.calls.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	answered := 0
	for _, n := range o.res.Status {
		answered += n
	}
	if serverSide := counter(t, s, MetricRequests, ""); float64(answered) != serverSide {
		t.Errorf("clients got %d answers (%v), the server answered %v", answered, o.res.Status, serverSide)
	}
	if o.res.Status[200] == 0 {
		t.Errorf("no request succeeded before the shutdown: %v", o.res.Status)
	}
	if got := m.seen.Load(); got != int64(2*o.res.Status[200]) {
		t.Errorf("the model computed %d examples for %d answered requests of 2", got, o.res.Status[200])
	}
	// After shutdown, in-process calls are refused, not queued.
	if _, err := s.Predict(context.Background(), make([]float32, m.InputSize()), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Predict after Shutdown: %v, want ErrClosed", err)
	}
}

// TestShutdownHandlerOnly shuts down a server used only through its
// Handler: queued requests are answered before the workers stop.
func TestShutdownHandlerOnly(t *testing.T) {
	m := &slowModel{Model: tinyProgram(t), delay: 20 * time.Millisecond}
	s := newServer(t, m, Config{MaxBatch: 1})
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Predict(context.Background(), make([]float32, m.InputSize()), 1)
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.waiting.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d accepted before Shutdown: %v", i, err)
		}
	}
}

// TestPredictCancelled checks that a request whose context ends while
// queued returns the context's error and is never computed.
func TestPredictCancelled(t *testing.T) {
	m := &slowModel{Model: tinyProgram(t), delay: 100 * time.Millisecond}
	s := newServer(t, m, Config{MaxBatch: 1})
	defer s.Shutdown(context.Background())
	x := make([]float32, m.InputSize())
	go s.Predict(context.Background(), x, 1) // occupies the worker
	for m.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Predict(ctx, x, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Predict: %v, want context.DeadlineExceeded", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := m.seen.Load(); got != 1 {
		t.Errorf("the model computed %d examples; the cancelled one should have been skipped", got)
	}
}

// TestEndpoints checks /healthz, /v1/model and that /metrics exposes
// the serving metrics.
func TestEndpoints(t *testing.T) {
	s := newServer(t, tinyProgram(t), Config{Info: Info{Name: "tiny", Input: []int{2, 2, 2}, Precision: FP32}})
	url, _ := start(t, s)
	if code, _, _ := post(t, url+"/v1/predict", ContentTypeTensor, tensorBody(make([]float32, 8))); code != 200 {
		t.Fatalf("predict: %d", code)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := get("/healthz"); code != 200 || b != "ok\n" {
		t.Errorf("/healthz: %d %q", code, b)
	}
	code, b := get("/v1/model")
	var info Info
	if err := json.Unmarshal([]byte(b), &info); err != nil || code != 200 {
		t.Fatalf("/v1/model: %d %q: %v", code, b, err)
	}
	if info.Name != "tiny" || info.Classes != 3 || info.Precision != FP32 || fmt.Sprint(info.Input) != "[2 2 2]" {
		t.Errorf("/v1/model: %+v", info)
	}
	code, b = get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, name := range []string{MetricRequestDuration + "_bucket", MetricRequests + `{code="200"} 1`, MetricBatchSize + "_bucket", MetricForwardDuration, MetricQueueDepth + " 0", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(b, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestLoadProgram loads a float32 and an INT8 model file and checks the
// compiled programs and their descriptions.
func TestLoadProgram(t *testing.T) {
	spec, w := tinySpec(t)
	dir := t.TempDir()
	fp := filepath.Join(dir, "fp32")
	if err := model.Save(fp, spec, w); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	var calib [][]float32
	for range 32 {
		calib = append(calib, randomInputs(rng, 1, 8))
	}
	q, err := quantize.Quantize(context.Background(), spec, w, quantize.FromSlices(calib, 8), quantize.Config{})
	if err != nil {
		t.Fatal(err)
	}
	i8 := filepath.Join(dir, "int8")
	if err := q.Save(i8); err != nil {
		t.Fatal(err)
	}
	for path, prec := range map[string]string{fp: FP32, i8: INT8} {
		p, info, err := LoadProgram(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if info.Precision != prec || info.Name != "tiny" || info.Classes != 3 || p.InputSize() != 8 {
			t.Errorf("%s: %+v", path, info)
		}
	}
	if _, _, err := LoadProgram(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("missing file: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	p := tinyProgram(t)
	for _, cfg := range []Config{{MaxBatch: -1}, {MaxQueue: -1}, {MaxBody: -1}, {Workers: -1}} {
		if _, err := New(p, cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
	if _, err := Load(context.Background(), "http://127.0.0.1:1/", LoadConfig{}); err == nil {
		t.Error("Load without a bound: no error")
	}
}

// TestLoneRequestDoesNotWait: MaxWait only holds a batch for requests
// still being received, so a request alone is answered even with an
// hour's MaxWait, over HTTP and in-process.
func TestLoneRequestDoesNotWait(t *testing.T) {
	p := tinyProgram(t)
	s := newServer(t, p, Config{MaxWait: time.Hour})
	url, _ := start(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Predict(ctx, make([]float32, p.InputSize()), 1); err != nil {
		t.Fatalf("Predict: %v", err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(url+"/v1/predict", ContentTypeTensor, bytes.NewReader(tensorBody(make([]float32, p.InputSize()))))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	if got := s.arriving.Load(); got != 0 {
		t.Errorf("%d requests still counted as arriving after their answers", got)
	}
}

// TestLoneRequestsAndBatching: requests one at a time each run alone
// (one model call per request, none queued), while concurrent requests
// behind a busy model are still batched, one batch at a time.
func TestLoneRequestsAndBatching(t *testing.T) {
	m := &slowModel{Model: tinyProgram(t), delay: 5 * time.Millisecond}
	s := newServer(t, m, Config{MaxBatch: 16})
	x := make([]float32, m.InputSize())
	for range 5 {
		if _, err := s.Predict(context.Background(), x, 1); err != nil {
			t.Fatal(err)
		}
	}
	if m.calls.Load() != 5 || s.waiting.Load() != 0 {
		t.Fatalf("5 lone requests: %d model calls, %d waiting", m.calls.Load(), s.waiting.Load())
	}
	var wg sync.WaitGroup
	var running, most atomic.Int64
	tracked := &trackingModel{slowModel: m, running: &running, most: &most}
	s2 := newServer(t, tracked, Config{MaxBatch: 16})
	for range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s2.Predict(context.Background(), x, 1); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	calls := m.calls.Load() - 5
	if calls >= 48 || most.Load() != 1 {
		t.Errorf("48 concurrent requests: %d model calls (want batches), at most %d at once (want 1 with one worker)", calls, most.Load())
	}
}

// trackingModel records how many calls run at once.
type trackingModel struct {
	*slowModel
	running, most *atomic.Int64
}

func (m *trackingModel) Forward(x []float32, n int, out []float32) error {
	r := m.running.Add(1)
	defer m.running.Add(-1)
	for {
		old := m.most.Load()
		if r <= old || m.most.CompareAndSwap(old, r) {
			break
		}
	}
	return m.slowModel.Forward(x, n, out)
}
