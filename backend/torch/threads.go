package torch

// This file has no build tag, so that its tests run in every build.

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// defaultThreads is the intra-op thread count the backend gives libtorch
// when the options leave it at 0: one thread per physical core the Go
// runtime may use, as PyTorch intends (it counts physical cores, since a
// second hyperthread adds little to dense kernels). PyTorch's own count
// comes from the cpuinfo library, which on some virtual machines finds
// one core where there are several (two vCPUs, no SMT: it answered 1), and
// the backend then ran on one core of two. 0 leaves libtorch's default:
// when OMP_NUM_THREADS or MKL_NUM_THREADS says what the user wants, or
// the topology cannot be read.
func defaultThreads() int {
	for _, v := range []string{"OMP_NUM_THREADS", "MKL_NUM_THREADS"} {
		if os.Getenv(v) != "" {
			return 0
		}
	}
	n := physicalCores("/sys/devices/system/cpu")
	if n <= 0 {
		return 0
	}
	return min(n, runtime.GOMAXPROCS(0))
}

// physicalCores counts the distinct (package, core) pairs of the CPUs
// under sysfs (/sys/devices/system/cpu), 0 when it cannot read them.
func physicalCores(sysfs string) int {
	dirs, err := filepath.Glob(filepath.Join(sysfs, "cpu[0-9]*"))
	if err != nil || len(dirs) == 0 {
		return 0
	}
	cores := map[string]bool{}
	for _, d := range dirs {
		pkg, err1 := os.ReadFile(filepath.Join(d, "topology", "physical_package_id"))
		core, err2 := os.ReadFile(filepath.Join(d, "topology", "core_id"))
		if err1 != nil || err2 != nil {
			if online, err := os.ReadFile(filepath.Join(d, "online")); err == nil && strings.TrimSpace(string(online)) == "0" {
				continue // an offline CPU has no topology
			}
			return 0
		}
		cores[strings.TrimSpace(string(pkg))+"/"+strings.TrimSpace(string(core))] = true
	}
	return len(cores)
}
