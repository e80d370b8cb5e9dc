package jsonschema

import (
	"strings"
	"testing"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "test",
  "type": "object",
  "required": ["name", "items"],
  "properties": {
    "name": {"type": "string", "description": "a name"},
    "role": {"enum": ["a", "b"]},
    "count": {"type": "integer", "minimum": 0, "maximum": 10},
    "ratio": {"type": ["number", "null"]},
    "flag": {"type": "boolean"},
    "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
    "extra": {"type": "object", "additionalProperties": {"type": "number"}},
    "closed": {"type": "object", "properties": {"x": {}}, "additionalProperties": false}
  },
  "$defs": {
    "item": {"type": "object", "required": ["v"], "properties": {"v": {"type": "number", "minimum": 1}}}
  }
}`

func TestValidate(t *testing.T) {
	s, err := Compile([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, doc string
		o         Options
		want      []string // each a substring of the error; none: valid
	}{
		{"valid", `{"name":"n","items":[{"v":1},{"v":2.5}],"role":"a","count":3,"ratio":null,"flag":true,"extra":{"a":1},"closed":{"x":"anything"}}`, Options{}, nil},
		{"unknown property allowed", `{"name":"n","items":[],"future":1}`, Options{}, nil},
		{"unknown property, undeclared", `{"name":"n","items":[],"future":1}`, Options{Undeclared: true}, []string{`/future: property "future" is not declared`}},
		{"undeclared inside $ref", `{"name":"n","items":[{"v":1,"w":2}]}`, Options{Undeclared: true}, []string{`/items/0/w: property "w" is not declared`}},
		{"required", `{"items":[]}`, Options{}, []string{`/: required property "name" is missing`}},
		{"type", `{"name":1,"items":{}}`, Options{}, []string{"/name: a number, want string", "/items: an object, want array"}},
		{"type list", `{"name":"n","items":[],"ratio":"x"}`, Options{}, []string{"/ratio: a string, want number or null"}},
		{"integer", `{"name":"n","items":[],"count":1.5}`, Options{}, []string{"/count: a number, want integer"}},
		{"integer 2.0 is an integer", `{"name":"n","items":[],"count":2.0}`, Options{}, nil},
		{"minimum", `{"name":"n","items":[],"count":-1}`, Options{}, []string{"/count: -1 is less than the minimum 0"}},
		{"maximum", `{"name":"n","items":[],"count":11}`, Options{}, []string{"/count: 11 is more than the maximum 10"}},
		{"enum", `{"name":"n","items":[],"role":"c"}`, Options{}, []string{`/role: "c" is not one of ["a","b"]`}},
		{"items via $ref", `{"name":"n","items":[{"v":0},{}]}`, Options{}, []string{"/items/0/v: 0 is less than the minimum 1", `/items/1: required property "v" is missing`}},
		{"additionalProperties schema", `{"name":"n","items":[],"extra":{"a":"x"}}`, Options{}, []string{"/extra/a: a string, want number"}},
		{"additionalProperties false", `{"name":"n","items":[],"closed":{"y":1}}`, Options{}, []string{"/closed/y: not allowed"}},
		{"pointer escaping", `{"name":"n","items":[],"closed":{"a/b~":1}}`, Options{}, []string{"/closed/a~1b~0: not allowed"}},
		{"root type", `[]`, Options{}, []string{"/: an array, want object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.ValidateJSON([]byte(tc.doc), tc.o)
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("invalid: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid, want errors")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if err := s.ValidateJSON([]byte(`{`), Options{}); err == nil {
		t.Error("broken JSON: no error")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, schema, want string
	}{
		{"not JSON", `{`, "jsonschema"},
		{"not an object", `[]`, "not an object"},
		{"unsupported keyword", `{"type":"object","properties":{"a":{"pattern":"x"}}}`, `#/properties/a/pattern: keyword "pattern" is not supported`},
		{"unknown type", `{"type":"float"}`, `unknown type "float"`},
		{"bad type", `{"type":3}`, "#/type: must be a type name"},
		{"empty enum", `{"enum":[]}`, "#/enum: must be a non-empty array"},
		{"bad required", `{"required":[1]}`, "#/required: must be an array of property names"},
		{"bad minimum", `{"minimum":"0"}`, "#/minimum: must be a number"},
		{"remote ref", `{"$ref":"https://example.com/s.json"}`, `must be a reference "#/$defs/NAME"`},
		{"dangling ref", `{"$ref":"#/$defs/nope"}`, `$defs has no "nope"`},
		{"bad def", `{"$defs":{"d":{"const":1}}}`, `#/$defs/d/const: keyword "const" is not supported`},
		{"bad items", `{"items":{"minLength":1}}`, `#/items/minLength`},
		{"schema not object", `{"properties":{"a":3}}`, "#/properties/a: a schema must be an object or a boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]byte(tc.schema))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
