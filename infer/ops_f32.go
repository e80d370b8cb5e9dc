package infer

import (
	"fmt"
	"math"

	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/model"
)

// linearF32 is y = x·Wᵀ + b, optionally fused with a ReLU.
type linearF32 struct {
	layer   string
	w       *gemm.PackedF32
	bias    []float32
	relu    bool
	in, out int
}

func (o *linearF32) name() string { return o.layer }
func (o *linearF32) weightBytes() int64 {
	return o.w.Bytes() + int64(cap(o.bias))*4
}
func (o *linearF32) describe() string {
	return fmt.Sprintf("linear%s[%s %d→%d f32]", reluSuffix(o.relu), o.layer, o.in, o.out)
}

func (o *linearF32) run(s *scratch, in []value, n int, buf int) value {
	dst := s.outF(buf, n*o.out)
	gemmF32(o.w, s.threadsFor(n*o.in*o.out, false) == 1, n, in[0].f, o.in, dst, o.out, o.bias, o.relu)
	return value{f: dst, dim: o.out}
}

func reluSuffix(r bool) string {
	if r {
		return "+relu"
	}
	return ""
}

// convGeom is the geometry of a conv2d layer.
type convGeom struct {
	c, h, w        int // input
	o, oh, ow      int // output
	k, stride, pad int
	groups         int
}

func (g convGeom) in() int   { return g.c * g.h * g.w }
func (g convGeom) out() int  { return g.o * g.oh * g.ow }
func (g convGeom) cg() int   { return g.c / g.groups } // input channels per group
func (g convGeom) og() int   { return g.o / g.groups } // output channels per group
func (g convGeom) kdim() int { return g.cg() * g.k * g.k }
func (g convGeom) pos() int  { return g.oh * g.ow }

// work is the multiply-adds of a batch of n (one group's GEMM for
// grouped convolutions).
func (g convGeom) work(n int) int { return n * g.pos() * g.og() * g.kdim() }

// depthwise reports one input channel per group: the convolution is a
// per-channel filter (times a channel multiplier), with nothing for a
// GEMM to share.
func (g convGeom) depthwise() bool { return g.cg() == 1 }

// chunk is how many examples to im2col at once: enough rows for the
// GEMM to be efficient, bounded memory.
func (g convGeom) chunk(n int) int {
	per := g.pos() * g.kdim()
	return max(1, min(n, (1<<20)/max(per, 1)))
}

// im2col writes the [pos, kdim] patch matrix of one group of one example
// (x starts at the group's first input plane) into col, with pad for the
// positions outside x. It walks one kernel row of one channel across an
// output row at a time, so that the bounds are checked once per row and
// the output columns whose window lies inside the input copy without
// checks.
func im2col[T float32 | uint8](g convGeom, x []T, col []T, pad T) {
	kd, cg, k, h, w, st := g.kdim(), g.cg(), g.k, g.h, g.w, g.stride
	// Output columns [in0, in1) have their whole window inside a row.
	in0 := min(g.ow, (g.pad+st-1)/st)
	in1 := in0
	if w-k+g.pad >= 0 {
		in1 = max(in0, min(g.ow, (w-k+g.pad)/st+1))
	}
	for oy := 0; oy < g.oh; oy++ {
		y0 := oy*st - g.pad
		rows := col[oy*g.ow*kd : (oy+1)*g.ow*kd]
		for c := 0; c < cg; c++ {
			plane := x[c*h*w : (c+1)*h*w]
			for ky := 0; ky < k; ky++ {
				off := (c*k + ky) * k
				y := y0 + ky
				if y < 0 || y >= h {
					for ox := 0; ox < g.ow; ox++ {
						dst := rows[ox*kd+off : ox*kd+off+k]
						for j := range dst {
							dst[j] = pad
						}
					}
					continue
				}
				src := plane[y*w : (y+1)*w]
				for ox := 0; ox < g.ow; ox++ {
					dst := rows[ox*kd+off : ox*kd+off+k]
					x0 := ox*st - g.pad
					if ox >= in0 && ox < in1 {
						s := src[x0 : x0+k]
						if k == 3 {
							dst[0], dst[1], dst[2] = s[0], s[1], s[2]
							continue
						}
						copy(dst, s)
						continue
					}
					for j := range dst {
						if xx := x0 + j; xx < 0 || xx >= w {
							dst[j] = pad
						} else {
							dst[j] = src[xx]
						}
					}
				}
			}
		}
	}
}

// transposeOut turns the GEMM output of one group of one example,
// [pos, og], into the [og, pos] (NCHW) layout at dst.
func transposeOut[T float32 | uint8](g convGeom, src, dst []T) {
	transposeBand(src, g.og(), 0, g.pos(), g.pos(), dst)
}

