// Command stubatg keeps gotch's C++ wrappers building against a libtorch
// they were not generated for, without ever hiding an op that distill uses.
//
// gotch v0.9.1's torch_api_generated.cpp.h was generated for libtorch 2.1;
// against another libtorch some exotic ops have changed their signature.
// scripts/torch/build.sh compiles libtch with -fsyntax-only and hands the
// compiler's output to "stubatg stub", which replaces the body of each
// failing at*_ wrapper with one that reports a run-time error; it repeats
// until libtch compiles. Then "stubatg check" reads the symbol tables of
// the binaries built with the torch tag (distill and the backend's test
// binary) and fails when any wrapper they can call was stubbed: the Go
// linker drops unreachable cgo call stubs, so the symbols that remain are
// exactly the C entry points the code can reach, derived from the code
// rather than from a hand-kept list.
//
// Usage:
//
//	stubatg stub -dir build/torch/gotch/libtch -log errors.txt [-list stubbed.txt]
//	stubatg check -list stubbed.txt BINARY...
//
// Both exit with status 1 and the compiler's message when something cannot
// be stubbed (an error outside a wrapper, in a header, a missing header, a
// one-line function) or when a stubbed wrapper is one the binaries call.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: stubatg stub -dir DIR -log FILE [-list FILE] | stubatg check -list FILE BINARY...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "stub":
		fs := flag.NewFlagSet("stub", flag.ExitOnError)
		dir := fs.String("dir", "", "libtch directory of the gotch copy to patch")
		logPath := fs.String("log", "", "compiler output (stderr of g++ -fsyntax-only)")
		listPath := fs.String("list", "", "append the stubbed functions and their first compiler error to this file")
		_ = fs.Parse(os.Args[2:])
		if *dir == "" || *logPath == "" {
			fs.Usage()
			os.Exit(2)
		}
		var n int
		n, err = runStub(*dir, *logPath, *listPath)
		if err == nil {
			fmt.Printf("stubatg: stubbed %d functions\n", n)
		}
	case "check":
		fs := flag.NewFlagSet("check", flag.ExitOnError)
		listPath := fs.String("list", "", "the stubbed functions (written by stubatg stub)")
		_ = fs.Parse(os.Args[2:])
		if *listPath == "" || fs.NArg() == 0 {
			fs.Usage()
			os.Exit(2)
		}
		var used int
		used, err = runCheck(*listPath, fs.Args())
		if err == nil {
			fmt.Printf("stubatg: none of the %d libtch wrappers the binaries call is stubbed\n", used)
		}
	default:
		fmt.Fprintf(os.Stderr, "stubatg: unknown command %q (stub or check)\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stubatg:", err)
		os.Exit(1)
	}
}
