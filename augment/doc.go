// Package augment makes deterministic augmented copies of image examples,
// for distilling on more inputs than the training set holds.
//
// An example is a [C, H, W] (or [H, W]) float32 image with values in
// [0, 1], laid out row-major as in data.Dataset. A Pipeline applies the
// augmentations that its Config turns on, always in this order:
//
//  1. geometric: shift (jitter) by up to ±Shift pixels, rotation by up to
//     ±Rotate degrees, and elastic distortion (Simard et al. 2003). The
//     three are composed into one map from output to input coordinates and
//     the image is resampled once (bilinear, zero outside the image), so
//     combining them blurs no more than any one of them; then, with Flip,
//     a left-right mirror with probability ½ (for natural images and
//     clothes, not digits);
//  2. mixup (Zhang et al. 2018): a convex mix λ·x_i + (1−λ)·x_j with
//     another example j, itself geometrically augmented as copy (j, copy)
//     would be, with λ ~ Beta(a, a);
//  3. Gaussian noise of standard deviation Noise, clipped to [0, 1];
//  4. cutout (DeVries & Taylor 2017): a square of side Cutout, centred
//     uniformly at random in the image (so possibly partly outside it),
//     set to 0 in every channel.
//
// # Determinism
//
// Every random draw comes from a math/rand/v2 PCG generator seeded by a
// hash of (seed, example index, copy number, operation). The same triple
// therefore always gives the same augmented example, whatever order the
// examples are produced in and however many goroutines produce them, and
// turning one operation on or off does not change the draws of the
// others. Copy 0 is always the unaltered original.
//
// The draws (uniform, normal, gamma, beta, bounded integers) are
// implemented in this package from the generator's raw 64-bit output, so
// that a Go release that changes math/rand/v2's derived methods cannot
// change the augmented examples behind a cache key. Results are
// bit-identical for a given GOARCH; architectures that fuse multiply-add
// (arm64, ppc64le, s390x) may differ in the last bits of a value.
//
// Config.Key is a canonical string of the configuration, with the version
// of these algorithms, for cache keys: a change to any algorithm here must
// change keyVersion.
package augment
