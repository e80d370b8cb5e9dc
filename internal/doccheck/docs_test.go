package doccheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The documents a reader follows: every command in them must work when
// pasted in the repository root, and every path they name must exist in
// the repository.
func documents(t *testing.T, root string) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md", "recipes/README.md"}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		out = append(out, filepath.ToSlash(rel))
	}
	return out
}

// repo is the set of files of the repository: tracked, or new and not
// ignored (so that a document and the file it names can be added in one
// commit). Build outputs and run directories are not part of it.
type repo struct {
	root  string
	files map[string]bool // slash paths relative to root
	dirs  map[string]bool
	top   map[string]bool // first path elements
}

func loadRepo(t *testing.T) *repo {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !bytes.Contains(b, []byte("module github.com/distill-dev/distill\n")) {
		t.Fatalf("%s is not the distill module's root (go.mod: %v)", root, err)
	}
	return loadRepoAt(t, root)
}

func loadRepoAt(t *testing.T, root string) *repo {
	t.Helper()
	r := &repo{root: root, files: map[string]bool{}, dirs: map[string]bool{}, top: map[string]bool{}}
	var names []string
	cmd := exec.Command("git", "ls-files", "-co", "--exclude-standard", "-z")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		for _, n := range strings.Split(string(out), "\x00") {
			if n != "" {
				if _, err := os.Lstat(filepath.Join(root, n)); err == nil { // deleted, not yet committed
					names = append(names, n)
				}
			}
		}
	} else {
		// Not a git checkout (an unpacked archive): every file counts
		// except the outputs that .gitignore lists.
		skip := map[string]bool{".git": true, "runs": true, "build": true, "bin": true, "vendor": true, ".gpu": true}
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if e.IsDir() && skip[rel] {
				return filepath.SkipDir
			}
			if !e.IsDir() {
				names = append(names, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		r.files[n] = true
		first, _, _ := strings.Cut(n, "/")
		r.top[first] = true
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			r.dirs[d] = true
		}
	}
	return r
}

func (r *repo) exists(rel string) bool {
	rel = strings.TrimSuffix(path.Clean(rel), "/")
	return r.files[rel] || r.dirs[rel] || rel == "."
}

func parseDocs(t *testing.T, r *repo) map[string]*Doc {
	t.Helper()
	docs := map[string]*Doc{}
	for _, name := range documents(t, r.root) {
		src, err := os.ReadFile(filepath.Join(r.root, name))
		if err != nil {
			t.Fatal(err)
		}
		d, err := Parse(name, src)
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = d
	}
	return docs
}

var placeholder = regexp.MustCompile(`[<>{}*$…\[\]]|\.\.\.|^[A-Z][A-Z0-9_.]*$|/[A-Z][A-Z_]+`)

// pathProblem says what is wrong with a path-like word of a document, read
// from the repository root, or "" when it is not a repository path or
// exists.
func (r *repo) pathProblem(w string) string {
	w = strings.TrimLeft(w, "([\"'")
	w = strings.TrimRight(w, ")]\"',.:;")
	if w == "" || strings.Contains(w, "://") || strings.HasPrefix(w, "/") || strings.HasPrefix(w, "~") {
		return ""
	}
	if w == ".." || strings.HasPrefix(w, "../") {
		return "points outside the repository; name a file in it or describe what the file did"
	}
	if placeholder.MatchString(w) {
		return ""
	}
	w = strings.TrimPrefix(w, "./")
	first, _, _ := strings.Cut(w, "/")
	if !r.top[first] || r.exists(w) {
		return ""
	}
	// A standard library package (runtime/metrics) shares its first
	// element with a package of the repository.
	if st, err := os.Stat(filepath.Join(build.Default.GOROOT, "src", filepath.FromSlash(w))); err == nil && st.IsDir() {
		return ""
	}
	return "does not exist in the repository"
}

