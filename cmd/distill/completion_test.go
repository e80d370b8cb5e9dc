package main

import (
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
)

// TestCompletion asks cobra's __complete command, which the generated
// shell scripts call, for flag values and arguments.
func TestCompletion(t *testing.T) {
	for _, c := range []struct {
		args      []string
		want      []string
		directive string
	}{
		{[]string{"run", "--backend", ""}, backend.Names(), "ShellCompDirectiveNoFileComp"},
		{[]string{"run", "--device", ""}, []string{"auto", "cpu", "cuda", "cuda:0"}, "ShellCompDirectiveNoFileComp"},
		{[]string{"quantize", "--method", ""}, []string{"entropy", "minmax", "percentile", "mse"}, "ShellCompDirectiveNoFileComp"},
		{[]string{"compare", "--machine", ""}, []string{"aws-c7i.xlarge"}, "ShellCompDirectiveNoFileComp"},
		{[]string{"run", ""}, []string{"yaml", "yml"}, "ShellCompDirectiveFilterFileExt"},
		{[]string{"export", "m.json", ""}, []string{"onnx"}, "ShellCompDirectiveFilterFileExt"},
		{[]string{"inspect", ""}, []string{"safetensors", "json", "onnx", "pt", "pth"}, "ShellCompDirectiveFilterFileExt"},
	} {
		code, out, errOut := capture(t, append([]string{"__complete"}, c.args...)...)
		if code != exitOK {
			t.Fatalf("__complete %q: exit %d: %s", c.args, code, errOut)
		}
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if line == "" || strings.HasPrefix(line, ":") {
				continue
			}
			got = append(got, strings.SplitN(line, "\t", 2)[0])
		}
		for _, w := range c.want {
			if !strings.Contains("\n"+strings.Join(got, "\n")+"\n", "\n"+w+"\n") {
				t.Errorf("__complete %q offers %q, want %q among them", c.args, got, w)
			}
		}
		if !strings.Contains(errOut, c.directive) {
			t.Errorf("__complete %q: directive %q, want %s", c.args, strings.TrimSpace(errOut), c.directive)
		}
	}
}
