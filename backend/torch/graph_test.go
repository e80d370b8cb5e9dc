//go:build torch

package torch

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
)

// pyGraph is run by Python: it computes a spec's graph with PyTorch's
// functional ops in float64, from the spec JSON and the weights the Go
// test wrote, layer by layer as torch.nn's modules do (F.batch_norm is
// what nn.BatchNorm1d/2d call, updating the running statistics in place
// in training). It reports every node's output at inference, then takes
// the given number of torch.optim.SGD steps on the cross-entropy in
// training mode (parameters only in the optimizer; the running statistics
// are buffers) and reports the losses, the state dict and the logits at
// inference after them.
const pyGraph = `
import json, sys, torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
d = json.load(open(sys.argv[1]))
spec = d["spec"]
layers = spec["layers"]
W = {k: torch.tensor(v["data"]).reshape(v["shape"]) for k, v in d["weights"].items()}
params = [W[k].requires_grad_() for k in d["params"]]
n = d["n"]
x = torch.tensor(d["x"]).reshape([n] + spec["input"])
y = torch.tensor(d["y"], dtype=torch.long)
masks = [torch.tensor(m) for m in d["masks"]]

def forward(x, train):
    outs = {"input": x}
    prev, di = "input", 0
    for l in layers:
        name, k = l["name"], l["kind"]
        ins = [outs[i] for i in (l.get("inputs") or [prev])]
        a = ins[0]
        g = lambda s: W.get(name + "." + s)
        if k == "linear":
            o = F.linear(a, g("weight"), g("bias"))
        elif k == "conv2d":
            o = F.conv2d(a, g("weight"), g("bias"), stride=max(l.get("stride", 0), 1), padding=l.get("padding", 0), groups=max(l.get("groups", 0), 1))
        elif k == "maxpool":
            o = F.max_pool2d(a, l["kernel"], l.get("stride") or l["kernel"])
        elif k == "avgpool":
            o = F.avg_pool2d(a, l["kernel"], l.get("stride") or l["kernel"], l.get("padding", 0))
        elif k == "globalavgpool":
            o = F.adaptive_avg_pool2d(a, 1).flatten(1)
        elif k == "flatten":
            o = a.flatten(1)
        elif k == "relu":
            o = F.relu(a)
        elif k == "relu6":
            o = F.relu6(a)
        elif k == "silu":
            o = F.silu(a)
        elif k == "tanh":
            o = torch.tanh(a)
        elif k == "sigmoid":
            o = torch.sigmoid(a)
        elif k == "add":
            o = ins[0] + ins[1]
        elif k == "dropout":
            o = a
            if l.get("rate", 0) > 0:
                if train:
                    o = a * masks[di].reshape(a.shape)
                di += 1
        elif k == "batchnorm":
            o = F.batch_norm(a, g("running_mean"), g("running_var"), g("weight"), g("bias"), training=train,
                             momentum=l.get("momentum") or 0.1, eps=l.get("eps") or 1e-5)
        else:
            raise SystemExit("unknown layer kind " + k)
        outs[name] = o
        prev = name
    return outs

last = layers[-1]["name"]
res = {}
with torch.no_grad():
    res["nodes"] = {k: v.flatten().tolist() for k, v in forward(x, False).items() if k != "input"}
o = d["opt"]
opt = torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["wd"])
res["losses"] = []
for _ in range(d["steps"]):
    opt.zero_grad()
    l = F.cross_entropy(forward(x, True)[last], y)
    l.backward()
    opt.step()
    res["losses"].append(l.item())
res["weights"] = {k: v.detach().flatten().tolist() for k, v in W.items()}
with torch.no_grad():
    res["after"] = forward(x, False)[last].flatten().tolist()
json.dump(res, open(sys.argv[2], "w"))
`

