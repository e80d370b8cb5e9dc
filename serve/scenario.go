package serve

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

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
	// Searches is how many times the rate is searched for; default 3.
	// The first search starts at MaxRate; each later one bisects a
	// bracket around the first's, with Steps-2 rates (at least 3). The
	// reported rate is the searches' median, and their lowest passing
	// rate and highest rate tried are its range: one search's bracket is
	// its resolution, not the noise between runs, which a single search
	// cannot see.
	Searches int
	// Sample holds examples (InputSize values each) that requests carry,
	// one per request; required.
	Sample []float32
	// Seed makes the arrival times reproducible.
	Seed uint64
}

// scenarioConnections caps the requests the server scenario's client
// keeps in flight (see MeasureServer).
const scenarioConnections = 256

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
	if cfg.Searches <= 0 {
		cfg.Searches = 3
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
	// The client keeps at most scenarioConnections requests in flight,
	// over connections it opens once and reuses from trial to trial, as
	// a load balancer's pool to a backend does; an arrival that finds
	// them all busy waits, and its latency counts from its scheduled
	// arrival. Allowed 4,096 (four times rate × bound, Little's law at
	// the bound), a trial past the server's capacity dialled thousands
	// of connections mid-trial, and accepting them halved the server's
	// throughput: whether a rate near capacity passed depended on
	// whether such a storm began, and a small MLP's figure varied by 44%
	// between measurements, at 60% of what it sustains with the cap.
	conc := int(math.Min(scenarioConnections, math.Max(64, 4*cfg.MaxRate*cfg.LatencyBound.Seconds())))
	lc, err := newLeanClient(url, ContentTypeTensor, body)
	if err != nil {
		return report.ServerScenario{}, fmt.Errorf("serve: server scenario: %w", err)
	}
	defer lc.close()
	var lastLatency report.Percentiles // of the latest trial
	try := func(rate float64) (bool, error) {
		lr := load(ctx, lc.post, LoadConfig{
			Rate: rate, Duration: cfg.Trial, Requests: int(rate*cfg.Trial.Seconds()) + 1,
			Concurrency: conc, Seed: cfg.Seed + uint64(len(res.Trials)),
		})
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
	// A search's outcome: the highest rate that passed (its latency
	// that of the last passing trial) and the lowest that failed.
	type outcome struct {
		passed, failed float64
		latency        report.Percentiles
	}
	// passes tries rate until it fails or has passed Confirm times.
	passes := func(o *outcome, rate float64) (bool, error) {
		for range cfg.Confirm {
			if ok, err := try(rate); !ok || err != nil {
				return false, err
			}
		}
		if rate > o.passed {
			o.passed, o.latency = rate, lastLatency
		}
		return true, nil
	}
	// search bisects [lo, hi] on a log scale in steps rates, trying hi
	// itself first when tryHi, else last if every rate passed. lo == 0
	// means no rate is known to pass: it steps down by 4× until one
	// does. When nothing passed, it steps down by 2× below the lowest
	// failure, at most steps more times.
	search := func(lo, hi float64, steps int, tryHi bool) (outcome, error) {
		var o outcome
		if tryHi {
			ok, err := passes(&o, hi)
			if err != nil || ok {
				return o, err
			}
			o.failed = hi
		}
		for range steps {
			mid := hi / 4
			if lo > 0 {
				mid = math.Sqrt(lo * hi)
			}
			ok, err := passes(&o, mid)
			if err != nil {
				return o, err
			}
			if ok {
				lo = mid
			} else {
				hi, o.failed = mid, mid
			}
		}
		if !tryHi && o.failed == 0 {
			// Every rate of the bracket passed: its top, untried so
			// far, bounds the range.
			ok, err := passes(&o, hi)
			if err != nil {
				return o, err
			}
			if !ok {
				o.failed = hi
			}
		}
		for range steps {
			if o.passed > 0 {
				break
			}
			if _, err := passes(&o, o.failed/2); err != nil {
				return o, err
			}
			if o.passed == 0 {
				o.failed /= 2
			}
		}
		return o, nil
	}

	first, err := search(0, cfg.MaxRate, cfg.Steps, true)
	if err != nil {
		return report.ServerScenario{}, err
	}
	outcomes := []outcome{first}
	dither := rand.New(rand.NewPCG(cfg.Seed, 0xd17e5))
	for range cfg.Searches - 1 {
		// The bracket around the first search's: half again above its
		// lowest failure and a third below its pass, never above
		// MaxRate, which no server beats.
		lo, hi := first.passed/1.5, cfg.MaxRate
		if first.failed > 0 {
			hi = min(hi, 1.5*first.failed)
		}
		if lo == 0 {
			lo = hi / 16
		}
		steps := max(cfg.Steps-2, 3)
		lo, hi = shiftBracket(lo, hi, steps, dither.Float64(), cfg.MaxRate)
		o, err := search(lo, hi, steps, false)
		if err != nil {
			return report.ServerScenario{}, err
		}
		outcomes = append(outcomes, o)
	}
	// The median search by its passing rate gives the figure.
	slices.SortFunc(outcomes, func(a, b outcome) int { return cmp.Compare(a.passed, b.passed) })
	mid := outcomes[(len(outcomes)-1)/2]
	res.RequestsPerSecond, res.FailedRequestsPerSecond, res.LatencyMS = mid.passed, mid.failed, mid.latency
	for _, o := range outcomes {
		res.Searches = append(res.Searches, report.ServerSearch{RequestsPerSecond: o.passed, FailedRequestsPerSecond: o.failed})
	}
	res.RequestsPerSecondLow, res.RequestsPerSecondHigh = searchRange(res.Searches, cfg.MaxRate, SearchSpread(res.Searches))
	res.Method = fmt.Sprintf("MLPerf-style server scenario: requests of one example sent as a Poisson process over HTTP on the loopback interface to distill's server (dynamic batching up to %d, waiting at most %v), %v per trial, %d trials in %d searches (the first from the highest rate down by bisection on a log scale, the others bisecting a bracket around the first's, each shifted by a random fraction of its last step); a rate passes when %d trials in a row each answer every request, at least 90%% of the offered rate, with the p99 latency from scheduled arrival to answer within %v. The figure is the median search's highest passing rate; the range holds every search's passing and failing rate and, where the searches disagree, the 95%% prediction interval of a repeated measurement (Student's t on the logarithms of the searches' bracket midpoints), never above the highest rate. The load generator shares the machine's cores with the server.",
		res.MaxBatch, srv.cfg.MaxWait, cfg.Trial, len(res.Trials), len(res.Searches), cfg.Confirm, cfg.LatencyBound)
	return res, nil
}

// shiftBracket shifts the bracket [lo, hi] that a search bisects in
// steps rates by the fraction u − ½ (u in [0, 1)) of its last step on
// the log scale, keeping hi at most maxRate. Each later search takes its
// own u, so that the searches do not all try one grid of rates: on one
// grid they often reported the same rate, their scatter read as zero,
// and the range was narrower than where a repeat's figure falls.
func shiftBracket(lo, hi float64, steps int, u, maxRate float64) (float64, float64) {
	shift := math.Exp((u - 0.5) * math.Log(hi/lo) / float64(int(1)<<steps))
	return lo * shift, min(hi*shift, maxRate)
}

// searchRange is the noise range of a server-scenario figure from its
// searches: where a repeated measurement's figure should fall.
//
// It holds every search's passing and failing rate, and the 95%
// prediction interval of the mean of as many new searches, with the
// scatter sp (the searches' own, or pooled over a report's models). The
// pass-fail brackets alone were one run's resolution: near capacity
// whether a rate passes is partly chance, so three searches often agree
// by luck, and a repeat of the whole measurement fell outside such a
// range for one pair of runs in six. No rate above maxRate, the offline
// throughput, is sustainable, so the range stops there.
func searchRange(searches []report.ServerSearch, maxRate float64, sp Spread) (low, high float64) {
	for _, s := range searches {
		if s.RequestsPerSecond > 0 && (low == 0 || s.RequestsPerSecond < low) {
			low = s.RequestsPerSecond
		}
		high = max(high, s.RequestsPerSecond, s.FailedRequestsPerSecond)
	}
	low, high = widen(low, high, searches, sp)
	if maxRate > 0 {
		high = min(high, maxRate)
	}
	return low, high
}

// Spread is how far a server scenario's searches scatter: the sum of
// squared deviations from their mean of the logarithm of each search's
// estimate (the geometric midpoint of its pass-fail bracket, or its
// pass when every rate passed), and its degrees of freedom. The spreads
// of several models measured in one run, on one machine by one method,
// add up to a pooled estimate with more degrees of freedom: three
// searches alone often agree by luck.
type Spread struct {
	SumSquares float64
	DF         int
}

// Add pools two spreads.
func (s Spread) Add(o Spread) Spread {
	return Spread{SumSquares: s.SumSquares + o.SumSquares, DF: s.DF + o.DF}
}

// SearchSpread is the spread of searches.
func SearchSpread(searches []report.ServerSearch) Spread {
	logs := searchLogs(searches)
	if len(logs) < 2 {
		return Spread{}
	}
	mean := stat.Mean(logs, nil)
	sp := Spread{DF: len(logs) - 1}
	for _, l := range logs {
		sp.SumSquares += (l - mean) * (l - mean)
	}
	return sp
}

// searchLogs is the logarithm of each search's estimate.
func searchLogs(searches []report.ServerSearch) []float64 {
	var logs []float64
	for _, s := range searches {
		switch {
		case s.RequestsPerSecond > 0 && s.FailedRequestsPerSecond > 0:
			logs = append(logs, 0.5*(math.Log(s.RequestsPerSecond)+math.Log(s.FailedRequestsPerSecond)))
		case s.RequestsPerSecond > 0:
			logs = append(logs, math.Log(s.RequestsPerSecond))
		}
	}
	return logs
}

// widen widens [low, high] to the 95% prediction interval of the mean
// of as many new searches as searches has estimates, around their mean,
// with the standard deviation of sp (Student's t with sp.DF degrees of
// freedom).
func widen(low, high float64, searches []report.ServerSearch, sp Spread) (float64, float64) {
	logs := searchLogs(searches)
	if len(logs) == 0 || sp.DF == 0 {
		return low, high
	}
	n := float64(len(logs))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(sp.DF)}.Quantile(0.975)
	half := t * math.Sqrt(sp.SumSquares/float64(sp.DF)) * math.Sqrt(2/n)
	mean := stat.Mean(logs, nil)
	if lo := math.Exp(mean - half); low == 0 || lo < low {
		low = lo
	}
	return low, max(high, math.Exp(mean+half))
}

