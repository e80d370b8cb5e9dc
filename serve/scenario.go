package serve

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/report"
)

// ScenarioConfig configures MeasureServer.
type ScenarioConfig struct {
	// LatencyBound bounds the p99 request latency; required.
	LatencyBound time.Duration
	// MaxRate is the highest rate tried, in requests per second: the
	// model's offline throughput is a natural choice, since no server
	// beats it. Required.
	MaxRate float64
	// MaxBatch and MaxWait configure the server's dynamic batching
	// (Config's defaults when 0).
	MaxBatch int
	MaxWait  time.Duration
	// Trial is how long each rate is offered; default 1 s.
	Trial time.Duration
	// Steps is how many rates the search tries after MaxRate; default 6.
	Steps int
	// Confirm is how many trials in a row a rate must pass; default 2.
	// One lucky trial (no scheduler or GC pause landed in it) would
	// otherwise let a rate pass that the next run fails, and the figure
	// would vary between runs by more than its range.
	Confirm int
	// Sample holds examples (InputSize values each) that requests carry,
	// one per request; required.
	Sample []float32
	// Seed makes the arrival times reproducible.
	Seed uint64
}

// MeasureServer measures m in MLPerf Inference's server scenario: it
// serves m with a Server on the loopback interface and offers it
// requests of one example as a Poisson process, through HTTP as real
// clients would, first at MaxRate and then, by bisection on a log scale,
// at the rates between the highest that passed and the lowest that
// failed. A rate passes when every request is answered with 200, the
// server keeps up (answers at least 90% of the offered rate) and the p99
// latency, counted from each request's scheduled arrival, is within the
// bound. The client runs in this process, on the same cores as the
// server, as in a single-machine MLPerf run; the Method says so.
func MeasureServer(ctx context.Context, m Model, cfg ScenarioConfig) (report.ServerScenario, error) {
	switch {
	case cfg.LatencyBound <= 0:
		return report.ServerScenario{}, errors.New("serve: server scenario needs a positive latency bound")
	case !(cfg.MaxRate > 0) || math.IsInf(cfg.MaxRate, 0):
		return report.ServerScenario{}, fmt.Errorf("serve: server scenario needs a positive highest rate, got %v", cfg.MaxRate)
	case m == nil || m.InputSize() <= 0 || len(cfg.Sample) < m.InputSize() || len(cfg.Sample)%m.InputSize() != 0:
		return report.ServerScenario{}, errors.New("serve: server scenario needs sample examples of the model's input size")
	}
	if cfg.Trial <= 0 {
		cfg.Trial = time.Second
	}
	if cfg.Steps <= 0 {
		cfg.Steps = 6
	}
	if cfg.Confirm <= 0 {
		cfg.Confirm = 2
	}
	srv, err := New(m, Config{MaxBatch: cfg.MaxBatch, MaxWait: cfg.MaxWait})
	if err != nil {
		return report.ServerScenario{}, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return report.ServerScenario{}, fmt.Errorf("serve: server scenario: listen on loopback: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-served
	}()
	url := "http://" + l.Addr().String() + "/v1/predict"
	body := tensorBody(cfg.Sample[:m.InputSize()])

	res := report.ServerScenario{
		MaxBatch: srv.cfg.MaxBatch, MaxWaitMS: float64(srv.cfg.MaxWait) / float64(time.Millisecond),
		LatencyBoundMS: float64(cfg.LatencyBound) / float64(time.Millisecond),
	}
	// Concurrency bounds the requests in flight: enough that a server
	// within the bound is never starved by the client (rate × bound,
	// Little's law, with margin), few enough to keep the client cheap.
	conc := int(math.Min(4096, math.Max(64, 4*cfg.MaxRate*cfg.LatencyBound.Seconds())))
	var lastLatency report.Percentiles // of the latest trial
	try := func(rate float64) (bool, error) {
		lr, err := Load(ctx, url, LoadConfig{
			Rate: rate, Duration: cfg.Trial, Requests: int(rate*cfg.Trial.Seconds()) + 1,
			Concurrency: conc, Body: body, ContentType: ContentTypeTensor, Seed: cfg.Seed + uint64(len(res.Trials)),
		})
		if err != nil {
			return false, err
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		sent := lr.Errors
		for _, n := range lr.Status {
			sent += n
		}
		failed := sent - lr.Status[http.StatusOK]
		p := cost.Summarize(lr.Latencies)
		t := report.ServerTrial{RateRPS: rate, AchievedRPS: lr.Throughput(), Requests: sent, Failed: failed, P99MS: p.P99}
		t.Passed = failed == 0 && len(lr.Latencies) > 0 && t.AchievedRPS >= 0.9*rate && p.P99 <= res.LatencyBoundMS
		res.Trials = append(res.Trials, t)
		lastLatency = p
		return t.Passed, nil
	}
	// passes tries rate until it fails or has passed Confirm times; the
	// latency reported is its last trial's.
	passes := func(rate float64) (bool, error) {
		for range cfg.Confirm {
			if ok, err := try(rate); !ok || err != nil {
				return false, err
			}
		}
		if rate > res.RequestsPerSecond {
			res.RequestsPerSecond, res.LatencyMS = rate, lastLatency
		}
		return true, nil
	}
	lo, hi := 0.0, cfg.MaxRate
	ok, err := passes(hi)
	if err != nil {
		return report.ServerScenario{}, err
	}
	if !ok {
		res.FailedRequestsPerSecond = hi
		for range cfg.Steps {
			// The geometric mean halves the log-range; with nothing
			// passed yet, step down by 4× to find a rate that does.
			mid := hi / 4
			if lo > 0 {
				mid = math.Sqrt(lo * hi)
			}
			ok, err := passes(mid)
			if err != nil {
				return report.ServerScenario{}, err
			}
			if ok {
				lo = mid
			} else {
				hi = mid
				res.FailedRequestsPerSecond = mid
			}
		}
	}
	res.Method = fmt.Sprintf("MLPerf-style server scenario: requests of one example sent as a Poisson process over HTTP on the loopback interface to distill's server (dynamic batching up to %d, waiting at most %v), %v per trial, %d trials (the highest rate first, then bisection on a log scale); a rate passes when %d trials in a row each answer every request, at least 90%% of the offered rate, with the p99 latency from scheduled arrival to answer within %v. The load generator shares the machine's cores with the server.",
		res.MaxBatch, srv.cfg.MaxWait, cfg.Trial, len(res.Trials), cfg.Confirm, cfg.LatencyBound)
	return res, nil
}

// tensorBody encodes x as the binary request body (ContentTypeTensor).
func tensorBody(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
