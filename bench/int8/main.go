// Command int8 measures distill's INT8 inference against its FP32
// inference and against ONNX Runtime on the same model, in one run: the
// MNIST student 784-800-800-10, a ResNet student of
// recipes/fashion-resnet*.yaml (-net; random weights), or the model given
// by -model, quantized with calibration on random inputs and exported with
// package onnx (FP32 and QDQ INT8). At each batch size the engines are
// timed in interleaved rounds (the order rotating from round to round)
// and the medians are printed with their ratios, because the machines
// here are shared and noisy. Both runtimes get the same number of
// threads (-threads; ONNX Runtime's intra-op threads). With -threads > 1,
// distill's programs are also timed on one thread in the same rounds, and
// the thread-scaling ratios (N threads / 1 thread) are printed with the
// rest (-scaling=false leaves them out).
//
// ONNX Runtime runs the QDQ model twice: with its default options, and
// with session.x64quantprecision=1, which on x86 CPUs without VNNI
// replaces its saturating uint8×int8 kernel by an exact one (see
// onnx.ExactU8S8Option); each is checked against distill's INT8 logits.
//
//	onnx/testdata/install-ort.sh   # ONNX Runtime, once (needs npm)
//	go run ./bench/int8
//	go run ./bench/int8 -model student.json -batches 1,64,256 -rounds 9
//	go run ./bench/int8 -net resnet8 -batches 1,64
//
// Each row also gives the fraction of the machine's peak it reaches:
// 2 operations per multiply-add of the convolutions and linear layers,
// over the peak of the threads it ran on (-peak-f32 and -peak-i8 per
// core, as ../shared/ref/peak measures them: two 512-bit FMAs or
// VPDPBUSD per cycle per core on the Zen 5 EPYC here).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/internal/gemm"
	"github.com/distill-dev/distill/internal/vocab"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx"
	"github.com/distill-dev/distill/quantize"
)

// engine is one way of computing the logits of a batch.
type engine struct {
	name string
	// prepare readies the engine for batches of n examples of x (n ×
	// the input size) and returns the function that runs one.
	prepare func(x []float32, n int) (run func() error, logits func() []float32, err error)
	close   func()
	int8    bool // measured against the INT8 peak
	threads int  // threads it runs on
}

