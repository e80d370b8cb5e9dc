package augment

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// Pipeline applies a Config's augmentations to examples of one shape. It
// is immutable once made and safe for concurrent use.
type Pipeline struct {
	cfg     Config
	seed    int64
	shape   []int
	c, h, w int
	size    int
	kernel  []float64 // elastic smoothing kernel, taps -r..r
	scratch sync.Pool // *scratch
}

// scratch holds one Apply call's working memory.
type scratch struct {
	partner []float32 // the mixup partner's geometric copy
	ex, ey  []float64 // elastic displacement fields
	tmp     []float64 // blur's intermediate
}

// Mix describes how Apply mixed an example with another (mixup).
type Mix struct {
	// Partner is the index of the example mixed in, or -1 when the
	// example was not mixed.
	Partner int
	// Lambda is the weight of the example itself: the result is
	// Lambda·x_i + (1−Lambda)·x_Partner. It is 1 when not mixed.
	Lambda float64
}

// noMix is the Mix of an example that was not mixed.
var noMix = Mix{Partner: -1, Lambda: 1}

// Mixed reports whether another example was mixed in.
func (m Mix) Mixed() bool { return m.Partner >= 0 }

// Dominant returns the example that contributes most to the mix of
// example self: self when Lambda >= 1/2 (or when not mixed), the partner
// otherwise. Its label is the mix's best single hard label.
func (m Mix) Dominant(self int) int {
	if m.Partner < 0 || m.Lambda >= 0.5 {
		return self
	}
	return m.Partner
}

// Params are the random choices that Apply makes for one example.
type Params struct {
	// DX, DY is the shift in pixels (positive moves the content right
	// and down).
	DX, DY int
	// Angle is the rotation in degrees.
	Angle float64
	// Elastic reports that an elastic distortion is applied (its
	// displacement field is not included).
	Elastic bool
	// Mix is the mixup partner and weight.
	Mix Mix
	// Noise reports that Gaussian noise is added.
	Noise bool
	// Cutout reports that a square is cut out, centred at pixel
	// (CutoutX, CutoutY).
	Cutout           bool
	CutoutX, CutoutY int
	// Flip reports that the image is mirrored left to right.
	Flip bool
}

// New returns a pipeline applying cfg to examples of the given shape:
// [C, H, W] or [H, W] images, or any shape when only noise and mixup are
// on. seed, with the example index and copy number, determines every
// random choice.
func New(cfg Config, seed int64, shape []int) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(shape) == 0 {
		return nil, errors.New("augment: the example shape is empty")
	}
	size := 1
	for _, d := range shape {
		if d <= 0 || size > math.MaxInt32/d {
			return nil, fmt.Errorf("augment: example shape %v must have positive dimensions and fewer than 2^31 values", shape)
		}
		size *= d
	}
	p := &Pipeline{cfg: cfg, seed: seed, shape: slices.Clone(shape), size: size}
	switch len(shape) {
	case 3:
		p.c, p.h, p.w = shape[0], shape[1], shape[2]
	case 2:
		p.c, p.h, p.w = 1, shape[0], shape[1]
	default:
		if cfg.spatial() {
			return nil, fmt.Errorf("augment: shift, rotate, elastic, flip and cutout need images of shape [C, H, W] or [H, W], not %v; use only noise and mixup on such data", shape)
		}
		p.c, p.h, p.w = 1, 1, size
	}
	if cfg.Shift >= p.h || cfg.Shift >= p.w {
		return nil, fmt.Errorf("augment: shift %d must be smaller than the image's height and width (%d×%d), or it moves the image off the canvas", cfg.Shift, p.h, p.w)
	}
	if cfg.Cutout > max(p.h, p.w) {
		return nil, fmt.Errorf("augment: cutout %d is larger than the %d×%d image", cfg.Cutout, p.h, p.w)
	}
	if cfg.Elastic.On() {
		p.kernel = gaussian(cfg.Elastic.Sigma)
	}
	p.scratch.New = func() any {
		s := &scratch{}
		if cfg.Mixup != 0 {
			s.partner = make([]float32, size)
		}
		if cfg.Elastic.On() {
			hw := p.h * p.w
			s.ex, s.ey, s.tmp = make([]float64, hw), make([]float64, hw), make([]float64, hw)
		}
		return s
	}
	return p, nil
}

