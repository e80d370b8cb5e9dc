package recipe

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/model"
)

// Memory is the memory a run may use, which CheckResources holds every
// size of a recipe against.
type Memory struct {
	// Bytes is the budget.
	Bytes int64
	// Source says where Bytes comes from, for messages, such as "this
	// machine has 23.5 GiB of memory".
	Source string
}

// DefaultMemory is the budget assumed where the machine's memory cannot
// be read.
const DefaultMemory = 8 << 30

// MachineMemory returns the memory this process can use: the machine's
// total memory (MemTotal in /proc/meminfo), or its cgroup's limit when
// that is lower, or DefaultMemory where neither can be read. The total
// rather than what is free now is the budget, so that a recipe's
// validity does not change with the machine's load: a run that needs
// more than the whole machine can never finish, while one that needs
// what other processes hold at the moment might.
func MachineMemory() Memory {
	m := Memory{Bytes: DefaultMemory, Source: fmt.Sprintf("the memory of this machine is unknown, and %s is assumed", formatBytes(DefaultMemory))}
	if total, ok := meminfoTotal(); ok {
		m = Memory{Bytes: total, Source: "this machine has " + formatBytes(total) + " of memory"}
	}
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p) // a kernel file: never a FIFO
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64) // "max" when unlimited
		if err == nil && n > 0 && n < m.Bytes {
			m = Memory{Bytes: n, Source: "this process's cgroup may use " + formatBytes(n) + " of memory"}
		}
	}
	return m
}

// meminfoTotal reads MemTotal from /proc/meminfo, in bytes.
func meminfoTotal() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil && n > 0 && n <= math.MaxInt64/1024 {
				return n * 1024, true
			}
		}
	}
	return 0, false
}

// Bytes per value: every tensor is float32. Training shuffles the row
// numbers of its data (an int each) every epoch.
const (
	floatBytes = 4
	orderBytes = 8
)

// CheckResources checks every size in a valid recipe (one that Parse
// returned or Validate accepted) against the data and mem before any
// work is done: the training and test sets, and for each model given by
// its architecture (the teachers, the ensemble's and the students) its
// parameters and optimizer state, the activations of a training batch,
// of an evaluation batch and of each serving batch. The estimates are
// lower bounds (the backends need more), so a recipe is only refused
// when it cannot fit. Sizes are counted with saturating arithmetic, so
// that no size, however large, wraps around.
//
// An evaluation batch larger than the test set evaluates the whole set
// at once, and is checked at that size. Training batches are checked at
// their size or the training rows, whichever is smaller, as training
// uses them.
//
// It returns an *Error with one problem per key that does not fit, each
// saying what does fit, or nil.
func (r *Recipe) CheckResources(mem Memory) error {
	input, classes := r.Data.Shape()
	if input == nil {
		return nil // Validate reports the data section
	}
	var ps problems
	trainN, testN := r.exampleCounts()
	perExample := add(mul(numel(input), floatBytes), floatBytes) // inputs and a label
	dataBytes := mul(add(trainN, testN), perExample)
	if dataBytes > mem.Bytes {
		key := "data.train_limit"
		if r.Data.Dataset == "synthetic" {
			key = "data.synthetic.train"
		}
		ps.add(key, "the training and test sets (%s examples of shape %v) need at least %s; %s: at most %s examples fit",
			countString(add(trainN, testN)), input, formatBytes(dataBytes), mem.Source, countString(mem.Bytes/perExample))
		return r.newError(ps.list)
	}

	var serving []int
	if r.Serving.MeasureEnabled() {
		serving = r.Serving.Batches
	}
	c := sizeCheck{ps: &ps, mem: mem, data: dataBytes, evalBatch: min(int64(r.Eval.BatchSize), testN), serving: serving}
	// trained checks a model trained on the data and copies augmented
	// copies of each example, set at copiesKey.
	trained := func(key, name string, m Model, t Training, copies int, copiesKey string) {
		rows := mul(trainN, add(int64(copies), 1))
		if copies > 0 && add(dataBytes, mul(rows, orderBytes)) > mem.Bytes {
			fit := (mem.Bytes-dataBytes)/mul(trainN, orderBytes) - 1
			ps.add(copiesKey, "training model %q on %s rows (%s examples and %s augmented copies of each) needs at least %s for their shuffled order alone; %s: %s",
				name, countString(rows), countString(trainN), countString(int64(copies)), formatBytes(add(dataBytes, mul(rows, orderBytes))), mem.Source, fitCopies(fit))
			return
		}
		c.model(key, name, m, input, classes, t, rows, r.trainingBatchKey(key, t))
	}
	if t := r.Teacher; !reflect.ValueOf(t.Model).IsZero() && t.Checkpoint == "" && t.ONNX == "" {
		if t.TorchScript != "" || t.Safetensors != "" {
			c.model("teacher", "teacher", t.Model, input, classes, Training{}, 0, "")
		} else {
			trained("teacher", "teacher", t.Model, r.TrainingFor(t.Training), t.Copies, "teacher.copies")
		}
	}
	for i, e := range r.Ensemble {
		switch {
		case reflect.ValueOf(e.Model).IsZero() || e.Checkpoint != "" || e.ONNX != "":
		case e.Safetensors != "":
			c.model(fmt.Sprintf("ensemble[%d]", i), e.Name, e.Model, input, classes, Training{}, 0, "")
		default:
			trained(fmt.Sprintf("ensemble[%d]", i), e.Name, e.Model, r.TrainingFor(e.Training), e.Copies, fmt.Sprintf("ensemble[%d].copies", i))
		}
	}
	for i, s := range r.Students {
		copies := 0
		if r.Transfer.Enabled {
			copies = r.Transfer.Copies
		}
		trained(fmt.Sprintf("students[%d]", i), s.Name, s.Model, r.TrainingFor(s.Training), copies, "transfer.copies")
	}
	c.report()
	return r.newError(ps.list)
}

