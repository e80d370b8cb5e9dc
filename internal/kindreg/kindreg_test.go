package kindreg_test

import (
	"strings"
	"testing"

	"github.com/distill-dev/distill/internal/kindreg"
	"github.com/distill-dev/distill/model"
)

func TestLookupNamesKindAndEngine(t *testing.T) {
	r := kindreg.NewUnlisted[int]("test engine", nil)
	r.Register(model.KindReLU, 1)
	if v, err := r.Lookup(model.KindReLU); err != nil || v != 1 {
		t.Fatalf("Lookup(relu) = %v, %v; want 1, nil", v, err)
	}
	_, err := r.Lookup(model.KindTanh)
	if err == nil || !strings.Contains(err.Error(), `"tanh"`) || !strings.Contains(err.Error(), "test engine") {
		t.Errorf("Lookup of a kind the engine lacks: %v; want an error naming tanh and the engine", err)
	}
	_, err = r.Lookup("gelu")
	if err == nil || !strings.Contains(err.Error(), `unknown layer kind "gelu"`) || !strings.Contains(err.Error(), "linear") {
		t.Errorf("Lookup of an unknown kind: %v; want an error naming it and the known kinds", err)
	}
}

func TestNeedsFollowsTheDescriptor(t *testing.T) {
	r := kindreg.NewUnlisted[int]("weights only", func(info model.KindInfo) bool { return info.Quantizable })
	lin, _ := model.Describe(model.KindLinear)
	pool, _ := model.Describe(model.KindMaxPool)
	if !r.Needs(lin) || r.Needs(pool) {
		t.Errorf("Needs(linear), Needs(maxpool) = %v, %v; want true, false", r.Needs(lin), r.Needs(pool))
	}
	miss := kindreg.Missing(kindreg.Descriptors(), []kindreg.Engine{r})
	if len(miss) != 2 || len(miss[model.KindLinear]) != 1 || len(miss[model.KindConv2D]) != 1 {
		t.Errorf("Missing = %v; want linear and conv2d, each naming the engine", miss)
	}
}

// TestExternalKindExemptsEveryEngine: no engine needs the external kind
// (something outside distill computes it), even one that needs every
// kind, and one asked to run it says why it cannot.
func TestExternalKindExemptsEveryEngine(t *testing.T) {
	r := kindreg.NewUnlisted[int]("every kind", nil)
	ext, ok := model.Describe(model.KindExternal)
	if !ok || !ext.External {
		t.Fatalf("Describe(external) = %+v, %v; want an External descriptor", ext, ok)
	}
	if r.Needs(ext) {
		t.Error("an engine that needs every kind needs the external kind")
	}
	if miss := kindreg.Missing([]model.KindInfo{ext}, append(kindreg.Engines(), r)); len(miss) != 0 {
		t.Errorf("Missing(external) = %v; want no engine named", miss)
	}
	_, err := r.Lookup(model.KindExternal)
	if err == nil || !strings.Contains(err.Error(), "outside distill") || !strings.Contains(err.Error(), "every kind") {
		t.Errorf("Lookup(external) = %v; want an error saying the engine cannot run a kind computed outside distill", err)
	}
}
