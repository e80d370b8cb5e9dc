package recipe

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// hashVersion prefixes the hashed text; bump it when the canonical form
// changes meaning.
const hashVersion = "distill/recipe v1\n"

// Hash returns a stable hex SHA-256 of the canonical recipe: defaults
// filled in, every model's training resolved to its effective values
// (the top-level section, already merged into them, is left out, as is
// the teacher's when it is loaded from a checkpoint). Recipes that differ
// only in formatting, comments, key order, anchors, or in spelling out a
// default have the same hash; any change to what runs changes it. Paths
// are hashed as resolved by Parse. Hash does not modify r.
func (r *Recipe) Hash() string {
	c := r.clone()
	c.SetDefaults()
	c.Training = Training{}
	if c.Teacher.loadsWeights() {
		c.Teacher.Training = Training{}
	}
	h := sha256.New()
	h.Write([]byte(hashVersion))
	writeCanonical(h, "", reflect.ValueOf(c).Elem())
	return hex.EncodeToString(h.Sum(nil))
}

// clone returns a deep copy of r (sharing only maps, which are never
// modified in place).
func (r *Recipe) clone() *Recipe {
	c := *r
	c.Data.Synthetic.Shape = slices.Clone(r.Data.Synthetic.Shape)
	c.Teacher.Model = r.Teacher.Model.clone()
	c.Teacher.Preprocess.Mean = slices.Clone(r.Teacher.Preprocess.Mean)
	c.Teacher.Preprocess.Std = slices.Clone(r.Teacher.Preprocess.Std)
	c.Teacher.Preprocess.Size = slices.Clone(r.Teacher.Preprocess.Size)
	c.Ensemble = slices.Clone(r.Ensemble)
	for i := range c.Ensemble {
		c.Ensemble[i].Model = c.Ensemble[i].Model.clone()
		c.Ensemble[i].Preprocess.Mean = slices.Clone(c.Ensemble[i].Preprocess.Mean)
		c.Ensemble[i].Preprocess.Std = slices.Clone(c.Ensemble[i].Preprocess.Std)
		c.Ensemble[i].Preprocess.Size = slices.Clone(c.Ensemble[i].Preprocess.Size)
	}
	c.Students = slices.Clone(r.Students)
	for i := range c.Students {
		s := &c.Students[i]
		s.Model = s.Model.clone()
		if s.Baseline != nil {
			b := *s.Baseline
			s.Baseline = &b
		}
	}
	return &c
}

func (m Model) clone() Model {
	m.Hidden = slices.Clone(m.Hidden)
	m.Conv = slices.Clone(m.Conv)
	m.Stages = slices.Clone(m.Stages)
	m.Nodes = slices.Clone(m.Nodes)
	for i := range m.Nodes {
		n := &m.Nodes[i]
		n.Inputs = slices.Clone(n.Inputs)
		if n.Bias != nil {
			b := *n.Bias
			n.Bias = &b
		}
	}
	return m
}

// writeCanonical writes v as "key.path=value" lines, keyed by YAML keys,
// so that the text does not depend on Go field names.
func writeCanonical(h hash.Hash, path string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if k := yamlKey(t.Field(i)); k != "" && !omitted(t.Field(i), v.Field(i)) {
				writeCanonical(h, join(path, k), v.Field(i))
			}
		}
	case reflect.Slice:
		fmt.Fprintf(h, "%s#=%d\n", path, v.Len())
		for i := range v.Len() {
			writeCanonical(h, fmt.Sprintf("%s[%d]", path, i), v.Index(i))
		}
	case reflect.Map: // string keys, hashed in order
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		fmt.Fprintf(h, "%s#=%d\n", path, len(keys))
		for _, k := range keys {
			writeCanonical(h, path+"."+strconv.Quote(k.String()), v.MapIndex(k))
		}
	case reflect.Pointer:
		if v.IsNil() {
			fmt.Fprintf(h, "%s=nil\n", path)
			return
		}
		writeCanonical(h, path, v.Elem())
	case reflect.String:
		fmt.Fprintf(h, "%s=%s\n", path, strconv.Quote(v.String()))
	case reflect.Int, reflect.Int64:
		fmt.Fprintf(h, "%s=%d\n", path, v.Int())
	case reflect.Float64:
		fmt.Fprintf(h, "%s=%s\n", path, strconv.FormatFloat(v.Float(), 'g', -1, 64))
	case reflect.Bool:
		fmt.Fprintf(h, "%s=%t\n", path, v.Bool())
	default: // no such field today; keep Hash total anyway
		fmt.Fprintf(h, "%s=%v\n", path, v.Interface())
	}
}
