// Package doccheck reads the repository's Markdown documents and extracts
// what a reader would paste or follow: the shell commands of fenced sh/bash
// blocks and of inline code spans that start a command, the relative links,
// and the file paths written in code spans. The package's tests
// (docs_test.go) check each of them against the repository: commands build,
// resolve or run, and paths exist inside the repository.
package doccheck

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Command is one simple shell command from a document.
type Command struct {
	File   string   // the document, as given to Parse
	Line   int      // 1-based line where the command starts
	Inline bool     // from an inline code span rather than a fenced block
	Env    []string // leading NAME=value assignments
	Args   []string // the words after the assignments, quotes removed
	Text   string   // the source text, for messages
}

// Ref is a link target or a path-like word from a document.
type Ref struct {
	File   string
	Line   int
	Target string
}

// Doc is what Parse extracts from one document.
type Doc struct {
	Commands []Command
	Links    []Ref // targets of [text](target) links, anchors and URLs included
	Spans    []Ref // inline code spans outside fenced blocks, verbatim
	// Lines with a backtick that opens no span on that line: a span broken
	// across lines, which the checks would not see.
	Broken []Ref
}

// shellLangs are the info strings of fenced blocks whose lines are commands.
var shellLangs = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}

var linkRE = regexp.MustCompile(`\]\(([^()\s]+)(?:\s+"[^"]*")?\)`)

