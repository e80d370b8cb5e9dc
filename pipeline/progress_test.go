package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/tensorboard"
)

// TestInterruptedSaysWhereToResume cancels a run in the middle of the
// teacher's training: the error must name the checkpoint and its step,
// and the rerun must say it resumes from there.
func TestInterruptedSaysWhereToResume(t *testing.T) {
	out := t.TempDir()
	r := loadTiny(t)
	r.Checkpoint.EverySteps = 3
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := pipeline.Run(ctx, r, pipeline.Options{OutDir: out, Progress: func(e pipeline.Event) {
		if e.Model == "teacher" && e.Step == 11 {
			cancel()
		}
	}})
	var ie *pipeline.Interrupted
	if !errors.As(err, &ie) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want an *Interrupted wrapping context.Canceled", err)
	}
	ck := filepath.Join(out, "checkpoints", "teacher.ckpt")
	if ie.Model != "teacher" || ie.Checkpoint != ck || ie.Step != 11 || ie.Epoch != 2 || ie.Epochs != 2 || ie.Steps != 16 {
		t.Errorf("interrupted %+v, want teacher at step 11 of 16, epoch 2 of 2, checkpoint %s", ie, ck)
	}
	if !strings.Contains(err.Error(), ck) || !strings.Contains(err.Error(), "step 11 of 16") {
		t.Errorf("message does not say where the run resumes: %v", err)
	}
	var msgs []string
	if _, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: out, Progress: func(e pipeline.Event) {
		if e.Message != "" && e.Steps == 0 {
			msgs = append(msgs, e.Message)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	want := "resuming teacher from its checkpoint after step 11 (epoch 2 of 2): " + ck
	if !strings.Contains(strings.Join(msgs, "\n"), want) {
		t.Errorf("rerun messages lack %q:\n%s", want, strings.Join(msgs, "\n"))
	}
}

// TestEvalProgress checks that evaluation and serving measurement send
// progress: phases counted over all models, ending at Steps.
func TestEvalProgress(t *testing.T) {
	out := t.TempDir()
	var evs []pipeline.Event
	rep, err := pipeline.Run(context.Background(), loadTiny(t), pipeline.Options{OutDir: out, Progress: func(e pipeline.Event) {
		if e.Stage == "eval" {
			evs = append(evs, e)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	measuring := 0
	for i, e := range evs {
		if e.Steps != 2*len(rep.Models) {
			t.Fatalf("event %d: %d steps, want 2 per model (%d models)", i, e.Steps, len(rep.Models))
		}
		if i > 0 && e.Step < evs[i-1].Step {
			t.Errorf("event %d: step %d after %d", i, e.Step, evs[i-1].Step)
		}
		// Same-architecture models share one measurement.
		if strings.HasPrefix(e.Message, "measuring serving") || strings.HasPrefix(e.Message, "sharing the serving measurement") {
			measuring++
		}
	}
	if measuring < len(rep.Models) || evs[len(evs)-1].Step != evs[len(evs)-1].Steps {
		t.Errorf("%d measuring events for %d models; last event %+v", measuring, len(rep.Models), evs[len(evs)-1])
	}
}

// TestRerunReusesServing checks that rerunning a finished run keeps
// report.json's serving numbers, and that Remeasure measures again.
func TestRerunReusesServing(t *testing.T) {
	out := t.TempDir()
	r := loadTiny(t)
	serving := func(opts pipeline.Options) (map[string]report.Serving, int) {
		measured := 0
		opts.OutDir = out
		opts.Progress = func(e pipeline.Event) {
			if e.Stage == "eval" && strings.HasPrefix(e.Message, "measuring serving") && e.Elapsed >= 0 {
				measured++
			}
		}
		if _, err := pipeline.Run(context.Background(), r, opts); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rep report.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		got := map[string]report.Serving{}
		for _, m := range rep.Models {
			if m.Serving == nil {
				t.Fatalf("model %s has no serving measurement", m.Name)
			}
			got[m.Name] = *m.Serving
		}
		return got, measured
	}
	first, n1 := serving(pipeline.Options{})
	second, n2 := serving(pipeline.Options{})
	if n1 == 0 || n2 != 0 {
		t.Errorf("first run measured %d phases, rerun %d; want some, then none", n1, n2)
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("a rerun changed report.json's serving numbers:\nfirst  %+v\nsecond %+v", first, second)
	}
	if _, n3 := serving(pipeline.Options{Remeasure: true}); n3 == 0 {
		t.Error("Remeasure did not measure again")
	}
}

// TestCurvesPerTraining checks that a retrained student's curves go to a
// run folder of their own, and that every epoch has a test accuracy.
func TestCurvesPerTraining(t *testing.T) {
	out := t.TempDir()
	r := loadTiny(t)
	r.Serving.Measure = new(bool)
	if _, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: out}); err != nil {
		t.Fatal(err)
	}
	r.Students[0].Distill.Temperature *= 2
	if _, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: out}); err != nil {
		t.Fatal(err)
	}
	name := r.Students[0].Name
	runs, _ := filepath.Glob(filepath.Join(out, "tensorboard", name, "*"))
	if len(runs) != 2 {
		t.Fatalf("%s has %d TensorBoard run folders after two trainings, want 2: %v", name, len(runs), runs)
	}
	for _, dir := range runs {
		files, _ := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
		if len(files) != 1 {
			t.Fatalf("%s: %d event files, want 1", dir, len(files))
		}
		f, err := os.Open(files[0])
		if err != nil {
			t.Fatal(err)
		}
		evs, err := tensorboard.ReadEvents(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		var acc []int64
		for _, e := range evs {
			for _, v := range e.Values {
				if v.Tag == "eval/accuracy" {
					if v.SimpleValue < 0 || v.SimpleValue > 1 {
						t.Errorf("%s: accuracy %v", dir, v.SimpleValue)
					}
					acc = append(acc, e.Step)
				}
			}
		}
		// 512 examples in batches of 64: 8 steps an epoch, 2 epochs.
		if !reflect.DeepEqual(acc, []int64{8, 16}) {
			t.Errorf("%s: eval/accuracy at steps %v, want the end of each epoch [8 16]", dir, acc)
		}
	}
}
