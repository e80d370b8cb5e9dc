//go:build torch

package torch

// #cgo LDFLAGS: -ldl
// #include <stdlib.h>
// #include <dlfcn.h>
// #ifdef __GLIBC__
// #include <malloc.h>
// #endif
//
// // distill_tune_malloc sets glibc's mmap and trim thresholds. It returns
// // 0 on success, 1 without glibc, -1 if glibc refused a value.
// static int distill_tune_malloc(int mmap, int trim) {
// #ifdef __GLIBC__
// 	if (!mallopt(M_MMAP_THRESHOLD, mmap) || !mallopt(M_TRIM_THRESHOLD, trim)) return -1;
// 	return 0;
// #else
// 	return 1;
// #endif
// }
//
// // at::set_num_threads and at::get_num_threads have no wrapper in gotch's C
// // API; they are plain C++ functions of libtorch_cpu, already loaded.
// static int distill_set_num_threads(int n) {
// 	void (*f)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "_ZN2at15set_num_threadsEi");
// 	if (f == NULL) return -1;
// 	f(n);
// 	return 0;
// }
// static int distill_get_num_threads(void) {
// 	int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "_ZN2at15get_num_threadsEv");
// 	if (f == NULL) return -1;
// 	return f();
// }
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"
)

// ErrClosed is returned by every method of a backend, model or trainer used
// after Close.
var ErrClosed = errors.New("torch backend: use after Close")

// engine runs every libtorch call of one backend on one goroutine locked to
// its OS thread. libtorch keeps grad mode, autocast state and the last
// error of gotch's C API in thread-local storage: calls from whichever
// thread the Go scheduler picks would read another thread's state.
type engine struct {
	jobs   chan func()
	mu     sync.RWMutex // guards closed against sends on jobs
	closed bool
	exited chan struct{}
}

var mallocTuned sync.Once

// tuneMalloc sets glibc's malloc to keep large freed blocks, once per
// process, unless the environment configures malloc. libtorch allocates
// every activation, gradient and temporary of a step afresh; with glibc's
// defaults the large ones are unmapped or trimmed off the heap when freed,
// and the next step faults their pages in again (~2,200 page faults per
// teacher step, 784-1200-1200-10 at batch 128). Keeping them saves 15–18%
// of a step's CPU time; PyTorch gains the same from the same settings
// (docs/torch.md). The settings are process-wide: the process keeps up to
// trimThreshold of freed memory.
func tuneMalloc() {
	mallocTuned.Do(func() {
		if MallocEnv() != nil {
			C.distill_tune_malloc(C.int(mmapThreshold), C.int(trimThreshold))
		}
	})
}

// newEngine starts the worker. threads > 0 bounds libtorch's intra-op
// parallelism (at::set_num_threads, called from the worker).
func newEngine(threads int) (*engine, error) {
	tuneMalloc()
	e := &engine{jobs: make(chan func()), exited: make(chan struct{})}
	go e.loop()
	err := e.do(func() error {
		// Inference is the default on this thread; training steps enable
		// grad mode for their duration only.
		lib.AtGradSetEnabled(0)
		if err := lastErr(); err != nil {
			return fmt.Errorf("torch backend: disabling grad mode: %w", err)
		}
		if threads > 0 {
			if C.distill_set_num_threads(C.int(threads)) != 0 {
				return errors.New("torch backend: at::set_num_threads not found in the loaded libtorch; leave Threads at 0")
			}
		}
		return nil
	})
	if err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *engine) loop() {
	// The thread is never unlocked: when the goroutine exits the thread
	// exits with it, so no other goroutine inherits libtorch's thread state.
	runtime.LockOSThread()
	defer close(e.exited)
	for f := range e.jobs {
		f()
	}
}

// do runs f on the engine's thread and returns its error. A panic in f is
// returned as an error and leaves the engine usable.
func (e *engine) do(f func() error) error {
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return ErrClosed
	}
	errc := make(chan error, 1)
	e.jobs <- func() {
		defer func() {
			if r := recover(); r != nil {
				lastErr() // clear any pending libtorch error
				errc <- fmt.Errorf("torch backend: panic: %v\n%s", r, debug.Stack())
			}
		}()
		errc <- f()
	}
	e.mu.RUnlock()
	return <-errc
}

// release runs free on the engine's thread for a Close method. Once the
// engine is closed its owner has freed everything already, so Close is a
// no-op then and ErrClosed no error.
func (e *engine) release(free func()) error {
	err := e.do(func() error {
		free()
		return nil
	})
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// close stops the worker after the jobs already submitted. It is safe to
// call more than once.
func (e *engine) close() {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.jobs)
	}
	e.mu.Unlock()
	<-e.exited
}

// numThreads reports at::get_num_threads() on the engine's thread.
func (e *engine) numThreads() (int, error) {
	var n int
	err := e.do(func() error {
		n = int(C.distill_get_num_threads())
		if n < 0 {
			return errors.New("torch backend: at::get_num_threads not found in the loaded libtorch")
		}
		return nil
	})
	return n, err
}

// lastErr returns and clears the error gotch's C API recorded on this
// thread, without libtorch's C++ backtrace.
func lastErr() error {
	p := unsafe.Pointer(lib.GetAndResetLastErr())
	if p == nil {
		return nil
	}
	msg := C.GoString((*C.char)(p))
	C.free(p)
	return errors.New(trimTrace(msg))
}

// trimTrace cuts libtorch's C++ backtrace off an error message.
func trimTrace(msg string) string {
	if i := strings.Index(msg, "\nException raised from"); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimSpace(msg)
}

// ctensor is a handle to a torch::Tensor (a reference-counted pointer to
// the tensor's storage). Every handle a libtorch call returns, including
// those of in-place ops, must be freed exactly once with lib.AtFree.
type ctensor = lib.Ctensor

// setGradEnabled sets this thread's grad mode and returns the previous one.
func setGradEnabled(on bool) (prev bool, err error) {
	v := 0
	if on {
		v = 1
	}
	// gotch reads the C int result as an 8-byte Go int: only the low 32
	// bits are the result (on little-endian machines).
	r := int32(lib.AtGradSetEnabled(v))
	if err := lastErr(); err != nil {
		return false, fmt.Errorf("torch backend: setting grad mode: %w", err)
	}
	if r < 0 {
		return false, fmt.Errorf("torch backend: setting grad mode failed (%d)", r)
	}
	return r == 1, nil
}

// withGrad runs f with grad mode set to on and restores the previous mode,
// even when f fails (unlike gotch's ts.NoGrad, which re-enables it).
func withGrad(on bool, f func() error) error {
	prev, err := setGradEnabled(on)
	if err != nil {
		return err
	}
	defer func() { _, _ = setGradEnabled(prev) }()
	return f()
}
