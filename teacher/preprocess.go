package teacher

import (
	"fmt"
	"slices"
	"sync"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/recipe"
)

// Preprocess wraps teacher m so that every input it is given is first
// made what the teacher was trained on (recipe.Preprocess): resized,
// given channels, reordered and normalised per channel. A teacher
// trained on normalised RGB images of another size then teaches a
// student that reads the data as it is. input is the data's per-example
// shape; the teacher reads p.Shape(input). The result is a
// backend.FeatureModel when m is one. Closing it closes m.
func Preprocess(m backend.Model, input []int, p recipe.Preprocess) (backend.Model, error) {
	out, err := p.Shape(input)
	if err != nil {
		return nil, fmt.Errorf("teacher: preprocess: %w", err)
	}
	// A flat example is one channel; an image [C, H, W] has C planes.
	inCh, outCh, inPlane, outPlane := 1, 1, 1, 1
	for _, d := range input {
		inPlane *= d
	}
	outPlane = inPlane
	if len(input) == 3 {
		inCh, inPlane = input[0], input[1]*input[2]
		outCh, outPlane = out[0], out[1]*out[2]
	}
	if inPlane <= 0 {
		return nil, fmt.Errorf("teacher: preprocess: examples of shape %v", input)
	}
	expand := func(what string, v []float64, def float64) ([]float32, error) {
		vals := make([]float32, outCh)
		switch len(v) {
		case 0:
			for i := range vals {
				vals[i] = float32(def)
			}
		case 1, outCh:
			for i := range vals {
				vals[i] = float32(v[i%len(v)])
			}
		default:
			return nil, fmt.Errorf("teacher: preprocess: %d %s values for the teacher's examples of %d channel(s) (shape %v): give one, or one per channel", len(v), what, outCh, out)
		}
		return vals, nil
	}
	mu, err := expand("mean", p.Mean, 0)
	if err != nil {
		return nil, err
	}
	sd, err := expand("std", p.Std, 1)
	if err != nil {
		return nil, err
	}
	inv := make([]float32, outCh)
	for i, s := range sd {
		if !(s > 0) {
			return nil, fmt.Errorf("teacher: preprocess: std[%d] must be > 0, got %v", i, s)
		}
		inv[i] = 1 / s
	}
	// source[c] is the data channel the teacher's channel c is made
	// from: itself, the one grey channel repeated, or reversed.
	source := make([]int, outCh)
	for c := range source {
		if inCh > 1 {
			source[c] = c
		}
	}
	switch p.ChannelOrder {
	case "", recipe.ChannelsRGB:
	case recipe.ChannelsBGR:
		if outCh != 3 {
			return nil, fmt.Errorf("teacher: preprocess: channel order bgr reverses 3 colour channels, but the teacher's examples have %d (shape %v)", outCh, out)
		}
		slices.Reverse(source)
	default:
		return nil, fmt.Errorf("teacher: preprocess: unknown channel order %q (want %q or %q)", p.ChannelOrder, recipe.ChannelsRGB, recipe.ChannelsBGR)
	}
	pp := &preprocessed{Model: m, mean: mu, inv: inv, source: source,
		inPlane: inPlane, outPlane: outPlane, inSize: inCh * inPlane, outSize: outCh * outPlane}
	if len(input) == 3 && (out[1] != input[1] || out[2] != input[2]) {
		pp.resize = newBilinear(input[1], input[2], out[1], out[2])
	}
	if fm, ok := m.(backend.FeatureModel); ok {
		return &preprocessedFeatures{pp, fm}, nil
	}
	return pp, nil
}

// preprocessed prepares inputs into its own buffer (the caller's batch
// is shared with the student, which must see it unchanged); mu guards
// the buffer, so that it is as safe for concurrent use as the model it
// wraps.
type preprocessed struct {
	backend.Model
	mu                sync.Mutex
	mean, inv         []float32 // per teacher channel
	source            []int     // per teacher channel: the data channel it is made from
	resize            *bilinear // nil: same height and width
	inPlane, outPlane int
	inSize, outSize   int // values per example: data, teacher
	buf               []float32
}