func main() {
	modelPath := flag.String("model", "", "float32 model to measure (model.Save's files); empty: the network -net names, with random weights")
	netName := flag.String("net", "mlp", "network with random weights when -model is empty: "+strings.Join(slices.Sorted(maps.Keys(nets)), ", "))
	flag.Float64Var(&peakF32, "peak-f32", peakF32, "FP32 peak per core, FLOP/s (../shared/ref/peak/fma.c)")
	flag.Float64Var(&peakI8, "peak-i8", peakI8, "INT8 peak per core, OP/s, 2 per multiply-add (../shared/ref/peak/vnni.c)")
	batchList := flag.String("batches", "1,256", "comma-separated batch sizes")
	rounds := flag.Int("rounds", 9, "interleaved rounds per batch size (medians are quoted)")
	target := flag.Duration("target", 150*time.Millisecond, "time per engine per round")
	threads := flag.Int("threads", 2, "threads for each runtime (distill's GEMM goroutines, ONNX Runtime's intra-op threads)")
	scaling := flag.Bool("scaling", true, "with -threads > 1, also time distill's programs on 1 thread, interleaved with the rest, and print the thread-scaling ratios")
	method := flag.String("method", string(quantize.DefaultMethod), "calibration method: "+vocab.Join(quantize.Methods()))
	calibN := flag.Int("calib", 1000, "random calibration examples")
	ortExact := flag.Bool("ort-exact", true, "also time ONNX Runtime's QDQ model with session.x64quantprecision=1 (the same kernels as the default on CPUs with VNNI)")
	useORT := flag.Bool("ort", true, "also measure ONNX Runtime (needs its library: onnx/testdata/install-ort.sh or $ONNXRUNTIME_LIB)")
	flag.Float64Var(&maxCont, "max-contention", maxCont, "rerun a timed block (up to 3 tries) when other processes used more than this share of the CPUs")
	flag.DurationVar(&maxWait, "max-wait", maxWait, "longest wait before each timed block for other processes to go quiet")
	keep := flag.String("export", "", "directory to keep the exported model.onnx and model_int8.onnx in (default: a temporary one)")
	flag.Parse()

	batches, err := parseInts(*batchList)
	if err != nil {
		log.Fatalf("-batches: %v", err)
	}
	if *threads < 1 || *rounds < 1 {
		log.Fatal("-threads and -rounds must be ≥ 1")
	}
	goruntime.GOMAXPROCS(max(*threads, 1))
	gemm.SetThreads(*threads)

	spec, w, err := loadModel(*modelPath, *netName)
	if err != nil {
		log.Fatal(err)
	}
	in := model.Numel(spec.Input)
	rng := rand.New(rand.NewPCG(1, 2))
	calib := make([][]float32, *calibN)
	for i := range calib {
		calib[i] = randNormal(rng, in)
	}
	m, err := quantize.ParseMethod(*method)
	if err != nil {
		log.Fatalf("-method: %v", err)
	}
	q, err := quantize.Quantize(context.Background(), spec, w, quantize.FromSlices(calib, 256), quantize.Config{Method: m})
	if err != nil {
		log.Fatal(err)
	}
	fp, err := infer.Compile(spec, w)
	if err != nil {
		log.Fatal(err)
	}
	qp, err := q.Compile()
	if err != nil {
		log.Fatal(err)
	}

	macs = macsPerSample(spec)
	fmt.Printf("model %s %v → %d, %d params, %.3g multiply-adds per sample; CPU %s; %d threads; GEMM kernels FP32 %v, INT8 %v\n",
		spec.Name, spec.Input, spec.Classes, paramCount(spec), macs, cpuName(), *threads, gemm.BestF32(), gemm.BestI8())
	fmt.Printf("peak per core: FP32 %.4g GFLOP/s, INT8 %.4g GOP/s\n", peakF32/1e9, peakI8/1e9)
	fmt.Println(fp)
	fmt.Println(qp)
	engines := []engine{program("ours FP32", fp, false, 0, *threads), program("ours INT8", qp, true, 0, *threads)}
	// Each ratio divides the throughput of its first engine by its second's.
	ratios := [][2]string{{"ours INT8", "ours FP32"}}

	if *useORT {
		dir := *keep
		if dir == "" {
			if dir, err = os.MkdirTemp("", "distill-int8-bench"); err != nil {
				log.Fatal(err)
			}
			defer os.RemoveAll(dir)
		}
		fpPath, qPath := filepath.Join(dir, "model.onnx"), filepath.Join(dir, "model_int8.onnx")
		if err := onnx.WriteFileFP32(fpPath, spec, w); err != nil {
			log.Fatal(err)
		}
		if err := onnx.WriteFileInt8(qPath, q); err != nil {
			log.Fatal(err)
		}
		es, version, err := ortEngines(spec, fpPath, qPath, *threads, *ortExact)
		if err != nil {
			log.Fatalf("ONNX Runtime: %v (or run with -ort=false)", err)
		}
		fmt.Printf("ONNX Runtime %s, QDQ model %s\n", version, qPath)
		engines = append(engines, es...)
		for _, e := range es[1:] {
			ratios = append(ratios, [2]string{"ours INT8", e.name})
		}
		ratios = append(ratios, [2]string{"ours FP32", es[0].name})
		for _, e := range es[1:] {
			ratios = append(ratios, [2]string{e.name, es[0].name})
		}
	}
	if *scaling && *threads > 1 {
		engines = append(engines, program("ours FP32 1 thread", fp, false, 1, 1), program("ours INT8 1 thread", qp, true, 1, 1))
		ratios = append(ratios, [2]string{"ours FP32", "ours FP32 1 thread"}, [2]string{"ours INT8", "ours INT8 1 thread"})
	}
	defer func() {
		for _, e := range engines {
			if e.close != nil {
				e.close()
			}
		}
	}()

	for _, n := range batches {
		if err := measure(engines, ratios, spec, n, *rounds, *target); err != nil {
			log.Fatal(err)
		}
	}
}