// dropoutGraph is a vector graph with a dropout whose output two layers
// read (at inference both read the dropout's input itself), a
// batchnorm1d and a bias-free linear on a branch from the input.
func dropoutGraph(t *testing.T) model.Spec {
	spec := model.Spec{Name: "dropgraph", Input: []int{6}, Classes: 3, Layers: []model.Layer{
		{Name: "fc_a", Kind: model.KindLinear, Out: 8},
		{Name: "bn_a", Kind: model.KindBatchNorm, Momentum: 0.2},
		{Name: "act_a", Kind: model.KindSiLU},
		{Name: "drop", Kind: model.KindDropout, Rate: 0.3},
		{Name: "fc_b", Kind: model.KindLinear, Out: 8, NoBias: true, Inputs: []string{model.InputName}},
		{Name: "sum", Kind: model.KindAdd, Inputs: []string{"drop", "fc_b"}},
		{Name: "sum2", Kind: model.KindAdd, Inputs: []string{"sum", "drop"}},
		{Name: "act", Kind: model.KindReLU6},
		{Name: "fc", Kind: model.KindLinear, Out: 3},
	}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	return spec
}

// pyTensor is a tensor as pyGraph reads it.
type pyTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

type pyResult struct {
	Nodes   map[string][]float64 `json:"nodes"`
	Losses  []float64            `json:"losses"`
	Weights map[string][]float64 `json:"weights"`
	After   []float64            `json:"after"`
}

// runPyGraph runs pyGraph on spec with weights w, n examples x with labels
// y and the dropout masks (the same in every step).
func runPyGraph(t *testing.T, py string, spec model.Spec, w model.Weights, x []float32, y []int32, n int, masks [][]float32, opt backend.Optimizer, lr float64, steps int) pyResult {
	t.Helper()
	params, err := spec.Params()
	if err != nil {
		t.Fatal(err)
	}
	buffers, _ := spec.Buffers()
	in := map[string]any{
		"spec": spec, "n": n, "x": f64(x), "y": y, "steps": steps,
		"opt":   map[string]float64{"lr": lr, "momentum": opt.Momentum, "wd": opt.WeightDecay},
		"masks": [][]float64{},
	}
	for _, m := range masks {
		in["masks"] = append(in["masks"].([][]float64), f64(m))
	}
	ws := map[string]pyTensor{}
	var names []string
	for _, p := range params {
		names = append(names, p.Name)
	}
	for _, p := range slices.Concat(params, buffers) {
		ws[p.Name] = pyTensor{p.Shape, f64(w[p.Name].Data)}
	}
	in["weights"], in["params"] = ws, names
	dir := t.TempDir()
	inPath, outPath, script := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json"), filepath.Join(dir, "graph.py")
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(pyGraph), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, script, inPath, outPath).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", py, script, err, out)
	}
	b, err = os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	var r pyResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestGraphsMatchPyTorch runs the shared graph specs and a graph with