// Config returns the pipeline's configuration.
func (p *Pipeline) Config() Config { return p.cfg }

// Seed returns the pipeline's seed.
func (p *Pipeline) Seed() int64 { return p.seed }

// Size returns the number of values in one example.
func (p *Pipeline) Size() int { return p.size }

// Apply writes copy cp of example i of base into dst[:Size()] and reports
// the mixup partner, if any. base holds the base examples back to back
// (base[i*Size() : (i+1)*Size()] is example i, as in data.Dataset.X);
// mixup draws its partner from all of them. Copy 0 is example i itself;
// every copy cp >= 1 is a distinct augmented copy, the same for the same
// (seed, i, cp) whenever and wherever it is made.
//
// Apply's arguments come from the program, so a violated precondition
// (len(base) not a multiple of Size(), i outside the examples, cp < 0,
// dst too short) is a bug and Apply panics saying which.
func (p *Pipeline) Apply(dst, base []float32, i, cp int) Mix {
	n := p.check("Apply", base, i, cp)
	if len(dst) < p.size {
		panic(fmt.Sprintf("augment: Apply needs len(dst) >= %d, have %d", p.size, len(dst)))
	}
	dst = dst[:p.size]
	src := base[i*p.size : (i+1)*p.size]
	if cp == 0 || !p.cfg.Enabled() {
		copy(dst, src)
		return noMix
	}
	sc := p.scratch.Get().(*scratch)
	defer p.scratch.Put(sc)

	p.geometric(dst, src, i, cp, sc)
	mix := p.drawMix(i, cp, n)
	if mix.Mixed() {
		j := mix.Partner
		p.geometric(sc.partner, base[j*p.size:(j+1)*p.size], j, cp, sc)
		lam := mix.Lambda
		for k, v := range dst {
			dst[k] = float32(lam*float64(v) + (1-lam)*float64(sc.partner[k]))
		}
	}
	if s := p.cfg.Noise; s != 0 {
		r := newStream(p.seed, i, cp, opNoise)
		for k, v := range dst {
			dst[k] = float32(min(max(float64(v)+s*r.normal(), 0), 1))
		}
	}
	if p.cfg.Cutout != 0 {
		cx, cy := p.drawCutout(i, cp)
		p.cutout(dst, cx, cy)
	}
	return mix
}

// Params returns the random choices Apply makes for copy cp of example i
// of a base of n examples.
func (p *Pipeline) Params(i, cp, n int) Params {
	if n < 1 || i < 0 || i >= n || cp < 0 {
		panic(fmt.Sprintf("augment: Params(%d, %d, %d): need 0 <= i < n and cp >= 0", i, cp, n))
	}
	pr := Params{Mix: noMix}
	if cp == 0 {
		return pr
	}
	pr.DX, pr.DY = p.drawShift(i, cp)
	pr.Angle = p.drawAngle(i, cp)
	pr.Elastic = p.cfg.Elastic.On()
	pr.Mix = p.drawMix(i, cp, n)
	pr.Noise = p.cfg.Noise != 0
	pr.Flip = p.drawFlip(i, cp)
	if p.cfg.Cutout != 0 {
		pr.Cutout = true
		pr.CutoutX, pr.CutoutY = p.drawCutout(i, cp)
	}
	return pr
}

// check validates Apply's base, i and cp and returns the number of base
// examples.
func (p *Pipeline) check(op string, base []float32, i, cp int) int {
	if len(base)%p.size != 0 {
		panic(fmt.Sprintf("augment: %s: len(base) = %d is not a multiple of the example size %d", op, len(base), p.size))
	}
	n := len(base) / p.size
	if i < 0 || i >= n {
		panic(fmt.Sprintf("augment: %s: example %d is outside [0, %d)", op, i, n))
	}
	if cp < 0 {
		panic(fmt.Sprintf("augment: %s: copy %d is negative", op, cp))
	}
	return n
}

// drawShift returns the shift of copy (i, cp), each in [-Shift, Shift].
func (p *Pipeline) drawShift(i, cp int) (dx, dy int) {
	s := p.cfg.Shift
	if s == 0 {
		return 0, 0
	}
	r := newStream(p.seed, i, cp, opShift)
	dx = r.intn(2*s+1) - s
	dy = r.intn(2*s+1) - s
	return dx, dy
}

