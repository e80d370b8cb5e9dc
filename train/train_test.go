package train_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/train"
)

func TestScheduleLR(t *testing.T) {
	tests := []struct {
		name  string
		s     train.Schedule
		epoch float64
		want  float64
	}{
		{"constant", train.Schedule{}, 3.5, 0.1},
		{"cosine start", train.Schedule{Kind: train.Cosine}, 0, 0.1},
		{"cosine middle", train.Schedule{Kind: train.Cosine}, 5, 0.05},
		{"cosine end", train.Schedule{Kind: train.Cosine}, 10, 0},
		{"cosine floor", train.Schedule{Kind: train.Cosine, MinLR: 0.01}, 10, 0.01},
		{"step before", train.Schedule{Kind: train.Step, StepEvery: 3, Gamma: 0.5}, 2.9, 0.1},
		{"step after two", train.Schedule{Kind: train.Step, StepEvery: 3, Gamma: 0.5}, 6, 0.025},
		{"exponential", train.Schedule{Kind: train.Exponential, Gamma: 0.9}, 2.5, 0.1 * 0.81},
		{"warmup half", train.Schedule{Warmup: 2}, 1, 0.05},
		{"warmup done", train.Schedule{Warmup: 2}, 2, 0.1},
	}
	for _, tc := range tests {
		if got := tc.s.LR(0.1, tc.epoch, 10); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: LR = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, bad := range []train.Schedule{{Kind: "linear"}, {Kind: train.Step, Gamma: 0.5}, {Kind: train.Exponential, Gamma: 2}, {Warmup: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

func setup(t *testing.T, dropout float64) (backend.Backend, model.Spec, *data.Dataset) {
	t.Helper()
	b, err := backend.Open("gorgonia", backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := data.Synthetic(data.SyntheticConfig{Train: 100, Test: 10, Shape: []int{6}, Classes: 3, Seed: 1})
	spec, err := model.MLP(model.MLPConfig{Name: "m", Input: []int{6}, Hidden: []int{8}, Classes: 3, Dropout: dropout})
	if err != nil {
		t.Fatal(err)
	}
	return b, spec, ds
}

func cfg() train.Config {
	return train.Config{Epochs: 2, BatchSize: 32, LR: 1e-2, Seed: 3, Objective: loss.CrossEntropyOnly, Optimizer: backend.Optimizer{Kind: backend.Adam}}
}

func TestDeterministicAndKeepsPartialBatch(t *testing.T) {
	b, spec, ds := setup(t, 0.3)
	var weights []model.Weights
	for i := 0; i < 2; i++ {
		m, res, err := train.Fit(context.Background(), b, spec, 1, ds, cfg())
		if err != nil {
			t.Fatal(err)
		}
		// 100 examples in batches of 32: 4 steps an epoch, the last of 4 examples.
		if res.Steps != 8 || len(res.EpochLoss) != 2 {
			t.Fatalf("steps %d, epochs %d; want 8 and 2", res.Steps, len(res.EpochLoss))
		}
		w, _ := m.Weights()
		weights = append(weights, w)
		m.Close()
	}
	for name, a := range weights[0] {
		for i := range a.Data {
			if a.Data[i] != weights[1][name].Data[i] {
				t.Fatalf("two runs with the same seed differ at %s[%d]", name, i)
			}
		}
	}
}

func TestStopsOnNonFiniteLoss(t *testing.T) {
	b, spec, ds := setup(t, 0)
	c := cfg()
	c.LR = 1e30
	c.Optimizer = backend.Optimizer{Kind: backend.SGD}
	_, _, err := train.Fit(context.Background(), b, spec, 1, ds, c)
	var nf *loss.NonFiniteError
	if !errors.As(err, &nf) {
		t.Fatalf("error %v, want a NonFiniteError", err)
	}
}

func TestCancel(t *testing.T) {
	b, spec, ds := setup(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	c := cfg()
	steps := 0
	c.Progress = func(p train.Progress) {
		steps = p.Step
		if p.Step == 3 {
			cancel()
		}
	}
	_, _, err := train.Fit(ctx, b, spec, 1, ds, c)
	if !errors.Is(err, context.Canceled) || steps != 3 {
		t.Fatalf("err %v after %d steps; want context.Canceled after 3", err, steps)
	}
}

func TestConfigValidate(t *testing.T) {
	c := train.Config{Objective: loss.Hinton(0.5, 0)}
	err := c.Validate()
	if err == nil {
		t.Fatal("empty config validated")
	}
	for _, want := range []string{"epochs", "batch size", "learning rate", "temperature", "Teacher is nil"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// Issue 15 item 3: a teacher whose weights are finite but so large that
// its outputs overflow is named, with the example, instead of a NaN loss
// that blames the student's learning rate.
func TestNonFiniteTeacherOutputs(t *testing.T) {
	b, _, ds := setup(t, 0)
	tspec, err := model.MLP(model.MLPConfig{Name: "big", Input: []int{6}, Hidden: []int{8}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := tspec.Init(1)
	for _, tn := range w {
		for i := range tn.Data {
			tn.Data[i] = 3e38
		}
	}
	tm, err := b.Load(tspec, w)
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	sspec, _ := model.MLP(model.MLPConfig{Name: "s", Input: []int{6}, Hidden: []int{8}, Classes: 3})
	for _, tc := range []struct {
		name string
		obj  loss.Objective
		want string
	}{
		{"soft targets", loss.Hinton(0.5, 2), `teacher "big" gave logit 0 = `},
		{"feature term", loss.Objective{HardWeight: 1, Features: []loss.Feature{{Kind: loss.FeatureHint, Student: "fc1", Teacher: "fc1", Weight: 1, Distance: loss.DistanceMSE, Adapter: loss.AdapterNone}}},
			`teacher "big" gave layer "fc1" value 0 = +Inf`},
	} {
		c := cfg()
		c.Objective = tc.obj
		c.Teacher = train.ModelTeacher(tm)
		_, _, err := train.Fit(context.Background(), b, sspec, 1, ds, c)
		var nf *loss.NonFiniteError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "for training example") || errors.As(err, &nf) {
			t.Errorf("%s: %v; want an error naming the teacher and example, containing %q", tc.name, err, tc.want)
		}
	}
}
