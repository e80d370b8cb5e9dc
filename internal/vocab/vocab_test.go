package vocab_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/internal/vocab"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/quantize"
	"github.com/distill-dev/distill/train"
)

type color string

func TestSet(t *testing.T) {
	s := vocab.Set[color]{"red", "green", "blue"}
	if c, err := s.Parse("", "color", "green"); err != nil || c != "green" {
		t.Errorf("Parse(green) = %q, %v", c, err)
	}
	_, err := s.Parse("", "color", "Red")
	if want := `unknown color "Red" (want one of red, green, blue)`; err == nil || err.Error() != want {
		t.Errorf("Parse(Red) = %v, want %s", err, want)
	}
	v := s.Values()
	v[0] = "black"
	if s[0] != "red" {
		t.Error("Values returned the set itself")
	}
	if got, want := vocab.Quoted(s), `"red", "green" or "blue"`; got != want {
		t.Errorf("Quoted = %s, want %s", got, want)
	}
	if got, want := vocab.Quoted(s[:1]), `"red"`; got != want {
		t.Errorf("Quoted of one = %s, want %s", got, want)
	}
	if got := vocab.Join(s); got != "red, green, blue" {
		t.Errorf("Join = %s", got)
	}
}

// vocabulary is one of the project's sets, seen as strings.
type vocabulary struct {
	name   string
	values []string
	def    string // "" when the set has no default
	parse  func(string) error
}

func of[T ~string](name string, vs []T, def T, parse func(string) (T, error)) vocabulary {
	v := vocabulary{name: name, values: vocab.Names(vs), def: string(def)}
	if parse != nil {
		v.parse = func(s string) error { _, err := parse(s); return err }
	}
	return v
}

// TestVocabularies checks what every consumer of a set relies on: its
// default first (docs and help list it so), each value once, each value
// parsed to itself, an unknown one refused with every value listed.
func TestVocabularies(t *testing.T) {
	for _, v := range []vocabulary{
		of("quantize.Methods", quantize.Methods(), quantize.DefaultMethod, quantize.ParseMethod),
		of("backend.Optimizers", backend.Optimizers(), backend.DefaultOptimizer, backend.ParseOptimizer),
		of("backend.Known", backend.Known(), backend.Default, nil),
		of("train.Schedules", train.Schedules(), train.DefaultSchedule, train.ParseSchedule),
		of("loss.Distances", loss.Distances(), loss.DefaultDistance, nil),
		of("loss.Adapters", loss.Adapters(), loss.DefaultAdapter, nil),
		of("loss.FeatureKinds", loss.FeatureKinds(), "", nil),
		of("model.Activations", model.Activations(), "", nil),
	} {
		if len(v.values) == 0 {
			t.Errorf("%s is empty", v.name)
			continue
		}
		if v.def != "" && v.values[0] != v.def {
			t.Errorf("%s = %q: the default %q is not first", v.name, v.values, v.def)
		}
		for i, s := range v.values {
			if slices.Index(v.values, s) != i {
				t.Errorf("%s lists %q twice", v.name, s)
			}
			if v.parse != nil {
				if err := v.parse(s); err != nil {
					t.Errorf("%s: parsing %q: %v", v.name, s, err)
				}
			}
		}
		if v.parse == nil {
			continue
		}
		err := v.parse("no-such-value")
		if err == nil {
			t.Errorf("%s: no-such-value accepted", v.name)
			continue
		}
		if !strings.Contains(err.Error(), vocab.Join(v.values)) {
			t.Errorf("%s: %v; want it to list %s", v.name, err, vocab.Join(v.values))
		}
	}
}
