package augment

import (
	"math"
	"testing"
)

// FuzzPipeline checks that any configuration either fails New with an
// error or gives finite outputs in [0, 1] for inputs in [0, 1], without
// panicking.
func FuzzPipeline(f *testing.F) {
	f.Add(2, 10.0, 34.0, 4.0, 0.1, 3, 0.2, int64(1), 1, 8, 8, 3)
	f.Add(0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, int64(0), 1, 1, 1, 1)
	f.Add(1, 180.0, 1e4, 0.01, 10.0, 8, 1e-3, int64(-5), 2, 3, 8, 7)
	f.Fuzz(func(t *testing.T, shiftPx int, rot, alpha, sigma, noise float64, cut int, mix float64, seed int64, c, h, w, cp int) {
		if c < 1 || h < 1 || w < 1 || c*h*w > 1024 || cp < 0 || cp > 1<<20 {
			t.Skip()
		}
		if sigma > 8 { // keep each run fast; large σ only widens the kernel
			t.Skip()
		}
		cfg := Config{Shift: shiftPx, Rotate: rot, Elastic: Elastic{Alpha: alpha, Sigma: sigma}, Noise: noise, Cutout: cut, Mixup: mix}
		p, err := New(cfg, seed, []int{c, h, w})
		if err != nil {
			return
		}
		base := make([]float32, 3*c*h*w)
		for i := range base {
			base[i] = float32(i%13) / 12
		}
		dst := make([]float32, c*h*w)
		for i := range 3 {
			m := p.Apply(dst, base, i, cp)
			if m.Mixed() && (m.Partner == i || !(m.Lambda >= 0 && m.Lambda <= 1)) {
				t.Fatalf("bad mix %+v for example %d", m, i)
			}
			for k, v := range dst {
				if math.IsNaN(float64(v)) || v < 0 || v > 1 {
					t.Fatalf("config %+v: example %d value %d = %v", cfg, i, k, v)
				}
			}
		}
	})
}
