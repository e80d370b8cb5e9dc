package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// patchable are the files whose wrappers may be stubbed, relative to -dir.
// An error anywhere else (torch_api.h, a libtorch header that no wrapper
// instantiated, a missing header) stops the build with the compiler's
// message: stubbing cannot fix it.
var patchable = []string{"torch_api_generated.cpp.h", "torch_api.cpp"}

// stubMarker identifies a body written by this command.
const stubMarker = "/* stubbed by distill scripts/torch/build.sh */"

// wrapperName matches the names of libtch's C entry points.
var wrapperName = regexp.MustCompile(`^at[a-z]?_\w+$`)

// diagnostic is one compiler error attributed to a line of a patchable
// file.
type diagnostic struct {
	file    string // base name, one of patchable
	line    int    // 1-based
	message string // the compiler's error line
}

func runStub(dir, logPath, listPath string) (int, error) {
	log, err := os.ReadFile(logPath)
	if err != nil {
		return 0, err
	}
	diags, err := parseDiagnostics(string(log))
	if err != nil {
		return 0, err
	}
	if len(diags) == 0 {
		return 0, errors.New("the compiler reported no error inside libtch's wrappers; nothing to stub")
	}
	byFile := map[string][]diagnostic{}
	for _, d := range diags {
		byFile[d.file] = append(byFile[d.file], d)
	}
	var stubbed []stubbedFunc
	for _, f := range patchable {
		if len(byFile[f]) == 0 {
			continue
		}
		path := filepath.Join(dir, f)
		s, err := stubFile(path, byFile[f])
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		stubbed = append(stubbed, s...)
	}
	if listPath != "" {
		if err := appendList(listPath, stubbed); err != nil {
			return 0, err
		}
	}
	return len(stubbed), nil
}

var (
	// file:line:col: error: message (also "fatal error:").
	errorRE = regexp.MustCompile(`^([^:\s][^:]*):(\d+):\d+:\s+(fatal error|error):\s*(.*)$`)
	// file:line:col:   required from here / required from 'X'
	requiredRE = regexp.MustCompile(`^([^:\s][^:]*):(\d+):\d+:\s+required from`)
	// Lines with which GCC opens a new context: an error after one of these
	// is not explained by an earlier instantiation chain.
	contextRE = regexp.MustCompile(`^([^:\s][^:]*): (In (function|member function|static member function|constructor|destructor|lambda function|instantiation of)|At global scope)|^In file included from`)
)

// parseDiagnostics attributes every compiler error to a line of a
// patchable file: errors located there directly, and errors inside
// libtorch's headers reached through a template instantiated there (GCC
// prints "required from here" at the wrapper's line before the error). Any
// other error, and every fatal error, is returned as an error quoting the
// compiler.
func parseDiagnostics(log string) ([]diagnostic, error) {
	var out []diagnostic
	var pending *diagnostic // the wrapper line of the current instantiation chain
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if m := requiredRE.FindStringSubmatch(line); m != nil {
			if base := filepath.Base(m[1]); slices.Contains(patchable, base) {
				n, _ := strconv.Atoi(m[2])
				pending = &diagnostic{file: base, line: n}
			}
			continue
		}
		if contextRE.MatchString(line) {
			// An instantiation context keeps the chain that follows it; any
			// other context starts afresh.
			if !strings.Contains(line, "In instantiation of") {
				pending = nil
			}
			continue
		}
		m := errorRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if m[3] == "fatal error" {
			return nil, fmt.Errorf("the compiler stopped with a fatal error, which stubbing cannot fix:\n  %s", line)
		}
		n, _ := strconv.Atoi(m[2])
		base := filepath.Base(m[1])
		switch {
		case slices.Contains(patchable, base):
			out = append(out, diagnostic{file: base, line: n, message: line})
		case pending != nil:
			out = append(out, diagnostic{file: pending.file, line: pending.line, message: line})
		default:
			return nil, fmt.Errorf("an error outside libtch's generated wrappers, which stubbing cannot fix:\n  %s", line)
		}
	}
	return out, sc.Err()
}

// stubbedFunc is a wrapper whose body was replaced, with the first
// compiler error that caused it.
type stubbedFunc struct {
	name, message string
}

func appendList(path string, fns []stubbedFunc) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	for _, fn := range fns {
		fmt.Fprintf(f, "%s\t%s\n", fn.name, fn.message)
	}
	return f.Close()
}

