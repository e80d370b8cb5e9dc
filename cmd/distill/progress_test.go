package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distill-dev/distill/pipeline"
)

// TestProgressLogLines checks the log lines written when the output is
// not a terminal: messages, training steps with epoch and loss, and
// labelling progress (no epochs) with done/of counts.
func TestProgressLogLines(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	p := newProgress(f, slog.New(slog.NewTextHandler(&buf, nil)), false)
	p.Event(pipeline.Event{Stage: "teacher", Model: "teacher", Message: "training teacher"})
	p.Event(pipeline.Event{Stage: "teacher", Model: "teacher", Epoch: 2, Epochs: 2, Step: 10, Steps: 10, Loss: 0.25, Elapsed: 3 * time.Second})
	p.Event(pipeline.Event{Stage: "transfer", Model: "transfer-set", Step: 300, Steps: 300, Elapsed: time.Second})
	p.Close()
	out := buf.String()
	for _, want := range []string{
		`msg="training teacher" stage=teacher`,
		`msg=training model=teacher epoch=2 epochs=2 step=10 steps=10 loss=0.25 elapsed=3s`,
		`msg=transfer model=transfer-set done=300 of=300 elapsed=1s`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "transfer-set epoch=") {
		t.Errorf("labelling progress is logged as training:\n%s", out)
	}
}

// TestProgressETAAfterResume checks that the ETA of a resumed training
// comes from the steps this process did: resumed at step 150 of 300,
// 10 steps in 10 s leave 140 s, not the 0 s that 160 steps "in" 10 s
// would suggest.
func TestProgressETAAfterResume(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	p := newProgress(f, slog.New(slog.NewTextHandler(&buf, nil)), false)
	now := time.Unix(1000, 0)
	p.now = func() time.Time { return now }
	ev := pipeline.Event{Stage: "students", Model: "s", Epoch: 2, Epochs: 3, Step: 150, Steps: 300, Loss: 0.18295650946489667, Elapsed: time.Second}
	p.Event(ev)
	now = now.Add(10 * time.Second)
	ev.Step, ev.Elapsed = 160, 11*time.Second
	p.Event(ev)
	out := buf.String()
	if !strings.Contains(out, "step=160 steps=300 loss=0.183 elapsed=11s eta=2m20s") {
		t.Errorf("log lacks the ETA from this process's rate and the rounded loss:\n%s", out)
	}
}

// TestProgressEval checks that evaluation and serving measurement are
// shown: one line with the model, the phase and the count.
func TestProgressEval(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	p := newProgress(f, slog.New(slog.NewTextHandler(&buf, nil)), false)
	p.Event(pipeline.Event{Stage: "eval", Model: "teacher", Message: "measuring serving latency and throughput of teacher", Step: 1, Steps: 4, Elapsed: 2 * time.Second})
	if want := `msg=eval model=teacher phase="measuring serving latency and throughput of teacher" done=1 of=4 elapsed=2s`; !strings.Contains(buf.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, buf.String())
	}
}

// TestProgressEvalLogsPhases checks that, in a log, each evaluation phase
// is logged when it starts (a serving measurement can outlast logEvery),
// and that its repeats are not.
func TestProgressEvalLogsPhases(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	p := newProgress(f, slog.New(slog.NewTextHandler(&buf, nil)), false)
	for _, e := range []pipeline.Event{
		{Stage: "eval", Model: "teacher", Message: "evaluating teacher", Step: 0, Steps: 4},
		{Stage: "eval", Model: "teacher", Message: "measuring serving latency and throughput of teacher", Step: 1, Steps: 4},
		{Stage: "eval", Model: "teacher", Message: "measuring serving latency and throughput of teacher", Step: 1, Steps: 4, Elapsed: time.Second},
		{Stage: "eval", Model: "s", Message: "evaluating s", Step: 2, Steps: 4, Elapsed: 2 * time.Second},
	} {
		p.Event(e)
	}
	if n := strings.Count(buf.String(), "msg=eval "); n != 3 {
		t.Errorf("%d eval lines, want one per phase (3):\n%s", n, buf.String())
	}
}
