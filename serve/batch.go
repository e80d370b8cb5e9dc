package serve

import (
	"fmt"
	"sync/atomic"
	"time"
)

// job is one request's examples on their way through a worker.
type job struct {
	x         []float32
	n         int
	out       []float32
	done      chan error // buffered: the worker never blocks on it
	cancelled atomic.Bool
}

// work runs batches until the queue is closed and drained.
func (s *Server) work() {
	defer s.busy.Done()
	in, classes := s.m.InputSize(), s.m.Classes()
	x := make([]float32, 0, s.cfg.MaxBatch*in)
	out := make([]float32, s.cfg.MaxBatch*classes)
	var batch []*job
	var next *job // taken from the queue but did not fit the last batch
	var timer *time.Timer
	for {
		first := next
		next = nil
		if first == nil {
			j, ok := <-s.queue
			if !ok {
				return
			}
			first = j
		}
		// Wait for a lone request running on its handler before filling
		// the batch, so that what arrives meanwhile joins it.
		s.slots <- struct{}{}
		batch = append(batch[:0], first)
		n := first.n
		// Take what is queued now. While the batch is not full and
		// other requests are still being received, wait up to MaxWait
		// for them: under load that is what fills batches (the model
		// call starves the handlers of CPU, so the queue alone is
		// often empty), while a lone request runs at once.
		var deadline <-chan time.Time
	fill:
		for n < s.cfg.MaxBatch {
			var j *job
			var ok bool
			select {
			case j, ok = <-s.queue:
			default:
				if s.cfg.MaxWait <= 0 || s.arriving.Load() == 0 {
					break fill
				}
				if deadline == nil {
					if timer == nil {
						timer = time.NewTimer(s.cfg.MaxWait)
					} else {
						timer.Reset(s.cfg.MaxWait)
					}
					deadline = timer.C
				}
				select {
				case j, ok = <-s.queue:
				case <-deadline:
					deadline = nil
					break fill
				}
			}
			if !ok {
				break
			}
			if n+j.n > s.cfg.MaxBatch {
				next = j
				break
			}
			batch = append(batch, j)
			n += j.n
		}
		if deadline != nil {
			timer.Stop() // since Go 1.23 no stale tick survives Stop
		}
		s.run(batch, x, out)
		<-s.slots
	}
}

// run computes one batch and hands each job its logits.
func (s *Server) run(batch []*job, x, out []float32) {
	s.waiting.Add(-int64(len(batch)))
	in, classes := s.m.InputSize(), s.m.Classes()
	x = x[:0]
	live := batch[:0]
	for _, j := range batch {
		if j.cancelled.Load() {
			j.done <- errCancelled
			continue
		}
		x = append(x, j.x...)
		live = append(live, j)
	}
	n := len(x) / in
	if n == 0 {
		return
	}
	err := s.forward(x, n, out[:n*classes])
	off := 0
	for _, j := range live {
		if err == nil {
			j.out = append([]float32(nil), out[off*classes:(off+j.n)*classes]...)
		}
		off += j.n
		j.done <- err
	}
}

// forward runs one model call of n examples, with its metrics.
func (s *Server) forward(x []float32, n int, out []float32) error {
	s.met.batchSize.Observe(float64(n))
	start := time.Now()
	var err error
	if m, ok := s.m.(inliner); ok {
		err = m.ForwardInline(x, n, out)
	} else {
		err = s.m.Forward(x, n, out)
	}
	s.met.forward.Observe(time.Since(start).Seconds())
	if err != nil {
		err = fmt.Errorf("serve: model: %w", err)
		s.log.Error("serve: forward failed", "examples", n, "err", err)
	}
	return err
}

// inliner is a model that can leave the cores to the server's other
// goroutines for small batches (infer.Program.ForwardInline).
type inliner interface {
	ForwardInline(x []float32, n int, out []float32) error
}

var errCancelled = fmt.Errorf("serve: request cancelled")
