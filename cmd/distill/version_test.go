package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionCommit checks that version prints the commit, time and
// dirtiness the go command stamped into the binary.
func TestVersionCommit(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0e59c3d1a2b4c5d6e7f8091a2b3c4d5e6f708192"},
		{Key: "vcs.time", Value: "2026-12-06T19:59:01Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	if got, want := version(bi), "0.1.0-dev (commit 0e59c3d1a2b4, 2026-12-06T19:59:01Z, modified)"; got != want {
		t.Errorf("version: %q, want %q", got, want)
	}
	bi.Main.Version, bi.Settings = "v1.2.3", nil
	if got := version(bi); got != "v1.2.3" {
		t.Errorf("tagged, unstamped build: %q", got)
	}
	if got := version(nil); got == "" {
		t.Error("no build info: empty version")
	}
}

// TestVersionCommitBuilt builds the CLI with VCS stamping and checks that
// `distill version` names HEAD. The go command stamps only a checkout
// whose .git is a directory, not a git worktree's .git file.
func TestVersionCommitBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI")
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git checkout")
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(root)), ".git")); err != nil || !fi.IsDir() {
		t.Skip("a git worktree: the go command does not stamp VCS information there")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "distill")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "(commit " + string(head[:12]); !strings.Contains(string(out), want) {
		t.Errorf("distill version printed %q, want it to contain %q", out, want)
	}
}

// TestGoDirective checks that go.mod's go line asks for no patch release
// above x.y.0, which would force that toolchain on every importer.
func TestGoDirective(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	if !regexp.MustCompile(`^1\.\d+(\.0)?$`).Match(m[1]) {
		t.Errorf("go.mod says go %s: use the language version (go 1.N, or 1.N.0 where a dependency needs it) so importers keep their toolchain", m[1])
	}
}
