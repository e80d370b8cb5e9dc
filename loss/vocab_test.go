package loss_test

import (
	"strings"
	"testing"

	"github.com/distill-dev/distill/loss"
)

// TestFeatureVocabularies: WithDefaults fills the hint defaults, and
// Validate's error for an unknown distance, adapter or kind lists every
// valid one.
func TestFeatureVocabularies(t *testing.T) {
	hint := loss.Feature{Kind: loss.FeatureHint, Student: "fc1", Teacher: "fc1", Weight: 1}
	if f := hint.WithDefaults(); f.Distance != loss.DefaultDistance || f.Adapter != loss.DefaultAdapter {
		t.Errorf("WithDefaults: distance %q, adapter %q", f.Distance, f.Adapter)
	}
	check := func(f loss.Feature, want []string) {
		t.Helper()
		err := f.Validate()
		if err == nil {
			t.Fatalf("%+v accepted", f)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), `"`+w+`"`) {
				t.Errorf("%v; want it to list %q", err, w)
			}
		}
	}
	strs := func(vs ...string) []string { return vs }
	var ds, as, ks []string
	for _, d := range loss.Distances() {
		ds = append(ds, string(d))
	}
	for _, a := range loss.Adapters() {
		as = append(as, string(a))
	}
	for _, k := range loss.FeatureKinds() {
		ks = append(ks, string(k))
	}
	bad := hint
	bad.Distance = "l1"
	check(bad, append(strs("l1"), ds...))
	bad = hint
	bad.Adapter = "mlp"
	check(bad, append(strs("mlp"), as...))
	bad = hint
	bad.Kind = "contrastive"
	check(bad, append(strs("contrastive"), ks...))
}