// exampleCounts returns the sizes of the training and test sets that
// the data section describes. MNIST read from data.dir is counted as
// MNIST's 60000 and 10000 examples.
func (r *Recipe) exampleCounts() (train, test int64) {
	train, test = 60000, 10000
	if r.Data.Dataset == "synthetic" {
		train, test = int64(r.Data.Synthetic.Train), int64(r.Data.Synthetic.Test)
	}
	if l := int64(r.Data.TrainLimit); l > 0 && l < train {
		train = l
	}
	if l := int64(r.Data.TestLimit); l > 0 && l < test {
		test = l
	}
	return train, test
}

// trainingBatchKey names the key that set the batch size of the model at
// key: its own training section's, or the top-level one it inherited.
func (r *Recipe) trainingBatchKey(key string, eff Training) string {
	if r.Training.IsSet("batch_size") && r.Training.BatchSize == eff.BatchSize {
		return "training.batch_size"
	}
	return key + ".training.batch_size"
}

// sizeCheck holds what the models of one recipe are checked against,
// and the models that limit the evaluation and serving batches.
type sizeCheck struct {
	ps        *problems
	mem       Memory
	data      int64 // bytes of the training and test sets
	evalBatch int64
	serving   []int
	// limits are the models that cannot run every evaluation or serving
	// batch.
	limits []batchLimit
}

// batchLimit is the largest batch that a model can run forward, and
// what it needs: fixed bytes (parameters and data) and per example.
type batchLimit struct {
	max        int64
	name       string
	fixed, per int64
}

// need is the memory l's model needs to run a batch of n.
func (l batchLimit) need(n int64) int64 { return add(l.fixed, mul(l.per, n)) }

// model checks one model: key is its section ("students[0]"), its
// architecture at key+".model". A training batch key of "" means the
// model is not trained (a TorchScript teacher).
func (c *sizeCheck) model(key, name string, m Model, input []int, classes int, t Training, rows int64, batchKey string) {
	mkey := key + ".model"
	spec, err := m.Spec(name, input, classes)
	if err != nil {
		return // Validate reports it
	}
	params, acts := specSizes(spec)
	// Training holds weights, gradients and the optimizer's state (Adam's
	// two moments, SGD's momentum) for every parameter.
	copiesPerParam := int64(1)
	if batchKey != "" {
		copiesPerParam = 2
		switch {
		case t.Optimizer == backend.Adam:
			copiesPerParam = 4
		case t.Momentum > 0:
			copiesPerParam = 3
		}
	}
	paramBytes := mul(params, mul(copiesPerParam, floatBytes))
	fixed := add(c.data, paramBytes)
	if batchKey != "" {
		fixed = add(fixed, mul(rows, orderBytes))
	}
	if fixed > c.mem.Bytes {
		what := "running it needs at least %s (its weights and the data)"
		if batchKey != "" {
			what = "training it needs at least %s (weights, gradients, optimizer state and the data)"
		}
		fit := (c.mem.Bytes - min(c.data, c.mem.Bytes)) / mul(copiesPerParam, floatBytes)
		c.ps.add(mkey, "model %q has %s parameters: "+what+"; %s: at most about %s parameters fit; reduce its hidden sizes or conv channels",
			name, countString(params), formatBytes(fixed), c.mem.Source, countString(fit))
		return
	}
	free := c.mem.Bytes - fixed
	// A training step keeps every layer's output and its gradient.
	if batchKey != "" {
		per := mul(acts, 2*floatBytes)
		batch := min(int64(t.BatchSize), max(rows, 1))
		if need := mul(per, batch); need > free {
			c.ps.add(batchKey, "model %q needs at least %s for the activations of a training batch of %s (%s of parameters and data besides); %s: %s",
				name, formatBytes(need), countString(batch), formatBytes(fixed), c.mem.Source, fitBatch(free/max(per, 1)))
		}
	}
	per := mul(acts, floatBytes)
	fwdFixed := add(c.data, mul(params, floatBytes))
	free = c.mem.Bytes - min(fwdFixed, c.mem.Bytes)
	l := batchLimit{max: free / max(per, 1), name: name, fixed: fwdFixed, per: per}
	if c.evalBatch > l.max || slices.ContainsFunc(c.serving, func(b int) bool { return int64(b) > l.max }) {
		c.limits = append(c.limits, l)
	}
}

