package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/distill-dev/distill/pipeline"
)

// progress turns the library's events into a progress bar on a terminal,
// or into a log line every logEvery otherwise (CI logs, files). Events
// may come from more than one goroutine (evaluation repeats its phase
// from a ticker), so mu guards the bar.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	log     *slog.Logger
	quiet   bool
	tty     bool
	bar     *progressbar.ProgressBar
	barKey  string
	lastLog time.Time
	// lastPhase is the last evaluation phase logged.
	lastPhase string
	// rate is where this process started counting the current bar's
	// steps: a resumed training starts at its checkpoint's step, so the
	// ETA must come from the steps done since, not from Step/Elapsed.
	rate    rateStart
	rateKey string
	now     func() time.Time
}

type rateStart struct {
	step int
	at   time.Time
}

const logEvery = 10 * time.Second

func newProgress(w *os.File, log *slog.Logger, quiet bool) *progress {
	return &progress{w: w, log: log, quiet: quiet, tty: term.IsTerminal(int(w.Fd())), now: time.Now}
}

// key names what one bar shows: a model's training or labelling, or the
// whole evaluation (whose events name the model being evaluated).
func key(e pipeline.Event) string {
	if e.Stage == "eval" {
		return "eval"
	}
	return e.Stage + "/" + e.Model
}

// eta estimates the time left for e's bar from the rate of the steps
// done in this process; ok is false until there is a rate.
func (p *progress) eta(e pipeline.Event) (time.Duration, bool) {
	now := p.now()
	if k := key(e); k != p.rateKey || e.Step < p.rate.step {
		p.rateKey, p.rate = k, rateStart{step: e.Step, at: now}
		return 0, false
	}
	// A rate over less than a second (or one step) is mostly noise: the
	// first evaluation phase is quick, the serving measurement after it
	// is not.
	done, took := e.Step-p.rate.step, now.Sub(p.rate.at)
	if done < 2 || took < time.Second {
		return 0, false
	}
	left := time.Duration(float64(took) / float64(done) * float64(e.Steps-e.Step))
	return left.Round(time.Second), true
}

// Write writes a log line to the terminal, clearing the bar first so
// that the line does not run into it; the next event draws it again. The
// run's logger writes through it.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	if p.bar != nil {
		p.bar.Clear()
	}
	p.mu.Unlock()
	return p.w.Write(b)
}

func (p *progress) Event(e pipeline.Event) {
	if p.quiet {
		return
	}
	// Log lines go out after the lock is released: the logger writes
	// through Write, which takes it.
	var logMsg string
	var logAttrs []any
	defer func() {
		if logMsg != "" {
			p.log.Info(logMsg, logAttrs...)
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Steps == 0 {
		if e.Message != "" {
			p.finishBar()
			logMsg, logAttrs = e.Message, []any{"stage", e.Stage}
		}
		return
	}
	eta, haveETA := p.eta(e)
	if p.tty {
		if p.bar == nil || p.barKey != key(e) {
			p.finishBar()
			p.bar = progressbar.NewOptions(e.Steps,
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(e.Model),
				progressbar.OptionShowCount(),
				progressbar.OptionSetElapsedTime(false), // its rate counts steps done before a resume
				progressbar.OptionSetPredictTime(false),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
			p.barKey = key(e)
		}
		desc := e.Model
		switch {
		case e.Epochs > 0:
			desc += " epoch " + itoa(e.Epoch) + "/" + itoa(e.Epochs) + " loss " + ftoa(e.Loss)
		case e.Stage == "eval":
			desc = "eval: " + e.Message
		}
		if haveETA {
			desc += " (ETA " + eta.String() + ")"
		}
		// Set before Describe: Describe draws the bar at once, Set is
		// throttled, and the new text must show with the new count.
		p.bar.Set(e.Step)
		p.bar.Describe(desc)
		return
	}
	// Evaluation logs each phase as it starts: one model's serving
	// measurement can take longer than logEvery.
	newPhase := e.Stage == "eval" && e.Message != p.lastPhase
	p.lastPhase = e.Message
	if e.Step == e.Steps || newPhase || p.now().Sub(p.lastLog) >= logEvery {
		p.lastLog = p.now()
		var attrs []any
		if e.Model != "" {
			attrs = append(attrs, "model", e.Model)
		}
		msg := e.Stage
		switch {
		case e.Epochs > 0:
			msg = "training"
			attrs = append(attrs, "epoch", e.Epoch, "epochs", e.Epochs, "step", e.Step, "steps", e.Steps, "loss", round4(e.Loss))
		case e.Stage == "eval":
			attrs = append(attrs, "phase", e.Message, "done", e.Step, "of", e.Steps)
		default: // not training: e.g. the teacher labelling a transfer set
			attrs = append(attrs, "done", e.Step, "of", e.Steps)
		}
		attrs = append(attrs, "elapsed", e.Elapsed.Round(time.Second))
		if haveETA && e.Step < e.Steps {
			attrs = append(attrs, "eta", eta)
		}
		logMsg, logAttrs = msg, attrs
	}
}

func (p *progress) finishBar() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

func (p *progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishBar()
}

func itoa(i int) string { return strconv.Itoa(i) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 4, 64) }

// round4 rounds x to 4 significant digits for log lines (loss=0.1830,
// not 0.18295650946489667).
func round4(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	r, err := strconv.ParseFloat(fmt.Sprintf("%.4g", x), 64)
	if err != nil {
		return x
	}
	return r
}
