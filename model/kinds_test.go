package model_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/model"
)

func TestEveryKindIsDescribed(t *testing.T) {
	ks := model.Kinds()
	if len(ks) == 0 {
		t.Fatal("no layer kinds")
	}
	for _, k := range ks {
		info, ok := model.Describe(k)
		if !ok || info.Kind != k || info.OutShape == nil {
			t.Errorf("Describe(%q) = %+v, %v; want its descriptor with an OutShape", k, info, ok)
		}
		if info.Quantizable && info.Params == nil {
			t.Errorf("kind %q is quantizable but has no parameters", k)
		}
	}
	if _, ok := model.Describe("gelu"); ok {
		t.Error(`Describe("gelu") found a kind that does not exist`)
	}
	// Recipe error messages list the activations in this order.
	if got, want := model.Activations(), []model.Kind{model.KindReLU, model.KindTanh, model.KindSigmoid, model.KindReLU6, model.KindSiLU}; !slices.Equal(got, want) {
		t.Errorf("Activations() = %v, want %v", got, want)
	}
}

func TestKindIsAStringInJSON(t *testing.T) {
	l := model.Layer{Name: "act1", Kind: model.KindTanh}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"kind":"tanh"`) {
		t.Errorf("layer encodes as %s, want the kind as a plain string", b)
	}
	var back model.Layer
	if err := json.Unmarshal([]byte(`{"name":"act1","kind":"tanh"}`), &back); err != nil || !reflect.DeepEqual(back, l) {
		t.Errorf("decoding gives %+v, %v; want %+v", back, err, l)
	}
}

func TestUnknownKindIsAnError(t *testing.T) {
	s := model.Spec{Name: "x", Input: []int{3}, Classes: 2, Layers: []model.Layer{{Name: "g", Kind: "gelu"}}}
	_, err := s.Shapes()
	if err == nil || !strings.Contains(err.Error(), `unknown kind "gelu"`) {
		t.Errorf("Shapes() error = %v, want one naming the unknown kind", err)
	}
}

// TestExternalLayers: a spec of external nodes (an opaque model's
// input, named tensors and logits) validates, slashes in their names
// included, has no tensors, and each node's shape is the one it states.
func TestExternalLayers(t *testing.T) {
	spec := model.Spec{Name: "opaque", Input: []int{3, 8, 8}, Classes: 10, Layers: []model.Layer{
		{Name: "/layer1/layer1.0/relu_1/Relu_output_0", Kind: model.KindExternal, Shape: []int{4, 8, 8}},
		{Name: "logits", Kind: model.KindExternal, Shape: []int{10}},
	}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	shapes, err := spec.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shapes[0], []int{4, 8, 8}) || !slices.Equal(shapes[1], []int{10}) {
		t.Errorf("shapes %v, want [4 8 8] and [10]", shapes)
	}
	if ts, err := spec.Tensors(); err != nil || len(ts) != 0 {
		t.Errorf("Tensors() = %v, %v; want none", ts, err)
	}
	for _, bad := range [][]int{nil, {4, 0, 8}, {-1}} {
		s := spec
		s.Layers = slices.Clone(spec.Layers)
		s.Layers[0].Shape = bad
		if err := s.Validate(); err == nil {
			t.Errorf("external shape %v validated", bad)
		}
	}
	// Slashes stay banned in the names of distill's own layers.
	s := model.Spec{Input: []int{4}, Classes: 2, Layers: []model.Layer{{Name: "a/b", Kind: model.KindLinear, Out: 2}}}
	if err := s.Validate(); err == nil {
		t.Error("a linear layer named a/b validated")
	}
}
