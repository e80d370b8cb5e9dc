//go:build race

package infer

// raceEnabled is true under the race detector, where sync.Pool drops
// items at random on purpose, so allocation counts mean nothing.
const raceEnabled = true
