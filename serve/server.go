package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxBatch = 64
	DefaultMaxQueue = 1024
	DefaultMaxBody  = 8 << 20
	DefaultMaxWait  = 2 * time.Millisecond
)

// Config sets the server's limits. The zero value is usable.
type Config struct {
	// MaxBatch caps the examples in one Forward call and in one request
	// (larger requests get 413). Default 64.
	MaxBatch int
	// MaxWait is the longest a batch that is not full waits for
	// requests the server is still receiving; a request alone never
	// waits. 0 means DefaultMaxWait; negative: never wait.
	MaxWait time.Duration
	// MaxQueue caps the requests waiting for a worker; beyond it
	// requests get 503 with Retry-After. Default 1024.
	MaxQueue int
	// MaxBody caps a request body in bytes (413 beyond). Default 8 MiB.
	MaxBody int64
	// Workers is the number of batches run at once. Default 1: the
	// runtime already spreads one batch over the cores.
	Workers int
	// Info is what GET /v1/model reports.
	Info Info
	// Logger receives errors the client cannot see; nil discards them.
	Logger *slog.Logger
}

// Errors Predict returns; the HTTP handler maps them to status codes.
var (
	// ErrOverloaded: the queue is full (HTTP 503 with Retry-After).
	ErrOverloaded = errors.New("serve: queue full, retry later")
	// ErrClosed: the server is shutting down (HTTP 503).
	ErrClosed = errors.New("serve: server is shutting down")
)

// InputError is a request the client must fix; Status is the HTTP status
// it maps to (400 or 413).
type InputError struct {
	Status int
	Msg    string
}

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(status int, format string, a ...any) *InputError {
	return &InputError{Status: status, Msg: fmt.Sprintf(format, a...)}
}

// Server batches requests for one Model. Create it with New; it must be
// shut down with Shutdown.
type Server struct {
	m       Model
	cfg     Config
	log     *slog.Logger
	met     *metrics
	handler http.Handler

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *job
	busy   sync.WaitGroup // workers
	// slots holds a token for each batch running, at most Workers: a
	// worker takes one to run a batch, and so does a lone request run
	// on its own goroutine (runAlone).
	slots  chan struct{}
	inline sync.WaitGroup // lone requests running on their handlers
	// waiting counts the requests accepted into the queue and not yet
	// running.
	waiting atomic.Int64

	httpMu sync.Mutex
	https  []*http.Server

	arriving atomic.Int64 // /v1/predict requests being read, not yet queued
	answered atomic.Int64 // /v1/predict answers written, any status

	shutdownOnce sync.Once
	shutdownDone chan struct{}
	shuttingDown atomic.Bool
}