// transposeBand writes the m rows of src ([m, cols]) as positions
// [p0, p0+m) of the cols planes of dst ([cols, pos]).
func transposeBand[T float32 | uint8](src []T, cols, p0, m, pos int, dst []T) {
	for i := range m {
		row := src[i*cols : (i+1)*cols]
		for c, v := range row {
			dst[c*pos+p0+i] = v
		}
	}
}

// taps returns the output columns [lo, hi) whose input column
// ox·stride − pad + kx lies inside [0, w).
func (g convGeom) taps(kx int) (lo, hi int) {
	lo = max(0, (g.pad-kx+g.stride-1)/g.stride)
	hi = min(g.ow, (g.w-1+g.pad-kx)/g.stride+1)
	if g.w-1+g.pad-kx < 0 {
		hi = 0
	}
	return lo, max(lo, hi)
}

// convF32 is a 2-D convolution (NCHW): im2col + one GEMM per group, or a
// direct loop for a depthwise one (dw holds its weights), optionally
// fused with a ReLU.
type convF32 struct {
	layer string
	g     convGeom
	w     []*gemm.PackedF32 // one per group
	dw    []float32
	bias  []float32
	relu  bool
	// nhwc: one group, weights packed in [o][ky][kx][c] order
	// (kernelHWC), run by runNHWC.
	nhwc bool
}

func (o *convF32) name() string    { return o.layer }
func (o *convF32) readsNHWC() bool { return o.nhwc }
func (o *convF32) weightBytes() int64 {
	b := int64(cap(o.bias)+cap(o.dw)) * 4
	for _, w := range o.w {
		b += w.Bytes()
	}
	return b
}
func (o *convF32) describe() string {
	kind := "conv"
	if o.g.groups > 1 {
		kind = fmt.Sprintf("conv/%d", o.g.groups)
	}
	if o.dw != nil {
		kind = "dwconv"
	}
	return fmt.Sprintf("%s%s[%s %dx%dx%d→%dx%dx%d f32]", kind, reluSuffix(o.relu), o.layer, o.g.c, o.g.h, o.g.w, o.g.o, o.g.oh, o.g.ow)
}

func (o *convF32) run(s *scratch, in []value, n int, buf int) value {
	g := o.g
	x := in[0].f
	dst := s.outF(buf, n*g.out())
	if o.dw != nil {
		for b := 0; b < n; b++ {
			depthwiseF32(g, x[b*g.in():], o.dw, o.bias, dst[b*g.out():], o.relu)
		}
		return value{f: dst, dim: g.out()}
	}
	if o.nhwc {
		w := o.w[0]
		// The output is NHWC: the GEMM's rows are its pixels.
		convNHWC(g, g.planNHWC(n, s.threadsFor(g.work(n), false), 1), in[0].f, in[0].nhwc, n, 0, &s.xhF, &s.col, bandFunc[float32](func(_, b, p0, m int, a []float32) {
			w.GemmSerial(m, a, g.kdim(), dst[b*g.out()+p0*g.o:], g.o, o.bias, o.relu)
		}))
		return value{f: dst, dim: g.out(), nhwc: true, ch: g.o}
	}
	ch := g.chunk(n)
	pos, kd, og := g.pos(), g.kdim(), g.og()
	s.col = growF(s.col, ch*pos*kd)
	s.tmp = growF(s.tmp, ch*pos*og)
	for b0 := 0; b0 < n; b0 += ch {
		nb := min(ch, n-b0)
		for gi, w := range o.w {
			for b := 0; b < nb; b++ {
				im2col(g, x[(b0+b)*g.in()+gi*g.cg()*g.h*g.w:], s.col[b*pos*kd:], 0)
			}
			gemmF32(w, s.threadsFor(g.work(nb), false) == 1, nb*pos, s.col, kd, s.tmp, og, o.bias[gi*og:(gi+1)*og], o.relu)
			for b := 0; b < nb; b++ {
				transposeOut(g, s.tmp[b*pos*og:], dst[(b0+b)*g.out()+gi*og*g.pos():])
			}
		}
	}
	return value{f: dst, dim: g.out()}
}