// dropout through this backend and through PyTorch (float64, functional
// ops as torch.nn's modules call them): every node's output at inference
// (ForwardFeatures, with non-trivial running statistics), then two SGD
// steps with momentum and weight decay in training mode (batch
// statistics, dropout masks): the losses, every parameter and running
// statistic after them, and the logits at inference after them.
func TestGraphsMatchPyTorch(t *testing.T) {
	py := pythonTorch(t)
	b := openTest(t)
	specs := append(backendtest.GraphSpecs(t), dropoutGraph(t))
	for si, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			const n, steps, lr = 6, 2, 0.05
			w, err := spec.Init(uint64(si) + 1)
			if err != nil {
				t.Fatal(err)
			}
			backendtest.RandomizeBatchNorm(spec, w, uint64(si)+10)
			rng := rand.New(rand.NewPCG(uint64(si), 3))
			x := randn(rng, n*model.Numel(spec.Input), 1)
			y := randLabels(rng, n, spec.Classes)
			masks := randMasks(rng, spec, n)
			opt := backend.Optimizer{Kind: backend.SGD, Momentum: 0.9, WeightDecay: 0.01}
			want := runPyGraph(t, py, spec, w, x, y, n, masks, opt, lr, steps)

			m := load(t, b, spec, w)
			shapes, _ := spec.Shapes()
			var names []string
			feats := make([][]float32, len(spec.Layers))
			for i, l := range spec.Layers {
				names = append(names, l.Name)
				feats[i] = make([]float32, n*model.Numel(shapes[i]))
			}
			logits := make([]float32, n*spec.Classes)
			if err := m.ForwardFeatures(x, n, names, logits, feats); err != nil {
				t.Fatal(err)
			}
			for i, name := range names {
				if d, at := maxDiff(feats[i], want.Nodes[name]); d > tol(1e-5) {
					t.Errorf("inference: node %q value %d = %v, PyTorch %v", name, at, feats[i][at], want.Nodes[name][at])
				}
			}
			if d, at := maxDiff(logits, want.Nodes[names[len(names)-1]]); d > tol(1e-5) {
				t.Errorf("inference: logit %d = %v, PyTorch %v", at, logits[at], want.Nodes[names[len(names)-1]][at])
			}

			tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: loss.CrossEntropyOnly, Optimizer: opt})
			for s := range steps {
				v, err := tr.Step(&backend.Batch{N: n, X: x, Labels: y, Masks: masks, LR: lr})
				if err != nil {
					t.Fatal(err)
				}
				if !closeTo(v.Total, want.Losses[s], tol(1e-5)) {
					t.Errorf("training step %d: loss %v, PyTorch %v", s+1, v.Total, want.Losses[s])
				}
			}
			got, err := m.Weights()
			if err != nil {
				t.Fatal(err)
			}
			if err := spec.Check(got); err != nil {
				t.Fatalf("Weights after training: %v", err)
			}
			for name, wv := range want.Weights {
				if d, at := maxDiff(got[name].Data, wv); d > tol(1e-5) {
					t.Errorf("after %d steps: %s[%d] = %v, PyTorch %v (was %v)", steps, name, at, got[name].Data[at], wv[at], w[name].Data[at])
				}
			}
			if err := m.Forward(x, n, logits); err != nil {
				t.Fatal(err)
			}
			if d, at := maxDiff(logits, want.After); d > tol(1e-5) {
				t.Errorf("inference after training: logit %d = %v, PyTorch %v", at, logits[at], want.After[at])
			}
		})
	}
}

// resnetSpec is the shared resnet graph spec.
func resnetSpec(t *testing.T) model.Spec {
	t.Helper()
	for _, s := range backendtest.GraphSpecs(t) {
		if s.Name == "resnet" {
			return s
		}
	}
	t.Fatal("backendtest.GraphSpecs has no resnet")
	return model.Spec{}
}

// TestGraphFailedStepKeepsRunningStats: a step whose loss is not finite
// (a NaN teacher logit; the forward pass itself is fine and computes new
// batch statistics) leaves the running statistics as they were, as it
// leaves the parameters; the next good step updates them.
func TestGraphFailedStepKeepsRunningStats(t *testing.T) {
	b := openTest(t)
	spec := resnetSpec(t)
	w, _ := spec.Init(3)
	backendtest.RandomizeBatchNorm(spec, w, 4)
	m := load(t, b, spec, w)
	const n = 4
	tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: loss.Hinton(0.5, 2), Optimizer: backend.Optimizer{Kind: backend.SGD}})
	rng := rand.New(rand.NewPCG(5, 5))
	bt := &backend.Batch{N: n, X: randn(rng, n*model.Numel(spec.Input), 1), Labels: randLabels(rng, n, spec.Classes), TeacherLogits: randn(rng, n*spec.Classes, 1), LR: 0.1}
	bt.TeacherLogits[1] = float32(math.NaN())
	var nf *loss.NonFiniteError
	if _, err := tr.Step(bt); !errors.As(err, &nf) {
		t.Fatalf("a NaN teacher logit: err = %v, want a *loss.NonFiniteError", err)
	}
	after, err := m.Weights()
	if err != nil {
		t.Fatal(err)
	}
	for k := range w {
		if !slices.Equal(after[k].Data, w[k].Data) {
			t.Errorf("%s changed by a failed step", k)
		}
	}
	bt.TeacherLogits[1] = 0
	if _, err := tr.Step(bt); err != nil {
		t.Fatal(err)
	}
	after, _ = m.Weights()
	bs, _ := spec.Buffers()
	for _, p := range bs {
		if slices.Equal(after[p.Name].Data, w[p.Name].Data) {
			t.Errorf("%s unchanged by a good training step", p.Name)
		}
	}
}

