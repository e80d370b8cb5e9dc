package model

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/distill-dev/distill/safetensors"
)

// StateDictOptions say how LoadStateDict matches a file's tensors to a
// spec's parameters and buffers.
type StateDictOptions struct {
	// Map renames spec names to the file's where they differ. A key is a
	// spec tensor name ("fc.weight") or a layer name or dotted prefix of
	// layer names ("stem.conv", "layer1"); its value replaces that part
	// of every spec tensor name it covers, so {"stem.conv": "features.0"}
	// looks up "stem.conv.weight" as "features.0.weight". The longest key
	// that covers a name wins. Values are names as the file spells them
	// after its common prefix (see LoadStateDict; it is found from the
	// names the map leaves alone); a value that is a file name in full,
	// prefix included, is taken as it is.
	Map map[string]string
}

// LoadStateDict reads weights for spec from a PyTorch state dict saved
// as safetensors,
//
//	safetensors.torch.save_file(model.state_dict(), "model.safetensors")
//
// Each of spec's tensors (Spec.Tensors: parameters, then batchnorm
// buffers) is looked up under its own name, as opts.Map renames it, after
// a prefix that all of them share in the file: "module."
// (nn.DataParallel), "_orig_mod." (torch.compile), "model." or any
// other, found by matching; a file holding the spec's tensors under two
// prefixes is refused. A spec built by Blocks is named as torchvision's
// ResNet, so torchvision-style state dicts need no map.
//
// Tensors may be float32, float16, bfloat16 or float64; they are
// converted to float32. Each must have the shape the spec needs
// (PyTorch's layout: linear weights [out, in], conv weights
// [out, in/groups, kh, kw]). Batchnorms' num_batches_tracked counters,
// which distill does not keep, and tensors outside the prefix are
// ignored. Every other file tensor under the prefix must be used. The
// error lists every missing, unused, mis-shaped or unreadable tensor at
// once, with the spec's and the file's names.
func LoadStateDict(path string, spec Spec, opts StateDictOptions) (Weights, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("model: load %s: %w", path, err)
	}
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	w, err := mapStateDict(f, spec, opts)
	if err != nil {
		return nil, fmt.Errorf("model: %s does not fit spec %q: %w", path, spec.Name, err)
	}
	return w, nil
}

// MapStateDict is LoadStateDict on a file already read.
func MapStateDict(f *safetensors.File, spec Spec, opts StateDictOptions) (Weights, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("model: map a state dict: %w", err)
	}
	w, err := mapStateDict(f, spec, opts)
	if err != nil {
		return nil, fmt.Errorf("model: the state dict does not fit spec %q: %w", spec.Name, err)
	}
	return w, nil
}

