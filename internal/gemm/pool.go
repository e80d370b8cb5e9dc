package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A product's parts run on persistent workers rather than on goroutines
// spawned per call: at batch 1 a layer takes tens of microseconds, about
// what waking a fresh goroutine on another core costs (the runtime has to
// wake a parked thread), so spawned helpers often arrived after the
// caller had finished its own half. Workers spin for a while after each
// job, so the next layer's parts start at once, then park.
//
// Parts are claimed from a shared counter by the caller and the workers
// alike, so a worker that is late (parked, or descheduled on a shared
// machine) costs nothing: the caller takes its parts.

// spinFor is how long an idle worker polls for the next job before it
// parks: longer than the gap between a forward pass's layers, short
// enough that a worker with nothing to do soon yields its core (on a
// machine shared with other processes, a core spent polling is one the
// caller's own thread may be waiting for). A caller that has run out of
// parts polls for the workers' for twice the time its own parts took
// each, within [minWaitSpin, maxWaitSpin], then blocks: a worker's part
// in flight normally ends within one part's time, and blocking then would
// add a thread wake-up to every layer; a worker that takes much longer
// has lost its core, and the caller's may serve it better.
const (
	spinFor     = 50 * time.Microsecond
	minWaitSpin = 20 * time.Microsecond
	maxWaitSpin = 200 * time.Microsecond
)

// job is one product split into n parts; part(i) computes part i.
type job struct {
	part func(i int)
	n    int32
	next atomic.Int32 // parts claimed
	done atomic.Int32 // parts finished
	wg   sync.WaitGroup
}

// work claims and runs parts until none are left and returns how many
// it ran.
func (j *job) work() int {
	ran := 0
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return ran
		}
		j.part(int(i))
		ran++
		j.done.Add(1)
		j.wg.Done()
	}
}

type worker struct {
	sleeping atomic.Bool
	wake     chan struct{} // capacity 1: a pending wake-up is never lost
}

var pool struct {
	mu      sync.Mutex // held by the one caller whose job the workers serve
	cur     atomic.Pointer[job]
	workers []*worker // grown under mu
}

// runParts runs part(0) … part(n−1) on the calling goroutine and up to
// threads−1 pool workers and returns when all have finished. A caller
// that finds the pool busy with another product spawns goroutines
// instead.
func runParts(threads, n int, part func(i int)) {
	threads = min(threads, n)
	if threads <= 1 {
		for i := range n {
			part(i)
		}
		return
	}
	j := &job{part: part, n: int32(n)}
	j.wg.Add(n)
	if !pool.mu.TryLock() {
		for range threads - 1 {
			go j.work()
		}
		j.work()
		j.wg.Wait()
		return
	}
	defer pool.mu.Unlock()
	for len(pool.workers) < threads-1 {
		w := &worker{wake: make(chan struct{}, 1)}
		pool.workers = append(pool.workers, w)
		go w.loop(pool.cur.Load())
	}
	pool.cur.Store(j)
	// Workers beyond threads−1 may see the job too if they are polling;
	// only the ones needed are woken.
	for _, w := range pool.workers[:threads-1] {
		if w.sleeping.Load() {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	start := time.Now()
	ran := j.work()
	// Parts still running were claimed by workers that are running them:
	// poll (see maxWaitSpin), then block, which frees this core for them.
	limit := minWaitSpin
	if ran > 0 {
		limit = min(max(2*time.Since(start)/time.Duration(ran), minWaitSpin), maxWaitSpin)
	}
	start = time.Now()
	for spins := 0; j.done.Load() < j.n; spins++ {
		if spins&255 == 255 && time.Since(start) > limit {
			j.wg.Wait()
			break
		}
	}
	j.part = nil // no one reads it now; workers keep j until the next job
}

// loop serves jobs: last is the job it saw last (a fresh one is any
// other pointer; jobs are never reused).
func (w *worker) loop(last *job) {
	for {
		j := w.await(last)
		last = j
		j.work()
	}
}

// await returns the next job after last: it polls for spinFor, then
// parks until runParts wakes it. The store of sleeping and the load of
// cur here, and the store of cur and the load of sleeping in runParts,
// are sequentially consistent, so either this worker sees the new job or
// runParts sees it sleeping and sends the wake-up.
func (w *worker) await(last *job) *job {
	start := time.Now()
	// With one P, polling would keep the caller from running: yield.
	// Otherwise spin without entering the scheduler, whose locks the
	// caller's goroutine also takes.
	yield := runtime.GOMAXPROCS(0) == 1
	for spins := 0; ; spins++ {
		if j := pool.cur.Load(); j != last {
			return j
		}
		if spins&255 == 255 {
			if time.Since(start) > spinFor {
				break
			}
			if yield {
				runtime.Gosched()
			}
		}
	}
	for {
		w.sleeping.Store(true)
		if j := pool.cur.Load(); j != last {
			w.sleeping.Store(false)
			return j
		}
		<-w.wake
		w.sleeping.Store(false)
		if j := pool.cur.Load(); j != last {
			return j
		}
	}
}

// ThreadsFor is how many goroutines work of that many INT8 (int8 true)
// or FP32 multiply-adds is worth: as a single product of that size would
// use (see SetParallelMin), at least 1 and at most Threads.
func ThreadsFor(work int, int8 bool) int {
	minWork := f32ParMin.Load()
	if int8 {
		minWork = i8ParMin.Load()
	}
	return min(maxThreads(), max(1, work/int(max(minWork, 1))))
}

// Parallel runs part(0) … part(n−1) on the calling goroutine and up to
// threads−1 of the pool's workers, as products split their parts, and
// returns when all have finished. It lets a caller run a whole layer's
// parts (packing, several small products, their epilogues) on the
// workers at once; the products inside a part should be the Serial
// variants, which use no other goroutine.
func Parallel(threads, n int, part func(i int)) {
	runParts(min(threads, maxThreads()), n, part)
}
