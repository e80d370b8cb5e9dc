package recipe

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MarshalYAML makes yaml.Marshal write a recipe in a form that Parse reads
// back to an equal recipe (with the same Hash), such as the copy a run
// keeps next to its results. Every key is written, including defaults,
// except empty sections (the synthetic section of another dataset, the
// model or checkpoint that a teacher does not use, an unused teacher
// training) and the top-level training keys that the recipe did not
// give. Relative paths are written as Parse resolved them (relative to
// the working directory), so parse the copy with an empty file name to
// keep them from being resolved a second time.
func (r Recipe) MarshalYAML() (any, error) {
	return encodeNode(reflect.ValueOf(r), "")
}

// encodeNode builds the YAML node of v, whose dotted path is path.
func encodeNode(v reflect.Value, path string) (*yaml.Node, error) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		return encodeNode(v.Elem(), path)
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		switch v.Type() {
		case reflect.TypeFor[ConvBlock](), reflect.TypeFor[Stem](), reflect.TypeFor[Stage](), reflect.TypeFor[Node]():
			n.Style = yaml.FlowStyle
		}
		t := v.Type()
		for i := range t.NumField() {
			key := yamlKey(t.Field(i))
			if key == "" || omitted(t.Field(i), v.Field(i)) {
				continue
			}
			p := join(path, key)
			if skipKey(p, v.Field(i)) {
				continue
			}
			var val *yaml.Node
			var err error
			if p == "training" {
				val, err = encodeGiven(v.Field(i).Interface().(Training))
			} else {
				val, err = encodeNode(v.Field(i), p)
			}
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, val)
		}
		return n, nil
	case reflect.Map: // string → string, in key order
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.String()},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.MapIndex(k).String()})
		}
		return n, nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if k := v.Type().Elem().Kind(); k != reflect.Struct {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			item, err := encodeNode(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, item)
		}
		return n, nil
	}
	n := &yaml.Node{}
	if err := n.Encode(v.Interface()); err != nil {
		return nil, err
	}
	return n, nil
}

// skipKey reports whether MarshalYAML leaves out field f at path.
func skipKey(path string, f reflect.Value) bool {
	switch path {
	case "data.synthetic", "teacher.model", "teacher.training", "training":
		return isEmpty(f)
	case "teacher.checkpoint":
		return f.String() == ""
	}
	return false
}

// encodeGiven builds the node of the top-level training section: only
// the keys it gives, so that reading it back marks the same keys.
func encodeGiven(t Training) (*yaml.Node, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	var sched *yaml.Node
	tv := reflect.ValueOf(t)
	for _, f := range trainingFields {
		if !t.IsSet(f.key) {
			continue
		}
		val, err := encodeNode(tv.FieldByIndex(f.index), "")
		if err != nil {
			return nil, err
		}
		into, key := n, f.key
		if rest, ok := strings.CutPrefix(f.key, "schedule."); ok {
			if sched == nil {
				sched = &yaml.Node{Kind: yaml.MappingNode}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "schedule"}, sched)
			}
			into, key = sched, rest
		}
		into.Content = append(into.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, val)
	}
	return n, nil
}

// isEmpty reports whether a section is empty: its exported fields are
// all zero, and for a Training no key is given.
func isEmpty(v reflect.Value) bool {
	if t, ok := v.Interface().(Training); ok {
		for _, f := range trainingFields {
			if t.IsSet(f.key) {
				return false
			}
		}
		return true
	}
	if v.Kind() != reflect.Struct {
		return v.IsZero()
	}
	for i := range v.NumField() {
		if yamlKey(v.Type().Field(i)) != "" && !isEmpty(v.Field(i)) {
			return false
		}
	}
	return true
}
