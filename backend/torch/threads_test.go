package torch

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPhysicalCores(t *testing.T) {
	type cpu struct {
		pkg, core string // "" = no topology
		offline   bool
	}
	for _, tc := range []struct {
		name string
		cpus []cpu
		want int
	}{
		{"two cores, no SMT", []cpu{{"0", "0", false}, {"0", "1", false}}, 2},
		{"one core, two hyperthreads", []cpu{{"0", "0", false}, {"0", "0", false}}, 1},
		{"two packages, SMT", []cpu{{"0", "0", false}, {"0", "1", false}, {"1", "0", false}, {"1", "1", false}, {"0", "0", false}, {"0", "1", false}, {"1", "0", false}, {"1", "1", false}}, 4},
		{"an offline CPU is skipped", []cpu{{"0", "0", false}, {"", "", true}}, 1},
		{"unreadable topology", []cpu{{"0", "0", false}, {"", "", false}}, 0},
		{"no CPUs", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for i, c := range tc.cpus {
				d := filepath.Join(root, "cpu"+string(rune('0'+i)))
				write := func(name, v string) {
					if err := os.MkdirAll(filepath.Dir(filepath.Join(d, name)), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(d, name), []byte(v+"\n"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				if c.pkg != "" {
					write("topology/physical_package_id", c.pkg)
					write("topology/core_id", c.core)
				} else if c.offline {
					write("online", "0")
				} else {
					write("online", "1")
				}
			}
			// Files that are not CPUs are ignored.
			os.MkdirAll(filepath.Join(root, "cpufreq"), 0o755)
			if got := physicalCores(root); got != tc.want {
				t.Errorf("physicalCores = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestDefaultThreadsLeavesOMPNumThreads(t *testing.T) {
	t.Setenv("OMP_NUM_THREADS", "3")
	if got := defaultThreads(); got != 0 {
		t.Errorf("with OMP_NUM_THREADS set, defaultThreads = %d, want 0 (libtorch's own)", got)
	}
}
