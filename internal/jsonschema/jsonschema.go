// Package jsonschema validates JSON documents against the small subset
// of JSON Schema (draft 2020-12) that report/schema.json and
// recipes/schema.json are written in.
//
// No maintained pure-Go JSON Schema validator is in distill's go.mod,
// and a test is no reason to add one, so this package implements just
// these keywords:
//
//	type                 "object", "array", "string", "number", "integer",
//	                     "boolean", "null", or a list of them
//	enum                 the value equals one of the listed values
//	required             the object has each listed property
//	properties           each listed property present validates
//	additionalProperties false, true or a schema, for the rest
//	items                each array element validates
//	minimum, maximum     inclusive numeric bounds
//	$ref                 "#/$defs/NAME", a schema of the $defs
//
// It ignores the annotations $schema, $id, $defs (except through $ref),
// title, description, $comment, format, examples and default. Any other
// keyword makes Compile fail, so that the schema can never appear to
// check something this package does not.
package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Schema is a compiled schema.
type Schema struct {
	root map[string]any
	defs map[string]any
}

// Options change how Validate checks.
type Options struct {
	// Undeclared makes a property that no properties keyword declares an
	// error even where additionalProperties allows it. Tests use it to
	// check that a schema describes every field a program writes, while
	// the schema itself stays open to fields later versions add.
	Undeclared bool
}

// annotations are the keywords that check nothing.
var annotations = map[string]bool{
	"$schema": true, "$id": true, "$defs": true, "title": true, "description": true,
	"$comment": true, "format": true, "examples": true, "default": true,
}

var types = []string{"object", "array", "string", "number", "integer", "boolean", "null"}

