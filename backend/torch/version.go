package torch

// This file has no build tag, so that its tests run in every build.

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// libtorchVersion returns the version of the libtorch this process
// loaded, read from files rather than from libtorch itself: the backend
// compiles without libtorch's headers, whose TORCH_VERSION macros are
// the only C++ API that states it, and one binary must report the
// libtorch it finds at run time (Debian's 1.13 here, a pip wheel's 2.x
// on a GPU box). The library is found among the process's mappings
// (/proc/self/maps), and its version, in order, from
//
//   - the file's versioned name, as distributions install it
//     (libtorch_cpu.so.1.13.0);
//   - torch/version.py beside the lib folder of a pip-installed PyTorch
//     (__version__ = '2.11.0+cu128');
//   - build-version at the root of an unpacked libtorch archive.
//
// It returns "" when none tells.
func libtorchVersion(maps string) string {
	lib := mappedLibrary(maps, "libtorch_cpu.so", "libtorch.so")
	if lib == "" {
		return ""
	}
	// The kernel maps the file a symlink names; resolve it for the
	// fullest version either way.
	if real, err := filepath.EvalSymlinks(lib); err == nil {
		lib = real
	}
	if v := soVersion(lib); v != "" {
		return v
	}
	root := filepath.Dir(filepath.Dir(lib)) // torch/lib/x.so → torch
	if b, err := os.ReadFile(filepath.Join(root, "version.py")); err == nil {
		if m := pyVersion.FindSubmatch(b); m != nil {
			return string(m[1])
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "build-version")); err == nil {
		if v := strings.TrimSpace(string(b)); v != "" && !strings.ContainsAny(v, " \n") {
			return v
		}
	}
	return ""
}

var pyVersion = regexp.MustCompile(`(?m)^__version__\s*=\s*['"]([^'"\s]+)['"]`)

// mappedLibrary returns the path of the first file mapped into the
// process (maps is a /proc/PID/maps file) whose name is one of names,
// with or without a version suffix; names are tried in order.
func mappedLibrary(maps string, names ...string) string {
	f, err := os.Open(maps)
	if err != nil {
		return ""
	}
	defer f.Close()
	var paths []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// address perms offset dev inode path; the path may hold spaces.
		fields := strings.SplitN(sc.Text(), " ", 6)
		if len(fields) == 6 {
			if p := strings.TrimSpace(fields[5]); strings.HasPrefix(p, "/") {
				paths = append(paths, p)
			}
		}
	}
	for _, name := range names {
		for _, p := range paths {
			base := filepath.Base(p)
			if base == name || strings.HasPrefix(base, name+".") {
				return p
			}
		}
	}
	return ""
}

// soVersion returns the version suffix of a shared library's file name
// (libtorch_cpu.so.1.13.0 → 1.13.0), "" when it has none.
func soVersion(path string) string {
	_, v, ok := strings.Cut(filepath.Base(path), ".so.")
	if !ok || v == "" {
		return ""
	}
	for _, part := range strings.Split(v, ".") {
		if part == "" || strings.Trim(part, "0123456789") != "" {
			return ""
		}
	}
	return v
}