// measure times every engine on batches of n in interleaved rounds and
// prints the medians, the ratios (pairs of engine names) and how the
// engines' logits agree with distill's INT8 program (engines[1]).
func measure(engines []engine, ratios [][2]string, spec model.Spec, n, rounds int, target time.Duration) error {
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	x := randNormal(rng, n*model.Numel(spec.Input))
	runs := make([]func() error, len(engines))
	logits := make([][]float32, len(engines))
	iters := make([]int, len(engines))
	for i, e := range engines {
		run, out, err := e.prepare(x, n)
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		runs[i] = run
		// Warm up, check and size a round to about target.
		start := time.Now()
		k := 0
		for ; k < 3 || time.Since(start) < target/4; k++ {
			if err := run(); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
		}
		logits[i] = slices.Clone(out())
		iters[i] = max(1, int(float64(k)*float64(target)/float64(time.Since(start))))
	}
	// perBatch[i][r]: seconds per batch of engine i in round r. A block
	// that other processes disturbed (contention above maxCont) is run
	// again, up to three times, keeping the least disturbed.
	perBatch := make([][]float64, len(engines))
	cont := make([]float64, 0, rounds*len(engines))
	for i := range perBatch {
		perBatch[i] = make([]float64, rounds)
	}
	for r := range rounds {
		for j := range engines {
			i := (j + r) % len(engines) // rotate the order
			best, bestC := 0.0, math.Inf(1)
			for try := 0; try < 3; try++ {
				waitQuiet() // and let the previous engine's threads go idle
				a := sampleCPU()
				for range iters[i] {
					if err := runs[i](); err != nil {
						return fmt.Errorf("%s: %w", engines[i].name, err)
					}
				}
				b := sampleCPU()
				t, c := b.at.Sub(a.at).Seconds()/float64(iters[i]), contention(a, b)
				if c < bestC {
					best, bestC = t, c
				}
				if c <= maxCont {
					break
				}
			}
			perBatch[i][r] = best
			cont = append(cont, bestC)
		}
	}

	fmt.Printf("\nbatch %d: medians of %d interleaved rounds (other processes' CPU share: median %s, max %s)\n",
		n, rounds, pct(median(cont)), pct(slices.Max(cont)))
	fmt.Printf("  %-30s %12s %14s %23s %8s   %s\n", "engine", "samples/s", "latency/batch", "(range over rounds)", "of peak", "logits vs ours INT8")
	for i, e := range engines {
		med := median(perBatch[i])
		agree := ""
		if i != 1 {
			agree = agreement(logits[i], logits[1], spec.Classes)
		}
		peak := peakF32
		if e.int8 {
			peak = peakI8
		}
		frac := float64(n) / med * 2 * macs / (peak * float64(e.threads))
		fmt.Printf("  %-30s %12.0f %14s %10s – %-10s %7.1f%%   %s\n", e.name, float64(n)/med, dur(med),
			dur(slices.Min(perBatch[i])), dur(slices.Max(perBatch[i])), 100*frac, agree)
	}
	// Throughput ratios: the median over rounds of the per-round ratio,
	// so that both engines of a ratio saw about the same load.
	index := func(name string) int {
		return slices.IndexFunc(engines, func(e engine) bool { return e.name == name })
	}
	fmt.Println("  throughput ratios (median of per-round ratios):")
	for _, pr := range ratios {
		a, b := index(pr[0]), index(pr[1])
		rs := make([]float64, rounds)
		for r := range rounds {
			rs[r] = perBatch[b][r] / perBatch[a][r]
		}
		fmt.Printf("  %-62s %5.2f×  (rounds %.2f–%.2f)\n", pr[0]+" / "+pr[1], median(rs), slices.Min(rs), slices.Max(rs))
	}
	return nil
}

// maxCont is the share of the CPUs that other processes may use during a
// timed block before it is run again; maxWait bounds how long each block
// waits for the machine to be that quiet before it starts.
var (
	maxCont = 0.05
	maxWait = 2 * time.Second
)

// waitQuiet waits, at most maxWait, until other processes use no more
// than maxCont of the CPUs over 50 ms.
func waitQuiet() {
	deadline := time.Now().Add(maxWait)
	for {
		a := sampleCPU()
		time.Sleep(50 * time.Millisecond)
		if c := contention(a, sampleCPU()); c <= maxCont || time.Now().After(deadline) {
			return
		}
	}
}

func pct(c float64) string {
	if c < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f%%", 100*c)
}

// program is an engine running a compiled infer.Program; threads > 0
// caps its GEMM goroutines for its runs only (the others keep -threads);
// uses is the number of threads it runs on; int8 says which peak is its.
func program(name string, p *infer.Program, int8 bool, threads, uses int) engine {
	return engine{name: name, int8: int8, threads: uses, prepare: func(x []float32, n int) (func() error, func() []float32, error) {
		out := make([]float32, n*p.Classes())
		run := func() error { return p.Forward(x, n, out) }
		if threads > 0 {
			run = func() error {
				prev := gemm.SetThreads(threads)
				defer gemm.SetThreads(prev)
				return p.Forward(x, n, out)
			}
		}
		return run, func() []float32 { return out }, nil
	}}
}

