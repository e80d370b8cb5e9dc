package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/distill-dev/distill/inspect"
)

func newInspectCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect MODEL_FILE",
		Short: "Show what a model file holds, to write the recipe that loads it",
		Long: `Inspect prints what a model file holds: for a distill model its spec
(layers, output shapes, parameters); for a safetensors state dict its
tensors grouped by layer with the PyTorch module each group looks like;
for an ONNX model its inputs, outputs, named intermediate tensors (with
shapes), operators and parameter count; for a TorchScript or torch.save
archive its entries and tensors. Nothing in the file is run.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := inspect.File(args[0])
			if err != nil {
				return argFileError(err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), s)
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return c
}
