package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx"
	"github.com/distill-dev/distill/quantize"
)

func newExportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "export MODEL OUT.onnx",
		Short: "Export a model (float32, or INT8 as QDQ) to ONNX for TensorRT or ONNX Runtime",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// An INT8 model file is tried first: its JSON spec says so.
			if q, err := quantize.Load(args[0]); err == nil {
				if err := onnx.WriteFileInt8(args[1], q); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (INT8, QDQ, opset %d)\n", args[1], onnx.Opset)
				return nil
			}
			spec, w, err := model.Load(args[0])
			if err != nil {
				return argFileError(fmt.Errorf("%s is neither a distill model nor an INT8 model: %w", args[0], err))
			}
			if err := onnx.WriteFileFP32(args[1], spec, w); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (float32, opset %d)\n", args[1], onnx.Opset)
			return nil
		},
	}
}
