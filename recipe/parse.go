package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/distill-dev/distill/internal/fileio"
)

// maxVisits bounds the work of decoding one recipe, so that a small file
// full of aliases to aliases cannot make Parse expand it exponentially.
const maxVisits = 100_000

// maxRecipeSize bounds a recipe file; recipes are a few kilobytes.
const maxRecipeSize = 4 << 20

// Load reads the recipe file at path and parses it with Parse. A file
// that cannot be read, or is not a regular file, is reported as a
// wrapped *fs.PathError; a recipe with problems as an *Error.
func Load(path string) (*Recipe, error) {
	data, err := fileio.ReadFileMax(path, maxRecipeSize, "a recipe")
	if err != nil {
		return nil, fmt.Errorf("read recipe: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes a YAML recipe, fills in defaults, resolves relative paths
// against filename's directory and validates the result. filename names
// the recipe in problems and supplies the default Name; it may be empty.
//
// Parse is strict: unknown keys, values of the wrong type and values out
// of range are all errors. It returns every problem at once, as an
// *Error whose problems carry the line and column of the offending key
// (of the value itself for a value of the wrong type), in file order.
// An empty file, a YAML syntax error, a second YAML document or a
// document that is not a mapping is reported as a single problem. A key
// with no value (or null) is the same as leaving it out.
//
// On success, the teacher's and each student's Training hold their
// effective values (see TrainingFor), so they can be used directly.
func Parse(data []byte, filename string) (*Recipe, error) {
	root, ps := parseYAML(data)
	if len(ps) > 0 {
		for i := range ps {
			ps[i].File = filename
		}
		return nil, newError(ps)
	}

	d := &decoder{pos: map[string]position{}, given: map[string]bool{}, failed: map[string]bool{}}
	r := &Recipe{}
	d.decode(root, reflect.ValueOf(r).Elem(), "")
	r.given = d.given
	r.markTrainings()

	if r.Name == "" && !d.given["name"] && filename != "" {
		base := filepath.Base(filename)
		r.Name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	r.fillDefaults()
	r.file = filename
	if filename != "" {
		r.dir = filepath.Dir(filename)
		r.written = map[string]string{}
		res := func(key string, path *string) {
			if *path != "" && !filepath.IsAbs(*path) {
				r.written[key] = *path
			}
			*path = resolve(r.dir, *path)
		}
		res("data.dir", &r.Data.Dir)
		res("data.train_file", &r.Data.TrainFile)
		res("data.test_file", &r.Data.TestFile)
		res("teacher.checkpoint", &r.Teacher.Checkpoint)
		res("teacher.torchscript", &r.Teacher.TorchScript)
		res("teacher.onnx", &r.Teacher.ONNX)
		res("teacher.runtime", &r.Teacher.Runtime)
		res("teacher.safetensors", &r.Teacher.Safetensors)
		for i := range r.Ensemble {
			res(fmt.Sprintf("ensemble[%d].checkpoint", i), &r.Ensemble[i].Checkpoint)
			res(fmt.Sprintf("ensemble[%d].onnx", i), &r.Ensemble[i].ONNX)
			res(fmt.Sprintf("ensemble[%d].runtime", i), &r.Ensemble[i].Runtime)
			res(fmt.Sprintf("ensemble[%d].safetensors", i), &r.Ensemble[i].Safetensors)
		}
		res("transfer.cache_dir", &r.Transfer.CacheDir)
		res("transfer.unlabelled.dir", &r.Transfer.Unlabelled.Dir)
		res("serving.prices", &r.Serving.Prices)
	}

	all := d.problems
	for _, p := range r.check() {
		if d.covers(p) {
			continue
		}
		p.Line, p.Column = d.lookup(p.Key)
		all = append(all, p)
	}
	if len(all) > 0 {
		for i := range all {
			all[i].File = filename
		}
		return nil, newError(all)
	}
	r.resolveTrainings()
	return r, nil
}

// resolve makes a relative, non-empty path relative to dir.
func resolve(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// yamlLine matches the position prefix of yaml.v3's syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses data as a single YAML document whose root is a
// mapping, or explains in one problem why it is not.
func parseYAML(data []byte) (root *yaml.Node, ps []Problem) {
	// yaml.v3 reports errors by panicking internally and recovering; a
	// panic that escapes it is a bug there, but must not take the
	// caller down with it.
	defer func() {
		if v := recover(); v != nil {
			root, ps = nil, []Problem{{Message: fmt.Sprintf("invalid YAML: the parser failed (%v)", v)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return nil, []Problem{{Line: 1, Column: 1, Message: "the recipe is empty: it needs at least a teacher and students (see recipes/README.md)"}}
	}
	if err != nil {
		return nil, []Problem{syntaxProblem(err, data)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, []Problem{syntaxProblem(err, data)}
	default:
		return nil, []Problem{{Line: max(next.Line-1, 1), Column: 1,
			Message: "a recipe file holds one YAML document, but this one has a second (after a --- line); remove it or split the file"}}
	}
	root = &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.AliasNode && root.Alias != nil {
		root = root.Alias
	}
	if root.Kind != yaml.MappingNode {
		return nil, []Problem{{Line: root.Line, Column: root.Column,
			Message: fmt.Sprintf("a recipe must be a mapping of keys (name:, data:, teacher:, students:, …), got %s", describe(root))}}
	}
	return root, nil
}

// syntaxProblem turns a yaml.v3 parse error into a Problem with its line.
func syntaxProblem(err error, data []byte) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		msg = m[2]
	}
	p := Problem{Line: syntaxLine(data, msg), Message: "invalid YAML: " + msg}
	if p.Line > 0 {
		lines := bytes.Split(data, []byte("\n"))
		if p.Line <= len(lines) && bytes.ContainsRune(lines[p.Line-1], '\t') {
			p.Message += " (indent with spaces: YAML does not allow tabs)"
		}
	}
	return p
}

// syntaxLine finds the line of a YAML syntax error: the first line at
// which the file, cut after that line, fails with the same message
// (found by bisection: a streaming parser that fails at line L fails the
// same way on any longer prefix). yaml.v3's own line numbers cannot be
// used: they are 0-based for parser errors, 1-based for scanner errors,
// and point at the start of the enclosing construct rather than at the
// problem. It returns 0 when the line is not found.
func syntaxLine(data []byte, msg string) int {
	var ends []int // ends[k] is the length of the first k+1 lines
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	fails := func(k int) bool {
		err := parseAll(data[:ends[k]])
		if err == nil {
			return false
		}
		got := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			got = m[2]
		}
		return got == msg
	}
	k := sort.Search(len(ends), fails)
	if k == len(ends) {
		return 0
	}
	return k + 1
}

// parseAll parses every document of data.
func parseAll(data []byte) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("yaml: %v", v)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err = dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// position is where a key (or list item) is written.
type position struct{ line, col int }

// decoder walks a yaml.Node tree into a Recipe by reflection over the
// fields' yaml tags, recording where every key is, which keys were given
// and which failed to decode, and a Problem for each unknown key and
// each value of the wrong type. Unlike yaml.v3's own decoder it reports
// positions by key path, including columns, and never truncates 1.5 into
// an integer field.
type decoder struct {
	pos      map[string]position
	given    map[string]bool
	failed   map[string]bool
	problems []Problem
	visits   int
}

// spend counts one unit of decoding work and reports whether the budget
// allows it; the first time it does not, it records a problem.
func (d *decoder) spend() bool {
	d.visits++
	if d.visits == maxVisits+1 {
		d.fail("", position{}, "the recipe is too large to decode (over %d values): check for aliases that expand to huge trees", maxVisits)
	}
	return d.visits <= maxVisits
}

func (d *decoder) add(path string, at position, format string, args ...any) {
	d.problems = append(d.problems, Problem{Line: at.line, Column: at.col, Key: path, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) fail(path string, at position, format string, args ...any) {
	d.failed[path] = true
	d.add(path, at, format, args...)
}

// lookup returns the position of path, or of its nearest ancestor that
// was written, or 0, 0.
func (d *decoder) lookup(path string) (line, col int) {
	for path != "" {
		if p, ok := d.pos[path]; ok {
			return p.line, p.col
		}
		path = parentPath(path)
	}
	return 0, 0
}

// parentPath strips the last ".key" or "[i]" of a dotted path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// covers reports whether p is a consequence of a value that already
// failed to decode: the same key, a key inside it, or (for whole-subtree
// problems) a subtree that contains it.
func (d *decoder) covers(p Problem) bool {
	for f := range d.failed {
		if under(p.Key, f) || (p.whole && under(f, p.Key)) {
			return true
		}
	}
	return false
}

// under reports whether path is base or inside it.
func under(path, base string) bool {
	if base == "" || path == base {
		return true
	}
	return strings.HasPrefix(path, base) && (path[len(base)] == '.' || path[len(base)] == '[')
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func at(n *yaml.Node) position { return position{n.Line, n.Column} }

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decode stores n into v. path is v's dotted key path, and its position
// has been recorded by the caller.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.spend() {
		return
	}
	where := at(n)
	n = deref(n)
	if n == nil {
		d.fail(path, where, "the alias refers to itself")
		return
	}
	if isNull(n) {
		return
	}
	d.given[path] = true
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		d.decode(n, e.Elem(), path)
		v.Set(e)
	case reflect.Struct:
		d.decodeStruct(n, v, path, where)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, where, "must be a list such as %s, got %s", listExample(v.Type()), describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.pos[p] = at(item)
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.Map: // string → string (teacher.map)
		if n.Kind != yaml.MappingNode {
			d.fail(path, where, "must be a mapping of names such as {layer1: features.1}, got %s", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for _, e := range d.entries(n, path, 0) {
			k := deref(e.key)
			if k == nil || k.Kind != yaml.ScalarNode {
				d.fail(path, at(e.key), "keys must be names, got %s", describe(e.key))
				continue
			}
			p := path + "." + k.Value
			d.pos[p] = at(e.key)
			val := reflect.New(v.Type().Elem()).Elem()
			d.decode(e.val, val, p)
			m.SetMapIndex(reflect.ValueOf(k.Value), val)
		}
		if m.Len() > 0 { // map: {} is no map, as in the hash
			v.Set(m)
		}
	default:
		d.decodeScalar(n, v, path, where)
	}
}

func listExample(t reflect.Type) string {
	if t.Elem().Kind() == reflect.Struct {
		return "[{…}, {…}]"
	}
	return "[128, 64]"
}

// entry is one key: value pair of a mapping, after merge keys (<<) are
// expanded.
type entry struct {
	key, val *yaml.Node
}

// entries lists a mapping's pairs: its own keys first, then those merged
// in with <<, which its own keys override.
func (d *decoder) entries(n *yaml.Node, path string, depth int) []entry {
	var own, merged []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.spend() {
			break
		}
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			if depth > 8 {
				d.fail(path, at(k), "merge keys (<<) are nested too deeply")
				continue
			}
			src := deref(v)
			var maps []*yaml.Node
			switch {
			case src != nil && src.Kind == yaml.MappingNode:
				maps = []*yaml.Node{src}
			case src != nil && src.Kind == yaml.SequenceNode:
				for _, m := range src.Content {
					maps = append(maps, deref(m))
				}
			}
			if len(maps) == 0 || slices.ContainsFunc(maps, func(m *yaml.Node) bool { return m == nil || m.Kind != yaml.MappingNode }) {
				d.fail(path, at(k), "<< must merge a mapping or a list of mappings, such as <<: *defaults")
				continue
			}
			for _, m := range maps {
				merged = append(merged, d.entries(m, path, depth+1)...)
			}
			continue
		}
		own = append(own, entry{k, v})
	}
	return append(own, merged...)
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, where position) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, where, "must be a mapping of keys (%s), got %s", strings.Join(keysOf(v.Type()), ", "), describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]position{}
	nOwn := 0
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].ShortTag() != "!!merge" {
			nOwn++
		}
	}
	for i, e := range d.entries(n, path, 0) {
		k := e.key
		if k.Kind != yaml.ScalarNode {
			d.add(path, at(k), "keys must be plain names, got %s", describe(k))
			continue
		}
		name := k.Value
		if !printable(name) || name == "" {
			name = strconv.Quote(name)
		}
		p := join(path, name)
		if first, ok := seen[k.Value]; ok {
			if i < nOwn { // a merged key that the mapping overrides is fine
				d.add(p, at(k), "is given twice (first at line %d); remove one", first.line)
			}
			continue
		}
		seen[k.Value] = at(k)
		idx, ok := fields[k.Value]
		if !ok {
			d.add(p, at(k), "%s", unknownKey(k.Value, v.Type()))
			continue
		}
		d.pos[p] = at(k)
		d.decode(e.val, v.Field(idx), p)
	}
}

// decodeScalar decodes a string, integer, float or bool.
func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string, where position) {
	want := map[reflect.Kind]string{
		reflect.String:  "a string",
		reflect.Int:     "an integer",
		reflect.Int64:   "an integer",
		reflect.Float64: "a number",
		reflect.Bool:    "true or false",
	}[v.Kind()]
	if n.Kind != yaml.ScalarNode {
		d.fail(path, where, "must be %s, got %s", want, describe(n))
		return
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int64:
		// yaml.v3 silently truncates 1.5 into an int: only accept floats
		// that are whole numbers.
		if n.ShortTag() == "!!float" {
			var f float64
			if err := n.Decode(&f); err == nil && f == math.Trunc(f) && !v.OverflowInt(int64(f)) && math.Abs(f) < 1<<53 {
				v.SetInt(int64(f))
				return
			}
			d.fail(path, where, "must be %s, got %s", want, describe(n))
			return
		}
	case reflect.String:
		if n.Tag == "!!binary" {
			d.fail(path, where, "must be %s, got %s", want, describe(n))
			return
		}
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.fail(path, where, "must be %s, got %s", want, describe(n))
	}
}

// printable reports whether s prints on one line as it is.
func printable(s string) bool {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// describe names a node for an error message: "a mapping", "a list", or
// the scalar as written ("abc" quoted when it is a string).
func describe(n *yaml.Node) string {
	n2 := deref(n)
	if n2 == nil {
		return "a self-referencing alias"
	}
	switch n2.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n2.Value
		if r := []rune(v); len(r) > 40 {
			v = string(r[:37]) + "..."
		}
		if n2.ShortTag() == "!!str" || n2.ShortTag() == "!!binary" || !printable(v) {
			return strconv.Quote(v)
		}
		if n2.ShortTag() == "!!null" {
			return "null"
		}
		return v
	}
	return "nothing"
}

var fieldCache sync.Map // reflect.Type → map[string]int

// fieldsOf maps a struct's YAML keys to field indexes.
func fieldsOf(t reflect.Type) map[string]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]int)
	}
	m := map[string]int{}
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			m[k] = i
		}
	}
	fieldCache.Store(t, m)
	return m
}

