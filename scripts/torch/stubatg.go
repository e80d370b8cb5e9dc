//go:build ignore

// Command stubatg replaces the bodies of libtch C++ wrapper functions that do
// not compile against the installed libtorch with a body that reports a
// runtime error, so that the rest of gotch builds.
//
// gotch v0.9.1's torch_api_generated.cpp.h was generated for libtorch 2.1;
// against another libtorch a few hundred exotic ops may have changed their
// signature. scripts/torch/build.sh compiles libtch with -fsyntax-only, hands
// the compiler's output to this command, and repeats until the file compiles.
//
// Usage:
//
//	go run stubatg.go -dir build/torch/gotch/libtch -log errors.txt [-list stubbed.txt]
//
// It exits with status 2 when the errors point at code it cannot stub (a
// helper that is not an at*_ wrapper, a signature, or a function it already
// stubbed), so that the build script stops with the compiler's message.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// files that may be patched, relative to -dir.
var files = []string{"torch_api_generated.cpp.h", "torch_api.cpp"}

// stubMarker identifies a body written by this command.
const stubMarker = "/* stubbed by distill scripts/torch/build.sh */"

// wrapperName matches the names of libtch's C entry points.
var wrapperName = regexp.MustCompile(`^at[a-z]?_\w+$`)

func main() {
	dir := flag.String("dir", "", "libtch directory of the gotch copy to patch")
	logPath := flag.String("log", "", "compiler output (stderr of g++ -fsyntax-only)")
	listPath := flag.String("list", "", "append the names of stubbed functions to this file")
	flag.Parse()
	if *dir == "" || *logPath == "" {
		flag.Usage()
		os.Exit(2)
	}
	n, err := run(*dir, *logPath, *listPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stubatg:", err)
		os.Exit(2)
	}
	fmt.Printf("stubatg: stubbed %d functions\n", n)
}

func run(dir, logPath, listPath string) (int, error) {
	lines, err := errorLines(logPath)
	if err != nil {
		return 0, err
	}
	total := 0
	var names []string
	for _, f := range files {
		if len(lines[f]) == 0 {
			continue
		}
		path := filepath.Join(dir, f)
		stubbed, err := stubFile(path, lines[f])
		if err != nil {
			return total, fmt.Errorf("%s: %w", path, err)
		}
		total += len(stubbed)
		names = append(names, stubbed...)
	}
	if total == 0 {
		return 0, errors.New("the compiler's errors are not inside libtch's wrapper files; nothing to stub (see the compiler output above)")
	}
	if listPath != "" {
		f, err := os.OpenFile(listPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return total, err
		}
		defer f.Close()
		for _, n := range names {
			fmt.Fprintln(f, n)
		}
	}
	return total, nil
}

// errorLines collects, per patchable file, the line numbers the compiler
// blamed: error locations and the "required from here" end of template
// instantiation chains that ended in an error.
func errorLines(logPath string) (map[string][]int, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	re := regexp.MustCompile(`([\w./+-]+):(\d+):\d+:\s+(error:|required from here|required from)`)
	out := map[string][]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		base := filepath.Base(m[1])
		if !slices.Contains(files, base) {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		out[base] = append(out[base], n)
	}
	return out, sc.Err()
}

// function is one top-level definition: lines [start, end] (0-based), the
// body between the line that opens it and the closing "}" line.
type function struct {
	name       string
	start, end int
	open       int // the line that ends with the body's "{"
	returns    string
}

// stubFile replaces the bodies of the functions that contain the given
// (1-based) lines and returns their names.
func stubFile(path string, errLines []int) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	src := strings.Split(string(data), "\n")
	byStart := map[int]function{}
	for _, ln := range errLines {
		fn, err := enclosing(src, ln-1)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", ln, err)
		}
		byStart[fn.start] = fn
	}
	fns := make([]function, 0, len(byStart))
	for _, fn := range byStart {
		fns = append(fns, fn)
	}
	// Patch bottom-up so that earlier line numbers stay valid.
	sort.Slice(fns, func(i, j int) bool { return fns[i].start > fns[j].start })
	var names []string
	for _, fn := range fns {
		if !wrapperName.MatchString(fn.name) {
			return nil, fmt.Errorf("the error is in %s, which is not a libtch wrapper: this libtorch is not supported by gotch v0.9.1 without a manual fix", fn.name)
		}
		if strings.Contains(strings.Join(src[fn.open:fn.end], "\n"), stubMarker) {
			return nil, fmt.Errorf("%s still fails after its body was stubbed (its signature uses a type this libtorch lacks)", fn.name)
		}
		body := []string{
			"  " + stubMarker,
			fmt.Sprintf("  torch_last_err = strdup(%q);", fn.name+" is not available: gotch v0.9.1's wrapper does not compile against this libtorch (stubbed by distill's scripts/torch/build.sh)"),
		}
		if fn.returns != "void" {
			body = append(body, "  return {};")
		}
		src = slices.Concat(src[:fn.open+1], body, src[fn.end:])
		names = append(names, fn.name)
	}
	if err := os.WriteFile(path, []byte(strings.Join(src, "\n")), 0o644); err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
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
		return function{}, fmt.Errorf("%s is a one-line function; fix it by hand", m[2])
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