// depthwiseF32 convolves one example (x: [c, h, w]) with one input
// channel per group: each output row starts at the bias and adds each
// tap times the input row it covers, the columns inside the input only.
func depthwiseF32(g convGeom, x, w, bias, y []float32, relu bool) {
	og, k := g.og(), g.k
	for oc := 0; oc < g.o; oc++ {
		plane := x[(oc/og)*g.h*g.w:]
		wk := w[oc*k*k : (oc+1)*k*k]
		for oy := 0; oy < g.oh; oy++ {
			dst := y[(oc*g.oh+oy)*g.ow : (oc*g.oh+oy+1)*g.ow]
			for i := range dst {
				dst[i] = bias[oc]
			}
			for ky := 0; ky < k; ky++ {
				iy := oy*g.stride - g.pad + ky
				if iy < 0 || iy >= g.h {
					continue
				}
				row := plane[iy*g.w : (iy+1)*g.w]
				for kx := 0; kx < k; kx++ {
					wv := wk[ky*k+kx]
					lo, hi := g.taps(kx)
					ix := lo*g.stride - g.pad + kx
					for ox := lo; ox < hi; ox++ {
						dst[ox] += wv * row[ix]
						ix += g.stride
					}
				}
			}
			if relu {
				for i, v := range dst {
					if !(v > 0) {
						dst[i] = 0
					}
				}
			}
		}
	}
}

// poolGeom is the geometry of a max-pool or avgpool layer.
type poolGeom struct {
	c, h, w, oh, ow, k, stride, pad int
}

func (g poolGeom) in() int  { return g.c * g.h * g.w }
func (g poolGeom) out() int { return g.c * g.oh * g.ow }

func maxPool[T float32 | uint8](g poolGeom, x, y []T, n int) {
	for b := 0; b < n; b++ {
		for c := 0; c < g.c; c++ {
			plane := x[(b*g.c+c)*g.h*g.w:]
			dst := y[(b*g.c+c)*g.oh*g.ow:]
			for oy := 0; oy < g.oh; oy++ {
				for ox := 0; ox < g.ow; ox++ {
					m := plane[oy*g.stride*g.w+ox*g.stride]
					for ky := 0; ky < g.k; ky++ {
						row := plane[(oy*g.stride+ky)*g.w+ox*g.stride:]
						for kx := 0; kx < g.k; kx++ {
							if v := row[kx]; v > m || v != v {
								m = v
							}
						}
					}
					dst[oy*g.ow+ox] = m
				}
			}
		}
	}
}

// maxPoolOp pools float32 or uint8 activations (max commutes with a
// monotonic quantization, so the uint8 result is exact).
type maxPoolOp struct {
	layer string
	g     poolGeom
}

func (o *maxPoolOp) name() string       { return o.layer }
func (o *maxPoolOp) weightBytes() int64 { return 0 }
func (o *maxPoolOp) describe() string {
	return fmt.Sprintf("maxpool[%s %d]", o.layer, o.g.k)
}

func (o *maxPoolOp) run(s *scratch, in []value, n int, buf int) value {
	if x := in[0]; x.u != nil {
		dst := s.outU(buf, n*o.g.out())
		maxPool(o.g, x.u, dst, n)
		return value{u: dst, q: x.q, dim: o.g.out()}
	}
	dst := s.outF(buf, n*o.g.out())
	maxPool(o.g, in[0].f, dst, n)
	return value{f: dst, dim: o.g.out()}
}

// avgPoolOp averages float32 windows; padding counts as zeros in the
// divisor (PyTorch's count_include_pad=True), which in floor mode with
// padding at most half the kernel makes the divisor always k².
type avgPoolOp struct {
	layer string
	g     poolGeom
}

func (o *avgPoolOp) name() string       { return o.layer }
func (o *avgPoolOp) weightBytes() int64 { return 0 }
func (o *avgPoolOp) describe() string {
	return fmt.Sprintf("avgpool[%s %d/%d pad %d f32]", o.layer, o.g.k, o.g.stride, o.g.pad)
}

func (o *avgPoolOp) run(s *scratch, in []value, n int, buf int) value {
	g := o.g
	dst := s.outF(buf, n*g.out())
	x := in[0].f
	inv := 1 / float32(g.k*g.k)
	for p := 0; p < n*g.c; p++ {
		plane := x[p*g.h*g.w : (p+1)*g.h*g.w]
		out := dst[p*g.oh*g.ow : (p+1)*g.oh*g.ow]
		for oy := 0; oy < g.oh; oy++ {
			y0 := oy*g.stride - g.pad
			for ox := 0; ox < g.ow; ox++ {
				x0 := ox*g.stride - g.pad
				var sum float32
				for y := max(y0, 0); y < min(y0+g.k, g.h); y++ {
					for _, v := range plane[y*g.w+max(x0, 0) : y*g.w+min(x0+g.k, g.w)] {
						sum += v
					}
				}
				out[oy*g.ow+ox] = sum * inv
			}
		}
	}
	return value{f: dst, dim: g.out()}
}

