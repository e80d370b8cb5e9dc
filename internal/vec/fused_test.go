//go:build !amd64 || amd64.v3

package vec

// oldLoopUnfused: here the compiler may fuse the old loop's multiplies
// and adds (FMA), so only the reference, whose conversions forbid that,
// is compared bit for bit.
const oldLoopUnfused = false