// keysOf lists a struct's YAML keys in declaration order.
func keysOf(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// keyHints maps names that other tools use to ours.
var keyHints = map[string]string{
	"learning_rate": "lr",
	"num_epochs":    "epochs",
	"batch":         "batch_size",
	"bs":            "batch_size",
	"optim":         "optimizer",
	"scheduler":     "schedule",
	"lr_schedule":   "schedule",
	"layers":        "hidden",
	"hidden_sizes":  "hidden",
	"hidden_layers": "hidden",
	"temp":          "temperature",
	"t":             "temperature",
	"dropout_rate":  "dropout",
	"model_type":    "type",
	"arch":          "type",
	"student":       "students",
}

// unknownKey explains an unknown key of struct type t and suggests the
// key that was probably meant.
func unknownKey(key string, t reflect.Type) string {
	keys := keysOf(t)
	lower := strings.ToLower(key)
	if h, ok := keyHints[lower]; ok && slices.Contains(keys, h) {
		return fmt.Sprintf("unknown key; did you mean %q?", h)
	}
	best, bestDist := "", 3
	for _, k := range keys {
		if d := editDistance(lower, k); d < bestDist && d <= len(k)/3+1 {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key; did you mean %q?", best)
	}
	// A key one level too high: "temperature" directly under a student.
	for i := range t.NumField() {
		f := t.Field(i)
		ft := f.Type
		for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct || yamlKey(f) == "" {
			continue
		}
		hint, ok := keyHints[lower]
		for _, k := range keysOf(ft) {
			if k == lower || (ok && k == hint) {
				return fmt.Sprintf("unknown key here; did you mean %s.%s?", yamlKey(f), k)
			}
		}
	}
	return fmt.Sprintf("unknown key; expected one of: %s", strings.Join(keys, ", "))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// markTrainings records in each training section which keys the YAML gave.
func (r *Recipe) markTrainings() {
	mark := func(t *Training, prefix string) {
		t.set = map[string]bool{}
		for _, f := range trainingFields {
			if r.given[prefix+"."+f.key] {
				t.set[f.key] = true
			}
		}
	}
	mark(&r.Training, "training")
	mark(&r.Teacher.Training, "teacher.training")
	for i := range r.Students {
		mark(&r.Students[i].Training, fmt.Sprintf("students[%d].training", i))
	}
}
