package doccheck

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [][]string
	}{
		{`go build ./cmd/distill`, [][]string{{"go", "build", "./cmd/distill"}}},
		{`GOWORK=$PWD/build/torch/go.work go test -tags torch ./...`, [][]string{{"GOWORK=$PWD/build/torch/go.work", "go", "test", "-tags", "torch", "./..."}}},
		{`GOFLAGS='-mod=mod -modfile=x' go build   # a comment`, [][]string{{"GOFLAGS=-mod=mod -modfile=x", "go", "build"}}},
		{`a && b; c | d || e & f`, [][]string{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}, {"f"}}},
		{`tar cJf x.tar.xz -C "$(go env GOROOT)" .`, [][]string{{"tar", "cJf", "x.tar.xz", "-C", "$(go env GOROOT)", "."}}},
		{`echo $(a b) ${X:-y} "q\"uote"`, [][]string{{"echo", "$(a b)", "${X:-y}", `q"uote`}}},
		{`run >out.log 2>&1`, [][]string{{"run"}}},
		{`run 2> err.log x`, [][]string{{"run", "x"}}},
		{`a\ b c#d`, [][]string{{"a b", "c#d"}}},
		{`# only a comment`, nil},
	} {
		got, err := Words(tc.in)
		if err != nil {
			t.Errorf("Words(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Words(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`echo 'open`, `echo "open`, `cat <<EOF`, `(cd x && y)`, `echo >`, `echo $(a`} {
		if _, err := Words(bad); err == nil {
			t.Errorf("Words(%q): no error", bad)
		}
	}
}

func TestParse(t *testing.T) {
	src := "# Title\n" +
		"Build with `go build -o bin/distill ./cmd/distill`, see [torch](docs/torch.md#build) and `recipes/x.yaml`.\n" +
		"Not commands: `go.mod`, `distill.Run(ctx, r, o)`, `α·T²·KL + (1−α)·CE`, `scripts/`.\n" +
		"\n" +
		"```sh\n" +
		"apt-get install -y g++ \\\n" +
		"  libtorch-dev     # the comment\n" +
		"OMP_WAIT_POLICY=PASSIVE bin/distill run recipes/mnist-quick.yaml && echo ok\n" +
		"```\n" +
		"\n" +
		"```yaml\n" +
		"name: `go build ./not-a-command`\n" +
		"```\n" +
		"| a | `x \\| y` |\n"
	d, err := Parse("doc.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range d.Commands {
		got = append(got, strings.Join(append(append([]string{}, c.Env...), c.Args...), " ")+" @"+string(rune('0'+c.Line)))
	}
	want := []string{
		"go build -o bin/distill ./cmd/distill @2",
		"apt-get install -y g++ libtorch-dev @6",
		"OMP_WAIT_POLICY=PASSIVE bin/distill run recipes/mnist-quick.yaml @8",
		"echo ok @8",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("commands:\n got %q\nwant %q", got, want)
	}
	if len(d.Links) != 1 || d.Links[0].Target != "docs/torch.md#build" || d.Links[0].Line != 2 {
		t.Errorf("links = %+v", d.Links)
	}
	var spans []string
	for _, s := range d.Spans {
		spans = append(spans, s.Target)
	}
	wantSpans := []string{"go build -o bin/distill ./cmd/distill", "recipes/x.yaml", "go.mod", "distill.Run(ctx, r, o)", "α·T²·KL + (1−α)·CE", "scripts/", "x | y"}
	if !reflect.DeepEqual(spans, wantSpans) {
		t.Errorf("spans:\n got %q\nwant %q", spans, wantSpans)
	}
	if len(d.Broken) != 0 {
		t.Errorf("broken spans in a document without any: %+v", d.Broken)
	}
	b, err := Parse("doc.md", []byte("run `go build\n./cmd/distill` here\n"))
	if err != nil || len(b.Broken) != 2 || b.Broken[0].Line != 1 {
		t.Errorf("a span across lines: broken %+v, %v", b.Broken, err)
	}
	if _, err := Parse("doc.md", []byte("```sh\ngo build \\\n```\n")); err == nil {
		t.Error("a continuation line at the end of a block: no error")
	}
	if _, err := Parse("doc.md", []byte("```sh\ngo build\n")); err == nil {
		t.Error("an unclosed block: no error")
	}
}

// A fake module with the layout that broke the documented build: a
// top-level package directory named like the binary.
func fakeRepo(t *testing.T) *repo {
	t.Helper()
	root := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":              "module example.com/fake\n\ngo 1.22\n",
		"distill/distill.go":  "package distill\n",
		"cmd/distill/main.go": "package main\n\nfunc main() {}\n",
		"scripts/tool.sh":     "#!/bin/sh\n",
		"scripts/plain.sh":    "#!/bin/sh\n",
		"recipes/quick.yaml":  "name: quick\n",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if name == "scripts/tool.sh" {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	return loadRepoAt(t, root)
}

func TestCheckerCommands(t *testing.T) {
	r := fakeRepo(t)
	for _, tc := range []struct {
		doc     string
		wantErr string // "" for none
	}{
		// The command the documents carried: the binary collides with the
		// distill/ package directory, or lands inside it.
		{"`go build -tags torch ./cmd/distill`", `build output "distill" already exists and is a directory`},
		{"`go build -o distill ./cmd/distill`", "inside the source directory distill"},
		{"`go build -o bin/distill ./cmd/distill`", ""},
		{"`go build -tags torch`", "without a package"},
		{"`go build ./cmd/nothing`", "exit status"},
		{"`go test ./...`", ""},
		{"`go vet ./nothing/...`", "./nothing/"},
		{"`go run ./cmd/distill validate recipes/quick.yaml`", ""},
		{"`go run ./cmd/distill run recipes/missing.yaml`", "recipe recipes/missing.yaml does not exist"},
		{"`bin/distill version --help`", "no documented go build writes this binary"},
		{"`./distill run recipes/quick.yaml`", "no documented go build writes this binary"},
		{"`GOWORK=/elsewhere/go.work go test ./...`", "build/torch/go.work"},
		{"`scripts/tool.sh --flag`", ""},
		{"`scripts/plain.sh`", "not executable"},
		{"`scripts/missing.sh`", "neither a file of the repository"},
		{"```sh\nfrobnicate --all\n```", "neither a file of the repository nor a known program"},
		{"```sh\napt-get install -y libtorch-dev\n```", ""},
		// Prose naming a command, not one to paste.
		{"`go build`", ""},
		{"`distill validate`", ""},
	} {
		d, err := Parse("doc.md", []byte(tc.doc+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Commands) != 1 {
			t.Fatalf("%s: %d commands", tc.doc, len(d.Commands))
		}
		c := &checker{r: r, short: true, tmp: t.TempDir(), flags: map[string]map[string]bool{}, built: map[string]string{}}
		err = c.check(context.Background(), d.Commands[0])
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.doc, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tc.doc, err, tc.wantErr)
		}
	}
}

func TestCheckerBuiltBinary(t *testing.T) {
	r := fakeRepo(t)
	d, err := Parse("doc.md", []byte("```sh\ngo build -o bin/distill ./cmd/distill\nbin/distill run recipes/quick.yaml\n./distill run recipes/quick.yaml\n```\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := &checker{r: r, short: true, tmp: t.TempDir(), flags: map[string]map[string]bool{}, built: map[string]string{}}
	c.collectBuilds(map[string]*Doc{"doc.md": d})
	if err := c.check(context.Background(), d.Commands[1]); err != nil {
		t.Errorf("bin/distill after go build -o bin/distill: %v", err)
	}
	if err := c.check(context.Background(), d.Commands[2]); err == nil {
		t.Error("./distill after go build -o bin/distill: no error")
	}
}

func TestPathProblem(t *testing.T) {
	r := fakeRepo(t)
	for w, want := range map[string]string{
		"../shared/ref/torch/train_bench.py": "outside the repository",
		"recipes/quick.yaml":                 "",
		"recipes/quick.yaml,":                "",
		"./cmd/distill":                      "",
		"recipes/gone.yaml":                  "does not exist",
		"runs/mnist-quick/report.json":       "", // an output, not a repository path
		"recipes/<name>.yaml":                "",
		"/usr/include/torch":                 "",
		"https://example.com/a/b":            "",
		"cmd/RUN_DIR":                        "",
	} {
		got := r.pathProblem(w)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("pathProblem(%q) = %q, want %q", w, got, want)
		}
	}
}
