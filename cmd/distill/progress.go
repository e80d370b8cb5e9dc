package main

import (
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/distill-dev/distill/distill"
)

// progress turns the library's events into a progress bar on a terminal,
// or into a log line every logEvery otherwise (CI logs, files).
type progress struct {
	w        io.Writer
	log      *slog.Logger
	quiet    bool
	tty      bool
	bar      *progressbar.ProgressBar
	barModel string
	lastLog  time.Time
}

const logEvery = 10 * time.Second

func newProgress(w *os.File, log *slog.Logger, quiet bool) *progress {
	return &progress{w: w, log: log, quiet: quiet, tty: term.IsTerminal(int(w.Fd()))}
}

func (p *progress) Event(e distill.Event) {
	if p.quiet {
		return
	}
	if e.Steps == 0 {
		if e.Message != "" {
			p.finishBar()
			p.log.Info(e.Message, "stage", e.Stage)
		}
		return
	}
	if p.tty {
		if p.bar == nil || p.barModel != e.Model {
			p.finishBar()
			p.bar = progressbar.NewOptions(e.Steps,
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(e.Model),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
			p.barModel = e.Model
		}
		if e.Epochs > 0 {
			p.bar.Describe(e.Model + " epoch " + itoa(e.Epoch) + "/" + itoa(e.Epochs) + " loss " + ftoa(e.Loss))
		}
		p.bar.Set(e.Step)
		return
	}
	if e.Step == e.Steps || time.Since(p.lastLog) >= logEvery {
		p.lastLog = time.Now()
		if e.Epochs == 0 { // not training: e.g. the teacher labelling a transfer set
			p.log.Info(e.Stage, "model", e.Model, "done", e.Step, "of", e.Steps, "elapsed", e.Elapsed.Round(time.Second))
			return
		}
		p.log.Info("training", "model", e.Model, "epoch", e.Epoch, "epochs", e.Epochs, "step", e.Step, "steps", e.Steps, "loss", e.Loss, "elapsed", e.Elapsed.Round(time.Second))
	}
}

func (p *progress) finishBar() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

func (p *progress) Close() { p.finishBar() }

func itoa(i int) string { return strconv.Itoa(i) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 4, 64) }
