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