// PoolRanges widens the noise range of each scenario (the server
// scenarios of one report, measured on one machine by one method) to
// hold the prediction interval that pooled, the scatter of every
// scenario's searches added (each measurement once), gives it as well
// as its own. Three searches of one model estimate their scatter
// poorly, too small when they agree by luck; the pooled estimate has
// more degrees of freedom. The wider of the two is kept because the
// models' scatter need not be the same, and because the machine's speed
// also drifts between runs, which neither sees. The highest rate is the
// scenario's first trial, the offline throughput.
func PoolRanges(scenarios []*report.ServerScenario, pooled Spread) {
	if pooled.DF == 0 {
		return
	}
	note := fmt.Sprintf(" The range also holds the prediction interval from the searches' scatter pooled over the report's server scenarios (%d degrees of freedom).", pooled.DF)
	for _, sc := range scenarios {
		if sc == nil || len(sc.Searches) == 0 || len(sc.Trials) == 0 {
			continue
		}
		maxRate := sc.Trials[0].RateRPS
		low, high := searchRange(sc.Searches, maxRate, SearchSpread(sc.Searches))
		sc.RequestsPerSecondLow, sc.RequestsPerSecondHigh = widen(low, high, sc.Searches, pooled)
		sc.RequestsPerSecondHigh = min(sc.RequestsPerSecondHigh, maxRate)
		if !strings.Contains(sc.Method, note) {
			sc.Method += note
		}
	}
}

// tensorBody encodes x as the binary request body (ContentTypeTensor).
func tensorBody(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