// Compile parses a schema and checks that it uses only the supported
// keywords, correctly.
func Compile(data []byte) (*Schema, error) {
	var root any
	if err := json.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("jsonschema: %w", err)
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return nil, errors.New("jsonschema: the schema is not an object")
	}
	s := &Schema{root: obj, defs: map[string]any{}}
	if d, ok := obj["$defs"]; ok {
		defs, ok := d.(map[string]any)
		if !ok {
			return nil, errors.New("jsonschema: $defs is not an object")
		}
		s.defs = defs
	}
	if err := s.check("#", obj); err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(s.defs)) {
		if err := s.check("#/$defs/"+name, s.defs[name]); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// check verifies the keywords of the schema sch at path.
func (s *Schema) check(path string, sch any) error {
	if _, ok := sch.(bool); ok {
		return nil
	}
	obj, ok := sch.(map[string]any)
	if !ok {
		return fmt.Errorf("jsonschema: %s: a schema must be an object or a boolean", path)
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		v := obj[k]
		at := path + "/" + k
		bad := func(want string) error { return fmt.Errorf("jsonschema: %s: must be %s", at, want) }
		switch k {
		case "type":
			names, ok := typeNames(v)
			if !ok || len(names) == 0 {
				return bad("a type name or a list of them")
			}
			for _, n := range names {
				if !slices.Contains(types, n) {
					return fmt.Errorf("jsonschema: %s: unknown type %q", at, n)
				}
			}
		case "enum":
			if l, ok := v.([]any); !ok || len(l) == 0 {
				return bad("a non-empty array")
			}
		case "required":
			l, ok := v.([]any)
			if !ok {
				return bad("an array of property names")
			}
			for _, e := range l {
				if _, ok := e.(string); !ok {
					return bad("an array of property names")
				}
			}
		case "properties":
			props, ok := v.(map[string]any)
			if !ok {
				return bad("an object of schemas")
			}
			for _, name := range slices.Sorted(maps.Keys(props)) {
				if err := s.check(at+"/"+name, props[name]); err != nil {
					return err
				}
			}
		case "additionalProperties", "items":
			if err := s.check(at, v); err != nil {
				return err
			}
		case "minimum", "maximum":
			if _, ok := v.(float64); !ok {
				return bad("a number")
			}
		case "$ref":
			ref, _ := v.(string)
			name, ok := strings.CutPrefix(ref, "#/$defs/")
			if !ok {
				return bad(`a reference "#/$defs/NAME"`)
			}
			if _, ok := s.defs[name]; !ok {
				return fmt.Errorf("jsonschema: %s: $defs has no %q", at, name)
			}
		default:
			if !annotations[k] {
				return fmt.Errorf("jsonschema: %s: keyword %q is not supported by this validator", at, k)
			}
		}
	}
	return nil
}

func typeNames(v any) ([]string, bool) {
	switch t := v.(type) {
	case string:
		return []string{t}, true
	case []any:
		var out []string
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// ValidateJSON parses data (one JSON value) and validates it.
func (s *Schema) ValidateJSON(data []byte, o Options) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("jsonschema: document: %w", err)
	}
	return s.Validate(normalize(doc), o)
}

// normalize turns json.Numbers into float64s.
func normalize(v any) any {
	switch t := v.(type) {
	case json.Number:
		f, _ := strconv.ParseFloat(string(t), 64)
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
	}
	return v
}

// Validate validates doc, a value as encoding/json decodes it into an
// any (numbers as float64), and returns every violation found, each
// naming where in the document it is as a JSON pointer.
func (s *Schema) Validate(doc any, o Options) error {
	v := validator{s: s, o: o}
	v.validate("", s.root, doc)
	return errors.Join(v.errs...)
}

type validator struct {
	s    *Schema
	o    Options
	errs []error
}

func (v *validator) fail(at, format string, a ...any) {
	if at == "" {
		at = "/"
	}
	v.errs = append(v.errs, fmt.Errorf("%s: %s", at, fmt.Sprintf(format, a...)))
}

func (v *validator) validate(at string, sch, doc any) {
	if b, ok := sch.(bool); ok {
		if !b {
			v.fail(at, "not allowed")
		}
		return
	}
	obj := sch.(map[string]any)
	if ref, ok := obj["$ref"].(string); ok {
		v.validate(at, v.s.defs[strings.TrimPrefix(ref, "#/$defs/")], doc)
	}
	if t, ok := obj["type"]; ok {
		names, _ := typeNames(t)
		if !slices.ContainsFunc(names, func(n string) bool { return hasType(doc, n) }) {
			v.fail(at, "%s, want %s", kind(doc), strings.Join(names, " or "))
			return
		}
	}
	if e, ok := obj["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return reflect.DeepEqual(x, doc) }) {
		v.fail(at, "%s is not one of %s", show(doc), show(e))
	}
	if f, ok := doc.(float64); ok {
		if m, ok := obj["minimum"].(float64); ok && f < m {
			v.fail(at, "%v is less than the minimum %v", f, m)
		}
		if m, ok := obj["maximum"].(float64); ok && f > m {
			v.fail(at, "%v is more than the maximum %v", f, m)
		}
	}
	if l, ok := doc.([]any); ok {
		if items, ok := obj["items"]; ok {
			for i, e := range l {
				v.validate(at+"/"+strconv.Itoa(i), items, e)
			}
		}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return
	}
	if req, ok := obj["required"].([]any); ok {
		for _, r := range req {
			if _, ok := m[r.(string)]; !ok {
				v.fail(at, "required property %q is missing", r)
			}
		}
	}
	props, _ := obj["properties"].(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := at + "/" + escape(k)
		if ps, ok := props[k]; ok {
			v.validate(p, ps, m[k])
			continue
		}
		if ap, ok := obj["additionalProperties"]; ok {
			v.validate(p, ap, m[k])
		}
		if v.o.Undeclared && !refOnly(obj) {
			v.fail(p, "property %q is not declared in the schema", k)
		}
	}
}

// refOnly reports whether obj is only a $ref (its properties are checked
// where the reference leads).
func refOnly(obj map[string]any) bool {
	_, ok := obj["$ref"]
	_, props := obj["properties"]
	return ok && !props
}

func hasType(doc any, t string) bool {
	switch t {
	case "object":
		_, ok := doc.(map[string]any)
		return ok
	case "array":
		_, ok := doc.([]any)
		return ok
	case "string":
		_, ok := doc.(string)
		return ok
	case "number":
		_, ok := doc.(float64)
		return ok
	case "integer":
		f, ok := doc.(float64)
		return ok && f == math.Trunc(f) && !math.IsInf(f, 0)
	case "boolean":
		_, ok := doc.(bool)
		return ok
	case "null":
		return doc == nil
	}
	return false
}

func kind(doc any) string {
	switch doc.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", doc)
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// escape escapes a property name for a JSON pointer (RFC 6901).
func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
