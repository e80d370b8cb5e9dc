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
	_ "github.com/distill-dev/distill/backend/torch"
)

// init makes libtorch's OpenMP threads sleep, not spin, while they wait
// for work, unless OMP_WAIT_POLICY says otherwise. libgomp reads the
// policy once, when libtorch is loaded, before any Go code runs, so the
// only way to set it from here is to run the program again with it. With
// the default policy each of the team's threads spins for a while after
// every parallel region; on a machine whose cores are shared with other
// processes that spinning takes the cores the other threads need, and a
// step with 2 threads on 2 shared cores ran 3–8× slower than with PASSIVE,
// in libtorch called from Go and from Python alike (docs/torch.md). The
// reference script inherits the policy, so both sides run under the same
// one.
func init() {
	if _, ok := os.LookupEnv("OMP_WAIT_POLICY"); ok {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		log.Printf("OMP_WAIT_POLICY is unset and this program cannot find itself to restart with PASSIVE (%v): measuring with libgomp's default policy", err)
		return
	}
	err = syscall.Exec(exe, os.Args, append(os.Environ(), "OMP_WAIT_POLICY=PASSIVE"))
	log.Printf("OMP_WAIT_POLICY is unset and restarting with PASSIVE failed (%v): measuring with libgomp's default policy", err)
}

func init() {
	fmt.Fprintf(os.Stderr, "libtorch's BLAS in this process: %s\n", loadedBLAS())
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
