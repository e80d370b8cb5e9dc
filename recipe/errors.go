package recipe

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a recipe.
type Problem struct {
	// File is the recipe's file name as given to Parse or Load, also on
	// the problems CheckFiles and CheckResources find in a recipe that
	// Parse returned; empty for Validate and for Parse without a file
	// name.
	File string
	// Line and Column (1-based) locate the offending key, or the value
	// itself when it has the wrong type; a key that is missing is located
	// at its parent. 0 when unknown: Validate, a missing top-level key,
	// and Column for YAML syntax errors.
	Line, Column int
	// Key is the dotted path of the offending key, such as
	// "students[1].distill.temperature"; empty for problems with the
	// document as a whole.
	Key string
	// Message says what is wrong and, where it can, what to write instead.
	Message string

	// whole marks a problem about the key's whole subtree (a model that
	// does not fit its input), dropped when part of the subtree already
	// failed to decode.
	whole bool
}

// String formats the problem as "file:line:col: key: message", leaving
// out the parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	loc := p.File
	if p.Line > 0 {
		if loc != "" {
			loc += ":"
		}
		loc += strconv.Itoa(p.Line)
		if p.Column > 0 {
			loc += ":" + strconv.Itoa(p.Column)
		}
	}
	if loc != "" {
		b.WriteString(loc)
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error reports every problem found in a recipe at once. Parse, Load and
// Validate return it as an error; use errors.As to reach the problems.
type Error struct {
	Problems []Problem
}

// Error returns one problem per line, in file order.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// newError sorts problems into file order (those without a line last,
// in the order found) and wraps them; nil when there are none.
func newError(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	ps = slices.Clone(ps)
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &Error{Problems: ps}
}

// newError is newError of ps, with r's file name on every problem.
func (r *Recipe) newError(ps []Problem) error {
	for i := range ps {
		ps[i].File = r.file
	}
	return newError(ps)
}

// problems collects problems, dropping exact duplicates (an invalid
// top-level value inherited by several students is reported once).
type problems struct {
	list []Problem
	seen map[string]bool
}

func (ps *problems) add(key, format string, args ...any) {
	ps.addProblem(Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

func (ps *problems) addProblem(p Problem) {
	// A problem is one line: errors joined from other packages
	// (errors.Join) become "; "-separated.
	p.Message = strings.ReplaceAll(p.Message, "\n", "; ")
	id := p.Key + "\x00" + p.Message
	if ps.seen[id] {
		return
	}
	if ps.seen == nil {
		ps.seen = map[string]bool{}
	}
	ps.seen[id] = true
	ps.list = append(ps.list, p)
}