// New starts the workers of a server for m.
func New(m Model, cfg Config) (*Server, error) {
	if m == nil {
		return nil, errors.New("serve: nil model")
	}
	if m.InputSize() <= 0 || m.Classes() <= 0 {
		return nil, fmt.Errorf("serve: model has input size %d and %d classes; both must be positive", m.InputSize(), m.Classes())
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	switch {
	case cfg.MaxBatch < 0:
		return nil, fmt.Errorf("serve: max batch %d: must be positive", cfg.MaxBatch)
	case cfg.MaxQueue < 0:
		return nil, fmt.Errorf("serve: max queue %d: must be positive", cfg.MaxQueue)
	case cfg.MaxBody < 0:
		return nil, fmt.Errorf("serve: max body %d: must be positive", cfg.MaxBody)
	case cfg.Workers < 0:
		return nil, fmt.Errorf("serve: workers %d: must be positive", cfg.Workers)
	}
	if cfg.Info.Classes == 0 {
		cfg.Info.Classes = m.Classes()
	}
	if cfg.Info.Input == nil {
		cfg.Info.Input = []int{m.InputSize()}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		m:            m,
		cfg:          cfg,
		log:          log,
		queue:        make(chan *job, cfg.MaxQueue),
		slots:        make(chan struct{}, cfg.Workers),
		shutdownDone: make(chan struct{}),
	}
	s.met = newMetrics(cfg.MaxBatch, func() float64 { return float64(s.waiting.Load()) })
	s.handler = s.routes()
	for range cfg.Workers {
		s.busy.Add(1)
		go s.work()
	}
	return s, nil
}

// Registry is the server's own Prometheus registry (served at /metrics).
func (s *Server) Registry() *prometheus.Registry { return s.met.reg }

// Answered is the number of /v1/predict requests answered so far, any
// status; after Shutdown it is final, so that a caller can check it
// against what its clients received.
func (s *Server) Answered() int64 { return s.answered.Load() }

// Handler serves the endpoints listed in the package documentation.
func (s *Server) Handler() http.Handler { return s.handler }

// Predict runs n examples (x holds n × InputSize values) through the
// batcher and returns their n × Classes logits. It returns
// ErrOverloaded when the queue is full, ErrClosed after Shutdown began,
// an *InputError for a malformed batch, or ctx's error if ctx ends
// first (the examples are then dropped if not yet running).
func (s *Server) Predict(ctx context.Context, x []float32, n int) ([]float32, error) {
	return s.submit(ctx, x, n, nil)
}

// submit is Predict; for a request counted in s.arriving, it sets
// *queued and takes it out of the count as soon as it is in the queue
// (or refused), so that a worker never misses it in both places.
func (s *Server) submit(ctx context.Context, x []float32, n int, queued *bool) ([]float32, error) {
	if err := s.check(x, n); err != nil {
		return nil, err
	}
	// A request alone in the server runs at once on its own goroutine:
	// handing it to a worker and back costs two goroutine wake-ups,
	// tens of µs on a busy machine, for no batching in return.
	if out, ok, err := s.runAlone(ctx, x, n, queued); ok {
		return out, err
	}
	j := &job{x: x, n: n, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	// waiting, not the channel, bounds the queue: a worker holds the
	// first job of its next batch while a lone request runs, and that
	// job still waits.
	if s.waiting.Add(1) > int64(s.cfg.MaxQueue) {
		s.waiting.Add(-1)
		s.mu.RUnlock()
		return nil, ErrOverloaded
	}
	s.queue <- j // never blocks: the channel holds MaxQueue, at most that many wait
	s.mu.RUnlock()
	if queued != nil {
		s.arriving.Add(-1)
		*queued = true
	}
	select {
	case err := <-j.done:
		return j.out, err
	case <-ctx.Done():
		// The worker skips a cancelled job it has not started; one it
		// has started finishes into j.out, which nobody reads.
		j.cancelled.Store(true)
		return nil, ctx.Err()
	}
}

// runAlone runs x on the calling goroutine when nothing else is in the
// server: no request queued, none other being received, and a batch
// slot free. ok is false when the request must go through the queue.
func (s *Server) runAlone(ctx context.Context, x []float32, n int, queued *bool) (out []float32, ok bool, err error) {
	others := s.arriving.Load()
	if queued != nil {
		others-- // the request itself is counted while it is received
	}
	if others > 0 || s.waiting.Load() > 0 {
		return nil, false, nil
	}
	select {
	case s.slots <- struct{}{}:
	default:
		return nil, false, nil // a batch is running: join the next one
	}
	defer func() { <-s.slots }()
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, true, ErrClosed
	}
	s.inline.Add(1) // under mu: Shutdown, which closes under mu, waits for it
	s.mu.RUnlock()
	defer s.inline.Done()
	if queued != nil {
		s.arriving.Add(-1)
		*queued = true
	}
	if err := ctx.Err(); err != nil {
		return nil, true, err
	}
	out = make([]float32, n*s.m.Classes())
	return out, true, s.forward(x, n, out)
}

func (s *Server) check(x []float32, n int) error {
	in := s.m.InputSize()
	switch {
	case n <= 0:
		return inputErrorf(http.StatusBadRequest, "no examples: send at least one")
	case n > s.cfg.MaxBatch:
		return inputErrorf(http.StatusRequestEntityTooLarge, "%d examples in one request; this server takes at most %d (--max-batch): split the request", n, s.cfg.MaxBatch)
	case len(x) != n*in:
		return inputErrorf(http.StatusBadRequest, "%d values for %d examples; each example has %d", len(x), n, in)
	}
	return nil
}

// Serve accepts connections on l until Shutdown; like http.Server.Serve
// it returns http.ErrServerClosed after a graceful shutdown.
func (s *Server) Serve(l net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.httpMu.Lock()
	if s.shuttingDown.Load() {
		s.httpMu.Unlock()
		return http.ErrServerClosed
	}
	s.https = append(s.https, hs)
	s.httpMu.Unlock()
	return hs.Serve(l)
}

// Shutdown stops accepting requests, answers every request already
// accepted (in flight or queued), then stops the workers. If ctx ends
// first, it returns ctx's error and the workers finish in the
// background.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.httpMu.Lock()
		s.shuttingDown.Store(true)
		servers := s.https
		s.httpMu.Unlock()
		go func() {
			// http.Server.Shutdown closes the listeners and waits
			// for the handlers, which wait for the workers; the
			// queue closes only after, so that none of them is
			// refused with ErrClosed.
			for _, hs := range servers {
				if err := hs.Shutdown(context.Background()); err != nil {
					s.log.Warn("serve: http shutdown", "err", err)
				}
			}
			s.mu.Lock()
			s.closed = true
			close(s.queue)
			s.mu.Unlock()
			s.busy.Wait()
			s.inline.Wait()
			close(s.shutdownDone)
		}()
	})
	select {
	case <-s.shutdownDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