// drawAngle returns the rotation of copy (i, cp) in degrees.
func (p *Pipeline) drawAngle(i, cp int) float64 {
	if p.cfg.Rotate == 0 {
		return 0
	}
	r := newStream(p.seed, i, cp, opRotate)
	return r.uniform(-p.cfg.Rotate, p.cfg.Rotate)
}

// drawMix returns the mixup partner and weight of copy (i, cp) of a base
// of n examples: a partner drawn uniformly from the other n−1.
func (p *Pipeline) drawMix(i, cp, n int) Mix {
	if p.cfg.Mixup == 0 || n < 2 || cp == 0 {
		return noMix
	}
	r := newStream(p.seed, i, cp, opMixup)
	j := r.intn(n - 1)
	if j >= i {
		j++
	}
	return Mix{Partner: j, Lambda: r.beta(p.cfg.Mixup)}
}

// drawCutout returns the centre of copy (i, cp)'s cutout.
func (p *Pipeline) drawCutout(i, cp int) (x, y int) {
	r := newStream(p.seed, i, cp, opCutout)
	y = r.intn(p.h)
	x = r.intn(p.w)
	return x, y
}

// geometric writes src, shifted, rotated and elastically distorted as
// copy (i, cp) is, into dst. The three maps are composed: output pixel
// (x, y) samples the input at
//
//	R(−θ)·((x, y) + e(x, y) − c) + c − (dx, dy)
//
// with e the elastic displacement, c the image centre and R(−θ) the
// inverse rotation; this equals shifting, then rotating, then distorting,
// with a single bilinear interpolation.
func (p *Pipeline) geometric(dst, src []float32, i, cp int, sc *scratch) {
	p.warp(dst, src, i, cp, sc)
	if p.drawFlip(i, cp) {
		mirror(dst, p.c, p.h, p.w)
	}
}

// drawFlip reports whether copy (i, cp) is mirrored.
func (p *Pipeline) drawFlip(i, cp int) bool {
	if !p.cfg.Flip {
		return false
	}
	r := newStream(p.seed, i, cp, opFlip)
	return r.pcg.Uint64()&1 == 1
}

// mirror reverses every row of each of the c h×w planes of img.
func mirror(img []float32, c, h, w int) {
	for row := range c * h {
		slices.Reverse(img[row*w : (row+1)*w])
	}
}

// warp applies the shift, rotation and elastic distortion.
func (p *Pipeline) warp(dst, src []float32, i, cp int, sc *scratch) {
	dx, dy := p.drawShift(i, cp)
	deg := p.drawAngle(i, cp)
	elastic := p.cfg.Elastic.On()
	if !elastic && deg == 0 {
		shift(dst, src, p.c, p.h, p.w, dx, dy)
		return
	}
	if elastic {
		p.elasticField(sc, i, cp)
	}
	h, w := p.h, p.w
	hw := h * w
	cx, cy := float64(w-1)/2, float64(h-1)/2
	theta := deg * math.Pi / 180
	cos, sin := math.Cos(theta), math.Sin(theta)
	fdx, fdy := float64(dx), float64(dy)
	for y := range h {
		for x := range w {
			px, py := float64(x), float64(y)
			if elastic {
				px += sc.ex[y*w+x]
				py += sc.ey[y*w+x]
			}
			qx, qy := px-cx, py-cy
			sx := cos*qx + sin*qy + cx - fdx
			sy := -sin*qx + cos*qy + cy - fdy
			// Clamp far-away coordinates (huge elastic alpha) to just
			// outside the image: they sample zeros either way, and the
			// integer conversion below stays in range.
			sx = min(max(sx, -2), float64(w+1))
			sy = min(max(sy, -2), float64(h+1))
			x0, y0 := math.Floor(sx), math.Floor(sy)
			fx, fy := sx-x0, sy-y0
			ix, iy := int(x0), int(y0)
			w00, w01 := (1-fy)*(1-fx), (1-fy)*fx
			w10, w11 := fy*(1-fx), fy*fx
			for ch := range p.c {
				plane := src[ch*hw : (ch+1)*hw]
				v := w00*at(plane, h, w, iy, ix) + w01*at(plane, h, w, iy, ix+1) +
					w10*at(plane, h, w, iy+1, ix) + w11*at(plane, h, w, iy+1, ix+1)
				dst[ch*hw+y*w+x] = float32(v)
			}
		}
	}
}

