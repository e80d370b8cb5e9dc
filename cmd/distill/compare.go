package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/distill-dev/distill/compare"
	"github.com/distill-dev/distill/cost"
)

// compareFlags are the options of distill compare.
type compareFlags struct {
	baseline, out, title string
	prices, machine      string
	latencyTarget        time.Duration
	requestsPerDay       float64
}

func newCompareCmd() *cobra.Command {
	var f compareFlags
	c := &cobra.Command{
		Use:   "compare RUN_DIR...",
		Short: "Set runs side by side: quality, size, latency, throughput, serving cost and savings",
		Long: `Compare reads the report.json of each run directory (any backend, any
recipe; a report.json path works too) and prints one Markdown table of
every model: accuracy, size, batch-1 latency p50/p99, throughput, the
cost of one million requests at on-demand, spot and reserved prices, and
the savings against one run's teacher, with the accuracy-cost Pareto
frontier marked.

With --out DIR it also writes DIR/compare.md and DIR/compare.html, a
self-contained page (no network needed to view it) with charts of
accuracy against cost and of latency percentiles per model.

Savings are relative to the teacher of the --baseline run (added to the
runs if not among them), or else of the first run whose teacher has a
serving cost. Costs are the ones in the reports, each priced at its run's
machine; --prices, --machine or --latency-target price every report anew
from its serving measurements (see docs/cost.md).`,
		Example: `  distill compare runs/mnist-cpu runs/mnist-gpu --out compare
  distill compare runs/* --baseline runs/mnist-cpu --machine gcp-c3-standard-4`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("compare needs at least one run directory\nusage: %s", cmd.UseLine())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runCompare(cmd, args, f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.baseline, "baseline", "", "run directory whose teacher the savings are relative to (default: the first run with a priced teacher)")
	fl.StringVar(&f.out, "out", "", "directory to write compare.md and compare.html to (default: print the Markdown only)")
	fl.StringVar(&f.title, "title", "", "title of the comparison (default: \"Comparison of N runs\")")
	fl.StringVar(&f.prices, "prices", "", "price table YAML whose entries add to and replace the defaults; reprices every run")
	fl.StringVar(&f.machine, "machine", "", "price table entry to price every run at, e.g. aws-c7i.xlarge; reprices every run")
	fl.DurationVar(&f.latencyTarget, "latency-target", 0, "p99 batch latency to choose batch sizes under, e.g. 50ms; reprices every run (default 100ms)")
	fl.Float64Var(&f.requestsPerDay, "requests-per-day", 0, "traffic forecast to bill each model's cheapest deployment for; reprices every run (default: each run's own)")
	return c
}

func runCompare(cmd *cobra.Command, args []string, f compareFlags) error {
	paths := slices.Clone(args)
	if f.baseline != "" && !slices.ContainsFunc(paths, func(p string) bool { return filepath.Clean(p) == filepath.Clean(f.baseline) }) {
		paths = append([]string{f.baseline}, paths...)
	}
	runs, err := compare.Load(paths...)
	if err != nil {
		return argFileError(err)
	}
	o := compare.Options{Baseline: f.baseline, Title: f.title}
	if f.prices != "" || f.machine != "" || f.latencyTarget != 0 || f.requestsPerDay != 0 {
		if f.latencyTarget < 0 {
			return usageError{fmt.Errorf("--latency-target %v is negative; give a duration such as 100ms", f.latencyTarget)}
		}
		if f.requestsPerDay < 0 {
			return usageError{fmt.Errorf("--requests-per-day %v is negative; give a forecast such as 5e6", f.requestsPerDay)}
		}
		o.Reprice = &cost.Options{Machine: f.machine, LatencyTarget: f.latencyTarget, RequestsPerDay: f.requestsPerDay}
		if f.prices != "" {
			if o.Reprice.Prices, err = cost.LoadPrices(f.prices); err != nil {
				return usageError{err}
			}
		}
	}
	c, err := compare.New(runs, o)
	if err != nil {
		return usageError{err}
	}
	fmt.Fprint(cmd.OutOrStdout(), c.Markdown())
	if f.out == "" {
		return nil
	}
	md, page, err := compare.Write(f.out, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s and %s\n", md, page)
	return nil
}