// globalAvgPoolOp is the mean of each [h, w] plane.
type globalAvgPoolOp struct {
	layer string
	c, hw int
}

func (o *globalAvgPoolOp) name() string       { return o.layer }
func (o *globalAvgPoolOp) weightBytes() int64 { return 0 }
func (o *globalAvgPoolOp) describe() string {
	return fmt.Sprintf("globalavgpool[%s %d×%d f32]", o.layer, o.c, o.hw)
}

func (o *globalAvgPoolOp) run(s *scratch, in []value, n int, buf int) value {
	dst := s.outF(buf, n*o.c)
	x := in[0].f
	inv := 1 / float32(o.hw)
	for p := range dst {
		var sum float32
		for _, v := range x[p*o.hw : (p+1)*o.hw] {
			sum += v
		}
		dst[p] = sum * inv
	}
	return value{f: dst, dim: o.c}
}

// addF32 is the element-wise sum of two float32 values, in place in the
// first when it dies there.
type addF32 struct{ layer string }

func (o *addF32) name() string       { return o.layer }
func (o *addF32) weightBytes() int64 { return 0 }
func (o *addF32) describe() string   { return "add[" + o.layer + " f32]" }
func (o *addF32) inPlace() bool      { return true }

// readsNHWC: an add is elementwise; when one input is NHWC, the other
// is brought to that layout (a copy) and so is the output.
func (o *addF32) readsNHWC() bool { return true }

func (o *addF32) run(s *scratch, in []value, n int, buf int) value {
	size := n * in[0].dim
	va, vb := sameLayout(s, in[0], in[1], n)
	dst := s.outF(buf, size)
	a, b := va.f[:size], vb.f[:size]
	for i := range dst {
		dst[i] = a[i] + b[i]
	}
	return value{f: dst, dim: in[0].dim, nhwc: va.nhwc, ch: va.ch}
}

// batchNormOp is a batchnorm that could not be folded, as a per-channel
// affine map over per values of each channel.
type batchNormOp struct {
	layer        string
	scale, shift []float32
	per          int
}

func (o *batchNormOp) name() string       { return o.layer }
func (o *batchNormOp) weightBytes() int64 { return int64(cap(o.scale)+cap(o.shift)) * 4 }
func (o *batchNormOp) describe() string   { return "batchnorm[" + o.layer + " f32]" }
func (o *batchNormOp) inPlace() bool      { return true }

func (o *batchNormOp) run(s *scratch, in []value, n int, buf int) value {
	size := n * in[0].dim
	dst := s.outF(buf, size)
	x := in[0].f[:size]
	ch := len(o.scale)
	for p := 0; p < n*ch; p++ {
		a, b := o.scale[p%ch], o.shift[p%ch]
		src := x[p*o.per : (p+1)*o.per]
		out := dst[p*o.per : (p+1)*o.per]
		for i, v := range src {
			out[i] = v*a + b
		}
	}
	return value{f: dst, dim: in[0].dim}
}

// actF32 applies an element-wise activation to float32 activations.
type actF32 struct {
	layer string
	kind  model.Kind
	apply func(src, dst []float32)
}

func (o *actF32) name() string       { return o.layer }
func (o *actF32) weightBytes() int64 { return 0 }
func (o *actF32) describe() string   { return fmt.Sprintf("%s[%s f32]", o.kind, o.layer) }

func (o *actF32) inPlace() bool { return true }

// readsNHWC: an activation is elementwise; the output keeps the input's
// layout.
func (o *actF32) readsNHWC() bool { return true }

func (o *actF32) run(s *scratch, in []value, n int, buf int) value {
	size := n * in[0].dim
	dst := s.outF(buf, size)
	o.apply(in[0].f[:size], dst)
	return value{f: dst, dim: in[0].dim, nhwc: in[0].nhwc, ch: in[0].ch}
}

func reluF32(src, dst []float32) {
	for i, v := range src {
		if !(v > 0) {
			v = 0
		}
		dst[i] = v
	}
}

func tanhF32(src, dst []float32) {
	for i, v := range src {
		dst[i] = float32(math.Tanh(float64(v)))
	}
}

func sigmoidF32(src, dst []float32) {
	for i, v := range src {
		dst[i] = float32(sigmoid64(float64(v)))
	}
}

func relu6F32(src, dst []float32) {
	for i, v := range src {
		dst[i] = min(max(v, 0), 6)
	}
}

func siluF32(src, dst []float32) {
	for i, v := range src {
		x := float64(v)
		dst[i] = float32(x * sigmoid64(x))
	}
}

func sigmoid64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