// TestDocLinks checks that every relative link of the documents leads to a
// file or directory of the repository.
func TestDocLinks(t *testing.T) {
	r := loadRepo(t)
	for name, d := range parseDocs(t, r) {
		for _, l := range d.Links {
			target, _, _ := strings.Cut(l.Target, "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			rel := path.Join(path.Dir(name), target)
			if rel == ".." || strings.HasPrefix(rel, "../") {
				t.Errorf("%s:%d: link %s points outside the repository", l.File, l.Line, l.Target)
			} else if !r.exists(rel) {
				t.Errorf("%s:%d: link %s: %s does not exist in the repository", l.File, l.Line, l.Target, rel)
			}
		}
	}
}

// TestDocSpansOnOneLine keeps every code span on one line, where the
// parser (and so every other check) sees it.
func TestDocSpansOnOneLine(t *testing.T) {
	r := loadRepo(t)
	for _, d := range parseDocs(t, r) {
		for _, b := range d.Broken {
			t.Errorf("%s:%d: a code span continues on the next line; keep it on one line: %s", b.File, b.Line, b.Target)
		}
	}
}

// TestDocPaths checks the paths written in code spans and in commands:
// none leads outside the repository, and those inside it exist.
func TestDocPaths(t *testing.T) {
	r := loadRepo(t)
	for _, d := range parseDocs(t, r) {
		for _, s := range d.Spans {
			for _, w := range strings.Fields(s.Target) {
				if p := r.pathProblem(w); p != "" {
					t.Errorf("%s:%d: %s %s", s.File, s.Line, w, p)
				}
			}
		}
		for _, c := range d.Commands {
			if c.Inline {
				continue // its words are in the spans above
			}
			for _, w := range append(slices.Clone(c.Env), c.Args...) {
				if _, v, ok := strings.Cut(w, "="); ok && isAssignment(w) {
					w = v
				}
				if p := r.pathProblem(w); p != "" {
					t.Errorf("%s:%d: %s %s", c.File, c.Line, w, p)
				}
			}
		}
	}
}

// TestRecipesListed checks that every shipped recipe is listed in both
// recipe tables (README.md's and recipes/README.md's).
func TestRecipesListed(t *testing.T) {
	r := loadRepo(t)
	readme, err := os.ReadFile(filepath.Join(r.root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	recipes, err := os.ReadFile(filepath.Join(r.root, "recipes", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for f := range r.files {
		if path.Dir(f) != "recipes" || path.Ext(f) != ".yaml" {
			continue
		}
		n++
		base := path.Base(f)
		if !bytes.Contains(readme, []byte("| `recipes/"+base+"` |")) {
			t.Errorf("README.md's recipe table does not list %s", f)
		}
		if !bytes.Contains(recipes, []byte("| [`"+base+"`]("+base+") |")) {
			t.Errorf("recipes/README.md's recipe table does not list %s", f)
		}
	}
	if n == 0 {
		t.Fatal("no recipes/*.yaml found")
	}
}

// checker checks the commands of the documents. Expensive steps (building
// distill and the benchmarks, running them) are skipped with -short.
type checker struct {
	r           *repo
	short       bool
	tmp         string
	distill     string                     // a binary built from ./cmd/distill; "" with -short
	subcommands map[string]bool            // of distill
	flags       map[string]map[string]bool // by program (and distill subcommand): its flags
	built       map[string]string          // outputs of the documented go builds -> where
	ran         int                        // commands run as documented
}

// external programs that documents may use; they are not run.
var external = map[string]bool{
	"apt-get": true, "update-alternatives": true, "export": true, "tar": true, "mkdir": true,
	"cp": true, "python3": true, "nvidia-smi": true,
}

// Flags of go commands that take a value (the next word unless given as -f=v).
var goValueFlags = map[string]bool{
	"-o": true, "-tags": true, "-run": true, "-bench": true, "-benchtime": true, "-count": true,
	"-timeout": true, "-p": true, "-cpu": true, "-coverprofile": true, "-fuzz": true, "-fuzztime": true,
	"-parallel": true, "-skip": true, "-ldflags": true, "-gcflags": true, "-modfile": true, "-mod": true,
	"-C": true, "-exec": true, "-toolexec": true, "-benchmem": false,
}

type goArgs struct {
	flags map[string]string
	pos   []string // packages, or for go run the package and then its arguments
}

func parseGoArgs(args []string, run bool) goArgs {
	g := goArgs{flags: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || (run && len(g.pos) > 0) {
			g.pos = append(g.pos, a)
			continue
		}
		name, val, ok := strings.Cut(a, "=")
		name = "-" + strings.TrimLeft(name, "-")
		if !ok && goValueFlags[name] && i+1 < len(args) {
			i++
			val = args[i]
		}
		g.flags[name] = val
	}
	return g
}

func (c *checker) run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.r.root
	// The workspace and vendor flags that the torch documents set name
	// files that scripts/torch/build.sh generates; the checks build in
	// module mode instead.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if name == "go" && offlineRE.MatchString(out.String()) {
			err = errOffline
		}
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// errOffline marks a go command that needed a module download it could not
// make (gotch, for -tags torch builds, on a machine without network or
// module cache): the command is not wrong, only unchecked here.
var errOffline = errors.New("module download impossible here")

var offlineRE = regexp.MustCompile(`GOPROXY=off|dial tcp|no such host`)

var flagRE = regexp.MustCompile(`(?m)^\s+(?:(-\w), )?(--?[\w-]+)`)

// helpFlags runs a program with --help and returns the flags it lists.
func (c *checker) helpFlags(key string, name string, args ...string) (map[string]bool, error) {
	if f, ok := c.flags[key]; ok {
		return f, nil
	}
	out, err := c.run(context.Background(), nil, name, args...)
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 2 && strings.Contains(out, "Usage")) { // Go's flag package exits 2 on -h
		return nil, err
	}
	f := map[string]bool{}
	for _, m := range flagRE.FindAllStringSubmatch(out, -1) {
		f[m[2]] = true
		if m[1] != "" {
			f[m[1]] = true
		}
		if strings.HasPrefix(m[2], "-") && !strings.HasPrefix(m[2], "--") {
			f["-"+m[2]] = true // Go's flag package takes -x and --x alike
		}
	}
	c.flags[key] = f
	return f, nil
}

// flagName returns the flag of a word such as [--out, --out=DIR or -h, or "".
func flagName(w string) string {
	w = strings.Trim(w, "[]")
	if !strings.HasPrefix(w, "-") || w == "-" || w == "--" {
		return ""
	}
	name, _, _ := strings.Cut(w, "=")
	return name
}

func (c *checker) check(ctx context.Context, cmd Command) error {
	for _, e := range cmd.Env {
		if v, ok := strings.CutPrefix(e, "GOWORK="); ok && v != "off" && !strings.HasSuffix(v, "/build/torch/go.work") {
			return fmt.Errorf("GOWORK=%s: scripts/torch/build.sh writes build/torch/go.work", v)
		}
	}
	prog := cmd.Args[0]
	// In prose, `go build` or `distill validate` names a command rather
	// than giving one to paste: only the command itself is checked.
	mention := cmd.Inline && len(cmd.Args) <= 2
	switch {
	case mention && prog == "go":
		return nil // IsCommand checked the subcommand
	case mention && prog == "distill":
		if len(cmd.Args) == 2 && !c.short && !c.subcommands[cmd.Args[1]] {
			return fmt.Errorf("distill has no command %q", cmd.Args[1])
		}
		return nil
	case prog == "go":
		return c.checkGo(ctx, cmd)
	case prog == "distill" || strings.HasSuffix(prog, "/distill"):
		if prog != "distill" && !strings.HasPrefix(prog, "/") {
			if _, ok := c.built[path.Clean(prog)]; !ok {
				return fmt.Errorf("%s: no documented go build writes this binary (outputs: %v)", prog, c.built)
			}
		}
		return c.checkDistill(ctx, cmd.Args[1:])
	case external[prog]:
		return nil
	}
	script := strings.TrimPrefix(prog, "./")
	if !c.r.files[script] {
		return fmt.Errorf("%s is neither a file of the repository nor a known program (add it to the external list of internal/doccheck if it is one)", prog)
	}
	st, err := os.Stat(filepath.Join(c.r.root, script))
	if err != nil {
		return err
	}
	if st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", script)
	}
	if script == "scripts/torch/build.sh" && !c.short {
		known, err := c.helpFlags(script, "bash", script, "--help")
		if err != nil {
			return err
		}
		for _, a := range cmd.Args[1:] {
			if f := flagName(a); f != "" && !known[f] {
				return fmt.Errorf("%s has no option %s", script, f)
			}
		}
	}
	return nil
}

func (c *checker) goList(ctx context.Context, tags string, pkgs []string) error {
	if len(pkgs) == 0 {
		return nil
	}
	args := []string{"list"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	out, err := c.run(ctx, nil, "go", append(args, pkgs...)...)
	if err != nil {
		return err
	}
	if strings.Contains(out, "matched no packages") {
		return fmt.Errorf("go list %s: %s", strings.Join(pkgs, " "), out)
	}
	return nil
}

// buildOutput is where go build writes its binary, given its -o flag and
// package, in the manner of cmd/go: a directory given to -o (an existing
// one, or a path ending in a slash) receives the binary under the
// package's last element.
func (c *checker) buildOutput(o, pkg string) string {
	elem := path.Base(pkg)
	if o == "" {
		return elem
	}
	st, err := os.Stat(filepath.Join(c.r.root, o))
	if strings.HasSuffix(o, "/") || (err == nil && st.IsDir()) {
		return path.Join(o, elem)
	}
	return path.Clean(o)
}

// collectBuilds records the binaries the documented go builds write, so
// that documented commands that run ./distill or bin/distill can be
// checked against them.
func (c *checker) collectBuilds(docs map[string]*Doc) {
	for _, d := range docs {
		for _, cmd := range d.Commands {
			if len(cmd.Args) < 2 || cmd.Args[0] != "go" || cmd.Args[1] != "build" {
				continue
			}
			g := parseGoArgs(cmd.Args[2:], false)
			if len(g.pos) == 1 {
				c.built[c.buildOutput(g.flags["-o"], g.pos[0])] = fmt.Sprintf("%s:%d", cmd.File, cmd.Line)
			}
		}
	}
}

func (c *checker) checkGo(ctx context.Context, cmd Command) error {
	if len(cmd.Args) < 2 {
		return errors.New("go without a subcommand")
	}
	sub, rest := cmd.Args[1], cmd.Args[2:]
	switch sub {
	case "build":
		g := parseGoArgs(rest, false)
		if len(g.pos) == 0 {
			return errors.New("go build without a package builds the repository root, which has no Go files: name the package (./cmd/distill)")
		}
		if _, err := c.run(ctx, nil, "go", append([]string{"build", "-n"}, rest...)...); err != nil {
			return err
		}
		if len(g.pos) == 1 {
			out := c.buildOutput(g.flags["-o"], g.pos[0])
			if strings.HasPrefix(out, "/") || strings.HasPrefix(out, "../") {
				return nil
			}
			if c.r.dirs[path.Dir(out)] {
				return fmt.Errorf("go build writes its binary to %s, inside the source directory %s: write it to a git-ignored directory such as bin/", out, path.Dir(out))
			}
			if c.r.files[out] {
				return fmt.Errorf("go build overwrites the repository's file %s", out)
			}
		}
		return nil
	case "run":
		g := parseGoArgs(rest, true)
		if len(g.pos) == 0 {
			return errors.New("go run without a package")
		}
		pkg, args := g.pos[0], g.pos[1:]
		if err := c.goList(ctx, g.flags["-tags"], []string{pkg}); err != nil {
			return err
		}
		if path.Clean(pkg) == "cmd/distill" {
			return c.checkDistill(ctx, args)
		}
		var flags []string
		for _, a := range args {
			if f := flagName(a); f != "" {
				flags = append(flags, f)
			}
		}
		if len(flags) == 0 || c.short {
			return nil
		}
		bin := filepath.Join(c.tmp, strings.ReplaceAll(path.Clean(pkg), "/", "_"))
		if _, err := os.Stat(bin); err != nil {
			if _, err := c.run(ctx, nil, "go", "build", "-o", bin, pkg); err != nil {
				return err
			}
		}
		known, err := c.helpFlags(pkg, bin, "-h")
		if err != nil {
			return err
		}
		for _, f := range flags {
			if !known[f] {
				return fmt.Errorf("%s has no flag %s", pkg, f)
			}
		}
		return nil
	case "test", "vet", "list", "generate", "doc", "install":
		g := parseGoArgs(rest, false)
		var pkgs []string
		for _, p := range g.pos {
			if strings.HasPrefix(p, ".") {
				pkgs = append(pkgs, p)
			}
		}
		return c.goList(ctx, g.flags["-tags"], pkgs)
	case "mod", "env", "tool":
		return nil // they change the module cache or the tree, or need the network: not run
	}
	return fmt.Errorf("go %s: not a command the documents are expected to use", sub)
}

// checkDistill checks distill's arguments: the subcommand and the flags
// exist, the recipe files exist, and the cheap subcommands succeed.
func (c *checker) checkDistill(ctx context.Context, args []string) error {
	sub, concrete := "", true
	for _, a := range args {
		if flagName(a) != "" {
			continue
		}
		if sub == "" {
			sub = a
		}
		if placeholder.MatchString(a) {
			concrete = false
		}
		if strings.HasPrefix(a, "recipes/") && !c.r.files[a] {
			return fmt.Errorf("recipe %s does not exist", a)
		}
	}
	if c.short {
		return nil
	}
	if sub != "" && !c.subcommands[sub] {
		return fmt.Errorf("distill has no command %q", sub)
	}
	known, err := c.helpFlags("distill "+sub, c.distill, strings.Fields(sub+" --help")...)
	if err != nil {
		return err
	}
	help := false
	for _, a := range args {
		if f := flagName(a); f != "" {
			if !known[f] {
				return fmt.Errorf("distill %s has no flag %s", sub, f)
			}
			help = help || f == "-h" || f == "--help"
		}
	}
	cheap := help || sub == "" || sub == "validate" || sub == "version" || sub == "help"
	if cheap && concrete {
		c.ran++
		_, err := c.run(ctx, nil, c.distill, args...)
		return err
	}
	return nil
}

var subRE = regexp.MustCompile(`(?m)^  (\w+)\s{2,}`)

// TestDocCommands checks every command of the documents: go builds resolve
// their packages and write their binary where the documents then run it;
// packages of go test/vet/run exist; distill's subcommands and flags exist
// and its recipes too; the repository's scripts exist, are executable and
// take the options used. Cheap commands (distill validate, version and
// --help) are run. With -short nothing is built or run but go build -n and
// go list.
func TestDocCommands(t *testing.T) {
	r := loadRepo(t)
	docs := parseDocs(t, r)
	c := &checker{r: r, short: testing.Short(), tmp: t.TempDir(), flags: map[string]map[string]bool{}, built: map[string]string{}}
	c.collectBuilds(docs)
	ctx := context.Background()
	if !c.short {
		c.distill = filepath.Join(c.tmp, "distill")
		if _, err := c.run(ctx, nil, "go", "build", "-o", c.distill, "./cmd/distill"); err != nil {
			t.Fatal(err)
		}
		out, err := c.run(ctx, nil, c.distill, "--help")
		if err != nil {
			t.Fatal(err)
		}
		c.subcommands = map[string]bool{}
		for _, m := range subRE.FindAllStringSubmatch(out, -1) {
			c.subcommands[m[1]] = true
		}
		if !c.subcommands["run"] {
			t.Fatalf("distill --help lists no run command:\n%s", out)
		}
	}
	names := make([]string, 0, len(docs))
	for name := range docs {
		names = append(names, name)
	}
	slices.Sort(names)
	n := 0
	for _, name := range names {
		for _, cmd := range docs[name].Commands {
			n++
			if err := c.check(ctx, cmd); errors.Is(err, errOffline) {
				t.Logf("%s:%d: %s: not checked: %v", cmd.File, cmd.Line, cmd.Text, err)
			} else if err != nil {
				t.Errorf("%s:%d: %s\n\t%v", cmd.File, cmd.Line, cmd.Text, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("the documents have no commands")
	}
	t.Logf("%d commands checked, %d of them run", n, c.ran)
}

// TestBuildScriptCommands checks the commands that scripts/torch/build.sh
// prints when it is done (its print_usage function, run on its own with
// the variables the script would have set), as if they were documented.
func TestBuildScriptCommands(t *testing.T) {
	r := loadRepo(t)
	c := &checker{r: r, short: true, tmp: t.TempDir(), flags: map[string]map[string]bool{}, built: map[string]string{}}
	for _, vendor := range []string{"0", "1"} {
		script := `eval "$(sed -n '/^print_usage()/,/^}/p' scripts/torch/build.sh)" && print_usage`
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = r.root
		cmd.Env = append(os.Environ(), "VERSION=1.13.1", "KIND=debian", "LIBDIR=/usr/lib", "ABI=1", "CUDA=0",
			"BUILD="+filepath.Join(r.root, "build", "torch"), "SYSLIB=1", "VENDOR="+vendor, "ROOT="+r.root)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("print_usage of scripts/torch/build.sh (VENDOR=%s): %v\n%s", vendor, err, out)
		}
		var doc strings.Builder
		doc.WriteString("```sh\n")
		n := 0
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "  ") {
				doc.WriteString(strings.TrimSpace(line) + "\n")
				n++
			}
		}
		doc.WriteString("```\n")
		if n == 0 {
			t.Fatalf("scripts/torch/build.sh (VENDOR=%s) prints no commands:\n%s", vendor, out)
		}
		d, err := Parse("build.sh output", []byte(doc.String()))
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range d.Commands {
			if err := c.check(context.Background(), cmd); err != nil {
				t.Errorf("scripts/torch/build.sh (VENDOR=%s) prints %s\n\t%v", vendor, cmd.Text, err)
			}
		}
	}
}
