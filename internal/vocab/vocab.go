// Package vocab is what the typed vocabularies of distill share: an
// ordered set of names with its parser, and the ways messages, flags and
// docs spell it. Each vocabulary lives in the package that implements it
// (quantize.Methods, backend.Optimizers, train.Schedules, loss.Adapters,
// …; see docs/architecture.md, "Vocabularies"); this package only keeps
// them from each restating the same few lines.
package vocab

import (
	"fmt"
	"slices"
	"strings"
)

// Set is a vocabulary's values in the order the docs list them, its
// default first.
type Set[T ~string] []T

// Values returns a copy of the values, so that callers cannot change the
// set.
func (s Set[T]) Values() []T { return slices.Clone(s) }

// Parse returns the value named v, or an error that names what the value
// is (e.g. "calibration method") and lists every valid name, prefixed
// with pkg and a colon unless pkg is empty.
func (s Set[T]) Parse(pkg, what, v string) (T, error) {
	if t := T(v); slices.Contains(s, t) {
		return t, nil
	}
	err := fmt.Errorf("unknown %s %q (want one of %s)", what, v, Join(s))
	if pkg != "" {
		err = fmt.Errorf("%s: %w", pkg, err)
	}
	return "", err
}

// Names spells values as strings.
func Names[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// Join spells values for messages and help: "a, b, c".
func Join[T ~string](vs []T) string { return strings.Join(Names(vs), ", ") }

// Quoted spells values as a choice: `"a", "b" or "c"`.
func Quoted[T ~string](vs []T) string {
	var b strings.Builder
	for i, v := range vs {
		switch {
		case i == 0:
		case i == len(vs)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", v)
	}
	return b.String()
}
