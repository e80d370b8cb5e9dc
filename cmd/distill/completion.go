package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/internal/vocab"
	"github.com/distill-dev/distill/quantize"
)

// Shell completion of flag values (cobra's completion command generates
// the scripts; they call the hidden __complete command, which runs these).

// completeBackends offers the backends compiled into this binary.
func completeBackends(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return backend.Names(), cobra.ShellCompDirectiveNoFileComp
}

// completeDevices offers the device forms; cuda:N for the GPUs a CUDA
// build may see is offered as cuda:0 (the index is the user's).
func completeDevices(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"auto\tthe GPU if the backend has one, else the CPU", "cpu", "cuda\tthe first GPU", "cuda:0\tGPU number N: cuda:N"}, cobra.ShellCompDirectiveNoFileComp
}

// completeCalibration offers quantize's activation calibrations.
func completeCalibration(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return vocab.Names(quantize.Methods()), cobra.ShellCompDirectiveNoFileComp
}

// completeMachines offers the entries of the built-in price table, each
// with its description.
func completeMachines(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	t := cost.DefaultPrices()
	var out []string
	for name, p := range t.Machines {
		out = append(out, name+"\t"+p.Description)
	}
	slices.Sort(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeFiles completes file names with the given extensions.
func completeFiles(ext ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return ext, cobra.ShellCompDirectiveFilterFileExt
	}
}

// completeDirs completes directory names.
func completeDirs(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

// registerCompletions attaches the value completions to every command's
// flags of these names. A flag a command lacks is skipped.
func registerCompletions(root *cobra.Command) {
	byFlag := map[string]cobra.CompletionFunc{
		"backend":  completeBackends,
		"device":   completeDevices,
		"method":   completeCalibration,
		"machine":  completeMachines,
		"data-dir": completeDirs,
		"prices":   completeFiles("yaml", "yml"),
	}
	for _, c := range root.Commands() {
		for name, f := range byFlag {
			if c.Flags().Lookup(name) != nil {
				// Only fails for a missing flag or a second registration.
				_ = c.RegisterFlagCompletionFunc(name, f)
			}
		}
		switch {
		case strings.HasPrefix(c.Use, "run "), strings.HasPrefix(c.Use, "validate "):
			c.ValidArgsFunction = completeFiles("yaml", "yml")
		case strings.HasPrefix(c.Use, "compare "):
			c.ValidArgsFunction = completeDirs
		case strings.HasPrefix(c.Use, "inspect "):
			c.ValidArgsFunction = completeFiles("safetensors", "json", "onnx", "pt", "pth")
		case strings.HasPrefix(c.Use, "quantize "):
			c.ValidArgsFunction = completeFiles("json")
		case strings.HasPrefix(c.Use, "export "):
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
				if len(args) == 0 {
					return completeFiles("json")(cmd, args, s)
				}
				return completeFiles("onnx")(cmd, args, s)
			}
		}
	}
}