// readList reads a list written by appendList: function name → message.
func readList(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		name, msg, _ := strings.Cut(line, "\t")
		if name = strings.TrimSpace(name); name != "" {
			out[name] = msg
		}
	}
	return out, nil
}

// function is one top-level definition: lines [start, end] (0-based), the
// body between the line that opens it and the closing "}" line.
type function struct {
	name       string
	start, end int
	open       int // the line that ends with the body's "{"
	returns    string
}

// stubFile replaces the bodies of the functions that contain the
// diagnostics' lines and returns them.
func stubFile(path string, diags []diagnostic) ([]stubbedFunc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	src := strings.Split(string(data), "\n")
	byStart := map[int]function{}
	firstMsg := map[int]string{}
	for _, d := range diags {
		fn, err := enclosing(src, d.line-1)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w; the compiler said:\n  %s", d.line, err, d.message)
		}
		if !wrapperName.MatchString(fn.name) {
			return nil, fmt.Errorf("the error is in %s, which is not a libtch wrapper: this libtorch is not supported by gotch v0.9.1 without a manual fix; the compiler said:\n  %s", fn.name, d.message)
		}
		if strings.Contains(strings.Join(src[fn.open:fn.end], "\n"), stubMarker) {
			return nil, fmt.Errorf("%s still fails after its body was stubbed (its signature uses a type this libtorch lacks); the compiler said:\n  %s", fn.name, d.message)
		}
		byStart[fn.start] = fn
		if _, ok := firstMsg[fn.start]; !ok {
			firstMsg[fn.start] = d.message
		}
	}
	fns := make([]function, 0, len(byStart))
	for _, fn := range byStart {
		fns = append(fns, fn)
	}
	// Patch bottom-up so that earlier line numbers stay valid.
	sort.Slice(fns, func(i, j int) bool { return fns[i].start > fns[j].start })
	var stubbed []stubbedFunc
	for _, fn := range fns {
		body := []string{
			"  " + stubMarker,
			fmt.Sprintf("  torch_last_err = strdup(%q);", fn.name+" is not available: gotch v0.9.1's wrapper does not compile against this libtorch (stubbed by distill's scripts/torch/build.sh)"),
		}
		if fn.returns != "void" {
			body = append(body, "  return {};")
		}
		src = slices.Concat(src[:fn.open+1], body, src[fn.end:])
		stubbed = append(stubbed, stubbedFunc{name: fn.name, message: firstMsg[fn.start]})
	}
	if err := os.WriteFile(path, []byte(strings.Join(src, "\n")), 0o644); err != nil {
		return nil, err
	}
	sort.Slice(stubbed, func(i, j int) bool { return stubbed[i].name < stubbed[j].name })
	return stubbed, nil
}

var defName = regexp.MustCompile(`^(.*?)\b(\w+)\s*\(`)

// enclosing finds the top-level function definition that contains line i.
func enclosing(src []string, i int) (function, error) {
	if i < 0 || i >= len(src) {
		return function{}, fmt.Errorf("line is outside the file")
	}
	start := -1
	for j := i; j >= 0; j-- {
		l := src[j]
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			continue
		}
		if l == "}" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "//") {
			if j == i && l == "}" {
				continue // an error reported on the closing brace
			}
			return function{}, fmt.Errorf("not inside a function")
		}
		start = j
		break
	}
	if start < 0 {
		return function{}, fmt.Errorf("not inside a function")
	}
	m := defName.FindStringSubmatch(src[start])
	if m == nil {
		return function{}, fmt.Errorf("cannot parse the definition %q", src[start])
	}
	if strings.Contains(src[start], "{") && strings.HasSuffix(strings.TrimSpace(src[start]), "}") {
		return function{}, fmt.Errorf("%s is a one-line function, which cannot be stubbed; fix it by hand", m[2])
	}
	fn := function{name: m[2], start: start, open: -1, end: -1}
	fn.returns = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[1]), "*"))
	if strings.Contains(m[1], "*") {
		fn.returns += " *"
	}
	for j := start; j < len(src); j++ {
		if fn.open < 0 && strings.HasSuffix(strings.TrimSpace(src[j]), "{") {
			fn.open = j
			continue
		}
		if fn.open >= 0 && src[j] == "}" {
			fn.end = j
			break
		}
	}
	if fn.open < 0 || fn.end < 0 || fn.end < i {
		return function{}, fmt.Errorf("cannot find the body of %s", fn.name)
	}
	return fn, nil
}
