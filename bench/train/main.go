// Command train benchmarks distill's training throughput against PyTorch
// on the same machine, in the same run: the teacher step (784-1200-1200-10,
// cross-entropy), the distillation step (student 784-800-800-10 with the
// frozen teacher's forward in the loop, α=0.9, T=4) and the student step,
// batch 128, Adam — the shapes of bench/torchref/distill_step.py.
// Runs are interleaved (ours, PyTorch, ours, PyTorch, …) and each row
// prints the medians, the median of the per-round ratios with its
// min–max, and each side's fraction of the FP32 peak (-peak), because
// the machines here are shared and noisy. The PyTorch side's threads and
// BLAS (library, kernel, threads) are printed above the table.
//
//	go run ./bench/train
//
// Built with -tags torch (see docs/torch.md) it also measures the libtorch
// backend: -backend torch [-device cuda] [-precision bf16]. With
// -vs-precision the peer is the same backend in another precision
// instead of PyTorch, e.g. BF16 against FP32 on the shapes of
// recipes/mnist-quick.yaml:
//
//	go run -tags torch ./bench/train -backend torch -precision bf16 -vs-precision fp32 -modes quick-teacher,quick-distill
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
	"github.com/distill-dev/distill/backend/torch"
	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/internal/vec"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

func main() {
	ref := flag.String("ref", "bench/torchref/distill_step.py", "PyTorch reference script (empty: skip)")
	python := flag.String("python", "/usr/bin/python3", "python with torch")
	be := flag.String("backend", "gorgonia", "backend to measure")
	device := flag.String("device", "", "device for the backend")
	modes := flag.String("modes", "teacher,distill,student", "steps to measure: teacher, distill, student, resnet, and quick-teacher, quick-distill (the MLPs of recipes/mnist-quick.yaml)")
	precision := flag.String("precision", "", "precision of the backend: auto (default), fp32 or bf16 (torch)")
	vsPrecision := flag.String("vs-precision", "", "measure against the same backend in this precision instead of PyTorch")
	rounds := flag.Int("rounds", 5, "interleaved rounds")
	steps := flag.Int("steps", 30, "timed steps per round")
	peak := flag.Float64("peak", 0, "the CPU's FP32 peak in GFLOP/s on the threads used, for the fraction-of-peak columns (0: 214 per thread, two 512-bit FMAs per cycle at 3.4 GHz, as ../shared/ref/peak measured on the 2-core Zen 5 EPYC these figures come from; measure yours)")
	threads := flag.Int("threads", runtime.NumCPU(), "intra-op threads of the backend and of the reference (torch.set_num_threads)")
	flag.StringVar(&refDevice, "ref-device", "cpu", "device for bench/torchref/distill_step.py")
	flag.Parse()

	b, err := backend.Open(*be, backend.Options{Device: *device, Threads: *threads, Precision: backend.Precision(*precision)})
	if err != nil {
		log.Fatal(err)
	}
	peerName := "pytorch"
	var peer backend.Backend
	if *vsPrecision != "" {
		if peer, err = backend.Open(*be, backend.Options{Device: *device, Threads: *threads, Precision: backend.Precision(*vsPrecision)}); err != nil {
			log.Fatal(err)
		}
		peerName = string(backend.PrecisionOf(peer))
		fmt.Printf("ours: %s %s; peer: %s %s\n", b.Name(), backend.PrecisionOf(b), peer.Name(), peerName)
	}
	fmt.Printf("backend %s on %s, batch 128, %d rounds × %d steps, %d threads on both sides (OMP_WAIT_POLICY=%q), GOMAXPROCS %d, gemm %v, optimizer update %s\n",
		b.Name(), b.Device(), *rounds, *steps, *threads, os.Getenv("OMP_WAIT_POLICY"), runtime.GOMAXPROCS(0), gemm.BestF32(), vec.Impl())
	if *peak <= 0 {
		*peak = 214 * float64(*threads)
	}
	fmt.Printf("peak %.0f GFLOP/s FP32 (-peak); FLOPs per sample count the matrix products a step needs (forward, weight and input gradients but the first layer's)\n", *peak)
	setup := ""
	type row struct {
		mode           string
		ours, theirs   []float64
		flopsPerSample float64
	}
	var rows []row
	for _, mode := range strings.Split(*modes, ",") {
		r := row{mode: mode, flopsPerSample: stepFLOPs(mode)}
		for i := 0; i < *rounds; i++ {
			sps, err := measure(b, mode, *steps)
			if err != nil {
				log.Fatal(err)
			}
			r.ours = append(r.ours, sps)
			if peer != nil {
				t, err := measure(peer, mode, *steps)
				if err != nil {
					log.Fatal(err)
				}
				r.theirs = append(r.theirs, t)
			} else if *ref != "" {
				t, err := refFor(*python, *ref, mode, *steps, *threads)
				if err != nil {
					log.Fatalf("reference: %v", err)
				}
				r.theirs = append(r.theirs, t.samplesPerS)
				if setup == "" {
					setup = t.setup
				}
			}
		}
		rows = append(rows, r)
	}
	if setup != "" {
		fmt.Println("pytorch:", setup)
	}
	pct := func(sps, fps float64) string { return fmt.Sprintf("%.1f%%", 100*sps*fps/(*peak*1e9)) }
	fmt.Printf("%-13s %12s %12s %22s %9s %9s\n", "step", "ours/s", peerName+"/s", "ratio median (min–max)", "ours/peak", "peer/peak")
	for _, r := range rows {
		line := fmt.Sprintf("%-13s %12.1f", r.mode, median(r.ours))
		if len(r.theirs) == 0 {
			fmt.Printf("%s %12s %22s %9s %9s\n", line, "-", "-", pct(median(r.ours), r.flopsPerSample), "-")
			continue
		}
		ratios := make([]float64, len(r.ours))
		for i := range r.ours {
			ratios[i] = r.ours[i] / r.theirs[i]
		}
		fmt.Printf("%s %12.1f %22s %9s %9s\n", line, median(r.theirs),
			fmt.Sprintf("%.3f× (%.3f–%.3f)", median(ratios), slices.Min(ratios), slices.Max(ratios)),
			pct(median(r.ours), r.flopsPerSample), pct(median(r.theirs), r.flopsPerSample))
	}
}