func mapStateDict(f *safetensors.File, spec Spec, opts StateDictOptions) (Weights, error) {
	ps, err := spec.Tensors()
	if err != nil {
		return nil, err
	}
	mapped, err := mapNames(ps, opts.Map)
	if err != nil {
		return nil, err
	}
	// The prefix is found from the names the map leaves alone, as map
	// values may or may not spell it; from all when the map renames all.
	var plain []string
	for i, p := range ps {
		if mapped[i] == p.Name {
			plain = append(plain, p.Name)
		}
	}
	if len(plain) == 0 {
		plain = mapped
	}
	prefix, err := findPrefix(f, plain)
	if err != nil {
		return nil, err
	}

	// file name -> index in ps; two spec tensors may not share one.
	byFile := make(map[string]int, len(ps))
	fileName := make([]string, len(ps)) // empty for a duplicate
	var errs []error
	for i, p := range ps {
		fn := prefix + mapped[i]
		if _, ok := f.Tensors[fn]; !ok && mapped[i] != p.Name {
			// A map value may spell the file's full name, prefix and all.
			if _, ok := f.Tensors[mapped[i]]; ok {
				fn = mapped[i]
			}
		}
		if j, dup := byFile[fn]; dup {
			errs = append(errs, fmt.Errorf("spec tensors %q and %q both map to file tensor %q", ps[j].Name, p.Name, fn))
			continue
		}
		byFile[fn] = i
		fileName[i] = fn
	}
	// The file stems of batchnorm layers, whose counters are ignored.
	bnStems := map[string]bool{}
	for i, p := range ps {
		if l, _, ok := spec.Layer(p.Layer); ok && l.Kind == KindBatchNorm {
			if stem, ok := strings.CutSuffix(fileName[i], ".running_mean"); ok {
				bnStems[stem] = true
			}
		}
	}

	w := make(Weights, len(ps))
	found := make([]bool, len(ps))
	var unused []string
	for _, full := range f.Names() {
		i, ok := byFile[full]
		if !ok {
			if !strings.HasPrefix(full, prefix) {
				continue // another model's, an optimizer's step, ...
			}
			if stem, isCounter := strings.CutSuffix(full, ".num_batches_tracked"); isCounter {
				// PyTorch's batchnorm counter (see batchNormBuffers): of a
				// batchnorm the spec maps, or of one whose statistics the
				// file holds, which are reported if unused.
				if _, stats := f.Tensors[stem+".running_mean"]; stats || bnStems[stem] {
					continue
				}
			}
			if stem, isCounter := strings.CutSuffix(strings.TrimPrefix(full, prefix), ".num_batches_tracked"); isCounter {
				if l, _, ok := spec.Layer(stem); ok && l.Kind == KindBatchNorm {
					continue
				}
			}
			unused = append(unused, full)
			continue
		}
		found[i] = true
		p, t := ps[i], f.Tensors[full]
		if !slices.Equal(t.Shape, p.Shape) {
			hint := ""
			if len(t.Shape) == 2 && len(p.Shape) == 2 && t.Shape[0] == p.Shape[1] && t.Shape[1] == p.Shape[0] {
				hint = " (transposed? PyTorch stores linear weights as [out, in])"
			}
			errs = append(errs, fmt.Errorf("tensor %q has shape %v, the spec%s needs %v%s", full, t.Shape, forSpec(full, p.Name), p.Shape, hint))
			continue
		}
		mt, err := toTensor(full, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w[p.Name] = mt
	}
	var missing []Param
	for i, p := range ps {
		if !found[i] {
			missing = append(missing, p)
			fn := fileName[i]
			if fn == "" { // a duplicate, reported above
				continue
			}
			errs = append(errs, fmt.Errorf("no tensor %q%s (shape %v)", fn, forSpec(fn, p.Name), p.Shape))
		}
	}
	for _, full := range unused {
		t := f.Tensors[full]
		msg := fmt.Sprintf("tensor %q is not a parameter of the spec or one of its buffers (%s %v)", full, t.DType, t.Shape)
		// Suggest the spec tensors of that shape left without one, those
		// of the same kind ("weight", "running_mean") if any.
		var same, sameKind []string
		_, kind, _ := cutLast(full)
		for _, p := range missing {
			if slices.Equal(p.Shape, t.Shape) {
				same = append(same, p.Name)
				if _, k, _ := cutLast(p.Name); k == kind {
					sameKind = append(sameKind, p.Name)
				}
			}
		}
		if len(sameKind) > 0 {
			same = sameKind
		}
		if len(same) > 0 {
			msg += fmt.Sprintf("; spec tensors of that shape that found none: %s", sample(same))
		}
		errs = append(errs, errors.New(msg))
	}
	if len(missing) > 0 && len(unused) > 0 {
		errs = append(errs, errors.New("where the file names a layer differently, map the spec's name to the file's (a map entry such as \"stem.conv: features.0\")"))
	}
	if len(errs) == 0 {
		if err := spec.Check(w); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return w, nil
}

// cutLast splits a dotted name at its last dot.
func cutLast(name string) (before, after string, found bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", name, false
	}
	return name[:i], name[i+1:], true
}

// forSpec names the spec tensor a file tensor stands for, when the
// names differ.
func forSpec(file, spec string) string {
	if strings.HasSuffix(file, spec) {
		return ""
	}
	return fmt.Sprintf(" (spec tensor %q)", spec)
}

// mapNames returns, for each of ps, the name to look up in the file
// (before its prefix), renamed by m.
func mapNames(ps []Param, m map[string]string) ([]string, error) {
	keys := make([]string, 0, len(m))
	var errs []error
	for k, v := range m {
		if k == "" || v == "" || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".") {
			errs = append(errs, fmt.Errorf("map entry %q: %q: both names must be non-empty, without a leading or trailing dot", k, v))
			continue
		}
		keys = append(keys, k)
	}
	// Longest first, so that the most specific key wins.
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) {
			return len(keys[i]) > len(keys[j])
		}
		return keys[i] < keys[j]
	})
	used := make(map[string]bool, len(keys))
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
		for _, k := range keys {
			if rest, ok := strings.CutPrefix(p.Name, k); ok && (rest == "" || rest[0] == '.') {
				out[i] = m[k] + rest
				used[k] = true
				break
			}
		}
	}
	for _, k := range keys {
		if !used[k] {
			var layers []string
			for _, p := range ps {
				if len(layers) == 0 || layers[len(layers)-1] != p.Layer {
					layers = append(layers, p.Layer)
				}
			}
			errs = append(errs, fmt.Errorf("map key %q names no tensor or layer of the spec (layers with tensors: %s)", k, sample(slices.Compact(layers))))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// findPrefix finds the prefix P under which f holds the most of names
// (P+name). The empty prefix is preferred among those holding all, so
// that a file holding both "fc1.weight" and "ema.fc1.weight" loads the
// former; two other prefixes holding all are ambiguous. When none holds
// all, the one holding most is taken (the shortest on a tie) and the
// caller lists what is missing; when none holds any, f is another
// model's file.
func findPrefix(f *safetensors.File, names []string) (string, error) {
	if len(names) == 0 {
		return "", nil
	}
	hits := map[string]int{}
	for _, fn := range f.Names() {
		for _, n := range names {
			if prefix, ok := strings.CutSuffix(fn, n); ok && (prefix == "" || strings.HasSuffix(prefix, ".")) {
				if _, seen := hits[prefix]; !seen {
					hits[prefix] = 0
				}
			}
		}
	}
	if len(hits) == 0 {
		return "", fmt.Errorf("no tensor named %q (with or without a prefix such as \"model.\"), nor any other of the spec's %d tensors: it holds %s", names[0], len(names), sample(f.Names()))
	}
	var full []string
	best, bestHits := "", -1
	for prefix := range hits {
		n := 0
		for _, name := range names {
			if _, ok := f.Tensors[prefix+name]; ok {
				n++
			}
		}
		if n == len(names) {
			if prefix == "" {
				return "", nil
			}
			full = append(full, prefix)
		}
		if n > bestHits || (n == bestHits && (len(prefix) < len(best) || len(prefix) == len(best) && prefix < best)) {
			best, bestHits = prefix, n
		}
	}
	sort.Strings(full)
	switch {
	case len(full) == 1:
		return full[0], nil
	case len(full) > 1:
		return "", fmt.Errorf("it holds the spec's tensors under several prefixes %q; keep one model per file", full)
	}
	return best, nil
}
