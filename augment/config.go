package augment

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// keyVersion names the version of this package's algorithms in
// Config.Key. Bump it whenever a change alters any augmented example
// (a new draw order, another interpolation, a fixed bug), so that caches
// keyed on the old results are not reused.
const keyVersion = "augment/v1"

// Limits beyond which a setting is certainly a mistake.
const (
	maxShift  = 1 << 12
	maxRotate = 180
	maxAlpha  = 1e4
	maxSigma  = 256
	maxNoise  = 10
	maxCutout = 1 << 12
	maxMixup  = 1e4
)

// Config selects the augmentations. The zero value turns everything off;
// each field turns on one operation when non-zero. The yaml and json
// names are the lower-case field names.
type Config struct {
	// Shift jitters the image by a whole number of pixels drawn uniformly
	// from [-Shift, Shift], independently in x and y (Hinton et al. 2012
	// used 2 on MNIST). Pixels shifted in are 0.
	Shift int `yaml:"shift" json:"shift"`
	// Rotate rotates the image about its centre by an angle drawn
	// uniformly from [-Rotate, Rotate] degrees, at most 180.
	Rotate float64 `yaml:"rotate" json:"rotate"`
	// Elastic distorts the image by a smoothed random displacement field.
	Elastic Elastic `yaml:"elastic" json:"elastic"`
	// Noise adds Gaussian noise of this standard deviation to every value,
	// then clips to [0, 1].
	Noise float64 `yaml:"noise" json:"noise"`
	// Cutout zeroes a Cutout × Cutout square centred at a random pixel.
	Cutout int `yaml:"cutout" json:"cutout"`
	// Flip mirrors the image left to right with probability 1/2: for
	// natural images and clothes, whose mirror image is of the same
	// class, not for digits or text. The mirror is taken after shift,
	// rotation and elastic distortion, before mixup, noise and cutout.
	Flip bool `yaml:"flip,omitempty" json:"flip,omitempty"`
	// Mixup mixes each example with a random other one, λ·x_i + (1−λ)·x_j,
	// λ ~ Beta(Mixup, Mixup) (Zhang et al. 2018 used 0.2 to 0.4). The
	// mixed example has no single hard label; Pipeline.Apply reports the
	// partner and λ.
	Mixup float64 `yaml:"mixup" json:"mixup"`
}

// Elastic is Simard et al.'s (2003) elastic distortion: each pixel's
// displacement in x and in y is drawn uniformly from [-1, 1], each field
// is smoothed by a Gaussian of standard deviation Sigma pixels (truncated
// at 4·Sigma, zero outside the image) and scaled by Alpha. Both must be
// set, or neither; Simard et al. used Alpha 34 and Sigma 4 on MNIST.
type Elastic struct {
	Alpha float64 `yaml:"alpha" json:"alpha"`
	Sigma float64 `yaml:"sigma" json:"sigma"`
}

// On reports whether the distortion is turned on.
func (e Elastic) On() bool { return e.Alpha != 0 || e.Sigma != 0 }

// Enabled reports whether any augmentation is turned on.
func (c Config) Enabled() bool {
	return c.geometric() || c.Noise != 0 || c.Cutout != 0 || c.Mixup != 0
}

// geometric reports whether any of shift, rotation and elastic
// distortion is on.
func (c Config) geometric() bool {
	return c.Shift != 0 || c.Rotate != 0 || c.Elastic.On() || c.Flip
}

// spatial reports whether an operation needs the image's height and
// width.
func (c Config) spatial() bool { return c.geometric() || c.Cutout != 0 }

// Validate reports every setting that is out of range, all at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("augment: "+format, args...))
	}
	if c.Shift < 0 || c.Shift > maxShift {
		bad("shift must be in [0, %d] pixels, got %d", maxShift, c.Shift)
	}
	if !inRange(c.Rotate, 0, maxRotate) {
		bad("rotate must be in [0, %d] degrees, got %v", maxRotate, c.Rotate)
	}
	if !inRange(c.Elastic.Alpha, 0, maxAlpha) {
		bad("elastic.alpha must be in [0, %g] pixels, got %v", float64(maxAlpha), c.Elastic.Alpha)
	}
	if !inRange(c.Elastic.Sigma, 0, maxSigma) {
		bad("elastic.sigma must be in [0, %d] pixels, got %v", maxSigma, c.Elastic.Sigma)
	}
	if (c.Elastic.Alpha == 0) != (c.Elastic.Sigma == 0) {
		bad("elastic needs both alpha and sigma (e.g. alpha 34, sigma 4), got alpha %v and sigma %v",
			c.Elastic.Alpha, c.Elastic.Sigma)
	}
	if !inRange(c.Noise, 0, maxNoise) {
		bad("noise must be a standard deviation in [0, %d], got %v", maxNoise, c.Noise)
	}
	if c.Cutout < 0 || c.Cutout > maxCutout {
		bad("cutout must be a square side in [0, %d] pixels, got %d", maxCutout, c.Cutout)
	}
	if !inRange(c.Mixup, 0, maxMixup) {
		bad("mixup must be a Beta parameter in [0, %g] (0 = off, e.g. 0.2), got %v", float64(maxMixup), c.Mixup)
	}
	return errors.Join(errs...)
}

// inRange reports lo <= v <= hi; NaN is never in range.
func inRange(v, lo, hi float64) bool { return v >= lo && v <= hi }

// Key returns a canonical description of c and of the version of this
// package's algorithms, for cache keys: two configurations have the same
// key exactly when they make the same augmented examples (given the same
// seed and data). It does not include the seed.
func (c Config) Key() string {
	var b strings.Builder
	b.WriteString(keyVersion)
	if !c.Enabled() {
		b.WriteString(" none")
		return b.String()
	}
	if c.Shift != 0 {
		fmt.Fprintf(&b, " shift=%d", c.Shift)
	}
	if c.Rotate != 0 {
		b.WriteString(" rotate=" + formatFloat(c.Rotate))
	}
	if c.Elastic.On() {
		b.WriteString(" elastic.alpha=" + formatFloat(c.Elastic.Alpha))
		b.WriteString(" elastic.sigma=" + formatFloat(c.Elastic.Sigma))
	}
	if c.Flip {
		b.WriteString(" flip")
	}
	if c.Mixup != 0 {
		b.WriteString(" mixup=" + formatFloat(c.Mixup))
	}
	if c.Noise != 0 {
		b.WriteString(" noise=" + formatFloat(c.Noise))
	}
	if c.Cutout != 0 {
		fmt.Fprintf(&b, " cutout=%d", c.Cutout)
	}
	return b.String()
}

// String describes c for people: Key without the version, e.g.
// "shift=2 rotate=8", or "none".
func (c Config) String() string { return strings.TrimPrefix(c.Key(), keyVersion+" ") }

// formatFloat formats v in the shortest form that parses back to v.
func formatFloat(v float64) string {
	if v == 0 {
		v = 0 // -0 → 0
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
