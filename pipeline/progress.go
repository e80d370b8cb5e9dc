package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/distill-dev/distill/train"
)

// Event reports progress of a run. Long stages send one per training step
// (Step/Steps set) and one when a model is finished (Done). Evaluation
// sends one per model and phase (Step/Steps count the phases of all
// models; Message names the phase) and, while a phase runs, repeats it
// every second with a new Elapsed, so that a caller's display moves.
type Event struct {
	Stage   string // data, teacher, students, transfer, quantize, eval, report
	Model   string // the model being trained or evaluated, if any
	Message string // a human sentence for milestones; the phase in eval steps
	Epoch   int
	Epochs  int
	Step    int
	Steps   int
	Loss    float64
	Elapsed time.Duration
	Done    bool
}

// Interrupted is the error Run returns when its context is cancelled
// (Ctrl-C, SIGTERM): where the run stopped and what running it again
// resumes from. It unwraps to the underlying error, so errors.Is(err,
// context.Canceled) holds.
type Interrupted struct {
	// Stage and Model are what was running: the stage of the last
	// progress event and its model, if any.
	Stage, Model string
	// Checkpoint is the training checkpoint a rerun continues Model from,
	// at Step of Steps (Epoch of Epochs, 1-based); empty when the stage
	// was not training or no checkpoint was saved.
	Checkpoint                 string
	Epoch, Epochs, Step, Steps int
	Err                        error
}

func (e *Interrupted) Error() string {
	what := "during the " + e.Stage + " stage"
	if e.Stage == "" {
		what = "before the first stage"
	}
	if e.Model != "" {
		what += " (" + e.Model + ")"
	}
	if e.Checkpoint != "" {
		return fmt.Sprintf("distill: interrupted while training %s; its checkpoint after step %d of %d (epoch %d of %d) is %s: run the same command again to continue %s from there, reusing every finished stage",
			e.Model, e.Step, e.Steps, e.Epoch, e.Epochs, e.Checkpoint, e.Model)
	}
	return fmt.Sprintf("distill: interrupted %s; run the same command again to resume: every finished stage is reused", what)
}

func (e *Interrupted) Unwrap() error { return e.Err }

// activeTraining is the model being trained and its stage key, which
// names its checkpoints.
type activeTraining struct{ name, key string }

// observe wraps a run's progress callback to remember the last event,
// which says what an interruption stopped.
func (run *runner) observe(next func(Event)) func(Event) {
	return func(e Event) {
		run.last = e
		next(e)
	}
}

// interrupted turns err, returned after ctx was cancelled, into an
// *Interrupted naming what was running and the checkpoint a rerun
// continues from.
func (run *runner) interrupted(err error) error {
	var ie *Interrupted
	if errors.As(err, &ie) {
		return err
	}
	ie = &Interrupted{Stage: run.last.Stage, Model: run.last.Model, Err: err}
	if a := run.active; a.name != "" && a.name == run.last.Model && run.last.Epochs > 0 {
		if ck, path := run.checkpoint(a); ck != nil {
			ie.Checkpoint, ie.Step, ie.Steps = path, ck.Step, run.last.Steps
			ie.Epoch, ie.Epochs = min(ck.Epoch+1, run.last.Epochs), run.last.Epochs
		}
	}
	return ie
}

// checkpoint returns the checkpoint training a resumes from and its path,
// or nil: the main one, else the hint stage's (package student names it
// <path>.hints, with key <key>/hints).
func (run *runner) checkpoint(a activeTraining) (*train.Checkpoint, string) {
	path := run.checkpointPath(a.name)
	for _, c := range []train.FileCheckpointer{{Path: path, Key: a.key}, {Path: path + ".hints", Key: a.key + "/hints"}} {
		if _, err := os.Stat(c.Path); err != nil {
			continue
		}
		// A damaged or foreign checkpoint is training's business (it
		// warns and starts over); here it only means there is nothing
		// to announce.
		if ck, err := c.Load(); err == nil && ck != nil {
			return ck, c.Path
		}
	}
	return nil, ""
}

// announceResume says, before training a starts, whether it continues
// from a checkpoint and from where.
func (run *runner) announceResume(a activeTraining, stage string, epochs int) {
	ck, path := run.checkpoint(a)
	if ck == nil {
		return
	}
	msg := fmt.Sprintf("resuming %s from its checkpoint after step %d (epoch %d of %d): %s", a.name, ck.Step, min(ck.Epoch+1, epochs), epochs, path)
	if ck.Key == a.key+"/hints" {
		msg = fmt.Sprintf("resuming %s's hint stage from its checkpoint after step %d: %s", a.name, ck.Step, path)
	}
	run.opts.Progress(Event{Stage: stage, Model: a.name, Message: msg})
}

// evalProgress reports evaluation: phases of all models, one event per
// phase and a repeat every second while one runs.
type evalProgress struct {
	send  func(Event)
	start time.Time
	step  int
	steps int
	stop  context.CancelFunc
}

func newEvalProgress(send func(Event), steps int) *evalProgress {
	return &evalProgress{send: send, start: time.Now(), steps: steps}
}

// phase announces that model's phase begins; the previous one ended.
func (p *evalProgress) phase(model, what string) {
	p.end()
	e := Event{Stage: "eval", Model: model, Message: what, Step: p.step, Steps: p.steps, Elapsed: time.Since(p.start)}
	p.send(e)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				e.Elapsed = time.Since(p.start)
				p.send(e)
			}
		}
	}()
	// end waits for the ticker, so that no repeat follows the next phase.
	p.stop = func() { stop(); <-done }
}

// end finishes the running phase, if any.
func (p *evalProgress) end() {
	if p.stop != nil {
		p.stop()
		p.stop = nil
		p.step++
	}
}

// finish ends the last phase and reports all phases done.
func (p *evalProgress) finish() {
	p.end()
	p.send(Event{Stage: "eval", Model: "", Message: "done", Step: p.steps, Steps: p.steps, Elapsed: time.Since(p.start)})
}

// roundFraction rounds a metric in [0, 1] (accuracy, agreement, ECE) to
// 4 decimals for log lines: ece=0.0045, not ece=0.004495549377123681.
func roundFraction(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	return math.Round(x*1e4) / 1e4
}
