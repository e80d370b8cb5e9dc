package recipe

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the testdata/**/*.golden files")

// TestGolden parses every recipe under testdata/ok (which must parse; the
// golden file is the defaults-filled recipe and its hash) and
// testdata/bad (which must fail; the golden file is the error text).
// Run `go test ./recipe -run TestGolden -update` to rewrite the goldens
// after an intended change, and review the diff.
func TestGolden(t *testing.T) {
	for _, dir := range []string{"ok", "bad"} {
		paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) == 0 {
			t.Fatalf("no recipes in testdata/%s", dir)
		}
		for _, path := range paths {
			t.Run(dir+"/"+strings.TrimSuffix(filepath.Base(path), ".yaml"), func(t *testing.T) {
				r, err := Load(path)
				var got string
				if dir == "ok" {
					if err != nil {
						t.Fatalf("Load(%s): %v", path, err)
					}
					got = dump(t, r)
				} else {
					if err == nil {
						t.Fatalf("Load(%s) succeeded, want problems", path)
					}
					var rerr *Error
					if !errors.As(err, &rerr) {
						t.Fatalf("Load(%s) returned %T, want *Error: %v", path, err, err)
					}
					if r != nil {
						t.Errorf("Load(%s) returned a recipe along with its error", path)
					}
					for _, p := range rerr.Problems {
						if p.File != path {
							t.Errorf("problem %q has File %q, want %q", p, p.File, path)
						}
					}
					got = err.Error() + "\n"
				}
				compareGolden(t, strings.TrimSuffix(path, ".yaml")+".golden", got)
			})
		}
	}
}

// dump renders a parsed recipe as the golden text: its YAML, then its hash.
func dump(t *testing.T, r *Recipe) string {
	t.Helper()
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(out) + "# hash: " + r.Hash() + "\n"
}

func compareGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./recipe -run TestGolden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (rerun with -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", golden, got, want)
	}
}
