//go:build !linux

package main

import "time"

type cpuSample struct{ at time.Time }

func sampleCPU() cpuSample { return cpuSample{at: time.Now()} }

// contention is unknown outside Linux.
func contention(a, b cpuSample) float64 { return -1 }
