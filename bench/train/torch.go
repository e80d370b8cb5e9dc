//go:build torch

package main

import (
	"bufio"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	// With the torch tag the benchmark can measure the libtorch backend
	// too (-backend torch).
	"github.com/distill-dev/distill/backend/torch"
)

// init gives this process and the PyTorch reference it starts the same
// OpenMP wait policy and malloc settings, by running the program again
// with them in its environment where they are unset: libgomp and glibc
// read them once, when the process starts, before any Go code runs.
//
// OMP_WAIT_POLICY=PASSIVE makes libtorch's OpenMP threads sleep, not spin,
// while they wait for work. With the default policy each of the team's
// threads spins for a while after every parallel region; on a machine
// whose cores are shared with other processes that spinning takes the
// cores the other threads need, and a step with 2 threads on 2 shared cores
// ran 3–8× slower than with PASSIVE, in libtorch called from Go and from
// Python alike (docs/torch.md).
//
// The malloc settings are those the torch backend sets for itself
// (torch.MallocEnv): without them both sides fault the pages of a step's
// large tensors in again at every step, and with them both run ~18%
// faster, so the reference gets them too.
func init() {
	var add []string
	if _, ok := os.LookupEnv("OMP_WAIT_POLICY"); !ok {
		add = append(add, "OMP_WAIT_POLICY=PASSIVE")
	}
	add = append(add, torch.MallocEnv()...)
	if len(add) == 0 {
		return
	}
	exe, err := os.Executable()
	if err == nil {
		err = syscall.Exec(exe, os.Args, append(os.Environ(), add...))
	}
	log.Printf("restarting with %s failed (%v): measuring without", strings.Join(add, " "), err)
}

func init() {
	var env []string
	for _, v := range []string{"OMP_WAIT_POLICY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"} {
		if x, ok := os.LookupEnv(v); ok {
			env = append(env, v+"="+x)
		}
	}
	fmt.Fprintf(os.Stderr, "libtorch's BLAS in this process: %s\nenvironment of both sides: %s\n", loadedBLAS(), strings.Join(env, " "))
}

// loadedBLAS names the BLAS libraries mapped into this process (Debian's
// libtorch takes its BLAS from the libblas.so.3 alternative).
func loadedBLAS() string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer f.Close()
	seen := map[string]bool{}
	var libs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		p := fields[len(fields)-1]
		base := strings.ToLower(filepath.Base(p))
		if (strings.Contains(base, "blas") || strings.Contains(base, "mkl")) && !seen[p] {
			seen[p] = true
			if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
				p += " -> " + r
			}
			libs = append(libs, p)
		}
	}
	if len(libs) == 0 {
		return "none found in /proc/self/maps"
	}
	return strings.Join(libs, ", ")
}