// at returns pixel (r, c) of an h×w plane, or 0 outside it.
func at(plane []float32, h, w, r, c int) float64 {
	if r < 0 || r >= h || c < 0 || c >= w {
		return 0
	}
	return float64(plane[r*w+c])
}

// shift writes src moved by (dx, dy) pixels into dst, filling with 0.
func shift(dst, src []float32, c, h, w, dx, dy int) {
	if dx == 0 && dy == 0 {
		copy(dst, src)
		return
	}
	clear(dst)
	hw := h * w
	x0, x1 := max(0, dx), min(w, w+dx) // destination columns that receive a pixel
	if x0 >= x1 {
		return
	}
	for ch := range c {
		for y := max(0, dy); y < min(h, h+dy); y++ {
			d := dst[ch*hw+y*w : ch*hw+(y+1)*w]
			s := src[ch*hw+(y-dy)*w : ch*hw+(y-dy+1)*w]
			copy(d[x0:x1], s[x0-dx:x1-dx])
		}
	}
}

// elasticField fills sc.ex and sc.ey with copy (i, cp)'s displacement
// fields: uniform in [-1, 1], smoothed by the Gaussian kernel, scaled by
// alpha.
func (p *Pipeline) elasticField(sc *scratch, i, cp int) {
	r := newStream(p.seed, i, cp, opElastic)
	for k := range sc.ex {
		sc.ex[k] = r.uniform(-1, 1)
	}
	for k := range sc.ey {
		sc.ey[k] = r.uniform(-1, 1)
	}
	for _, f := range [][]float64{sc.ex, sc.ey} {
		blur(f, sc.tmp, p.h, p.w, p.kernel)
		for k := range f {
			f[k] *= p.cfg.Elastic.Alpha
		}
	}
}

// gaussian returns a normalised Gaussian kernel of standard deviation
// sigma, truncated at 4·sigma (as scipy.ndimage.gaussian_filter does).
func gaussian(sigma float64) []float64 {
	r := int(math.Ceil(4 * sigma))
	k := make([]float64, 2*r+1)
	var sum float64
	for i := range k {
		d := float64(i - r)
		k[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	return k
}

// blur convolves the h×w field f in place with the separable kernel k,
// treating everything outside the field as 0. tmp holds h×w values.
func blur(f, tmp []float64, h, w int, k []float64) {
	r := len(k) / 2
	// Rows: tmp[y, x] = Σ_t k[t−x+r]·f[y, t].
	for y := range h {
		row := f[y*w : (y+1)*w]
		out := tmp[y*w : (y+1)*w]
		for x := range out {
			lo, hi := max(0, x-r), min(w, x+r+1)
			kk := k[lo-x+r : hi-x+r]
			src := row[lo:hi]
			src = src[:len(kk)]
			var s float64
			for t, kv := range kk {
				s += kv * src[t]
			}
			out[x] = s
		}
	}
	// Columns, a row at a time: f[y, :] = Σ_t k[t−y+r]·tmp[t, :].
	for y := range h {
		out := f[y*w : (y+1)*w]
		clear(out)
		for t := max(0, y-r); t < min(h, y+r+1); t++ {
			kv := k[t-y+r]
			src := tmp[t*w : (t+1)*w]
			src = src[:len(out)]
			for x := range out {
				out[x] += kv * src[x]
			}
		}
	}
}

// cutout zeroes the Cutout-sided square centred at (cx, cy), clipped to
// the image, in every channel.
func (p *Pipeline) cutout(dst []float32, cx, cy int) {
	s := p.cfg.Cutout
	x0, y0 := cx-s/2, cy-s/2
	xa, xb := max(0, x0), min(p.w, x0+s)
	ya, yb := max(0, y0), min(p.h, y0+s)
	hw := p.h * p.w
	for ch := range p.c {
		for y := ya; y < yb; y++ {
			clear(dst[ch*hw+y*p.w+xa : ch*hw+y*p.w+xb])
		}
	}
}