// agreement describes how got matches want: argmax agreement and the
// largest absolute difference.
func agreement(got, want []float32, classes int) string {
	same, diff, scale := 0, 0.0, 0.0
	n := len(want) / classes
	for i := range n {
		g, w := got[i*classes:(i+1)*classes], want[i*classes:(i+1)*classes]
		if slices.Index(g, slices.Max(g)) == slices.Index(w, slices.Max(w)) {
			same++
		}
		for c := range w {
			diff = max(diff, math.Abs(float64(g[c]-w[c])))
			scale = max(scale, math.Abs(float64(w[c])))
		}
	}
	return fmt.Sprintf("argmax %d/%d, max |Δ| %.2g (of %.2g)", same, n, diff, scale)
}

// peakF32 and peakI8 are one core's peaks (FLOP/s, and OP/s counting a
// multiply-add as 2), measured with ../shared/ref/peak on the 2-vCPU Zen 5
// EPYC (family 26) on 2026-12-07: two 512-bit FMAs (64 FLOP) per cycle at
// 3.4 GHz, 223–229 GFLOP/s on one thread and 409–428 on both; VPDPBUSD
// 1656–1729 GOP/s on both. Machines of the same name have also run one
// 512-bit operation per cycle (117 and 469 per core): pass -peak-f32 and
// -peak-i8 measured on yours.
var peakF32, peakI8 = 214e9, 850e9

// macs is the model's multiply-adds per sample (set in main).
var macs float64

// nets are the networks -net names: the MNIST student, and the ResNet
// students of recipes/fashion-resnet.yaml and fashion-resnet-quick.yaml
// (basic blocks, batchnorms folded at compile time), on 1×28×28 inputs.
var nets = map[string]func() (model.Spec, error){
	"mlp": func() (model.Spec, error) {
		return model.MLP(model.MLPConfig{Name: "student", Input: []int{784}, Hidden: []int{800, 800}, Classes: 10})
	},
	"resnet8": func() (model.Spec, error) {
		return model.Blocks(model.BlocksConfig{Name: "resnet8-half", Input: []int{1, 28, 28}, Classes: 10,
			Stem:   model.StemConfig{Channels: 8},
			Stages: []model.Stage{{Channels: 8}, {Channels: 16, Stride: 2}, {Channels: 32, Stride: 2}}})
	},
	"resnet-quick": func() (model.Spec, error) {
		return model.Blocks(model.BlocksConfig{Name: "resnet-tiny", Input: []int{1, 28, 28}, Classes: 10,
			Stem:   model.StemConfig{Channels: 8},
			Stages: []model.Stage{{Channels: 8}, {Channels: 16, Stride: 2}}})
	},
}

func loadModel(path, net string) (model.Spec, model.Weights, error) {
	if path != "" {
		spec, w, err := model.Load(path)
		if err != nil {
			return spec, nil, fmt.Errorf("-model: %w", err)
		}
		return spec, w, nil
	}
	mk, ok := nets[net]
	if !ok {
		return model.Spec{}, nil, fmt.Errorf("-net: unknown network %q; want one of %s", net, strings.Join(slices.Sorted(maps.Keys(nets)), ", "))
	}
	spec, err := mk()
	if err != nil {
		return spec, nil, err
	}
	w, err := spec.Init(1)
	return spec, w, err
}

// macsPerSample counts the multiply-adds of the convolutions and linear
// layers of one example, the work the peaks measure.
func macsPerSample(spec model.Spec) float64 {
	shapes, err := spec.Shapes()
	if err != nil {
		return 0
	}
	var all float64
	for i, l := range spec.Layers {
		in, out := spec.InputShape(shapes, i), shapes[i]
		switch l.Kind {
		case model.KindConv2D:
			all += float64(l.Out * in[0] / l.ConvGroups() * l.Kernel * l.Kernel * out[1] * out[2])
		case model.KindLinear:
			all += float64(model.Numel(in) * l.Out)
		}
	}
	return all
}

func paramCount(spec model.Spec) int {
	n, _ := spec.ParamCount()
	return n
}

func parseInts(s string) ([]int, error) {
	var r []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		r = append(r, v)
	}
	return r, nil
}

func randNormal(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// dur formats seconds as µs or ms.
func dur(s float64) string {
	if s < 1e-3 {
		return fmt.Sprintf("%.1f µs", s*1e6)
	}
	return fmt.Sprintf("%.3f ms", s*1e3)
}

// cpuName is the processor's model name from /proc/cpuinfo, if any.
func cpuName() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return goruntime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return goruntime.GOARCH
}
