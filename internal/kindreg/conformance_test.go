package kindreg_test

import (
	"slices"
	"strings"
	"testing"

	// Every engine that computes layers registers its kinds on import.
	_ "github.com/distill-dev/distill/backend/backendtest"
	_ "github.com/distill-dev/distill/backend/gorgonia"
	_ "github.com/distill-dev/distill/infer"
	_ "github.com/distill-dev/distill/onnx"
	_ "github.com/distill-dev/distill/quantize"

	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

// wantEngines are the engines the walk must see; the torch backend adds
// itself under its build tag. An engine that stopped registering (or an
// import dropped above) would otherwise pass the walk unnoticed.
var wantEngines = []string{
	"backend/backendtest (float64 reference)",
	"backend/gorgonia",
	"onnx (export)",
	"quantize",
	"infer (FP32)",
	"infer (INT8)",
}

func engineNames(es []kindreg.Engine) []string {
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func engine(t *testing.T, name string) kindreg.Engine {
	t.Helper()
	for _, e := range kindreg.Engines() {
		if e.Name() == name {
			return e
		}
	}
	t.Fatalf("no engine %q among %q", name, engineNames(kindreg.Engines()))
	return nil
}

// TestEveryEngineImplementsEveryKind walks every layer kind × every
// engine and names the engines that lack a kind.
func TestEveryEngineImplementsEveryKind(t *testing.T) {
	engines := kindreg.Engines()
	got := engineNames(engines)
	for _, name := range wantEngines {
		if !slices.Contains(got, name) {
			t.Errorf("engine %q has not registered its layer kinds (registered: %q)", name, got)
		}
	}
	if len(got) != len(wantEngines) {
		t.Errorf("registered engines %q, want %q: add a new engine to wantEngines", got, wantEngines)
	}
	if err := kindreg.Check(kindreg.Descriptors(), engines); err != nil {
		t.Fatal(err)
	}
}

// TestToyKindInOneEngineNamesTheOthers registers a toy kind in one engine
// only and checks that the walk names exactly the engines that need it
// and lack it; the registration is removed again.
func TestToyKindInOneEngineNamesTheOthers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		info      model.KindInfo
		host      string     // the one engine that registers the toy
		like      model.Kind // whose implementation the toy borrows there
		exemptToo []string   // engines the descriptor exempts
	}{
		{"activation", model.KindInfo{Kind: "toy-activation", Activation: true},
			"infer (FP32)", model.KindTanh, []string{"quantize"}},
		{"quantizable", model.KindInfo{Kind: "toy-dense", Quantizable: true},
			"onnx (export)", model.KindLinear, nil},
		{"identity at inference", model.KindInfo{Kind: "toy-noise", IdentityAtInference: true},
			"backend/gorgonia", model.KindDropout, []string{"onnx (export)", "quantize", "infer (FP32)", "infer (INT8)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.host
			e := engine(t, host)
			undo, ok := kindreg.RegisterAs(e, tc.info.Kind, tc.like)
			if !ok {
				t.Fatalf("could not register %q in %s", tc.info.Kind, host)
			}
			removed := false
			t.Cleanup(func() {
				if !removed {
					undo()
				}
			})
			kinds := append(kindreg.Descriptors(), tc.info)
			var want []string
			for _, name := range engineNames(kindreg.Engines()) {
				if name != host && !slices.Contains(tc.exemptToo, name) {
					want = append(want, name)
				}
			}
			miss := kindreg.Missing(kinds, kindreg.Engines())
			if got := miss[tc.info.Kind]; !slices.Equal(got, want) {
				t.Errorf("engines missing %q = %q, want %q", tc.info.Kind, got, want)
			}
			if len(miss) != 1 {
				t.Errorf("missing kinds %v, want only %q", miss, tc.info.Kind)
			}
			err := kindreg.Check(kinds, kindreg.Engines())
			if err == nil {
				t.Fatalf("the walk passed with %q registered in %s only", tc.info.Kind, host)
			}
			t.Logf("the walk reports: %v", err)
			msg := err.Error()
			for _, name := range want {
				if !strings.Contains(msg, name) {
					t.Errorf("the walk's error does not name %s: %v", name, err)
				}
			}
			if strings.Contains(msg, host) {
				t.Errorf("the walk's error names %s, which has the kind: %v", host, err)
			}

			undo()
			removed = true
			if e.Has(tc.info.Kind) {
				t.Errorf("%s still has %q after removal", host, tc.info.Kind)
			}
			if err := kindreg.Check(kindreg.Descriptors(), kindreg.Engines()); err != nil {
				t.Errorf("after removing the toy kind: %v", err)
			}
		})
	}
}
