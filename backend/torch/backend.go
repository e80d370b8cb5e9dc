//go:build torch

// Package torch is distill's libtorch backend: it registers "torch" with
// package backend and runs models eagerly through gotch's C API on the CPU
// or a CUDA device.
//
// It needs cgo, a libtorch, and a copy of gotch prepared for that libtorch
// by scripts/torch/build.sh; it is compiled only with the build tag
// "torch" (see docs/torch.md):
//
//	scripts/torch/build.sh
//	GOWORK=$PWD/build/torch/go.work go test -tags torch ./backend/torch
//
// Every libtorch call of a backend runs on one goroutine locked to its OS
// thread (libtorch keeps grad mode and gotch's last error per thread);
// models and trainers of one backend therefore run one call at a time.
// Tensors live in C or GPU memory that the Go garbage collector does not
// see: every tensor is freed explicitly, and Close releases a model's or
// trainer's tensors.
//
// Everything random (initial weights, dropout masks, data order) comes
// from the host, so this backend computes the same numbers as the
// gorgonia backend up to float32 rounding.
package torch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	lib "github.com/sugarme/gotch/libtch"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/model"
)

// Name is the name the backend registers under.
const Name = "torch"

func init() {
	backend.Register(Name, func(o backend.Options) (backend.Backend, error) { return Open(o) })
}

// Backend is the libtorch engine on one device.
type Backend struct {
	eng       *engine
	device    int // -1 = CPU, n = cuda:n
	precision backend.Precision
}

var (
	_ backend.Backend        = (*Backend)(nil)
	_ backend.MixedPrecision = (*Backend)(nil)
	_ backend.CUDAStatus     = (*Backend)(nil)
	_ backend.Library        = (*Backend)(nil)
)

// Open starts a backend on opts.Device: "auto" or "" (CUDA device 0 if
// libtorch sees one, else the CPU), "cpu", "cuda" (= "cuda:0") or "cuda:N".
// opts.Threads > 0 sets libtorch's intra-op threads (process-wide, as
// torch.set_num_threads does); 0 means one per physical core
// (defaultThreads). opts.Precision bf16 runs the models'
// forward passes, in training and inference, under bfloat16 autocast;
// auto chooses it on a CUDA device of compute capability 8.0 or newer
// (see resolvePrecision). TorchScript modules run in float32.
func Open(opts backend.Options) (*Backend, error) {
	threads := opts.Threads
	if threads == 0 {
		threads = defaultThreads()
	}
	eng, err := newEngine(threads)
	if err != nil {
		return nil, err
	}
	var dev int
	var prec backend.Precision
	err = eng.do(func() error {
		var err error
		if dev, err = parseDevice(opts.Device); err != nil {
			return err
		}
		prec, err = resolvePrecision(opts.Precision, dev)
		return err
	})
	if err != nil {
		eng.close()
		return nil, err
	}
	return &Backend{eng: eng, device: dev, precision: prec}, nil
}

// parseDevice resolves a device string to gotch's device index (-1 = CPU).
func parseDevice(s string) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "" || s == "auto":
		if cudaCount() > 0 {
			return 0, nil
		}
		return -1, nil
	case s == "cpu":
		return -1, nil
	case s == "cuda" || strings.HasPrefix(s, "cuda:"):
		idx := 0
		if s != "cuda" {
			n, err := strconv.Atoi(s[len("cuda:"):])
			if err != nil || n < 0 {
				return 0, fmt.Errorf("torch backend: device %q: want cuda:N with N >= 0", s)
			}
			idx = n
		}
		n := cudaCount()
		if n == 0 {
			return 0, fmt.Errorf("torch backend: device %q: libtorch sees no CUDA device (a CPU-only libtorch, no GPU or driver, or libtorch_cuda not linked: prepare the build with scripts/torch/build.sh against a CUDA libtorch)", s)
		}
		if idx >= n {
			return 0, fmt.Errorf("torch backend: device %q: only %d CUDA device(s) visible", s, n)
		}
		return idx, nil
	default:
		return 0, fmt.Errorf("torch backend: unknown device %q: use auto, cpu, cuda or cuda:N", s)
	}
}