// report adds one problem for eval.batch_size and one for each serving
// batch that some model cannot run, naming the model that limits it.
func (c *sizeCheck) report() {
	if len(c.limits) == 0 {
		return
	}
	t := slices.MinFunc(c.limits, func(a, b batchLimit) int { return cmp.Compare(a.max, b.max) })
	if c.evalBatch > t.max {
		c.ps.add("eval.batch_size", "evaluating model %q at batch size %s needs at least %s; %s: %s",
			t.name, countString(c.evalBatch), formatBytes(t.need(c.evalBatch)), c.mem.Source, fitBatch(t.max))
	}
	for i, b := range c.serving {
		if int64(b) > t.max {
			c.ps.add(fmt.Sprintf("serving.batches[%d]", i), "measuring model %q at batch size %s needs at least %s; %s: %s",
				t.name, countString(int64(b)), formatBytes(t.need(int64(b))), c.mem.Source, fitBatch(t.max))
		}
	}
}

// fitCopies says how many augmented copies fit.
func fitCopies(n int64) string {
	if n < 1 {
		return "no augmented copies fit; remove them"
	}
	return "at most " + countString(n) + " copies fit"
}

// fitBatch says which batch sizes fit.
func fitBatch(n int64) string {
	if n < 1 {
		return "not even a batch of 1 fits; reduce the model's sizes"
	}
	return "at most batch size " + countString(n) + " fits"
}

// specSizes returns a spec's parameter count and the number of values of
// one example's input and layer outputs, saturating at math.MaxInt64.
func specSizes(s model.Spec) (params, acts int64) {
	shapes, err := s.Shapes()
	if err != nil {
		return math.MaxInt64, math.MaxInt64
	}
	acts = numel(s.Input)
	for _, sh := range shapes {
		if acts == math.MaxInt64 {
			// model.Shapes flattens with a plain product; past a
			// saturated shape, its shapes have wrapped around.
			return math.MaxInt64, math.MaxInt64
		}
		acts = add(acts, numel(sh))
	}
	ps, err := s.Params()
	if err != nil {
		return math.MaxInt64, acts
	}
	for _, p := range ps {
		params = add(params, numel(p.Shape))
	}
	return params, acts
}

// numel is the product of dims, saturating at math.MaxInt64 (and
// treating a negative dimension, which only a wrapped product gives, as
// saturated).
func numel(dims []int) int64 {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return math.MaxInt64
		}
		n = mul(n, int64(d))
	}
	return n
}

// mul and add are a·b and a+b for non-negative a and b, saturating at
// math.MaxInt64 instead of wrapping around.
func mul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

func add(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// formatBytes writes n bytes in binary units: "23.5 GiB".
func formatBytes(n int64) string {
	if n == math.MaxInt64 {
		return "more than 8 EiB"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[i])
}

// countString writes a count exactly below a million and in scientific
// notation above: "60000", "1.2e+12".
func countString(n int64) string {
	switch {
	case n == math.MaxInt64:
		return "more than 9.2e+18"
	case n < 1_000_000:
		return strconv.FormatInt(n, 10)
	}
	return strconv.FormatFloat(float64(n), 'g', 3, 64)
}
