package infer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/distill-dev/distill/internal/gemm"
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
	steps   []step
	nvals   int // values: 0 is the network input, each step writes one
	result  int // the value holding the logits
	nbufF   int // float32 buffers of the arena
	nbufU   int // uint8 buffers of the arena
	int8    bool
	pool    sync.Pool // *scratch
}

// step is one op of the program with its place in the dataflow: the
// values it reads, the value it writes and the arena buffer that holds
// it. Buffers are assigned at compile time from the values' lifetimes,
// so that a value read by several layers (a residual's fan-out) lives
// until its last reader and memory stays near the widest cut of the
// graph rather than its sum.
type step struct {
	op  op
	in  []int
	out int
	buf int // index into the arena's float32 or uint8 buffers, by the op's output type
	u8  bool
	// observe: the step computes a layer's output (not a conversion
	// between float32 and uint8), so Observe reports it.
	observe bool
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
	for i, st := range p.steps {
		if i > 0 {
			b.WriteString(" → ")
		}
		b.WriteString(st.op.describe())
	}
	return b.String()
}

// Forward computes the logits of the n examples in x (n × InputSize
// values, row-major) into out (n × Classes values).
func (p *Program) Forward(x []float32, n int, out []float32) error {
	return p.forward(x, n, out, false, nil)
}

// ForwardInline is Forward for a caller whose other goroutines need the
// cores while it runs (a server, whose network and HTTP goroutines
// receive the next requests and answer the last): layers of fewer
// multiply-adds than InlineMinWork run on the calling goroutine alone,
// instead of handing part of their work to the GEMM's other threads.
// Waking a parked thread costs about as much as such a layer's share of
// the work, and the thread then polls for the next layer on a core
// that the HTTP goroutines want. The logits are Forward's: the same bits
// for INT8 programs and linear layers; FP32 convolutions, which Forward
// cuts into bands by thread count, agree to float32 rounding, as
// Forward's own logits do between thread counts.
func (p *Program) ForwardInline(x []float32, n int, out []float32) error {
	return p.forward(x, n, out, true, nil)
}

// InlineMinWork is the number of multiply-adds from which a layer of an
// FP32 (fp32 true) or INT8 program is split across threads in
// ForwardInline: an MNIST MLP's 784×800 layers at batch 1 (0.6 M) run
// inline, a ResNet's 3×3 16-channel convolution on 28×28 (1.8 M)
// splits in FP32; INT8 products are about four times faster.
func InlineMinWork(fp32 bool) int {
	if fp32 {
		return inlineMinF32
	}
	return inlineMinI8
}

const (
	inlineMinF32 = 1 << 20
	inlineMinI8  = 1 << 22
)

// Observe runs Forward and calls fn after each step with the name of the
// layer whose output it produced (for a linear or conv2d layer fused
// with a ReLU: the linear or conv2d layer's name, and the data is after
// the ReLU) and the n × size float32 values of that output. The data is
// only valid during the call. Steps whose output is quantized are
// reported dequantized; conversions between float32 and uint8 are not
// reported. Package quantize uses it for calibration.
func (p *Program) Observe(x []float32, n int, out []float32, fn func(layer string, data []float32)) error {
	return p.forward(x, n, out, false, fn)
}

func (p *Program) forward(x []float32, n int, out []float32, inline bool, fn func(string, []float32)) error {
	if n < 0 || len(x) < n*p.inSize || len(out) < n*p.classes {
		return fmt.Errorf("%w: n=%d, len(x)=%d (need %d), len(out)=%d (need %d)",
			ErrShape, n, len(x), n*p.inSize, len(out), n*p.classes)
	}
	if n == 0 {
		return nil
	}
	s, _ := p.pool.Get().(*scratch)
	if s == nil {
		s = p.newScratch()
	}
	defer p.pool.Put(s)
	s.inline = inline
	v := p.run(s, x, n, fn)
	if v.u != nil {
		dequantize(out[:n*p.classes], v.u[:n*p.classes], v.q)
	} else {
		copy(out[:n*p.classes], v.f[:n*p.classes])
	}
	clear(s.vals) // drop references to the caller's input
	return nil
}

