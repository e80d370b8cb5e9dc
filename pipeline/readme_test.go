package pipeline_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeSnippet checks that README.md's library snippet is the
// program made of Example_library's imports and body, so that the
// snippet a reader copies is the one go test compiles and runs.
func TestReadmeSnippet(t *testing.T) {
	const example = "readme_example_test.go"
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, example, src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	text := func(from, to token.Pos) string {
		return string(src[fset.Position(from).Offset:fset.Position(to).Offset])
	}
	var imports, body string
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.GenDecl:
			if d.Tok == token.IMPORT {
				imports = text(d.Pos(), d.End())
			}
		case *ast.FuncDecl:
			if d.Name.Name == "Example_library" {
				body = text(d.Body.Lbrace+1, d.Body.Rbrace)
			}
		}
	}
	if imports == "" || body == "" {
		t.Fatalf("%s has no import block or no Example_library", example)
	}
	// The expected output is the example's check, not the reader's.
	if i := strings.Index(body, "\t// Output:"); i >= 0 {
		body = body[:i]
	}
	want := "package main\n\n" + imports + "\n\nfunc main() {" + body + "}\n"

	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := snippet(string(readme), "## Using the library")
	if !ok {
		t.Fatal("README.md's \"Using the library\" section has no ```go block")
	}
	if got != want {
		t.Errorf("README.md's library snippet differs from %s (Example_library); make it:\n```go\n%s```", example, want)
	}
}

// snippet returns the first ```go block after heading.
func snippet(doc, heading string) (string, bool) {
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		return "", false
	}
	doc = doc[i:]
	if next := strings.Index(doc[1:], "\n## "); next >= 0 {
		doc = doc[:next+1]
	}
	start := strings.Index(doc, "\n```go\n")
	if start < 0 {
		return "", false
	}
	doc = doc[start+len("\n```go\n"):]
	end := strings.Index(doc, "\n```")
	if end < 0 {
		return "", false
	}
	return doc[:end+1], true
}
