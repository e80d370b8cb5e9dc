package recipe

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/distill-dev/distill/internal/jsonschema"
)

// recipes/schema.json is a JSON Schema of recipe files, generated from
// the Recipe type (its yaml keys, Go types and field comments), so that
// editors with a YAML language server complete and check keys. Run
//
//	go test ./recipe -run TestRecipeSchema -update-schema
//
// after changing the recipe types; TestRecipeSchema fails while the
// shipped file is stale.
var updateSchema = flag.Bool("update-schema", false, "rewrite recipes/schema.json from the recipe types")

var schemaPath = filepath.Join("..", "recipes", "schema.json")

// schemaEnums are the allowed values of string keys, by Go type and
// field, taken from the lists that validation and the packages use.
func schemaEnums() map[string][]string {
	return map[string][]string{
		"Recipe.Backend":       backends,
		"Recipe.Precision":     precisions,
		"Data.Dataset":         datasets,
		"Unlabelled.Dataset":   datasets,
		"Model.Type":           modelTypes,
		"Model.Activation":     activations,
		"Stage.Block":          blockKinds,
		"Node.Kind":            nodeKinds,
		"Training.Optimizer":   optimizers,
		"Schedule.Kind":        schedules,
		"Quantize.Method":      methods,
		"FeatureTerm.Distance": distances,
		"FeatureTerm.Adapter":  adapters,
		"Transfer.Dtype":       dtypes,
	}
}

// generateSchema builds the schema of Recipe.
func generateSchema(t *testing.T) []byte {
	t.Helper()
	docs := map[string]string{}
	for _, f := range []string{"types.go", filepath.Join("..", "augment", "config.go")} {
		fieldDocs(t, f, docs)
	}
	g := schemaGen{docs: docs, enums: schemaEnums(), defs: map[string]any{}}
	root := g.object(reflect.TypeFor[Recipe]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = "https://github.com/distill-dev/distill/recipes/schema.json"
	root["title"] = "distill recipe"
	root["description"] = "A distill recipe (distill run RECIPE). Generated from package recipe's types by go test ./recipe -run TestRecipeSchema -update-schema; distill validate checks values beyond this schema."
	root["$defs"] = g.defs
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type schemaGen struct {
	docs  map[string]string // "Type.Field" → doc comment
	enums map[string][]string
	defs  map[string]any
}

// object is the schema of struct type st: its yaml keys, no others (a
// recipe with an unknown key is invalid).
func (g *schemaGen) object(st reflect.Type) map[string]any {
	props := map[string]any{}
	for i := range st.NumField() {
		f := st.Field(i)
		key := yamlKey(f)
		if key == "" {
			continue
		}
		s := g.schema(f.Type)
		if doc := g.docs[st.Name()+"."+f.Name]; doc != "" {
			s["description"] = doc
		}
		if e, ok := g.enums[st.Name()+"."+f.Name]; ok {
			s["enum"] = e
		}
		props[key] = s
	}
	// An empty section (training: with nothing under it) is YAML null.
	return map[string]any{"type": []string{"object", "null"}, "properties": props, "additionalProperties": false}
}

// schema is the schema of a value of type t; structs become $defs.
func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch t.Kind() {
	case reflect.Pointer: // *bool: null or absent means the default
		s := g.schema(t.Elem())
		s["type"] = []any{s["type"], "null"}
		return s
	case reflect.Struct:
		name := t.Name()
		if pkg := t.PkgPath(); pkg != reflect.TypeFor[Recipe]().PkgPath() {
			// Another package's type (augment.Config): "AugmentConfig".
			pkg = pkg[strings.LastIndex(pkg, "/")+1:]
			name = strings.ToUpper(pkg[:1]) + pkg[1:] + name
		}
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	case reflect.Slice:
		return map[string]any{"type": []string{"array", "null"}, "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": []string{"object", "null"}, "additionalProperties": g.schema(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	}
	panic(fmt.Sprintf("recipe schema: no schema for %v", t))
}

// fieldDocs adds the doc comments of the struct fields in file to docs,
// as "Type.Field" → one line of text.
func fieldDocs(t *testing.T, file string, docs map[string]string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		for _, fl := range st.Fields.List {
			text := strings.TrimSpace(fl.Doc.Text() + " " + fl.Comment.Text())
			for _, name := range fl.Names {
				if text != "" {
					docs[ts.Name.Name+"."+name.Name] = strings.Join(strings.Fields(text), " ")
				}
			}
		}
		return false
	})
}

// TestRecipeSchema checks that recipes/schema.json is the schema the
// recipe types generate, and that the validator accepts it.
func TestRecipeSchema(t *testing.T) {
	want := generateSchema(t)
	if _, err := jsonschema.Compile(want); err != nil {
		t.Fatal(err)
	}
	if *updateSchema {
		if err := os.WriteFile(schemaPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(schemaPath)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s is stale (%v): run go test ./recipe -run TestRecipeSchema -update-schema", schemaPath, err)
	}
}

// recipeJSON decodes a YAML recipe into JSON for the validator.
func recipeJSON(t *testing.T, y []byte) []byte {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func compiledSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jsonschema.Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestShippedRecipesMatchSchema validates every shipped recipe, and the
// test recipes that Parse accepts, against recipes/schema.json.
func TestShippedRecipesMatchSchema(t *testing.T) {
	s := compiledSchema(t)
	paths, _ := filepath.Glob(filepath.Join("..", "recipes", "*.yaml"))
	if len(paths) == 0 {
		t.Fatal("no recipes found")
	}
	for _, p := range paths {
		y, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ValidateJSON(recipeJSON(t, y), jsonschema.Options{}); err != nil {
			t.Errorf("%s does not match recipes/schema.json:\n%v", p, err)
		}
	}
}

// TestSchemaRejects checks that the schema catches what an editor should
// flag: a misspelt key, a value of the wrong type, an unknown name.
func TestSchemaRejects(t *testing.T) {
	s := compiledSchema(t)
	for _, y := range []string{
		"students:\n  - name: s\n    distill: {temprature: 4}\n",
		"training: {epochs: three}\n",
		"backend: tensorflow\n",
		"quantize: {method: median}\n",
		"transfer: {augment: {shfit: 2}}\n",
		"teacher: {model: {type: graph, nodes: [{name: a, kind: gelu}]}}\n",
		"teacher: {model: {type: resnet, stages: [{block: bottleneck}]}}\n",
	} {
		if err := s.ValidateJSON(recipeJSON(t, []byte(y)), jsonschema.Options{}); err == nil {
			t.Errorf("the schema accepts %q", y)
		}
	}
	// Keys Parse accepts are accepted: null sections, baseline: false.
	if err := s.ValidateJSON(recipeJSON(t, []byte("training:\nstudents: [{name: s, baseline: false}]\nserving: {measure: null}\n")), jsonschema.Options{}); err != nil {
		t.Errorf("the schema rejects a valid recipe: %v", err)
	}
}