// run executes the steps and returns the value holding the logits.
func (p *Program) run(s *scratch, x []float32, n int, fn func(string, []float32)) value {
	s.vals[0] = value{f: x[:n*p.inSize], dim: p.inSize}
	for i := range p.steps {
		st := &p.steps[i]
		var v value
		if so, ok := st.op.(stagedOp); ok && fn != nil {
			v = so.runObserved(s, s.inputs(st, n), n, st.buf, func(layer string, v value) { s.observe(layer, v, n, fn) })
		} else {
			v = st.op.run(s, s.inputs(st, n), n, st.buf)
		}
		s.vals[st.out] = v
		if fn != nil && st.observe {
			s.observe(st.op.name(), v, n, fn)
		}
	}
	return s.nchw(0, s.vals[p.result], n)
}

// stagedOp is an op that computes several layers' outputs in one pass
// (a fusion that Observe must not hide): runObserved computes them one
// by one as the unfused ops do, reports each but the last (which run's
// caller reports under name()), and returns the last.
type stagedOp interface {
	runObserved(s *scratch, in []value, n int, buf int, report func(layer string, v value)) value
}

// observe calls fn with layer's output v (n examples), dequantized if
// it is uint8 and in NCHW order.
func (s *scratch) observe(layer string, v value, n int, fn func(string, []float32)) {
	v = s.nchw(0, v, n) // the inputs' conversions are done with
	if v.u != nil {
		tmp := s.obsBuf(n * v.dim)
		dequantize(tmp, v.u[:n*v.dim], v.q)
		fn(layer, tmp)
		return
	}
	fn(layer, v.f[:n*v.dim])
}

// inputs gathers the values step st reads, each converted to NCHW when it
// is held in NHWC and the op does not read that layout.
func (s *scratch) inputs(st *step, n int) []value {
	s.ins = s.ins[:0]
	nhwcOK := false
	if r, ok := st.op.(interface{ readsNHWC() bool }); ok {
		nhwcOK = r.readsNHWC()
	}
	for k, id := range st.in {
		v := s.vals[id]
		if !nhwcOK {
			v = s.nchw(k, v, n)
		}
		s.ins = append(s.ins, v)
	}
	return s.ins
}

// nchw returns v in NCHW order: v itself, or, for a value held in NHWC,
// a copy in conversion buffer k.
func (s *scratch) nchw(k int, v value, n int) value {
	if !v.nhwc {
		return v
	}
	hw := v.dim / v.ch
	if v.u != nil {
		v.u = relayout(s.cvtBufU(k, n*v.dim), v.u, n, v.dim, v.ch, hw)
	} else {
		v.f = relayout(s.cvtBufF(k, n*v.dim), v.f, n, v.dim, v.ch, hw)
	}
	v.nhwc, v.ch = false, 0
	return v
}

// nhwcOf returns the NCHW value v (ch channels) in NHWC order, a copy in
// conversion buffer k.
func (s *scratch) nhwcOf(k int, v value, ch, n int) value {
	if v.nhwc {
		return v
	}
	hw := v.dim / ch
	if v.u != nil {
		v.u = relayout(s.cvtBufU(k, n*v.dim), v.u, n, v.dim, hw, ch)
	} else {
		v.f = relayout(s.cvtBufF(k, n*v.dim), v.f, n, v.dim, hw, ch)
	}
	v.nhwc, v.ch = true, ch
	return v
}

// sameLayout returns the inputs of an elementwise op in one layout:
// when one is NHWC, the other as an NHWC copy in its conversion buffer.
func sameLayout(s *scratch, a, b value, n int) (value, value) {
	switch {
	case a.nhwc && !b.nhwc:
		b = s.nhwcOf(1, b, a.ch, n)
	case b.nhwc && !a.nhwc:
		a = s.nhwcOf(0, a, b.ch, n)
	}
	return a, b
}

// relayout transposes each of the n examples of src (dim values, [rows,
// cols]) into dst ([cols, rows]) and returns dst.
func relayout[T float32 | uint8](dst, src []T, n, dim, rows, cols int) []T {
	for b := range n {
		transposeBand(src[b*dim:], rows, 0, cols, cols, dst[b*dim:])
	}
	return dst
}

