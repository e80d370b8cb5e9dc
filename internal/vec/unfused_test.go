//go:build amd64 && !amd64.v3

package vec

// oldLoopUnfused: the compiler rounds every product of the old loop (no
// FMA below GOAMD64=v3), so its results must equal the reference's.
const oldLoopUnfused = true
