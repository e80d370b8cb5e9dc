package augment

import (
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

// testImages returns n distinct [c, h, w] images with values in [0, 1].
func testImages(n, c, h, w int) []float32 {
	x := make([]float32, n*c*h*w)
	for i := range x {
		x[i] = float32((i*7919)%101) / 100
	}
	return x
}

func mustNew(t testing.TB, cfg Config, seed int64, shape []int) *Pipeline {
	t.Helper()
	p, err := New(cfg, seed, shape)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// full turns every augmentation on.
var full = Config{Shift: 2, Rotate: 10, Elastic: Elastic{Alpha: 8, Sigma: 3}, Noise: 0.05, Cutout: 4, Mixup: 0.4}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{"zero", Config{}, ""},
		{"full", full, ""},
		{"negative shift", Config{Shift: -1}, "shift must be in [0, 4096]"},
		{"rotate too big", Config{Rotate: 200}, "rotate must be in [0, 180] degrees, got 200"},
		{"rotate NaN", Config{Rotate: math.NaN()}, "rotate must be"},
		{"alpha without sigma", Config{Elastic: Elastic{Alpha: 34}}, "elastic needs both alpha and sigma"},
		{"sigma without alpha", Config{Elastic: Elastic{Sigma: 4}}, "elastic needs both alpha and sigma"},
		{"negative sigma", Config{Elastic: Elastic{Alpha: 1, Sigma: -4}}, "elastic.sigma must be in"},
		{"infinite alpha", Config{Elastic: Elastic{Alpha: math.Inf(1), Sigma: 4}}, "elastic.alpha must be in"},
		{"negative noise", Config{Noise: -0.1}, "noise must be a standard deviation"},
		{"negative cutout", Config{Cutout: -3}, "cutout must be a square side"},
		{"negative mixup", Config{Mixup: -0.2}, "mixup must be a Beta parameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// All problems are reported at once.
	err := Config{Shift: -1, Noise: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "shift") || !strings.Contains(err.Error(), "noise") {
		t.Errorf("Validate() = %v, want both problems", err)
	}
}

func TestNewChecksShape(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		shape []int
		want  string
	}{
		{"image", full, []int{1, 28, 28}, ""},
		{"2-D image", full, []int{28, 28}, ""},
		{"flat with noise and mixup", Config{Noise: 0.1, Mixup: 0.2}, []int{64}, ""},
		{"flat with shift", Config{Shift: 2}, []int{64}, "need images of shape"},
		{"empty shape", Config{}, nil, "shape is empty"},
		{"zero dimension", Config{}, []int{1, 0, 28}, "positive dimensions"},
		{"shift too big", Config{Shift: 8}, []int{1, 8, 8}, "smaller than the image's height and width"},
		{"cutout too big", Config{Cutout: 9}, []int{1, 8, 8}, "larger than the 8×8 image"},
		{"invalid config", Config{Rotate: -1}, []int{1, 8, 8}, "rotate must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, 1, tc.shape)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "augment/v1 none"},
		{Config{Shift: 2}, "augment/v1 shift=2"},
		{full, "augment/v1 shift=2 rotate=10 elastic.alpha=8 elastic.sigma=3 mixup=0.4 noise=0.05 cutout=4"},
		{Config{Rotate: 0.1, Noise: 1e-3}, "augment/v1 rotate=0.1 noise=0.001"},
		{Config{Rotate: math.Copysign(0, -1), Shift: 1}, "augment/v1 shift=1"},
	} {
		if got := tc.cfg.Key(); got != tc.want {
			t.Errorf("%+v.Key() = %q, want %q", tc.cfg, got, tc.want)
		}
	}
	if a, b := (Config{Noise: 0.1}).Key(), (Config{Noise: 0.10000000000000002}).Key(); a == b {
		t.Errorf("different noise levels share the key %q", a)
	}
}

func TestCopyZeroIsOriginal(t *testing.T) {
	base := testImages(5, 1, 8, 8)
	p := mustNew(t, full, 3, []int{1, 8, 8})
	dst := make([]float32, 64)
	for i := range 5 {
		if m := p.Apply(dst, base, i, 0); m.Mixed() || m.Lambda != 1 {
			t.Errorf("copy 0 of %d mixed: %+v", i, m)
		}
		if !slices.Equal(dst, base[i*64:(i+1)*64]) {
			t.Errorf("copy 0 of example %d differs from the original", i)
		}
	}
}

func TestDeterministic(t *testing.T) {
	const n, copies = 12, 4
	base := testImages(n, 2, 9, 7)
	shape := []int{2, 9, 7}
	p := mustNew(t, full, 42, shape)
	size := p.Size()

	want := make([][]float32, n*copies)
	for k := range want {
		want[k] = make([]float32, size)
		p.Apply(want[k], base, k%n, k/n)
	}
	// A second pipeline with the same seed, visiting in reverse order and
	// concurrently, gives the same examples bit for bit.
	q := mustNew(t, full, 42, shape)
	got := make([][]float32, n*copies)
	var wg sync.WaitGroup
	for k := len(got) - 1; k >= 0; k-- {
		wg.Go(func() {
			got[k] = make([]float32, size)
			q.Apply(got[k], base, k%n, k/n)
		})
	}
	wg.Wait()
	for k := range want {
		if !slices.Equal(got[k], want[k]) {
			t.Fatalf("example %d copy %d differs between runs", k%n, k/n)
		}
	}
	// Different copies, examples and seeds differ.
	other := mustNew(t, full, 43, shape)
	o := make([]float32, size)
	other.Apply(o, base, 0, 1)
	if slices.Equal(o, want[n]) {
		t.Error("seeds 42 and 43 give the same copy")
	}
	if slices.Equal(want[n], want[2*n]) {
		t.Error("copies 1 and 2 of example 0 are equal")
	}
}

func TestIndependentStreams(t *testing.T) {
	// Turning cutout on does not change the shift and rotation drawn.
	a := mustNew(t, Config{Shift: 2, Rotate: 15}, 9, []int{1, 8, 8})
	b := mustNew(t, Config{Shift: 2, Rotate: 15, Cutout: 3}, 9, []int{1, 8, 8})
	for i := range 20 {
		pa, pb := a.Params(i, 1, 20), b.Params(i, 1, 20)
		if pa.DX != pb.DX || pa.DY != pb.DY || pa.Angle != pb.Angle {
			t.Fatalf("example %d: %+v vs %+v", i, pa, pb)
		}
	}
}

func TestShift(t *testing.T) {
	const h, w = 6, 5
	p := mustNew(t, Config{Shift: 2}, 5, []int{2, h, w})
	base := testImages(30, 2, h, w)
	dst := make([]float32, p.Size())
	seen := map[[2]int]bool{}
	for i := range 30 {
		p.Apply(dst, base, i, 1)
		pr := p.Params(i, 1, 30)
		if pr.DX < -2 || pr.DX > 2 || pr.DY < -2 || pr.DY > 2 {
			t.Fatalf("shift (%d, %d) outside ±2", pr.DX, pr.DY)
		}
		seen[[2]int{pr.DX, pr.DY}] = true
		src := base[i*p.Size() : (i+1)*p.Size()]
		for c := range 2 {
			for y := range h {
				for x := range w {
					var want float32
					if sx, sy := x-pr.DX, y-pr.DY; sx >= 0 && sx < w && sy >= 0 && sy < h {
						want = src[c*h*w+sy*w+sx]
					}
					if got := dst[c*h*w+y*w+x]; got != want {
						t.Fatalf("example %d shifted by (%d, %d): pixel (%d, %d, %d) = %v, want %v", i, pr.DX, pr.DY, c, y, x, got, want)
					}
				}
			}
		}
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct shifts in 30 draws", len(seen))
	}
}

func TestRotate(t *testing.T) {
	// Rotating by exactly 90° maps output pixel (x, y) to input pixel
	// (y, n−1−x), up to rounding in sin and cos. (TestGeometricMatchesFormula
	// checks that the pipeline uses this formula at its drawn angles.)
	const n = 5
	src := testImages(1, 1, n, n)
	dst := make([]float32, n*n)
	rotateForTest(dst, src, n, n, 90)
	for y := range n {
		for x := range n {
			sx, sy := y, n-1-x
			if d := math.Abs(float64(dst[y*n+x] - src[sy*n+sx])); d > 1e-6 {
				t.Fatalf("pixel (%d, %d) = %v, want input (%d, %d) = %v", x, y, dst[y*n+x], sx, sy, src[sy*n+sx])
			}
		}
	}

	// Rotated copies stay in [0, 1] and keep the image's mass roughly
	// (a centred blob does not leave the canvas at ±10°).
	blob := make([]float32, 15*15)
	for y := 4; y < 11; y++ {
		for x := 4; x < 11; x++ {
			blob[y*15+x] = 1
		}
	}
	q := mustNew(t, Config{Rotate: 10}, 1, []int{1, 15, 15})
	out := make([]float32, 15*15)
	for cp := 1; cp <= 20; cp++ {
		q.Apply(out, blob, 0, cp)
		if a := q.Params(0, cp, 1).Angle; a < -10 || a > 10 {
			t.Fatalf("angle %v outside ±10°", a)
		}
		var mass float64
		for _, v := range out {
			if v < 0 || v > 1 {
				t.Fatalf("value %v outside [0, 1]", v)
			}
			mass += float64(v)
		}
		if math.Abs(mass-49) > 1.5 {
			t.Errorf("copy %d: mass %v, want about 49", cp, mass)
		}
	}
}

// rotateForTest rotates a one-channel image by deg degrees with the
// geometric stage's formula and no shift or elastic distortion.
func rotateForTest(dst, src []float32, h, w int, deg float64) {
	cx, cy := float64(w-1)/2, float64(h-1)/2
	th := deg * math.Pi / 180
	cos, sin := math.Cos(th), math.Sin(th)
	for y := range h {
		for x := range w {
			qx, qy := float64(x)-cx, float64(y)-cy
			sx, sy := cos*qx+sin*qy+cx, -sin*qx+cos*qy+cy
			x0, y0 := math.Floor(sx), math.Floor(sy)
			fx, fy := sx-x0, sy-y0
			ix, iy := int(x0), int(y0)
			dst[y*w+x] = float32((1-fy)*((1-fx)*at(src, h, w, iy, ix)+fx*at(src, h, w, iy, ix+1)) +
				fy*((1-fx)*at(src, h, w, iy+1, ix)+fx*at(src, h, w, iy+1, ix+1)))
		}
	}
}

func TestGeometricMatchesFormula(t *testing.T) {
	// The pipeline's rotation (no shift) agrees with rotateForTest at the
	// drawn angle.
	p := mustNew(t, Config{Rotate: 30}, 7, []int{1, 9, 9})
	base := testImages(3, 1, 9, 9)
	got, want := make([]float32, 81), make([]float32, 81)
	for i := range 3 {
		p.Apply(got, base, i, 2)
		rotateForTest(want, base[i*81:(i+1)*81], 9, 9, p.Params(i, 2, 3).Angle)
		for k := range got {
			if math.Abs(float64(got[k]-want[k])) > 1e-6 {
				t.Fatalf("example %d value %d: %v, want %v", i, k, got[k], want[k])
			}
		}
	}
}

func TestElastic(t *testing.T) {
	// The kernel is normalised and symmetric.
	k := gaussian(4)
	var sum float64
	for i := range k {
		sum += k[i]
		if k[i] != k[len(k)-1-i] {
			t.Fatal("kernel not symmetric")
		}
	}
	if len(k) != 33 || math.Abs(sum-1) > 1e-12 {
		t.Fatalf("kernel of σ=4 has %d taps summing to %v, want 33 and 1", len(k), sum)
	}
	// A smoothed field is smooth: neighbouring displacements differ much
	// less than the field's range.
	p := mustNew(t, Config{Elastic: Elastic{Alpha: 34, Sigma: 4}}, 1, []int{1, 28, 28})
	sc := p.scratch.Get().(*scratch)
	p.elasticField(sc, 0, 1)
	var maxAbs, maxStep float64
	for y := range 28 {
		for x := range 28 {
			maxAbs = max(maxAbs, math.Abs(sc.ex[y*28+x]))
			if x > 0 {
				maxStep = max(maxStep, math.Abs(sc.ex[y*28+x]-sc.ex[y*28+x-1]))
			}
		}
	}
	if maxAbs == 0 || maxStep > maxAbs/2 {
		t.Errorf("field not smooth: max |e| %v, max step %v", maxAbs, maxStep)
	}
	// A tiny alpha barely moves anything.
	q := mustNew(t, Config{Elastic: Elastic{Alpha: 1e-6, Sigma: 2}}, 1, []int{1, 10, 10})
	base := testImages(1, 1, 10, 10)
	out := make([]float32, 100)
	q.Apply(out, base, 0, 1)
	for i := range out {
		if math.Abs(float64(out[i]-base[i])) > 1e-4 {
			t.Fatalf("alpha 1e-6 moved value %d from %v to %v", i, base[i], out[i])
		}
	}
}

func TestNoise(t *testing.T) {
	const sigma = 0.1
	p := mustNew(t, Config{Noise: sigma}, 2, []int{1, 64, 64})
	base := make([]float32, 64*64)
	for i := range base {
		base[i] = 0.5
	}
	out := make([]float32, len(base))
	p.Apply(out, base, 0, 1)
	var s, ss float64
	for _, v := range out {
		d := float64(v) - 0.5
		s += d
		ss += d * d
	}
	n := float64(len(out))
	mean, sd := s/n, math.Sqrt(ss/n-(s/n)*(s/n))
	if math.Abs(mean) > 0.01 || math.Abs(sd-sigma) > 0.01 {
		t.Errorf("noise mean %v, sd %v; want 0 and %v", mean, sd, sigma)
	}
	// Values are clipped to [0, 1].
	q := mustNew(t, Config{Noise: 5}, 2, []int{1, 8, 8})
	q.Apply(out[:64], base[:64], 0, 1)
	for _, v := range out[:64] {
		if v < 0 || v > 1 {
			t.Fatalf("noisy value %v outside [0, 1]", v)
		}
	}
}

func TestCutout(t *testing.T) {
	const h, w, s = 10, 12, 4
	p := mustNew(t, Config{Cutout: s}, 3, []int{3, h, w})
	base := make([]float32, 3*h*w)
	for i := range base {
		base[i] = 1
	}
	out := make([]float32, len(base))
	for cp := 1; cp <= 30; cp++ {
		p.Apply(out, base, 0, cp)
		pr := p.Params(0, cp, 1)
		x0, y0 := pr.CutoutX-s/2, pr.CutoutY-s/2
		for c := range 3 {
			for y := range h {
				for x := range w {
					inside := x >= x0 && x < x0+s && y >= y0 && y < y0+s
					want := float32(1)
					if inside {
						want = 0
					}
					if got := out[c*h*w+y*w+x]; got != want {
						t.Fatalf("copy %d, cutout at (%d, %d): pixel (%d, %d, %d) = %v, want %v", cp, pr.CutoutX, pr.CutoutY, c, y, x, got, want)
					}
				}
			}
		}
	}
}

func TestMixup(t *testing.T) {
	const n = 8
	base := testImages(n, 1, 4, 4)
	p := mustNew(t, Config{Mixup: 0.4}, 11, []int{1, 4, 4})
	out := make([]float32, 16)
	for i := range n {
		for cp := 1; cp <= 5; cp++ {
			m := p.Apply(out, base, i, cp)
			if !m.Mixed() || m.Partner == i || m.Partner < 0 || m.Partner >= n {
				t.Fatalf("example %d copy %d: partner %d", i, cp, m.Partner)
			}
			if !(m.Lambda >= 0 && m.Lambda <= 1) {
				t.Fatalf("lambda %v outside [0, 1]", m.Lambda)
			}
			if m != p.Params(i, cp, n).Mix {
				t.Fatalf("Apply's mix %+v differs from Params' %+v", m, p.Params(i, cp, n).Mix)
			}
			for k := range out {
				want := m.Lambda*float64(base[i*16+k]) + (1-m.Lambda)*float64(base[m.Partner*16+k])
				if math.Abs(float64(out[k])-want) > 1e-6 {
					t.Fatalf("mixed value %v, want %v", out[k], want)
				}
			}
			if d := m.Dominant(i); (m.Lambda >= 0.5) != (d == i) {
				t.Fatalf("Dominant(%d) = %d with lambda %v", i, d, m.Lambda)
			}
		}
	}
	// A one-example base cannot be mixed.
	if m := p.Apply(out, base[:16], 0, 1); m.Mixed() {
		t.Errorf("one example mixed with %d", m.Partner)
	}
}

func TestBetaMoments(t *testing.T) {
	// Beta(a, a) has mean 1/2 and variance 1/(4(2a+1)).
	for _, a := range []float64{0.05, 0.2, 1, 3} {
		const draws = 20000
		var s, ss float64
		for k := range draws {
			r := newStream(5, k, 1, opMixup)
			v := r.beta(a)
			if !(v >= 0 && v <= 1) {
				t.Fatalf("Beta(%v) draw %v", a, v)
			}
			s += v
			ss += v * v
		}
		mean := s / draws
		vr := ss/draws - mean*mean
		want := 1 / (4 * (2*a + 1))
		if math.Abs(mean-0.5) > 0.01 || math.Abs(vr-want) > 0.05*want+0.002 {
			t.Errorf("Beta(%v, %v): mean %v, variance %v; want 0.5 and %v", a, a, mean, vr, want)
		}
	}
}

func TestApplyPanicsOnMisuse(t *testing.T) {
	p := mustNew(t, Config{Shift: 1}, 1, []int{1, 4, 4})
	base := testImages(2, 1, 4, 4)
	for name, f := range map[string]func(){
		"short dst":       func() { p.Apply(make([]float32, 15), base, 0, 1) },
		"bad base length": func() { p.Apply(make([]float32, 16), base[:17], 0, 1) },
		"index too big":   func() { p.Apply(make([]float32, 16), base, 2, 1) },
		"negative copy":   func() { p.Apply(make([]float32, 16), base, 0, -1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func BenchmarkApply(b *testing.B) {
	base := testImages(64, 1, 28, 28)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"shift", Config{Shift: 2}},
		{"rotate", Config{Rotate: 10}},
		{"elastic", Config{Elastic: Elastic{Alpha: 34, Sigma: 4}}},
		{"all", Config{Shift: 2, Rotate: 10, Elastic: Elastic{Alpha: 34, Sigma: 4}, Noise: 0.05, Cutout: 8, Mixup: 0.2}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := mustNew(b, tc.cfg, 1, []int{1, 28, 28})
			dst := make([]float32, 784)
			i := 0
			for b.Loop() {
				p.Apply(dst, base, i%64, 1+i/64)
				i++
			}
		})
	}
}

func TestFlip(t *testing.T) {
	// Two channels of a 2×3 image.
	base := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	mirrored := []float32{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10}
	p, err := New(Config{Flip: true}, 3, []int{2, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, len(base))
	flips := 0
	for cp := 1; cp <= 64; cp++ {
		p.Apply(dst, base, 0, cp)
		flip := p.Params(0, cp, 1).Flip
		want := base
		if flip {
			want, flips = mirrored, flips+1
		}
		if !slices.Equal(dst, want) {
			t.Fatalf("copy %d (flip %v): %v, want %v", cp, flip, dst, want)
		}
	}
	if flips < 16 || flips > 48 {
		t.Errorf("%d of 64 copies mirrored; want about half", flips)
	}
	if p.Apply(dst, base, 0, 0); !slices.Equal(dst, base) {
		t.Errorf("copy 0 changed: %v", dst)
	}
	if got := (Config{Flip: true, Shift: 1}).String(); got != "shift=1 flip" {
		t.Errorf("String() = %q", got)
	}
	// Turning flip on leaves the other operations' draws as they were.
	a, _ := New(Config{Shift: 1}, 3, []int{1, 4, 4})
	b, _ := New(Config{Shift: 1, Flip: true}, 3, []int{1, 4, 4})
	for cp := 1; cp < 20; cp++ {
		pa, pb := a.Params(0, cp, 1), b.Params(0, cp, 1)
		if pa.DX != pb.DX || pa.DY != pb.DY {
			t.Fatalf("copy %d: shift %d,%d without flip, %d,%d with", cp, pa.DX, pa.DY, pb.DX, pb.DY)
		}
	}
	if _, err := New(Config{Flip: true}, 1, []int{10}); err == nil || !strings.Contains(err.Error(), "flip") {
		t.Errorf("flip on flat features: %v", err)
	}
}
