package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distill-dev/distill/distill"
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
	p.Event(distill.Event{Stage: "teacher", Model: "teacher", Message: "training teacher"})
	p.Event(distill.Event{Stage: "teacher", Model: "teacher", Epoch: 2, Epochs: 2, Step: 10, Steps: 10, Loss: 0.25, Elapsed: 3 * time.Second})
	p.Event(distill.Event{Stage: "transfer", Model: "transfer-set", Step: 300, Steps: 300, Elapsed: time.Second})
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