// stepFLOPs is the arithmetic of one training step per sample: the
// matrix products' 2·in·out per layer for the forward pass, the weight
// gradient and the input gradient (not needed for the first layer), plus
// the frozen teacher's forward in the distill step.
func stepFLOPs(mode string) float64 {
	products := func(h int) (all, first float64) {
		d := []int{784, h, h, 10}
		for i := 0; i+1 < len(d); i++ {
			all += 2 * float64(d[i]*d[i+1])
		}
		return all, 2 * float64(d[0]*d[1])
	}
	train := func(h int) float64 { all, first := products(h); return 3*all - first }
	switch mode {
	case "teacher":
		return train(1200)
	case "student":
		return train(800)
	case "distill":
		fwd, _ := products(1200)
		return train(800) + fwd
	case "quick-teacher":
		return train(512)
	case "quick-distill":
		fwd, _ := products(512)
		return train(128) + fwd
	case resnetMode:
		return resnetFLOPs()
	}
	return 0
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
	case resnetMode:
		return measureResNet(b, steps)
	case "quick-teacher":
		spec = mlp(512)
	case "distill", "quick-distill":
		th := 1200
		spec, obj = mlp(800), loss.Hinton(0.9, 4)
		if mode == "quick-distill" {
			th, spec = 512, mlp(128)
		}
		tw, _ := mlp(th).Init(2)
		var err error
		if teacher, err = b.Load(mlp(th), tw); err != nil {
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
	return samplesPerSecond(step, n, steps)
}

// refFor runs the reference of a mode: resnetScript for the resnet
// mode, script (-ref) for the others.
func refFor(python, script, mode string, steps, threads int) (refResult, error) {
	if mode == resnetMode {
		return resnetRef(python, steps, threads)
	}
	return pytorch(python, script, mode, steps, threads)
}

// refResult is one run of the reference: its samples/s and, where the
// script reports it, its threads and BLAS.
type refResult struct {
	samplesPerS float64
	setup       string
}

// pytorch runs the reference script for one mode and returns its median
// samples/s. Two scripts are understood: ../shared/ref/torch/train_bench.py
// (CPU, writes JSON to a file) and bench/torchref/distill_step.py (any
// device, prints a JSON line).
func pytorch(python, script, mode string, steps, threads int) (refResult, error) {
	if strings.HasSuffix(script, "distill_step.py") {
		cmd := exec.Command(python, script, "--modes", mode, "--steps", fmt.Sprint(steps), "--runs", "1", "--warmup", "5", "--device", refDevice, "--threads", fmt.Sprint(threads))
		cmd.Env = referenceEnv()
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return refResult{}, err
		}
		var r struct {
			SamplesPerS float64 `json:"samples_per_s"`
			Torch       string  `json:"torch"`
			Threads     int     `json:"threads"`
			BLASInfo    string  `json:"blas_info"`
			OpenBLAS    string  `json:"openblas"`
			Core        string  `json:"openblas_core"`
			BLASThreads int     `json:"openblas_threads"`
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			return refResult{}, fmt.Errorf("reference output %q: %w", out, err)
		}
		setup := fmt.Sprintf("torch %s, %d intra-op thread(s), BLAS_INFO=%s", r.Torch, r.Threads, r.BLASInfo)
		if r.OpenBLAS != "" {
			setup += fmt.Sprintf(", loaded %s (kernel %s, %d threads)", r.OpenBLAS, r.Core, r.BLASThreads)
		}
		if v, ok := os.LookupEnv("OPENBLAS_CORETYPE"); ok {
			setup += ", OPENBLAS_CORETYPE=" + v
		}
		return refResult{r.SamplesPerS, setup}, nil
	}
	f, err := os.CreateTemp("", "ref*.json")
	if err != nil {
		return refResult{}, err
	}
	f.Close()
	defer os.Remove(f.Name())
	cmd := exec.Command(python, script, "--modes", mode, "--steps", fmt.Sprint(steps), "--runs", "1", "--warmup", "5", "--threads", fmt.Sprint(threads), "--json", f.Name())
	cmd.Env = referenceEnv()
	if !strings.Contains(os.Getenv("LD_LIBRARY_PATH"), "openblas") {
		cmd.Env = append(cmd.Env, "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return refResult{}, fmt.Errorf("%v: %s", err, stderr.String())
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return refResult{}, err
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(b, &res); err != nil {
		return refResult{}, err
	}
	var m struct {
		Median float64 `json:"samples_per_s_median"`
	}
	if err := json.Unmarshal(res[mode], &m); err != nil {
		return refResult{}, err
	}
	return refResult{samplesPerS: m.Median}, nil
}

// samplesPerSecond runs step(0..4) to warm up, then times step(5..)
// for steps steps of n examples each.
func samplesPerSecond(step func(i int) error, n, steps int) (float64, error) {
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

// referenceEnv is the PyTorch reference's environment: this process's,
// with OpenMP's threads sleeping rather than spinning while they wait
// (spinning on shared cores made PyTorch 3–8× slower) and the malloc
// settings the torch backend uses (both sides ~18% faster), unless the
// environment sets its own: PyTorch at its best on this machine
// (docs/torch.md).
func referenceEnv() []string {
	env := os.Environ()
	if _, ok := os.LookupEnv("OMP_WAIT_POLICY"); !ok {
		env = append(env, "OMP_WAIT_POLICY=PASSIVE")
	}
	return append(env, torch.MallocEnv()...)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
