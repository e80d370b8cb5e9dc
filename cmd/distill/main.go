// Command distill makes neural networks cheaper to serve: it trains or
// loads a teacher, distils smaller students from it, evaluates them and
// writes a report. Each command is a thin layer over the distill library.
//
// Exit codes: 0 success; 1 the run failed; 2 bad usage or an invalid
// recipe; 130 interrupted (SIGINT/SIGTERM).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/recipe"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// shutdownError is a server that could not stop cleanly after a signal:
// a failure (exit 1), although the context was cancelled, and nothing to
// resume.
type shutdownError struct{ err error }

func (e shutdownError) Error() string { return e.err.Error() }
func (e shutdownError) Unwrap() error { return e.err }

// usageError marks errors that are the user's input, not the run.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(execute(ctx, os.Args[1:]))
}

func execute(ctx context.Context, args []string) int {
	cmd := newRootCmd()
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "distill: ") {
		msg = "distill: " + msg
	}
	fmt.Fprintln(os.Stderr, msg)
	code := exitCode(ctx, err)
	if code == exitInterrupted && !errors.As(err, new(*pipeline.Interrupted)) {
		fmt.Fprintln(os.Stderr, "distill: interrupted; run the same command again to resume: every finished stage is reused")
	}
	return code
}

// exitCode maps a command's error to README's exit codes.
func exitCode(ctx context.Context, err error) int {
	var ue usageError
	var re *recipe.Error
	var ie *pipeline.Interrupted
	var se shutdownError
	switch {
	case errors.As(err, &se):
		return exitFailed
	case errors.As(err, &ie):
		return exitInterrupted // its message says what a rerun resumes
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return exitInterrupted
	case errors.As(err, &ue), errors.As(err, &re), errors.Is(err, backend.ErrUnknownBackend):
		return exitUsage
	default:
		return exitFailed
	}
}
