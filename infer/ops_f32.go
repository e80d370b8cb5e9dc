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

func (o *linearF32) run(s *scratch, in value, n int) value {
	buf, slot := s.outF(in, n*o.out)
	o.w.Gemm(n, in.f, o.in, buf, o.out, o.bias, o.relu)
	return value{f: buf, dim: o.out, slot: slot}
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
}

func (g convGeom) in() int   { return g.c * g.h * g.w }
func (g convGeom) out() int  { return g.o * g.oh * g.ow }
func (g convGeom) kdim() int { return g.c * g.k * g.k }
func (g convGeom) pos() int  { return g.oh * g.ow }

// chunk is how many examples to im2col at once: enough rows for the
// GEMM to be efficient, bounded memory.
func (g convGeom) chunk(n int) int {
	per := g.pos() * g.kdim()
	return max(1, min(n, (1<<20)/max(per, 1)))
}

// im2col writes the [pos, kdim] patch matrix of one example (x is its
// [c, h, w] input) into col, with pad for the positions outside x.
func im2col[T float32 | uint8](g convGeom, x []T, col []T, pad T) {
	kd := g.kdim()
	for oy := 0; oy < g.oh; oy++ {
		for ox := 0; ox < g.ow; ox++ {
			row := col[(oy*g.ow+ox)*kd : (oy*g.ow+ox+1)*kd]
			i := 0
			for c := 0; c < g.c; c++ {
				plane := x[c*g.h*g.w : (c+1)*g.h*g.w]
				for ky := 0; ky < g.k; ky++ {
					y := oy*g.stride - g.pad + ky
					for kx := 0; kx < g.k; kx++ {
						xx := ox*g.stride - g.pad + kx
						if y < 0 || y >= g.h || xx < 0 || xx >= g.w {
							row[i] = pad
						} else {
							row[i] = plane[y*g.w+xx]
						}
						i++
					}
				}
			}
		}
	}
}

// transposeOut turns the GEMM output of one example, [pos, o], into the
// [o, pos] (NCHW) layout.
func transposeOut[T float32 | uint8](g convGeom, src, dst []T) {
	p := g.pos()
	for i := 0; i < p; i++ {
		row := src[i*g.o : (i+1)*g.o]
		for c, v := range row {
			dst[c*p+i] = v
		}
	}
}

// convF32 is a 2-D convolution (NCHW) as im2col + GEMM, optionally fused
// with a ReLU.
type convF32 struct {
	layer string
	g     convGeom
	w     *gemm.PackedF32
	bias  []float32
	relu  bool
}

func (o *convF32) name() string { return o.layer }
func (o *convF32) weightBytes() int64 {
	return o.w.Bytes() + int64(cap(o.bias))*4
}
func (o *convF32) describe() string {
	return fmt.Sprintf("conv%s[%s %dx%dx%d→%dx%dx%d f32]", reluSuffix(o.relu), o.layer, o.g.c, o.g.h, o.g.w, o.g.o, o.g.oh, o.g.ow)
}

func (o *convF32) run(s *scratch, in value, n int) value {
	g := o.g
	buf, slot := s.outF(in, n*g.out())
	ch := g.chunk(n)
	s.col = growF(s.col, ch*g.pos()*g.kdim())
	s.tmp = growF(s.tmp, ch*g.pos()*g.o)
	for b0 := 0; b0 < n; b0 += ch {
		nb := min(ch, n-b0)
		for b := 0; b < nb; b++ {
			im2col(g, in.f[(b0+b)*g.in():], s.col[b*g.pos()*g.kdim():], 0)
		}
		o.w.Gemm(nb*g.pos(), s.col, g.kdim(), s.tmp, g.o, o.bias, o.relu)
		for b := 0; b < nb; b++ {
			transposeOut(g, s.tmp[b*g.pos()*g.o:], buf[(b0+b)*g.out():])
		}
	}
	return value{f: buf, dim: g.out(), slot: slot}
}

// poolGeom is the geometry of a max-pool layer.
type poolGeom struct {
	c, h, w, oh, ow, k, stride int
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

func (o *maxPoolOp) run(s *scratch, in value, n int) value {
	if in.u != nil {
		buf, slot := s.outU(in, n*o.g.out())
		maxPool(o.g, in.u, buf, n)
		return value{u: buf, q: in.q, dim: o.g.out(), slot: slot}
	}
	buf, slot := s.outF(in, n*o.g.out())
	maxPool(o.g, in.f, buf, n)
	return value{f: buf, dim: o.g.out(), slot: slot}
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

func (o *actF32) run(s *scratch, in value, n int) value {
	size := n * in.dim
	dst, slot := in.f[:size], in.slot
	if in.slot < 0 { // never write the caller's input
		dst, slot = s.outF(in, size)
	}
	o.apply(in.f[:size], dst)
	return value{f: dst, dim: in.dim, slot: slot}
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

func sigmoid64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
