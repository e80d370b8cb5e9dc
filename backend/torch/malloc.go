package torch

// This file has no build tag: the malloc settings are plain values that
// a program without libtorch (bench/train's pure-Go build) gives a
// PyTorch reference process, so that both sides of a comparison run
// under the settings the backend uses.

import (
	"fmt"
	"os"
)

// glibc malloc settings of tuneMalloc: blocks up to mmapThreshold come
// from the heap instead of their own mmap, and up to trimThreshold of free
// heap top is kept rather than returned to the system.
const (
	mmapThreshold = 32 << 20 // glibc's maximum
	trimThreshold = 128 << 20
)

// mallocVars are the environment variables that, when any is set, leave
// glibc's malloc as the environment configured it.
var mallocVars = []string{"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"}

// MallocEnv returns the environment settings that give another process
// (a PyTorch reference run beside the backend) the malloc settings the
// backend uses, or nil when the environment configures malloc itself
// (the backend then leaves malloc alone, and children inherit the same).
func MallocEnv() []string {
	for _, v := range mallocVars {
		if _, ok := os.LookupEnv(v); ok {
			return nil
		}
	}
	return []string{fmt.Sprintf("MALLOC_MMAP_THRESHOLD_=%d", mmapThreshold), fmt.Sprintf("MALLOC_TRIM_THRESHOLD_=%d", trimThreshold)}
}
