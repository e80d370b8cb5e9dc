package recipe

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/internal/vocab"
	"github.com/distill-dev/distill/quantize"
	"github.com/distill-dev/distill/train"
)

// vocabulary is an enumerated recipe key as recipes/README.md documents
// it: the row of key in the reference table under heading, with the
// values validation accepts, and the default the annotated recipe marks
// ("" where the key has no line there).
type vocabulary struct {
	heading, key string
	values       []string
	def          string
}

// vocabularies are the enumerated keys, with the sets validation uses:
// most of them another package's own (backend.Known(),
// quantize.Methods(), …).
func vocabularies() []vocabulary {
	return []vocabulary{
		{"### Top level", "backend", backends, DefaultBackend},
		{"### Top level", "precision", precisions, DefaultPrecision},
		{"### data", "dataset", datasets, DefaultDataset},
		{"### training", "optimizer", optimizers, string(DefaultOptimizer)},
		{"### training.schedule", "kind", schedules, string(DefaultSchedule)},
		{"### transfer", "dtype", dtypes, "float32"},
		{"### model", "type", modelTypes, ""},
		{"### model", "activation", activations, ""},
		{"### model.stem and model.stages[]", "block", blockKinds, ""},
		{"### model.nodes[]", "kind", nodeKinds, ""},
		{"### quantize", "method", methods, string(DefaultMethod)},
		{"### students[].distill.hints and .attention", "distance", distances, ""},
		{"### students[].distill.hints and .attention", "adapter", adapters, ""},
	}
}

var (
	backticked = regexp.MustCompile("`([^`]*)`")
	// aside is a parenthesised remark in the Allowed column, whose
	// backticked words are other keys, not values.
	aside = regexp.MustCompile(`\([^()]*\)`)
	// annotated is a line of the annotated recipe that lists a key's
	// values: "  method: entropy   # entropy (default) | minmax | …".
	annotated = regexp.MustCompile(`^\s*([a-z_]+): \S+\s+# (.*\(default\).*\|.*)$`)
)

// TestReadmeVocabularies checks that recipes/README.md lists, for each
// enumerated key, exactly the values validation accepts, in order, in
// its reference table and in the annotated recipe (with the right one
// marked default there; TestReadmeDefaults checks the tables' defaults),
// so that a value added to a package's set cannot go undocumented.
func TestReadmeVocabularies(t *testing.T) {
	annotatedLines := readmeSection(t, "## A complete, annotated recipe")
	for _, v := range vocabularies() {
		var row string
		for _, l := range readmeSection(t, v.heading) {
			if strings.HasPrefix(l, "| `"+v.key+"` |") {
				row = l
			}
		}
		cols := strings.Split(row, "|")
		if len(cols) != 6 {
			t.Errorf("%s: no table row for %s", v.heading, v.key)
			continue
		}
		if got := backtickedWords(aside.ReplaceAllString(cols[4], "")); !slices.Equal(got, v.values) {
			t.Errorf("%s: %s: the table allows %q, validation %q", v.heading, v.key, got, v.values)
		}
		if v.def == "" {
			continue
		}
		seen := false
		for _, l := range annotatedLines {
			m := annotated.FindStringSubmatch(l)
			if m == nil || m[1] != v.key {
				continue
			}
			seen = true
			var got []string
			def := ""
			for _, alt := range strings.Split(m[2], "|") {
				words := strings.Fields(alt)
				if len(words) == 0 {
					continue
				}
				got = append(got, words[0])
				if strings.Contains(alt, "(default)") {
					def = words[0]
				}
			}
			if !slices.Equal(got, v.values) || def != v.def {
				t.Errorf("annotated recipe: %s lists %q with default %q, validation %q with default %q", v.key, got, def, v.values, v.def)
			}
		}
		if !seen {
			t.Errorf("annotated recipe: no line lists the values of %s", v.key)
		}
	}
}

// backtickedWords returns the `quoted` words of s, in order.
func backtickedWords(s string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestEnumProblemsListPackageSets: a recipe naming a value outside a
// vocabulary is told the owning package's set, so that a value added to
// quantize.Methods() (say) is accepted by recipes without a second edit.
func TestEnumProblemsListPackageSets(t *testing.T) {
	for _, c := range []struct {
		yaml, key string
		want      []string
	}{
		{"backend: tensorflow\n", "backend", backend.Known()},
		{"training: {optimizer: rmsprop}\n", "training.optimizer", vocab.Names(backend.Optimizers())},
		{"training: {schedule: {kind: linear}}\n", "training.schedule.kind", vocab.Names(train.Schedules())},
		{"quantize: {method: median}\n", "quantize.method", vocab.Names(quantize.Methods())},
	} {
		_, err := Parse([]byte(c.yaml+base), "test.yaml")
		if err == nil {
			t.Fatalf("%q accepted", c.yaml)
		}
		found := false
		for _, p := range problemsOf(t, err) {
			if p.Key == c.key {
				found = true
				if want := "must be one of " + strings.Join(c.want, ", "); !strings.Contains(p.Message, want) {
					t.Errorf("%s: %q, want it to say %q", c.key, p.Message, want)
				}
			}
		}
		if !found {
			t.Errorf("%q: no problem at %s in %v", c.yaml, c.key, err)
		}
	}
}
