package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/recipe"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "distill",
		Short:         "Distil and compress neural networks so they are cheaper to serve",
		SilenceUsage:  true,
		SilenceErrors: true,
		// cobra sets this default only on its own unknown-command path.
		SuggestionsMinimumDistance: 2,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	// Without Args and RunE, cobra reports an unknown command ("distill
	// runn") as a plain error, which would exit 1; as a runnable command
	// with its own Args the typo is a usage error (exit 2) and a bare
	// "distill" still prints the help.
	root.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf("; did you mean %q?", s[0])
		}
		return usageError{fmt.Errorf("%s\nrun '%s --help' for the commands", msg, c.CommandPath())}
	}
	root.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
	root.AddCommand(newRunCmd(), newValidateCmd(), newVersionCmd(), newCompareCmd(), newQuantizeCmd(), newExportCmd(), newServeCmd(), newInspectCmd())
	registerCompletions(root)
	return root
}

// argFileError classifies an error reading a file named on the command
// line: a path that names no file is invalid usage (exit 2), while a file
// that exists but cannot be read or is corrupt makes the run fail (exit
// 1), as README.md's exit-code table says.
func argFileError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return usageError{err}
	}
	return err
}

func loadRecipe(path string) (*recipe.Recipe, error) {
	r, err := recipe.Load(path)
	if err != nil {
		return nil, usageError{err}
	}
	return r, nil
}

func newRunCmd() *cobra.Command {
	var opts pipeline.Options
	var quiet bool
	c := &cobra.Command{
		Use:   "run RECIPE",
		Short: "Run a recipe: teacher, students, evaluation, report",
		Long: `Run executes every stage of a recipe and writes models and a report
(report.json, report.md) into the run directory. Running the same recipe
again on the same directory skips the stages that are already finished.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := loadRecipe(args[0])
			if err != nil {
				return err
			}
			level := slog.LevelInfo
			if quiet {
				level = slog.LevelWarn
			}
			p := newProgress(os.Stderr, nil, quiet)
			defer p.Close()
			// The logger writes through the progress display, which
			// clears its bar before each line.
			p.log = slog.New(slog.NewTextHandler(p, &slog.HandlerOptions{Level: level}))
			opts.Logger = p.log
			opts.Progress = p.Event
			rep, err := pipeline.Run(cmd.Context(), r, opts)
			if err != nil {
				return err
			}
			p.Close()
			fmt.Fprint(cmd.OutOrStdout(), rep.Markdown())
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&opts.OutDir, "out", "", "run directory (default: the recipe's output.dir)")
	f.StringVar(&opts.DataDir, "data-dir", "", "directory holding the dataset's files, for offline use")
	f.StringVar(&opts.Backend, "backend", "", fmt.Sprintf("compute backend, overriding the recipe (%v)", backend.Names()))
	f.StringVar(&opts.Device, "device", "", "device, overriding the recipe: auto, cpu, cuda or cuda:N")
	f.StringVar(&opts.Precision, "precision", "", "precision of the backend's forward passes, overriding the recipe: auto, fp32 or bf16 (torch only)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only warnings, errors and the final report")
	f.BoolVar(&opts.Remeasure, "remeasure", false, "measure serving again instead of reusing the measurements of an earlier run of the same models")
	return c
}

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate RECIPE...",
		Short: "Check recipes and print every problem in them",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("validate needs at least one recipe\nusage: %s", cmd.UseLine())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// Every recipe is checked, so that one call reports all of
			// them; the errors are joined in argument order.
			var errs []error
			for _, path := range args {
				r, err := recipe.Load(path)
				if err == nil {
					// The files it reads and its sizes, as run checks them.
					err = pipeline.Check(r, pipeline.Options{})
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			}
			if err := errors.Join(errs...); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the compiled-in backends",
		Args:  exactArgs(0),
		Run: func(cmd *cobra.Command, args []string) {
			bi, _ := debug.ReadBuildInfo()
			fmt.Fprintf(cmd.OutOrStdout(), "distill %s\nbackends: %v\n", version(bi), backend.Names())
		},
	}
}

// version is the module version (a tagged go install) or the library's,
// followed by the commit the binary was built from when the go command
// stamped it (a build inside a git checkout): "0.1.0-dev (commit
// 0e59c3d1a2b4, 2026-12-06T19:59:01Z, modified)".
func version(bi *debug.BuildInfo) string {
	v := pipeline.Version
	if bi == nil {
		return v
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return v
	}
	v += " (commit " + rev[:min(len(rev), 12)]
	if at != "" {
		v += ", " + at
	}
	if modified {
		v += ", modified"
	}
	return v + ")"
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{fmt.Errorf("%w\nusage: %s", err, cmd.UseLine())}
		}
		return nil
	}
}