// cvtBufU returns uint8 conversion buffer k with room for size (+slack)
// bytes.
func (s *scratch) cvtBufU(k, size int) []uint8 {
	for len(s.cvt) <= k {
		s.cvt = append(s.cvt, nil)
	}
	s.cvt[k] = grow(s.cvt[k], size)
	return s.cvt[k]
}

// cvtBufF returns float32 conversion buffer k with room for size values.
func (s *scratch) cvtBufF(k, size int) []float32 {
	for len(s.cvtF) <= k {
		s.cvtF = append(s.cvtF, nil)
	}
	s.cvtF[k] = growF(s.cvtF[k], size)
	return s.cvtF[k][:size]
}

func (p *Program) newScratch() *scratch {
	return &scratch{vals: make([]value, p.nvals), f: make([][]float32, p.nbufF), u: make([][]uint8, p.nbufU)}
}

// value is an activation: float32 (f) or uint8 (u, with its
// quantization parameters q), n × dim elements. A value that an NHWC
// convolution wrote is held as [n, h, w, ch] (nhwc); the ops that
// do not read that layout get an NCHW copy (scratch.inputs), so that
// chains of convolutions, adds and activations skip two transposes per
// convolution.
type value struct {
	f    []float32
	u    []uint8
	q    QParams
	dim  int
	nhwc bool
	ch   int // channels, when nhwc
}

// op is one compiled operation. run reads its inputs and writes its
// output into the arena buffer buf (of the op's output type), which the
// compiler may have made the buffer of in[0] when in[0] dies there (an
// in-place activation).
type op interface {
	run(s *scratch, in []value, n int, buf int) value
	name() string
	describe() string
	// weightBytes is the memory the step's parameters hold (packed
	// weights, biases, requantization vectors, tables).
	weightBytes() int64
}

// slack is the number of bytes allocated past every uint8 buffer: INT8
// products read each row of A up to gemm.KPad(K).
const slack = 64

// scratch is the per-call arena: the values' buffers and workspace for
// convolutions.
type scratch struct {
	vals []value
	ins  []value
	f    [][]float32
	u    [][]uint8
	col  []float32
	colU []uint8
	xh   []uint8   // an NHWC copy of a convolution's input
	cvt  [][]uint8 // layout conversions of a step's inputs (scratch.inputs)
	cvtF [][]float32
	xhF  []float32 // an NHWC copy of an FP32 convolution's input
	tmp  []float32
	tmpU []uint8
	acc  []int32 // a depthwise INT8 row
	// i8Band: the current INT8 NHWC convolution's band GEMM.
	i8Band i8Band
	obs    []float32
	// inline: the call is ForwardInline's.
	inline bool
}

// threadsFor is how many threads a product of work multiply-adds runs
// on in this call (see gemm.ThreadsFor and ForwardInline).
func (s *scratch) threadsFor(work int, int8 bool) int {
	if s.inline && work < InlineMinWork(!int8) {
		return 1
	}
	return gemm.ThreadsFor(work, int8)
}

// The products of a layer whose work threadsFor keeps on the calling
// goroutine (serial) use the Serial variants; the others split as
// package gemm decides.

func gemmF32(w *gemm.PackedF32, serial bool, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
	if serial {
		w.GemmSerial(m, a, lda, c, ldc, bias, relu)
	} else {
		w.Gemm(m, a, lda, c, ldc, bias, relu)
	}
}

func gemmI8F32(w *gemm.PackedI8, serial bool, m int, a []uint8, lda int, c []float32, ldc int, rq *gemm.Requant) {
	if serial {
		w.GemmF32Serial(m, a, lda, c, ldc, rq)
	} else {
		w.GemmF32(m, a, lda, c, ldc, rq)
	}
}

func gemmI8U8(w *gemm.PackedI8, serial bool, m int, a []uint8, lda int, c []uint8, ldc int, rq *gemm.Requant) {
	if serial {
		w.GemmU8Serial(m, a, lda, c, ldc, rq)
	} else {
		w.GemmU8(m, a, lda, c, ldc, rq)
	}
}

