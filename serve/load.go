package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// LoadConfig describes a load test. It is bounded: Requests, Duration
// or both must be set, and it stops at whichever comes first.
type LoadConfig struct {
	// Rate is the mean arrival rate in requests per second, arrivals
	// a Poisson process (exponential gaps). 0: closed loop, each of
	// Concurrency clients sends its next request when answered.
	Rate float64
	// Requests caps the requests sent.
	Requests int
	// Duration caps the time spent sending.
	Duration time.Duration
	// Concurrency caps the requests outstanding at once. Default 1.
	// With Rate set, an arrival finding all slots taken waits, and its
	// latency counts from its scheduled arrival (no coordinated
	// omission).
	Concurrency int
	// Body and ContentType are sent with every POST.
	Body        []byte
	ContentType string
	// Client sends the requests through net/http; nil uses Load's own
	// lean HTTP/1.1 client (plain http:// only), which keeps one
	// connection per outstanding request open and costs the machine
	// far less per request than net/http's, as a load generator on the
	// server's own cores must.
	Client *http.Client
	// Seed makes the arrival times reproducible.
	Seed uint64
}

// LoadResult is what a load test saw from the client side.
type LoadResult struct {
	// Latencies of the answered requests with status 200, in order of
	// completion.
	Latencies []time.Duration
	// Status counts answers by HTTP status code.
	Status map[int]int
	// Errors counts requests that got no HTTP answer (connection
	// refused or reset); FirstError is the first of them.
	Errors     int
	FirstError error
	// Elapsed is the time from the first request to the last answer.
	Elapsed time.Duration
}

// Throughput is the answered (status 200) requests per second.
func (r LoadResult) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)) / r.Elapsed.Seconds()
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of the 200 latencies, 0
// if there are none.
func (r LoadResult) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.Latencies)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[max(0, min(i, len(s)-1))]
}

// Load sends POST requests to url as cfg says and returns what it saw.
// It returns an error only for a bad configuration; failed requests are
// counted in the result. Cancelling ctx stops it early.
func Load(ctx context.Context, url string, cfg LoadConfig) (LoadResult, error) {
	if cfg.Requests <= 0 && cfg.Duration <= 0 {
		return LoadResult{}, errors.New("serve: load test unbounded: set Requests, Duration or both")
	}
	if cfg.Requests < 0 || cfg.Duration < 0 || cfg.Rate < 0 || cfg.Concurrency < 0 {
		return LoadResult{}, fmt.Errorf("serve: load test: negative setting in %+v", cfg)
	}
	// post sends one request and returns the answer's status.
	var post func() (int, error)
	if client := cfg.Client; client != nil {
		if _, err := http.NewRequest(http.MethodPost, url, nil); err != nil {
			return LoadResult{}, fmt.Errorf("serve: load test: %w", err)
		}
		post = func() (int, error) {
			req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, url, bytes.NewReader(cfg.Body))
			if err != nil {
				return 0, err
			}
			if cfg.ContentType != "" {
				req.Header.Set("Content-Type", cfg.ContentType)
			}
			resp, err := client.Do(req)
			if err != nil {
				return 0, err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, err
		}
	} else {
		lc, err := newLeanClient(url, cfg.ContentType, cfg.Body)
		if err != nil {
			return LoadResult{}, fmt.Errorf("serve: load test: %w", err)
		}
		defer lc.close()
		post = lc.post
	}
	return load(ctx, post, cfg), nil
}

// load runs the load test cfg describes (already checked) with post as
// the sender. A caller that runs several tests against one server may
// pass one lean client's post to all of them, so that the connections
// one test opened serve the next rather than being dialled again.
func load(ctx context.Context, post func() (int, error), cfg LoadConfig) LoadResult {
	conc := max(cfg.Concurrency, 1)
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var (
		mu  sync.Mutex
		res = LoadResult{Status: map[int]int{}}
	)
	send := func(scheduled time.Time) {
		status, err := post()
		lat := time.Since(scheduled)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			res.Errors++
			if res.FirstError == nil {
				res.FirstError = err
			}
		default:
			res.Status[status]++
			if status == http.StatusOK {
				res.Latencies = append(res.Latencies, lat)
			}
		}
	}

	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5e7e))
	slots := make(chan struct{}, conc)
	var wg sync.WaitGroup
	start := time.Now()
	next := start
	for i := 0; cfg.Requests == 0 || i < cfg.Requests; i++ {
		if cfg.Rate > 0 {
			if i > 0 {
				next = next.Add(time.Duration(rng.ExpFloat64() / cfg.Rate * float64(time.Second)))
			}
			if d := time.Until(next); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		scheduled := next
		if cfg.Rate == 0 {
			scheduled = time.Now()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			send(scheduled)
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}