// Parse extracts the commands, links and code spans of the Markdown
// document src; file names the document in the results.
func Parse(file string, src []byte) (*Doc, error) {
	d := &Doc{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var (
		fence     string // the open fence's marker, "" outside a block
		shell     bool   // the open block holds shell commands
		pending   string // a shell line continued with a backslash
		pendingAt int
	)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " \t")
		if fence == "" {
			if m := fenceMarker(trimmed); m != "" {
				fence = m
				lang, _, _ := strings.Cut(strings.TrimSpace(strings.TrimLeft(trimmed, m[:1])), " ")
				shell = shellLangs[strings.ToLower(lang)]
				continue
			}
			for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
				d.Links = append(d.Links, Ref{File: file, Line: n, Target: m[1]})
			}
			spans, broken := codeSpans(line)
			if broken {
				d.Broken = append(d.Broken, Ref{File: file, Line: n, Target: line})
			}
			for _, span := range spans {
				if strings.HasPrefix(trimmed, "|") {
					span = strings.ReplaceAll(span, `\|`, "|") // GFM tables escape pipes in code
				}
				d.Spans = append(d.Spans, Ref{File: file, Line: n, Target: span})
				// Most spans are not shell (identifiers, formulas): only
				// those that start like a command are split into words.
				fields := strings.Fields(span)
				for len(fields) > 0 && isAssignment(fields[0]) {
					fields = fields[1:]
				}
				if !IsCommand(fields) {
					continue
				}
				cmds, err := commands(file, n, span, true)
				if err != nil {
					return nil, err
				}
				d.Commands = append(d.Commands, cmds...)
			}
			continue
		}
		if strings.HasPrefix(trimmed, fence) && strings.TrimSpace(strings.TrimLeft(trimmed, fence[:1])) == "" {
			if pending != "" {
				return nil, fmt.Errorf("%s:%d: shell line ends in a backslash at the end of its block", file, pendingAt)
			}
			fence, shell = "", false
			continue
		}
		if !shell {
			continue
		}
		if pending == "" {
			pendingAt = n
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		text := pending + line
		pending = ""
		cmds, err := commands(file, pendingAt, text, false)
		if err != nil {
			return nil, err
		}
		d.Commands = append(d.Commands, cmds...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if fence != "" {
		return nil, fmt.Errorf("%s: a fenced block is never closed", file)
	}
	return d, nil
}

// fenceMarker returns the run of backticks or tildes (at least three) that
// opens a fenced block, or "".
func fenceMarker(s string) string {
	for _, c := range []string{"`", "~"} {
		i := 0
		for i < len(s) && s[i] == c[0] {
			i++
		}
		if i >= 3 {
			return s[:i]
		}
	}
	return ""
}

// codeSpans returns the contents of the inline code spans of one line, and
// whether a run of backticks is left unclosed.
func codeSpans(line string) (spans []string, broken bool) {
	for i := 0; i < len(line); {
		if line[i] != '`' {
			i++
			continue
		}
		j := i
		for j < len(line) && line[j] == '`' {
			j++
		}
		tick := line[i:j]
		end := -1
		for k := j; k < len(line); {
			p := strings.Index(line[k:], tick)
			if p < 0 {
				break
			}
			p += k
			q := p + len(tick)
			if q < len(line) && line[q] == '`' { // a longer run: not the closer
				for q < len(line) && line[q] == '`' {
					q++
				}
				k = q
				continue
			}
			end = p
			break
		}
		if end < 0 {
			broken = true
			i = j
			continue
		}
		spans = append(spans, strings.TrimSpace(line[j:end]))
		i = end + len(tick)
	}
	return spans, broken
}

// commands splits text into simple commands and their leading assignments.
func commands(file string, line int, text string, inline bool) ([]Command, error) {
	simple, err := Words(text)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: %w", file, line, err)
	}
	var out []Command
	for _, words := range simple {
		c := Command{File: file, Line: line, Inline: inline, Text: strings.TrimSpace(text)}
		i := 0
		for i < len(words) && isAssignment(words[i]) {
			i++
		}
		c.Env, c.Args = words[:i], words[i:]
		if len(c.Args) > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

var assignRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func isAssignment(w string) bool { return assignRE.MatchString(w) }

// goSubcommands are the go commands an inline span may start with to count
// as a command (a span such as `go.mod` or `go` alone is not one).
var goSubcommands = map[string]bool{
	"build": true, "run": true, "test": true, "vet": true, "doc": true, "generate": true,
	"install": true, "list": true, "mod": true, "env": true, "tool": true,
}

// IsCommand reports whether the words of an inline code span are a command
// to check: a go subcommand, distill, or a script of the repository.
func IsCommand(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch p := args[0]; {
	case p == "go":
		return len(args) > 1 && goSubcommands[args[1]]
	case p == "distill" || strings.HasSuffix(p, "/distill"):
		return true
	case strings.HasSuffix(p, "/"): // a directory, as in a list of the tree's folders
		return false
	case strings.HasPrefix(p, "scripts/"), strings.HasPrefix(p, ".ci/"), strings.HasPrefix(p, "./scripts/"):
		return true
	case strings.HasSuffix(p, ".sh") && strings.Contains(p, "/"):
		return true
	}
	return false
}

// Words splits one line of POSIX shell into simple commands (separated by
// ;, &, &&, || and |), each a list of words with quotes and backslashes
// removed. A # at the start of a word starts a comment. $(...), ${...} and
// backquoted substitutions stay verbatim inside their word. The target of a
// redirection (>, >>, <, 2>&1) is dropped. It covers the shell that
// documentation uses, not the whole language: here-documents and control
// structures are an error.
func Words(line string) ([][]string, error) {
	var (
		out    [][]string
		cur    []string
		word   strings.Builder
		inWord bool
		redir  bool // the next word is a redirection target
	)
	endWord := func() {
		if !inWord {
			return
		}
		if redir {
			redir = false
		} else {
			cur = append(cur, word.String())
		}
		word.Reset()
		inWord = false
	}
	endCmd := func() {
		endWord()
		if len(cur) > 0 {
			out = append(out, cur)
		}
		cur = nil
	}
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == '\\':
			if i+1 < len(rs) {
				i++
				word.WriteRune(rs[i])
			}
			inWord = true
		case c == '\'':
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j == len(rs) {
				return nil, fmt.Errorf("unterminated ' in %q", line)
			}
			word.WriteString(string(rs[i+1 : j]))
			inWord = true
			i = j
		case c == '"':
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				if rs[j] == '\\' && j+1 < len(rs) && strings.ContainsRune(`"\$`+"`", rs[j+1]) {
					j++
					word.WriteRune(rs[j])
					continue
				}
				if rs[j] == '$' && j+1 < len(rs) && rs[j+1] == '(' {
					k, err := closeSubst(rs, j+1)
					if err != nil {
						return nil, fmt.Errorf("%w in %q", err, line)
					}
					word.WriteString(string(rs[j : k+1]))
					j = k
					continue
				}
				word.WriteRune(rs[j])
			}
			if j == len(rs) {
				return nil, fmt.Errorf(`unterminated " in %q`, line)
			}
			inWord = true
			i = j
		case c == '$' && i+1 < len(rs) && (rs[i+1] == '(' || rs[i+1] == '{'):
			k, err := closeSubst(rs, i+1)
			if err != nil {
				return nil, fmt.Errorf("%w in %q", err, line)
			}
			word.WriteString(string(rs[i : k+1]))
			inWord = true
			i = k
		case c == '#' && !inWord:
			endCmd()
			return out, nil
		case c == ' ' || c == '\t':
			endWord()
		case c == ';' || c == '|' || c == '&':
			endCmd()
			for i+1 < len(rs) && (rs[i+1] == '|' || rs[i+1] == '&') {
				i++
			}
		case c == '>' || c == '<':
			if c == '<' && i+1 < len(rs) && rs[i+1] == '<' {
				return nil, fmt.Errorf("here-documents are not supported in %q", line)
			}
			if inWord && isDigits(word.String()) { // 2>file: the 2 is a file descriptor
				word.Reset()
				inWord = false
			}
			endWord()
			for i+1 < len(rs) && rs[i+1] == '>' {
				i++
			}
			if i+1 < len(rs) && rs[i+1] == '&' { // 2>&1: a descriptor, not a file
				i++
				for i+1 < len(rs) && rs[i+1] >= '0' && rs[i+1] <= '9' {
					i++
				}
				continue
			}
			redir = true
		case c == '(' || c == ')':
			return nil, fmt.Errorf("subshells are not supported in %q", line)
		default:
			word.WriteRune(c)
			inWord = true
		}
	}
	endCmd()
	if redir {
		return nil, fmt.Errorf("redirection without a target in %q", line)
	}
	return out, nil
}

// closeSubst returns the index of the bracket that closes the one at open.
func closeSubst(rs []rune, open int) (int, error) {
	o, cl := rs[open], map[rune]rune{'(': ')', '{': '}'}[rs[open]]
	depth := 0
	for k := open; k < len(rs); k++ {
		switch rs[k] {
		case o:
			depth++
		case cl:
			depth--
			if depth == 0 {
				return k, nil
			}
		}
	}
	return 0, fmt.Errorf("unterminated $%c", o)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