func cudaCount() int {
	if !lib.AtcCudaIsAvailable() {
		lastErr()
		return 0
	}
	n := int(lib.AtcCudaDeviceCount())
	if lastErr() != nil || n < 0 {
		return 0
	}
	return n
}

func deviceName(d int) string {
	if d < 0 {
		return "cpu"
	}
	return "cuda:" + strconv.Itoa(d)
}

// Name returns "torch".
func (b *Backend) Name() string { return Name }

// Device returns "cpu" or "cuda:N".
func (b *Backend) Device() string { return deviceName(b.device) }

// Precision returns the precision the models compute in: fp32 or bf16.
func (b *Backend) Precision() backend.Precision { return b.precision }

// CUDAStatus reports the CUDA runtime's version and the device's memory in
// use and in all (backend.CUDAStatus); ok is false on the CPU.
func (b *Backend) CUDAStatus() (runtime string, used, total int64, ok bool) {
	if b.device < 0 {
		return "", 0, 0, false
	}
	_ = b.eng.do(func() error {
		var free int64
		if runtime, ok = cudaRuntime(); !ok {
			return nil
		}
		free, total, ok = cudaMemInfo(b.device)
		used = total - free
		return nil
	})
	return runtime, used, total, ok
}

// Library returns "libtorch" and the version this process loaded
// (backend.Library), read once.
func (b *Backend) Library() string {
	libraryOnce.Do(func() {
		library = "libtorch"
		if v := libtorchVersion("/proc/self/maps"); v != "" {
			library += " " + v
		}
	})
	return library
}

var (
	libraryOnce sync.Once
	library     string
)

// mixed reports whether forward passes run under bf16 autocast.
func (b *Backend) mixed() bool { return b.precision == backend.PrecisionBF16 }

// Threads reports libtorch's intra-op thread count as seen by the backend.
func (b *Backend) Threads() (int, error) { return b.eng.numThreads() }

// Load builds spec's graph with a copy of w: parameters as leaf tensors
// that require grad, buffers (running statistics) as plain tensors. w is
// checked with spec.Check.
func (b *Backend) Load(spec model.Spec, w model.Weights) (backend.Model, error) {
	return b.load(spec, w)
}

func (b *Backend) load(spec model.Spec, w model.Weights) (*Model, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("torch backend: spec %q: %w", spec.Name, err)
	}
	if err := spec.Check(w); err != nil {
		return nil, fmt.Errorf("torch backend: weights do not fit spec %q: %w", spec.Name, err)
	}
	m, err := newModel(b, spec)
	if err != nil {
		return nil, err
	}
	err = b.eng.do(func() error {
		s := newScope(b.device)
		for _, p := range m.params {
			t := s.fromHost(w[p.Name].Data, p.Shape...)
			s.setRequiresGrad(t, true)
			if s.err == nil {
				m.tensors = append(m.tensors, s.keep(t))
			}
		}
		// Buffers are state, not parameters: no gradient.
		for _, p := range m.buffers {
			t := s.fromHost(w[p.Name].Data, p.Shape...)
			if s.err == nil {
				m.bufs = append(m.bufs, s.keep(t))
			}
		}
		return s.free()
	})
	if err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("torch backend: loading weights of %q: %w", spec.Name, err)
	}
	return m, nil
}

// NewTrainer prepares to train m (a model of this backend) in place.
func (b *Backend) NewTrainer(m backend.Model, cfg backend.TrainConfig) (backend.Trainer, error) {
	tm, ok := m.(*Model)
	if !ok || tm.b != b {
		return nil, errors.New("torch backend: NewTrainer needs a model loaded by this torch backend")
	}
	return newTrainer(tm, cfg)
}

// Close stops the backend's thread. Models and trainers must be closed
// first; their tensors are otherwise released only at process exit.
func (b *Backend) Close() error {
	b.eng.close()
	return nil
}