// Bytes is the memory the program itself needs to serve batches of
// batch examples: its parameters as compiled (packed weights, biases,
// requantization vectors, lookup tables) plus the scratch arena one
// Forward of that batch grows (activation buffers and convolution
// workspace). It runs one Forward of zeros on a fresh arena to size it,
// so it counts exactly what Forward allocates. It leaves out the
// caller's input and output slices, the small per-goroutine GEMM tiles
// of package gemm, and Go's per-object overhead: it is the model's own
// footprint, not the process's.
func (p *Program) Bytes(batch int) (int64, error) {
	if batch < 1 {
		return 0, fmt.Errorf("infer: bytes: batch must be >= 1, got %d", batch)
	}
	var w int64
	for _, st := range p.steps {
		w += st.op.weightBytes()
	}
	s := p.newScratch()
	p.run(s, make([]float32, batch*p.inSize), batch, nil)
	return w + s.bytes(), nil
}

// bytes is the memory the arena's buffers hold (Observe's buffer too,
// which Forward never grows).
func (s *scratch) bytes() int64 {
	f := cap(s.col) + cap(s.tmp) + cap(s.obs) + cap(s.xhF)
	for _, b := range s.cvtF {
		f += cap(b)
	}
	for _, b := range s.f {
		f += cap(b)
	}
	f += cap(s.acc) // int32, as wide as float32
	u := cap(s.colU) + cap(s.tmpU) + cap(s.xh)
	for _, b := range s.cvt {
		u += cap(b)
	}
	for _, b := range s.u {
		u += cap(b)
	}
	return int64(f)*4 + int64(u)
}

func growF(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// outF returns float32 buffer buf with room for size elements.
func (s *scratch) outF(buf, size int) []float32 {
	s.f[buf] = growF(s.f[buf], size)
	return s.f[buf][:size]
}

// outU returns uint8 buffer buf with room for size (+slack) elements.
func (s *scratch) outU(buf, size int) []uint8 {
	s.u[buf] = grow(s.u[buf], size)
	return s.u[buf]
}

func (s *scratch) obsBuf(n int) []float32 {
	s.obs = growF(s.obs, n)
	return s.obs
}

// assignBuffers gives each step's output an arena buffer: a value's
// buffer returns to the free list after its last reader, and an in-place
// step (inPlace reports it) reuses its first input's buffer when that
// input dies there. The result value is never freed.
func (p *Program) assignBuffers(inPlace func(st *step) bool) {
	last := make([]int, p.nvals)
	for k, st := range p.steps {
		for _, id := range st.in {
			last[id] = k
		}
	}
	last[p.result] = len(p.steps)
	bufOf := make([]int, p.nvals) // -1: no arena buffer (the caller's input)
	isU8 := make([]bool, p.nvals)
	bufOf[0] = -1
	var freeF, freeU []int
	for k := range p.steps {
		st := &p.steps[k]
		in0 := -1
		if len(st.in) > 0 {
			in0 = st.in[0]
		}
		switch {
		case in0 >= 0 && inPlace(st) && bufOf[in0] >= 0 && isU8[in0] == st.u8 && last[in0] == k &&
			!slices.Contains(st.in[1:], in0):
			st.buf = bufOf[in0]
			bufOf[in0] = -1 // handed over: not freed below
		case st.u8 && len(freeU) > 0:
			st.buf, freeU = freeU[len(freeU)-1], freeU[:len(freeU)-1]
		case !st.u8 && len(freeF) > 0:
			st.buf, freeF = freeF[len(freeF)-1], freeF[:len(freeF)-1]
		case st.u8:
			st.buf = p.nbufU
			p.nbufU++
		default:
			st.buf = p.nbufF
			p.nbufF++
		}
		for i, id := range st.in {
			if last[id] != k || bufOf[id] < 0 || slices.Contains(st.in[:i], id) {
				continue
			}
			if isU8[id] {
				freeU = append(freeU, bufOf[id])
			} else {
				freeF = append(freeF, bufOf[id])
			}
			bufOf[id] = -1
		}
		bufOf[st.out], isU8[st.out] = st.buf, st.u8
	}
}