func (p *preprocessed) prepare(x []float32, n int) ([]float32, error) {
	if n < 0 || len(x) < n*p.inSize {
		return nil, fmt.Errorf("teacher: preprocess: %d inputs for %d examples of size %d", len(x), n, p.inSize)
	}
	if cap(p.buf) < n*p.outSize {
		p.buf = make([]float32, n*p.outSize)
	}
	out := p.buf[:n*p.outSize]
	for e := 0; e < n; e++ {
		ex := x[e*p.inSize : (e+1)*p.inSize]
		for c, sc := range p.source {
			src := ex[sc*p.inPlane : (sc+1)*p.inPlane]
			dst := out[e*p.outSize+c*p.outPlane : e*p.outSize+(c+1)*p.outPlane]
			if p.resize != nil {
				p.resize.apply(src, dst)
			} else {
				copy(dst, src)
			}
			m, inv := p.mean[c], p.inv[c]
			for i, v := range dst {
				dst[i] = (v - m) * inv
			}
		}
	}
	return out, nil
}

func (p *preprocessed) Forward(x []float32, n int, out []float32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	xs, err := p.prepare(x, n)
	if err != nil {
		return err
	}
	return p.Model.Forward(xs, n, out)
}

type preprocessedFeatures struct {
	*preprocessed
	fm backend.FeatureModel
}

func (p *preprocessedFeatures) ForwardFeatures(x []float32, n int, layers []string, logits []float32, feats [][]float32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	xs, err := p.prepare(x, n)
	if err != nil {
		return err
	}
	return p.fm.ForwardFeatures(xs, n, layers, logits, feats)
}

// bilinear resizes an h×w plane to oh×ow as PyTorch's
// F.interpolate(mode="bilinear", align_corners=False) does on the CPU
// (upsample_bilinear2d, without antialiasing), in float32 as it computes
// for float32 tensors, so that a teacher sees what it saw in PyTorch.
// data.Load's image resizing works on decoded 8-bit images with
// x/image/draw and cannot stand in: its kernel widens when shrinking.
type bilinear struct {
	w      int
	ys, xs []tap // per output row and column
}

// tap is where one output coordinate reads: i0 and i0+step, weighted
// 1−frac and frac.
type tap struct {
	i0, step int
	frac     float32
}

func newBilinear(h, w, oh, ow int) *bilinear {
	return &bilinear{w: w, ys: taps(h, oh), xs: taps(w, ow)}
}

// taps follows ATen's area_pixel_compute_source_index with
// align_corners=False: src = max(scale·(dst+½) − ½, 0), scale = in/out.
func taps(in, out int) []tap {
	scale := float32(in) / float32(out)
	t := make([]tap, out)
	for d := range t {
		src := max(scale*(float32(d)+0.5)-0.5, 0)
		i0 := int(src)
		step := 0
		if i0 < in-1 {
			step = 1
		}
		t[d] = tap{i0: i0, step: step, frac: src - float32(i0)}
	}
	return t
}

func (b *bilinear) apply(src, dst []float32) {
	ow := len(b.xs)
	for oy, ty := range b.ys {
		r0 := src[ty.i0*b.w:]
		r1 := src[(ty.i0+ty.step)*b.w:]
		h1 := ty.frac
		h0 := 1 - h1
		row := dst[oy*ow : (oy+1)*ow]
		for ox, tx := range b.xs {
			w1 := tx.frac
			w0 := 1 - w1
			j0, j1 := tx.i0, tx.i0+tx.step
			row[ox] = h0*(w0*r0[j0]+w1*r0[j1]) + h1*(w0*r1[j0]+w1*r1[j1])
		}
	}
}
