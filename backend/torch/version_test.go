package torch

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLibtorchVersion reads the version of each way libtorch is
// installed from a fake process map: a distribution's versioned file
// name, a pip wheel's torch/version.py, an archive's build-version.
func TestLibtorchVersion(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, text string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	debian := write("usr/lib/libtorch_cpu.so.1.13.0", "")
	if err := os.Symlink(debian, filepath.Join(dir, "usr/lib/libtorch_cpu.so.1.13")); err != nil {
		t.Fatal(err)
	}
	pip := write("site-packages/torch/lib/libtorch_cpu.so", "")
	write("site-packages/torch/version.py", "from typing import Optional\n\n__all__ = ['__version__']\n__version__ = '2.11.0+cu128'\ncuda: Optional[str] = '12.8'\n")
	archive := write("libtorch/lib/libtorch.so", "")
	write("libtorch/build-version", "2.1.0+cu121\n")
	bare := write("bare/lib/libtorch_cpu.so", "")

	for _, c := range []struct {
		name, mapped, want string
	}{
		{"debian, versioned name", filepath.Join(dir, "usr/lib/libtorch_cpu.so.1.13"), "1.13.0"},
		{"pip wheel", pip, "2.11.0+cu128"},
		{"libtorch archive", archive, "2.1.0+cu121"},
		{"nothing says", bare, ""},
		{"not loaded", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			maps := "55d0c2a00000-55d0c2a28000 r--p 00000000 08:01 1234 /usr/bin/distill\n" +
				"7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n" +
				"7f0000002000-7f0000003000 r--p 00000000 00:00 0 [vdso]\n"
			if c.mapped != "" {
				maps += "7f1000000000-7f1000100000 r-xp 00000000 08:01 99 " + c.mapped + "\n"
			}
			path := write("maps-"+filepath.Base(filepath.Dir(c.name+"/x")), maps)
			if got := libtorchVersion(path); got != c.want {
				t.Errorf("libtorchVersion = %q, want %q", got, c.want)
			}
		})
	}
	if got := libtorchVersion(filepath.Join(dir, "no-such-maps")); got != "" {
		t.Errorf("without a maps file: %q", got)
	}
}

func TestSoVersion(t *testing.T) {
	for in, want := range map[string]string{
		"/a/libtorch_cpu.so.1.13.0": "1.13.0",
		"libtorch.so.2":             "2",
		"libtorch.so":               "",
		"libtorch.so.1.x":           "",
		"libtorch.so.":              "",
		"libtorch.so.1..2":          "",
	} {
		if got := soVersion(in); got != want {
			t.Errorf("soVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
