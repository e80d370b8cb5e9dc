package main

import (
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is the machine's busy CPU time (steal included) and this
// process's CPU time, in seconds, at one instant.
type cpuSample struct {
	busy, mine float64
	at         time.Time
	ok         bool
}

// clockTick is USER_HZ, 100 on every Linux platform Go supports.
const clockTick = 100.0

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	// user nice system idle iowait irq softirq steal
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return s
		}
		s.busy += v / clockTick
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s
	}
	s.mine = float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	s.ok = true
	return s
}

// contention is the share of the machine's CPUs that other processes
// (and the hypervisor's steal) used between two samples, or -1 if unknown.
func contention(a, b cpuSample) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if !a.ok || !b.ok || wall <= 0 {
		return -1
	}
	other := (b.busy - a.busy) - (b.mine - a.mine)
	return max(other, 0) / (float64(goruntime.NumCPU()) * wall)
}
