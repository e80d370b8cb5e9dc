package main

import (
	"debug/elf"
	"fmt"
	"sort"
	"strings"
)

// cgoCallPrefix precedes the name of a C function in the Go symbol of the
// cgo stub that calls it (github.com/sugarme/gotch/libtch._Cfunc_atg_add).
const cgoCallPrefix = "libtch._Cfunc_"

// calledWrappers returns the libtch C entry points a Go binary can call.
// The Go linker keeps a cgo call stub only when some reachable code calls
// it, so this is the set the code uses, derived from the binary.
func calledWrappers(binary string) (map[string]bool, error) {
	f, err := elf.Open(binary)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", binary, err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("%s has no symbol table (built with -ldflags=-s?): %w", binary, err)
	}
	out := map[string]bool{}
	for _, s := range syms {
		_, name, ok := strings.Cut(s.Name, cgoCallPrefix)
		name, _, _ = strings.Cut(name, ".") // the assembly stub's ".abi0"
		if ok && wrapperName.MatchString(name) {
			out[name] = true
		}
	}
	return out, nil
}

// runCheck fails when a binary calls a wrapper that was stubbed, quoting
// the compiler error that made it fail; it returns how many wrappers the
// binaries call.
func runCheck(listPath string, binaries []string) (int, error) {
	stubbed, err := readList(listPath)
	if err != nil {
		return 0, err
	}
	used := map[string]bool{}
	for _, b := range binaries {
		called, err := calledWrappers(b)
		if err != nil {
			return 0, err
		}
		if len(called) == 0 {
			return 0, fmt.Errorf("%s calls no libtch wrapper: not a binary built with the torch tag, or stripped", b)
		}
		for n := range called {
			used[n] = true
		}
	}
	return len(used), stubbedInUse(stubbed, used)
}

// stubbedInUse names every used wrapper that was stubbed, with its
// compiler error.
func stubbedInUse(stubbed map[string]string, used map[string]bool) error {
	var bad []string
	for n := range used {
		if msg, ok := stubbed[n]; ok {
			bad = append(bad, fmt.Sprintf("  %s: %s", n, msg))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("%d libtch wrapper(s) that distill calls do not compile against this libtorch; the torch backend cannot be built for it:\n%s", len(bad), strings.Join(bad, "\n"))
}
