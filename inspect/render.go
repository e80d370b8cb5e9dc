package inspect

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// String renders the summary as Markdown.
func (s *Summary) String() string {
	var b strings.Builder
	what := map[Format]string{
		Distill:     "distill model",
		StateDict:   "safetensors state dict (weights only, no architecture)",
		ONNX:        "ONNX model",
		TorchScript: "TorchScript archive",
		TorchSave:   "torch.save archive (pickle)",
	}[s.Format]
	fmt.Fprintf(&b, "# %s: %s\n\n", s.Path, what)
	fmt.Fprintf(&b, "%s parameters", thousands(s.Params))
	if s.Buffers > 0 {
		fmt.Fprintf(&b, ", %s buffer elements (batchnorm statistics)", thousands(s.Buffers))
	}
	fmt.Fprintf(&b, "; %s bytes\n", thousands(s.Bytes))
	if s.Spec != nil {
		s.Spec.render(&b)
	}
	if s.Tensors != nil {
		s.Tensors.render(&b)
	}
	if s.Graph != nil {
		s.Graph.render(&b)
	}
	if s.Archive != nil {
		s.Archive.render(&b)
	}
	if len(s.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "Note: %s.\n", n)
		}
	}
	return b.String()
}

func (sp *Spec) render(b *strings.Builder) {
	fmt.Fprintf(b, "\nSpec %q: input %v, %d classes", sp.Name, sp.Input, sp.Classes)
	if sp.Dataset != "" {
		fmt.Fprintf(b, ", trained on %s", sp.Dataset)
	}
	if len(sp.ClassNames) > 0 {
		fmt.Fprintf(b, "; classes %s", strings.Join(sp.ClassNames, ", "))
	}
	b.WriteString("\n\n## Layers\n\n| layer | kind | inputs | output | params | buffers |\n|---|---|---|---|---:|---:|\n")
	for _, l := range sp.Layers {
		bufs := ""
		if l.Buffers > 0 {
			bufs = thousands(l.Buffers)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %v | %s | %s |\n", l.Name, l.Kind, strings.Join(l.Inputs, ", "), l.Output, thousands(l.Params), bufs)
	}
}

func (ts *Tensors) render(b *strings.Builder) {
	n := 0
	for _, g := range ts.Groups {
		n += len(g.Tensors)
	}
	fmt.Fprintf(b, "\n%d tensors (%s)", n, counted(ts.DTypes))
	if ts.Prefix != "" {
		fmt.Fprintf(b, "; every name starts with %q, which loading strips", ts.Prefix)
	}
	b.WriteString("\n")
	if len(ts.Metadata) > 0 {
		keys := sortedKeys(ts.Metadata)
		b.WriteString("\nMetadata:")
		for _, k := range keys {
			v := ts.Metadata[k]
			if len(v) > 60 {
				v = v[:57] + "..."
			}
			fmt.Fprintf(b, " %s=%q", k, v)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n## Tensors by layer\n\n| layer | looks like | tensors |\n|---|---|---|\n")
	for _, g := range ts.Groups {
		var parts []string
		for _, t := range g.Tensors {
			parts = append(parts, fmt.Sprintf("%s %s %v", t.Name, t.DType, t.Shape))
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", g.Layer, g.Guess, strings.Join(parts, ", "))
	}
}

func (g *Graph) render(b *strings.Builder) {
	var opsets []string
	for _, d := range sortedKeys(g.Opsets) {
		opsets = append(opsets, fmt.Sprintf("%s %d", d, g.Opsets[d]))
	}
	fmt.Fprintf(b, "\nIR version %d, opset %s", g.IRVersion, strings.Join(opsets, ", "))
	if g.Producer != "" {
		fmt.Fprintf(b, ", made by %s", g.Producer)
	}
	if g.Name != "" {
		fmt.Fprintf(b, ", graph %q", g.Name)
	}
	fmt.Fprintf(b, "; %d initializers\n", g.Initializers)
	for _, k := range sortedKeys(g.Metadata) {
		v := g.Metadata[k]
		if len(v) > 60 {
			v = v[:57] + "..."
		}
		fmt.Fprintf(b, "Metadata %s=%q\n", k, v)
	}
	values := func(title string, vs []Value, producer bool) {
		fmt.Fprintf(b, "\n## %s (%d)\n\n", title, len(vs))
		if producer {
			b.WriteString("| tensor | op | node | shape |\n|---|---|---|---|\n")
		} else {
			b.WriteString("| tensor | type | shape |\n|---|---|---|\n")
		}
		for _, v := range vs {
			shape := "unknown"
			if v.Shape != nil {
				shape = "[" + strings.Join(v.Shape, ", ") + "]"
			}
			if producer {
				fmt.Fprintf(b, "| %s | %s | %s | %s |\n", v.Name, v.Op, v.Node, shape)
			} else {
				fmt.Fprintf(b, "| %s | %s | %s |\n", v.Name, v.Type, shape)
			}
		}
	}
	values("Inputs", g.Inputs, false)
	values("Outputs", g.Outputs, false)
	b.WriteString("\n## Operators\n\n| op | nodes |\n|---|---:|\n")
	for _, o := range g.Ops {
		fmt.Fprintf(b, "| %s | %d |\n", o.Op, o.Count)
	}
	values("Intermediate tensors", g.Intermediates, true)
}

func (a *Archive) render(b *strings.Builder) {
	// Entries summarised by directory: a TorchScript archive has one
	// per class and per tensor.
	type dir struct {
		files int
		bytes int64
	}
	dirs := map[string]*dir{}
	var order []string
	for _, e := range a.Entries {
		rest := strings.TrimPrefix(e.Name, a.Root+"/")
		key := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			key = rest[:i+1]
		}
		d, ok := dirs[key]
		if !ok {
			d = &dir{}
			dirs[key] = d
			order = append(order, key)
		}
		d.files++
		d.bytes += e.Bytes
	}
	fmt.Fprintf(b, "\nArchive %s/, %d entries:\n\n| entry | files | bytes |\n|---|---:|---:|\n", a.Root, len(a.Entries))
	for _, k := range order {
		fmt.Fprintf(b, "| %s | %d | %s |\n", path.Join(a.Root, k)+map[bool]string{true: "/", false: ""}[strings.HasSuffix(k, "/")], dirs[k].files, thousands(dirs[k].bytes))
	}
	if a.PickleError != "" {
		fmt.Fprintf(b, "\ndata.pkl could not be read (%s), so no tensor names\n", a.PickleError)
	}
	if len(a.Modules) > 0 {
		b.WriteString("\n## Modules\n\n| module | class |\n|---|---|\n")
		for _, m := range a.Modules {
			name := m.Name
			if name == "" {
				name = "(root)"
			}
			fmt.Fprintf(b, "| %s | %s |\n", name, m.Class)
		}
	}
	if len(a.Tensors) > 0 {
		b.WriteString("\n## Tensors\n\n| tensor | dtype | shape | |\n|---|---|---|---|\n")
		for _, t := range a.Tensors {
			kind := "parameter"
			if t.Buffer {
				kind = "buffer"
			}
			fmt.Fprintf(b, "| %s | %s | %v | %s |\n", t.Name, t.DType, t.Shape, kind)
		}
	}
}

func counted(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// thousands writes n with thousands separators: 1,234,567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
