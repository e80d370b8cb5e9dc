package recipe

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// base is a valid recipe that the tests extend.
const base = `
teacher:
  model: {hidden: [64]}
students:
  - name: s
    model: {hidden: [8]}
`

func mustParse(t *testing.T, src string) *Recipe {
	t.Helper()
	r, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatalf("Parse:\n%v\n--- recipe:\n%s", err, src)
	}
	return r
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T (%v), want *Error", err, err)
	}
	if len(e.Problems) == 0 {
		t.Fatal("*Error without problems")
	}
	return e.Problems
}

func TestTrainingFor(t *testing.T) {
	marked := func(tr Training, keys ...string) Training {
		tr.MarkSet(keys...)
		return tr
	}
	defaults := Training{Epochs: 10, BatchSize: 128, Optimizer: "adam", LR: 1e-3, Schedule: Schedule{Kind: "constant"}}
	tests := []struct {
		name     string
		top, own Training
		want     Training
	}{
		{"all defaults", Training{}, Training{}, defaults},
		{
			"top-level applies",
			Training{Epochs: 3, Schedule: Schedule{Kind: "cosine"}}, Training{},
			Training{Epochs: 3, BatchSize: 128, Optimizer: "adam", LR: 1e-3, Schedule: Schedule{Kind: "cosine"}},
		},
		{
			"own overrides key by key",
			Training{Epochs: 3, BatchSize: 64}, Training{Epochs: 5},
			Training{Epochs: 5, BatchSize: 64, Optimizer: "adam", LR: 1e-3, Schedule: Schedule{Kind: "constant"}},
		},
		{
			"schedule keys merge one by one",
			Training{Schedule: Schedule{Kind: "cosine", Warmup: 2, MinLR: 1e-5}}, Training{Schedule: Schedule{Warmup: 1}},
			Training{Epochs: 10, BatchSize: 128, Optimizer: "adam", LR: 1e-3, Schedule: Schedule{Kind: "cosine", Warmup: 1, MinLR: 1e-5}},
		},
		{
			"sgd defaults follow the effective optimizer",
			Training{Optimizer: "sgd"}, Training{},
			Training{Epochs: 10, BatchSize: 128, Optimizer: "sgd", LR: 0.1, Momentum: 0.9, Schedule: Schedule{Kind: "constant"}},
		},
		{
			"own optimizer changes the lr default",
			Training{Optimizer: "adam"}, Training{Optimizer: "sgd"},
			Training{Epochs: 10, BatchSize: 128, Optimizer: "sgd", LR: 0.1, Momentum: 0.9, Schedule: Schedule{Kind: "constant"}},
		},
		{
			"an explicit lr is inherited whatever the optimizer",
			Training{LR: 0.01}, Training{Optimizer: "sgd"},
			Training{Epochs: 10, BatchSize: 128, Optimizer: "sgd", LR: 0.01, Momentum: 0.9, Schedule: Schedule{Kind: "constant"}},
		},
		{
			"an explicit zero survives (MarkSet)",
			Training{Optimizer: "sgd"}, marked(Training{}, "momentum"),
			Training{Epochs: 10, BatchSize: 128, Optimizer: "sgd", LR: 0.1, Momentum: 0, Schedule: Schedule{Kind: "constant"}},
		},
		{
			"an explicit zero at the top survives",
			marked(Training{Optimizer: "sgd"}, "momentum"), Training{},
			Training{Epochs: 10, BatchSize: 128, Optimizer: "sgd", LR: 0.1, Momentum: 0, Schedule: Schedule{Kind: "constant"}},
		},
		{
			"an explicit zero overrides the top",
			Training{Optimizer: "sgd", Momentum: 0.5}, marked(Training{}, "momentum"),
			Training{Epochs: 10, BatchSize: 128, Optimizer: "sgd", LR: 0.1, Momentum: 0, Schedule: Schedule{Kind: "constant"}},
		},
		{
			"gamma defaults by kind: step",
			Training{}, Training{Schedule: Schedule{Kind: "step", StepEvery: 3}},
			Training{Epochs: 10, BatchSize: 128, Optimizer: "adam", LR: 1e-3, Schedule: Schedule{Kind: "step", StepEvery: 3, Gamma: 0.1}},
		},
		{
			"gamma defaults by kind: exponential",
			Training{Schedule: Schedule{Kind: "exponential"}}, Training{},
			Training{Epochs: 10, BatchSize: 128, Optimizer: "adam", LR: 1e-3, Schedule: Schedule{Kind: "exponential", Gamma: 0.95}},
		},
		{
			"booleans merge",
			Training{Nesterov: true, Optimizer: "sgd"}, Training{WeightDecay: 1e-4},
			Training{Epochs: 10, BatchSize: 128, Optimizer: "sgd", LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 1e-4, Schedule: Schedule{Kind: "constant"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Recipe{Training: tc.top}
			got := r.TrainingFor(tc.own)
			if !sameValues(got, tc.want) {
				t.Errorf("TrainingFor:\n got %+v\nwant %+v", got, tc.want)
			}
			if again := r.TrainingFor(got); !sameValues(again, got) {
				t.Errorf("not idempotent:\n once %+v\ntwice %+v", got, again)
			}
		})
	}
}

// sameValues compares the exported fields of two Trainings.
func sameValues(a, b Training) bool {
	a.set, b.set = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestTrainingForNilRecipe(t *testing.T) {
	var r *Recipe
	if got := r.TrainingFor(Training{Epochs: 2}); got.Epochs != 2 || got.BatchSize != DefaultBatchSize {
		t.Errorf("got %+v", got)
	}
}

func TestMarkSetDoesNotAlias(t *testing.T) {
	var a Training
	a.MarkSet("momentum")
	b := a
	b.MarkSet("lr", "no-such-key")
	if a.IsSet("lr") {
		t.Error("MarkSet on a copy changed the original")
	}
	if !b.IsSet("lr") || !b.IsSet("momentum") || b.IsSet("no-such-key") {
		t.Errorf("b marks = %v", b.set)
	}
	if !slices.Equal(TrainingKeys()[:2], []string{"epochs", "batch_size"}) || !slices.Contains(TrainingKeys(), "schedule.kind") {
		t.Errorf("TrainingKeys() = %v", TrainingKeys())
	}
}

// TestParseTrainingMerge is the example in recipes/README.md.
func TestParseTrainingMerge(t *testing.T) {
	r := mustParse(t, `
training: {epochs: 5, optimizer: sgd, schedule: {kind: cosine, warmup: 1}}
teacher:
  model: {hidden: [64]}
students:
  - name: a
    model: {hidden: [64]}
    training: {lr: 0.05, schedule: {warmup: 0}}
`)
	want := Training{Epochs: 5, BatchSize: 128, Optimizer: "sgd", LR: 0.05, Momentum: 0.9, Schedule: Schedule{Kind: "cosine", Warmup: 0}}
	if got := r.Students[0].Training; !sameValues(got, want) {
		t.Errorf("student a trains with\n %+v, want\n %+v", got, want)
	}
	if got := r.TrainingFor(r.Students[0].Training); !sameValues(got, want) {
		t.Errorf("TrainingFor(parsed section) = %+v", got)
	}
	teacher := Training{Epochs: 5, BatchSize: 128, Optimizer: "sgd", LR: 0.1, Momentum: 0.9, Schedule: Schedule{Kind: "cosine", Warmup: 1}}
	if got := r.Teacher.Training; !sameValues(got, teacher) {
		t.Errorf("teacher trains with %+v, want %+v", got, teacher)
	}
	// The top-level section stays as written.
	if got := r.Training; got.Epochs != 5 || got.LR != 0 || got.BatchSize != 0 {
		t.Errorf("top-level training = %+v, want it as written", got)
	}
}

func TestBaselineEnabled(t *testing.T) {
	on, off := true, false
	for _, tc := range []struct {
		b    *bool
		want bool
	}{{nil, true}, {&on, true}, {&off, false}} {
		if got := (Student{Baseline: tc.b}).BaselineEnabled(); got != tc.want {
			t.Errorf("Baseline %v: BaselineEnabled() = %v", tc.b, got)
		}
	}
	r := mustParse(t, base)
	if r.Students[0].Baseline == nil || !*r.Students[0].Baseline {
		t.Error("Parse did not fill baseline: true")
	}
}

func TestDefaultsAndNames(t *testing.T) {
	r := mustParse(t, base)
	if r.Name != "test" || r.Output.Dir != filepath.Join("runs", "test") {
		t.Errorf("name %q, output.dir %q", r.Name, r.Output.Dir)
	}
	if r.Backend != "gorgonia" || r.Device != "auto" || r.Seed != 1 || r.Data.Dataset != "mnist" {
		t.Errorf("top-level defaults: %+v", r)
	}
	if s := r.Students[0]; !reflect.DeepEqual(s.Distill, Distill{Temperature: 4, Alpha: 0.9}) || s.Model.Type != "mlp" || s.Model.Activation != "relu" {
		t.Errorf("student defaults: %+v", s)
	}
	if r.Eval != (Eval{1000, 15}) {
		t.Errorf("eval defaults: %+v", r.Eval)
	}

	r, err := Parse([]byte(base), "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "recipe" {
		t.Errorf("name without a file = %q, want recipe", r.Name)
	}
	r = mustParse(t, base+"  - model: {hidden: [8]}\n")
	if r.Students[1].Name != "student1" {
		t.Errorf("default student name = %q, want student1", r.Students[1].Name)
	}
	r, err = Parse([]byte(base), filepath.Join("some", "dir", "exp.v2.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "exp.v2" {
		t.Errorf("name from some/dir/exp.v2.yml = %q", r.Name)
	}
}

func TestExplicitValuesKept(t *testing.T) {
	r := mustParse(t, `
seed: 0
data:
  dataset: synthetic
  synthetic: {seed: 0}
teacher:
  model: {hidden: [64]}
students:
  - name: s
    model: {hidden: [8]}
    distill: {alpha: 0}
`)
	if r.Seed != 0 || r.Data.Synthetic.Seed != 0 || r.Students[0].Distill.Alpha != 0 {
		t.Errorf("explicit zeros replaced: seed %d, synthetic seed %d, alpha %v", r.Seed, r.Data.Synthetic.Seed, r.Students[0].Distill.Alpha)
	}
	before := r.Hash()
	r.SetDefaults()
	if r.Students[0].Distill.Alpha != 0 || r.Hash() != before {
		t.Error("SetDefaults changed a parsed recipe")
	}

	r = mustParse(t, "seed: 9\ndata: {dataset: synthetic}\n"+base)
	if r.Data.Synthetic.Seed != 9 || !reflect.DeepEqual(r.Data.Synthetic.Shape, []int{1, 8, 8}) {
		t.Errorf("synthetic defaults: %+v", r.Data.Synthetic)
	}
}

func TestPathsResolved(t *testing.T) {
	abs, err := filepath.Abs("/data/mnist")
	if err != nil {
		t.Fatal(err)
	}
	src := `
data: {dir: ` + abs + `}
teacher: {checkpoint: ../runs/big/teacher}
students:
  - model: {hidden: [8]}
`
	r, err := Parse([]byte(src), filepath.Join("exp", "r.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Data.Dir != abs {
		t.Errorf("absolute data.dir changed to %q", r.Data.Dir)
	}
	if want := filepath.Join("runs", "big", "teacher"); r.Teacher.Checkpoint != want {
		t.Errorf("checkpoint = %q, want %q", r.Teacher.Checkpoint, want)
	}
	r, err = Parse([]byte(src), "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Teacher.Checkpoint != "../runs/big/teacher" {
		t.Errorf("without a file name, checkpoint = %q, want it unchanged", r.Teacher.Checkpoint)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "r.yaml", Line: 12, Column: 5, Key: "students[0].distill.temperature", Message: "must be > 0, got -1"},
			"r.yaml:12:5: students[0].distill.temperature: must be > 0, got -1"},
		{Problem{File: "r.yaml", Line: 3, Message: "invalid YAML: x"}, "r.yaml:3: invalid YAML: x"},
		{Problem{File: "r.yaml", Key: "students", Message: "m"}, "r.yaml: students: m"},
		{Problem{Line: 2, Column: 1, Key: "k", Message: "m"}, "2:1: k: m"},
		{Problem{Key: "k", Message: "m"}, "k: m"},
		{Problem{Message: "m"}, "m"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	err := &Error{Problems: []Problem{{Key: "a", Message: "x"}, {Key: "b", Message: "y"}}}
	if got := err.Error(); got != "a: x\nb: y" {
		t.Errorf("Error() = %q", got)
	}
}

// TestParseProblems checks individual messages and positions; the
// golden files under testdata/bad cover the rest.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // each must be the String of one problem, in order
	}{
		{"float for int", "threads: 2.5\n" + base, []string{"test.yaml:1:10: threads: must be an integer, got 2.5"}},
		{"whole float for int is fine", "threads: 2.0\n" + base, nil},
		{"exponent for int is fine", "data: {train_limit: 1e3}\n" + base, nil},
		{"null is absent", "seed: ~\nname:\n" + base, nil},
		{"range on key", "training:\n  epochs: -1\n" + base, []string{"test.yaml:2:3: training.epochs: must be at least 1, got -1"}},
		{"missing key at parent", "teacher:\n  model: {hidden: [64]}\nstudents:\n  - name: s\n", []string{"test.yaml:4:5: students[0].model: is required, such as model: {type: mlp, hidden: [128, 128]}"}},
		{"missing top-level key has no line", "teacher:\n  model: {hidden: [64]}\n", []string{"test.yaml: students: at least one student is required, such as students: [{name: small, model: {hidden: [128]}}]"}},
		{"type error not repeated as range error", "eval: {batch_size: big}\n" + base, []string{`test.yaml:1:20: eval.batch_size: must be an integer, got "big"`}},
		{"decode failure inside a model skips the fit check", "teacher:\n  model: {type: cnn, conv: [{channels: x, kernel: 99}]}\nstudents:\n  - model: {hidden: [8]}\n",
			[]string{`test.yaml:2:40: teacher.model.conv[0].channels: must be an integer, got "x"`}},
		{"device cuda:N", "device: cuda:12\n" + base, nil},
		{"device bad", "device: cuda:x\n" + base, []string{`test.yaml:1:1: device: must be auto, cpu, cuda or cuda:N (N a GPU index such as 0), got "cuda:x"`}},
		{"bf16 needs the torch backend", "precision: bf16\n" + base, []string{`test.yaml:1:1: precision: bf16 runs only on the torch backend (backend: torch); the gorgonia backend computes in fp32: set precision to auto or fp32`}},
		{"unknown precision", "precision: fp16\n" + base, []string{`test.yaml:1:1: precision: must be one of auto, fp32, bf16, got "fp16"`}},
		{"unknown key lists the valid ones", "xx: &x {hidden: [1]}\n" + base, []string{`test.yaml:1:1: xx: unknown key; expected one of: name, backend, device, threads, precision, seed, data, training, teacher, ensemble, transfer, students, quantize, serving, eval, output, checkpoint`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "test.yaml")
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected problems:\n%v", err)
				}
				return
			}
			ps := problemsOf(t, err)
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestAliasBomb: merge keys over aliases could expand a small file
// exponentially; the work budget stops that.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("teacher:\n  model: *m6\nstudents:\n  - model: {hidden: [8]}\n")
	b.WriteString("x0: &m0 {type: mlp}\n")
	for i := 1; i <= 6; i++ {
		prev := "*m" + strconv.Itoa(i-1)
		fmt.Fprintf(&b, "x%d: &m%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(prev+", ", 50), ", "))
	}
	// Anchors must be defined before use: move the teacher to the end.
	src := b.String()
	i := strings.Index(src, "x0:")
	src = src[i:] + src[:i]
	start := time.Now()
	_, err := Parse([]byte(src), "bomb.yaml")
	if time.Since(start) > 5*time.Second {
		t.Errorf("Parse took %v", time.Since(start))
	}
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("err = %v, want the recipe reported as too large", err)
	}
}

func TestValidateGoBuilt(t *testing.T) {
	r := &Recipe{
		Teacher:  Teacher{Model: Model{Hidden: []int{64}}},
		Students: []Student{{Name: "s", Model: Model{Hidden: []int{8}}}},
	}
	r.SetDefaults()
	if err := r.Validate(); err != nil {
		t.Fatalf("Validate after SetDefaults: %v", err)
	}
	if r.Teacher.Training.Epochs != DefaultEpochs || r.Students[0].Distill.Temperature != DefaultTemperature {
		t.Errorf("SetDefaults did not fill: %+v", r)
	}

	r.Students[0].Distill.Temperature = -1
	r.Students = append(r.Students, Student{Name: "S", Model: Model{Type: "mlp", Activation: "relu"}, Distill: Distill{Temperature: 4, Alpha: 0.5}})
	ps := problemsOf(t, r.Validate())
	var got []string
	for _, p := range ps {
		if p.Line != 0 || p.File != "" {
			t.Errorf("Validate problem with a position: %+v", p)
		}
		got = append(got, p.String())
	}
	want := []string{
		"students[0].distill.temperature: must be > 0, got -1",
		`students[1].name: "S" is already used by students[0] (names must be unique, ignoring case)`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Validate:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Without SetDefaults, zero values are reported.
	if err := (&Recipe{}).Validate(); err == nil {
		t.Error("empty recipe validated")
	}
}

func TestDataShape(t *testing.T) {
	for _, tc := range []struct {
		d       Data
		input   []int
		classes int
	}{
		{Data{}, []int{1, 28, 28}, 10},
		{Data{Dataset: "mnist"}, []int{1, 28, 28}, 10},
		{Data{Dataset: "synthetic"}, []int{1, 8, 8}, 4},
		{Data{Dataset: "synthetic", Synthetic: Synthetic{Shape: []int{20}, Classes: 3}}, []int{20}, 3},
		{Data{Dataset: "cifar"}, nil, 0},
	} {
		input, classes := tc.d.Shape()
		if !reflect.DeepEqual(input, tc.input) || classes != tc.classes {
			t.Errorf("%+v.Shape() = %v, %d; want %v, %d", tc.d, input, classes, tc.input, tc.classes)
		}
	}
	// The result is a copy.
	d := Data{Dataset: "synthetic"}
	in, _ := d.Shape()
	in[0] = 99
	if defaultSynthShape[0] != 1 {
		t.Error("Shape returned the default's backing array")
	}
}

func TestModelSpec(t *testing.T) {
	mnist := []int{1, 28, 28}
	tests := []struct {
		name    string
		m       Model
		layers  []string // layer names, or nil when an error is wanted
		wantErr string
	}{
		{"linear", Model{}, []string{"flatten", "fc1"}, ""},
		{"mlp", Model{Type: "mlp", Hidden: []int{32, 16}, Dropout: 0.5, InputDropout: 0.2},
			[]string{"flatten", "drop0", "fc1", "act1", "drop1", "fc2", "act2", "drop2", "fc3"}, ""},
		{"cnn", Model{Type: "cnn", Conv: []ConvBlock{{Channels: 4, Pool: 2}}, Hidden: []int{8}},
			[]string{"conv1", "act_conv1", "pool1", "flatten", "fc1", "act1", "fc2"}, ""},
		{"unknown type", Model{Type: "rnn"}, nil, `type "rnn"`},
		{"cnn without conv", Model{Type: "cnn"}, nil, "at least one conv block"},
		{"mlp with conv", Model{Conv: []ConvBlock{{Channels: 4}}}, nil, "only used by type cnn"},
		{"cnn input dropout", Model{Type: "cnn", Conv: []ConvBlock{{Channels: 4}}, InputDropout: 0.1}, nil, "input_dropout"},
		{"does not fit", Model{Type: "cnn", Conv: []ConvBlock{{Channels: 4, Kernel: 40}}}, nil, "does not fit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := tc.m.Spec("net", mnist, 10)
			if tc.layers == nil {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, l := range spec.Layers {
				names = append(names, l.Name)
			}
			if !reflect.DeepEqual(names, tc.layers) || spec.Name != "net" || spec.Classes != 10 {
				t.Errorf("spec %s %d: layers %v, want %v", spec.Name, spec.Classes, names, tc.layers)
			}
		})
	}
	// Spec fills conv defaults in its own copy.
	m := Model{Type: "cnn", Conv: []ConvBlock{{Channels: 4}}}
	spec, err := m.Spec("net", mnist, 10)
	if err != nil {
		t.Fatal(err)
	}
	if m.Conv[0].Kernel != 0 {
		t.Error("Spec modified the caller's conv blocks")
	}
	if l, _, _ := spec.Layer("conv1"); l.Kernel != 3 || l.Stride != 1 {
		t.Errorf("conv1 = %+v, want kernel 3 stride 1", l)
	}
}

func TestHash(t *testing.T) {
	h := mustParse(t, base).Hash()
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("Hash() = %q, want 64 hex digits", h)
	}
	same := []string{
		"# a comment\n" + base,
		`
students: [{model: {hidden: [8]}, name: s}]
teacher: {model: {hidden: [64]}}`,
		// spelling out defaults
		"backend: gorgonia\nseed: 1\neval: {batch_size: 1000}\n" + base,
		// a top-level training equal to the defaults, or given per model
		"training: {epochs: 10}\n" + base,
		`
teacher:
  model: {hidden: [64], type: mlp, activation: relu}
  training: {epochs: 10, optimizer: adam, lr: 0.001}
students:
  - name: s
    model: {hidden: [8]}
    baseline: true
    distill: {temperature: 4}
`,
	}
	for _, src := range same {
		if got := mustParse(t, src).Hash(); got != h {
			t.Errorf("hash differs for an equivalent recipe:\n%s", src)
		}
	}
	different := []string{
		"seed: 2\n" + base,
		"training: {epochs: 11}\n" + base,
		"name: other\n" + base,
		strings.Replace(base, "[8]", "[9]", 1),
		strings.Replace(base, "[8]}", "[8]}\n    baseline: false", 1),
		strings.Replace(base, "[8]}", "[8]}\n    distill: {alpha: 0}", 1),
	}
	seen := map[string]string{h: base}
	for _, src := range different {
		got := mustParse(t, src).Hash()
		if prev, ok := seen[got]; ok {
			t.Errorf("same hash for different recipes:\n%s\n---\n%s", prev, src)
		}
		seen[got] = src
	}

	// A recipe built in Go hashes like the parsed one, and Hash does not
	// modify it.
	r := &Recipe{
		Name:     "test",
		Teacher:  Teacher{Model: Model{Hidden: []int{64}}},
		Students: []Student{{Name: "s", Model: Model{Hidden: []int{8}}}},
	}
	if got := r.Hash(); got != h {
		t.Errorf("Go-built recipe hash %s, parsed %s", got, h)
	}
	if r.Backend != "" || r.Students[0].Baseline != nil || r.Teacher.Model.Type != "" {
		t.Errorf("Hash modified the recipe: %+v", r)
	}
}