// TestGraphBatchNormNeedsTwoValues: in training a batchnorm needs more
// than one value per channel, as PyTorch requires; a batchnorm2d gets H·W
// values from one example, a batchnorm1d one.
func TestGraphBatchNormNeedsTwoValues(t *testing.T) {
	b := openTest(t)
	for _, tc := range []struct {
		spec model.Spec
		ok   bool
	}{{resnetSpec(t), true}, {dropoutGraph(t), false}} {
		spec := tc.spec
		w, _ := spec.Init(1)
		m := load(t, b, spec, w)
		tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: 2, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.SGD}})
		rng := rand.New(rand.NewPCG(1, 1))
		_, err := tr.Step(&backend.Batch{N: 1, X: randn(rng, model.Numel(spec.Input), 1), Labels: []int32{0}, Masks: randMasks(rng, spec, 1), LR: 0.1})
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: a batch of 1: %v", spec.Name, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), `batchnorm layer "bn_a" needs more than one value per channel`)):
			t.Errorf("%s: a batch of 1: err = %v, want the batchnorm named", spec.Name, err)
		}
		after, _ := m.Weights()
		if !tc.ok && !slices.Equal(after["bn_a.running_var"].Data, w["bn_a.running_var"].Data) {
			t.Errorf("%s: the refused step changed the running variance", spec.Name)
		}
		// Inference on one example is fine.
		if err := m.Forward(make([]float32, model.Numel(spec.Input)), 1, make([]float32, spec.Classes)); err != nil {
			t.Errorf("%s: Forward of one example: %v", spec.Name, err)
		}
	}
}

// TestGraphFeatureOnlyStep: with only a feature term at a residual add
// node the step trains the layers that node depends on; the parameters of
// the layers after it stay as they were, but every batchnorm's running
// statistics change, after the hinted node too, as the student's whole
// forward pass in PyTorch changes them.
func TestGraphFeatureOnlyStep(t *testing.T) {
	b := openTest(t)
	spec := resnetSpec(t)
	w, _ := spec.Init(7)
	m := load(t, b, spec, w)
	const n = 4
	shapes, _ := spec.Shapes()
	_, hinted, _ := spec.Layer("layer1.0.add")
	if spec.Layers[hinted].Kind != model.KindAdd {
		t.Fatalf("layer1.0.add is a %s", spec.Layers[hinted].Kind)
	}
	obj := loss.Objective{Features: []loss.Feature{{Kind: loss.FeatureHint, Student: "layer1.0.add", Teacher: "layer1.0.add", Weight: 1, Adapter: loss.AdapterNone}}}
	tr := mustTrainer(t, b, m, backend.TrainConfig{MaxBatch: n, Objective: obj, Optimizer: backend.Optimizer{Kind: backend.SGD}, TeacherSpec: spec})
	rng := rand.New(rand.NewPCG(8, 8))
	tf := randn(rng, n*model.Numel(shapes[hinted]), 1)
	if _, err := tr.Step(&backend.Batch{N: n, X: randn(rng, n*model.Numel(spec.Input), 1), TeacherFeatures: [][]float32{tf}, LR: 0.1}); err != nil {
		t.Fatal(err)
	}
	after, _ := m.Weights()
	ps, _ := spec.Params()
	for _, p := range ps {
		_, li, _ := spec.Layer(p.Layer)
		changed := !slices.Equal(after[p.Name].Data, w[p.Name].Data)
		if want := li <= hinted; changed != want {
			t.Errorf("%s (layer %d, hinted layer %d): changed = %v, want %v", p.Name, li, hinted, changed, want)
		}
	}
	bs, _ := spec.Buffers()
	for _, p := range bs {
		if slices.Equal(after[p.Name].Data, w[p.Name].Data) {
			t.Errorf("%s unchanged by a training step", p.Name)
		}
	}
}
