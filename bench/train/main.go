// Command train benchmarks distill's training throughput against PyTorch
// on the same machine, in the same run: the teacher step (784-1200-1200-10,
// cross-entropy), the distillation step (student 784-800-800-10 with the
// frozen teacher's forward in the loop, α=0.9, T=4) and the student step,
// batch 128, Adam — the shapes of bench/torchref/distill_step.py.
// Runs are interleaved (ours, PyTorch, ours, PyTorch, …) and the median
// ratio is printed, because the machines here are shared and noisy.
//
//	go run ./bench/train
//
// Built with -tags torch (see docs/torch.md) it also measures the libtorch
// backend: -backend torch [-device cuda].
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/backendtest"
	_ "github.com/distill-dev/distill/backend/gorgonia"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

func main() {
	ref := flag.String("ref", "bench/torchref/distill_step.py", "PyTorch reference script (empty: skip)")
	python := flag.String("python", "/usr/bin/python3", "python with torch")
	be := flag.String("backend", "gorgonia", "backend to measure")
	device := flag.String("device", "", "device for the backend")
	modes := flag.String("modes", "teacher,distill,student", "steps to measure")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	steps := flag.Int("steps", 30, "timed steps per round")
	threads := flag.Int("threads", runtime.NumCPU(), "intra-op threads of the backend and of the reference (torch.set_num_threads)")
	flag.StringVar(&refDevice, "ref-device", "cpu", "device for bench/torchref/distill_step.py")
	flag.Parse()

	b, err := backend.Open(*be, backend.Options{Device: *device, Threads: *threads})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("backend %s on %s, batch 128, %d rounds × %d steps, %d threads on both sides (OMP_WAIT_POLICY=%q)\n", b.Name(), b.Device(), *rounds, *steps, *threads, os.Getenv("OMP_WAIT_POLICY"))
	for _, mode := range strings.Split(*modes, ",") {
		var ours, theirs []float64
		for r := 0; r < *rounds; r++ {
			sps, err := measure(b, mode, *steps)
			if err != nil {
				log.Fatal(err)
			}
			ours = append(ours, sps)
			if *ref != "" {
				t, err := pytorch(*python, *ref, mode, *steps, *threads)
				if err != nil {
					log.Fatalf("reference: %v", err)
				}
				theirs = append(theirs, t)
			}
		}
		line := fmt.Sprintf("%-8s distill %9.1f samples/s", mode, median(ours))
		if len(theirs) > 0 {
			ratios := make([]float64, len(ours))
			for i := range ours {
				ratios[i] = ours[i] / theirs[i]
			}
			line += fmt.Sprintf("   pytorch %9.1f samples/s   ratio %.3f× (median of per-round ratios %v)", median(theirs), median(ratios), round3(ratios))
		}
		fmt.Println(line)
	}
}

var refDevice string

func mlp(h int) model.Spec {
	s, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{784}, Hidden: []int{h, h}, Classes: 10})
	if err != nil {
		log.Fatal(err)
	}
	return s
}

// measure returns samples/s of one mode after 5 warm-up steps.
func measure(b backend.Backend, mode string, steps int) (float64, error) {
	const n = 128
	spec, obj := mlp(1200), loss.CrossEntropyOnly
	var teacher backend.Model
	switch mode {
	case "teacher":
	case "student":
		spec = mlp(800)
	case "distill":
		spec, obj = mlp(800), loss.Hinton(0.9, 4)
		tw, _ := mlp(1200).Init(2)
		var err error
		if teacher, err = b.Load(mlp(1200), tw); err != nil {
			return 0, err
		}
		defer teacher.Close()
	default:
		return 0, fmt.Errorf("unknown mode %q", mode)
	}
	w, _ := spec.Init(1)
	m, err := b.Load(spec, w)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	tr, err := b.NewTrainer(m, backend.TrainConfig{MaxBatch: n, Objective: obj, Optimizer: backend.Optimizer{Kind: backend.Adam}})
	if err != nil {
		return 0, err
	}
	defer tr.Close()
	// A pool of batches with labels that do not repeat with the inputs,
	// as the reference does, so the loss stays away from zero.
	var xs [][]float32
	var ys [][]int32
	for i := 0; i < 8; i++ {
		x, y, _ := backendtest.Inputs(spec, n, uint64(i))
		xs, ys = append(xs, x), append(ys, y)
	}
	soft := make([]float32, n*10)
	step := func(i int) error {
		x, y := xs[i%len(xs)], ys[(i/len(xs)+i)%len(ys)]
		if teacher != nil {
			if err := teacher.Forward(x, n, soft); err != nil {
				return err
			}
		}
		_, err := tr.Step(&backend.Batch{N: n, X: x, Labels: y, TeacherLogits: soft, LR: 1e-3})
		return err
	}
	for i := 0; i < 5; i++ {
		if err := step(i); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	for i := 0; i < steps; i++ {
		if err := step(5 + i); err != nil {
			return 0, err
		}
	}
	return float64(steps*n) / time.Since(start).Seconds(), nil
}

// pytorch runs the reference script for one mode and returns its median
// samples/s. Two scripts are understood: ../shared/ref/torch/train_bench.py
// (CPU, writes JSON to a file) and bench/torchref/distill_step.py (any
// device, prints a JSON line).
func pytorch(python, script, mode string, steps, threads int) (float64, error) {
	if strings.HasSuffix(script, "distill_step.py") {
		cmd := exec.Command(python, script, "--modes", mode, "--steps", fmt.Sprint(steps), "--runs", "1", "--warmup", "5", "--device", refDevice, "--threads", fmt.Sprint(threads))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return 0, err
		}
		var r struct {
			SamplesPerS float64 `json:"samples_per_s"`
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			return 0, fmt.Errorf("reference output %q: %w", out, err)
		}
		return r.SamplesPerS, nil
	}
	f, err := os.CreateTemp("", "ref*.json")
	if err != nil {
		return 0, err
	}
	f.Close()
	defer os.Remove(f.Name())
	cmd := exec.Command(python, script, "--modes", mode, "--steps", fmt.Sprint(steps), "--runs", "1", "--warmup", "5", "--threads", fmt.Sprint(threads), "--json", f.Name())
	cmd.Env = append(os.Environ(), "OMP_WAIT_POLICY=PASSIVE")
	if !strings.Contains(os.Getenv("LD_LIBRARY_PATH"), "openblas") {
		cmd.Env = append(cmd.Env, "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%v: %s", err, stderr.String())
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return 0, err
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(b, &res); err != nil {
		return 0, err
	}
	var m struct {
		Median float64 `json:"samples_per_s_median"`
	}
	if err := json.Unmarshal(res[mode], &m); err != nil {
		return 0, err
	}
	return m.Median, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func round3(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x*1000+0.5)) / 1000
	}
	return out
}
