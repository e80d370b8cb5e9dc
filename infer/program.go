package infer

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/distill-dev/distill/model"
)

// Predictor computes logits for a batch: x holds n examples row-major
// (n × the input size) and out receives n × classes logits. *Program and
// backend models implement it.
type Predictor interface {
	Forward(x []float32, n int, out []float32) error
}

// ErrShape reports input or output slices that do not fit the batch.
var ErrShape = errors.New("infer: slice does not fit the batch")

// Program is a compiled network. It is immutable and safe for concurrent
// use.
type Program struct {
	spec    model.Spec
	inSize  int
	classes int
	ops     []op
	int8    bool
	pool    sync.Pool // *scratch
}

// Spec returns the spec the program was compiled from.
func (p *Program) Spec() model.Spec { return p.spec }

// InputSize is the number of float32 values per example.
func (p *Program) InputSize() int { return p.inSize }

// Classes is the number of logits per example.
func (p *Program) Classes() int { return p.classes }

// String lists the compiled steps, e.g. "linear+relu[fc1 int8] …".
func (p *Program) String() string {
	var b strings.Builder
	for i, o := range p.ops {
		if i > 0 {
			b.WriteString(" → ")
		}
		b.WriteString(o.describe())
	}
	return b.String()
}

// Forward computes the logits of the n examples in x (n × InputSize
// values, row-major) into out (n × Classes values).
func (p *Program) Forward(x []float32, n int, out []float32) error {
	return p.forward(x, n, out, nil)
}

// Observe runs Forward and calls fn after each step with the name of the
// layer whose output it produced (for a linear or conv2d layer fused
// with a ReLU: the linear or conv2d layer's name, and the data is after
// the ReLU) and the n × size float32 values of that output. The data is
// only valid during the call. Steps whose output is quantized are
// reported dequantized. Package quantize uses it for calibration.
func (p *Program) Observe(x []float32, n int, out []float32, fn func(layer string, data []float32)) error {
	if fn == nil {
		return p.forward(x, n, out, nil)
	}
	return p.forward(x, n, out, fn)
}

func (p *Program) forward(x []float32, n int, out []float32, fn func(string, []float32)) error {
	if n < 0 || len(x) < n*p.inSize || len(out) < n*p.classes {
		return fmt.Errorf("%w: n=%d, len(x)=%d (need %d), len(out)=%d (need %d)",
			ErrShape, n, len(x), n*p.inSize, len(out), n*p.classes)
	}
	if n == 0 {
		return nil
	}
	s, _ := p.pool.Get().(*scratch)
	if s == nil {
		s = new(scratch)
	}
	defer p.pool.Put(s)
	v := value{f: x[:n*p.inSize], dim: p.inSize, slot: -1}
	for _, o := range p.ops {
		v = o.run(s, v, n)
		if fn != nil {
			if v.u != nil {
				tmp := s.obsBuf(n * v.dim)
				dequantize(tmp, v.u[:n*v.dim], v.q)
				fn(o.name(), tmp)
			} else {
				fn(o.name(), v.f[:n*v.dim])
			}
		}
	}
	if v.u != nil {
		dequantize(out[:n*p.classes], v.u[:n*p.classes], v.q)
	} else {
		copy(out[:n*p.classes], v.f[:n*p.classes])
	}
	return nil
}

// value is the activation between two steps: float32 (f) or uint8 (u,
// with its quantization parameters q), n × dim elements.
type value struct {
	f    []float32
	u    []uint8
	q    QParams
	dim  int
	slot int // scratch buffer holding it; -1 for the caller's input
}

// op is one compiled step.
type op interface {
	run(s *scratch, in value, n int) value
	name() string
	describe() string
	// weightBytes is the memory the step's parameters hold (packed
	// weights, biases, requantization vectors, tables).
	weightBytes() int64
}

// slack is the number of bytes allocated past every uint8 buffer: INT8
// products read each row of A up to gemm.KPad(K).
const slack = 64

// scratch holds the per-call buffers: two float32 and two uint8
// ping-pong buffers, and workspace for convolutions.
type scratch struct {
	f    [2][]float32
	u    [2][]uint8
	col  []float32
	colU []uint8
	tmp  []float32
	tmpU []uint8
	obs  []float32
}

// Bytes is the memory the program itself needs to serve batches of
// batch examples: its parameters as compiled (packed weights, biases,
// requantization vectors, lookup tables) plus the scratch arena one
// Forward of that batch grows (activation ping-pong buffers and
// convolution workspace). It runs one Forward of zeros on a fresh arena
// to size it, so it counts exactly what Forward allocates. It leaves out
// the caller's input and output slices, the small per-goroutine GEMM
// tiles of package gemm, and Go's per-object overhead: it is the model's
// own footprint, not the process's.
func (p *Program) Bytes(batch int) (int64, error) {
	if batch < 1 {
		return 0, fmt.Errorf("infer: bytes: batch must be >= 1, got %d", batch)
	}
	var w int64
	for _, o := range p.ops {
		w += o.weightBytes()
	}
	s := new(scratch)
	v := value{f: make([]float32, batch*p.inSize), dim: p.inSize, slot: -1}
	for _, o := range p.ops {
		v = o.run(s, v, batch)
	}
	return w + s.bytes(), nil
}

// bytes is the memory the arena's buffers hold (Observe's buffer too,
// which Forward never grows).
func (s *scratch) bytes() int64 {
	f := cap(s.f[0]) + cap(s.f[1]) + cap(s.col) + cap(s.tmp) + cap(s.obs)
	u := cap(s.u[0]) + cap(s.u[1]) + cap(s.colU) + cap(s.tmpU)
	return int64(f)*4 + int64(u)
}

func growF(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

func growU(b []uint8, n int) []uint8 {
	if cap(b) < n+slack {
		return make([]uint8, n+slack)
	}
	return b[:n+slack]
}

// outF returns a float buffer of size elements that does not hold in.
func (s *scratch) outF(in value, size int) (buf []float32, slot int) {
	slot = 0
	if in.u == nil && in.slot == 0 {
		slot = 1
	}
	s.f[slot] = growF(s.f[slot], size)
	return s.f[slot], slot
}

// outU returns a uint8 buffer of size (+slack) elements that does not
// hold in.
func (s *scratch) outU(in value, size int) (buf []uint8, slot int) {
	slot = 0
	if in.u != nil && in.slot == 0 {
		slot = 1
	}
	s.u[slot] = growU(s.u[slot], size)
	return s.u[slot], slot
}

func (s *scratch) obsBuf(n int) []float32 {
	s.obs = growF(s.obs, n)
	return s.obs
}
