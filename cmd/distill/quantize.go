package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/internal/vocab"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/quantize"
	"github.com/distill-dev/distill/recipe"
)

func newQuantizeCmd() *cobra.Command {
	// The recipe's defaults, so that the command quantizes as a recipe
	// with a bare quantize section does.
	q := recipe.Quantize{Method: recipe.DefaultMethod, Percentile: recipe.DefaultPercentile,
		Calibration: recipe.DefaultCalibration, Validation: recipe.DefaultValidation}
	d := recipe.Data{Dataset: recipe.DefaultDataset}
	var out string
	c := &cobra.Command{
		Use:   "quantize MODEL",
		Short: "Turn a trained model into an INT8 model and compare their accuracy",
		Long: `Quantize calibrates a trained model (its .json or .safetensors file) on
training examples of the dataset, writes the INT8 model (default
<model>-int8.{json,safetensors}) and prints float32 vs INT8 test accuracy.
With --max-drop the most sensitive layers stay in float32 until the
accuracy drop, measured on held-out training examples, is within budget.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkQuantizeFlags(d, q); err != nil {
				return usageError{err}
			}
			spec, w, err := model.Load(args[0])
			if err != nil {
				return argFileError(err)
			}
			d.Synthetic = recipe.Synthetic{Train: 2048, Test: 512, Shape: spec.Input, Classes: spec.Classes, Seed: 1}
			train, test, err := pipeline.LoadData(cmd.Context(), d)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			m, _, err := pipeline.Quantize(cmd.Context(), spec, w, train, q, log)
			if err != nil {
				return err
			}
			if out == "" {
				js, _ := model.Paths(args[0])
				out = strings.TrimSuffix(js, ".json") + "-int8.json"
			}
			if err := m.Save(out); err != nil {
				return err
			}
			fp, err := infer.Compile(spec, w)
			if err != nil {
				return err
			}
			ip, err := m.Compile()
			if err != nil {
				return err
			}
			for _, p := range []struct {
				name string
				p    eval.Predictor
			}{{"float32", fp}, {"int8", ip}} {
				logits, err := eval.Logits(cmd.Context(), p.p, test, test.Size(), spec.Classes, 1000)
				if err != nil {
					return err
				}
				met, err := eval.Compute(logits, test.Y, nil, spec.Classes, 15)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-8s accuracy %.4f (%d errors of %d)\n", p.name, met.Accuracy, met.Errors, met.N)
			}
			if len(m.Fallback) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "layers kept in float32: %v\n", m.Fallback)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&d.Dataset, "dataset", d.Dataset, "calibration and test data: "+strings.Join(recipe.NamedDatasets(), ", ")+" (idx with --data-dir)")
	f.StringVar(&d.Dir, "data-dir", "", "directory holding the dataset's files, for offline use")
	f.StringVar((*string)(&q.Method), "method", string(q.Method), "activation calibration: "+vocab.Join(quantize.Methods()))
	f.Float64Var(&q.Percentile, "percentile", q.Percentile, "percentile for --method percentile")
	f.IntVar(&q.Calibration, "calibration", q.Calibration, "training examples to calibrate on")
	f.Float64Var(&q.MaxDrop, "max-drop", 0, "accuracy budget as a fraction (0.001 = 0.1 points); 0 = no fallback")
	f.BoolVar(&q.Relative, "relative", false, "--max-drop is relative to the float32 accuracy")
	f.StringVar(&out, "out", "", "INT8 model path (default <model>-int8.json)")
	return c
}

// checkQuantizeFlags rejects flag values that cannot work before anything
// is loaded, so that they exit as invalid usage (2), not as a failed run.
func checkQuantizeFlags(d recipe.Data, q recipe.Quantize) error {
	var errs []error
	if !slices.Contains(recipe.NamedDatasets(), d.Dataset) {
		errs = append(errs, fmt.Errorf("--dataset %q: want one of %s (idx with --data-dir)", d.Dataset, strings.Join(recipe.NamedDatasets(), ", ")))
	}
	if d.Dataset == "idx" && d.Dir == "" {
		errs = append(errs, errors.New("--dataset idx needs --data-dir: the directory holding the four IDX files"))
	}
	if _, err := quantize.ParseMethod(string(q.Method)); err != nil {
		errs = append(errs, fmt.Errorf("--method %q: want one of %v", q.Method, quantize.Methods()))
	}
	if !(q.Percentile > 50 && q.Percentile <= 100) {
		errs = append(errs, fmt.Errorf("--percentile %v: want a value in (50, 100]", q.Percentile))
	}
	if q.Calibration < 1 {
		errs = append(errs, fmt.Errorf("--calibration %d: want at least 1 example", q.Calibration))
	}
	if !(q.MaxDrop >= 0 && q.MaxDrop < 1) {
		errs = append(errs, fmt.Errorf("--max-drop %v: want a fraction in [0, 1)", q.MaxDrop))
	}
	return errors.Join(errs...)
}
