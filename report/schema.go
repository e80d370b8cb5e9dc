package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"sync"

	"github.com/distill-dev/distill/internal/jsonschema"
)

//go:embed schema.json
var jsonSchema []byte

// JSONSchema returns the JSON Schema (draft 2020-12) of report.json,
// report/schema.json in the source tree. It describes every field this
// version writes and, like the contract, lets objects carry fields that
// later versions add.
func JSONSchema() []byte { return bytes.Clone(jsonSchema) }

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) { return jsonschema.Compile(jsonSchema) })

// CheckSchema checks data, the content of a report.json, against
// JSONSchema() and returns every violation, each with its JSON pointer
// (e.g. "/models/2/cost/batch: -1 is less than the minimum 1"). Fields
// the schema does not know are allowed, as the contract requires.
// ReadJSON does not call it; tools that take reports from elsewhere can.
func CheckSchema(data []byte) error {
	s, err := compiled()
	if err != nil {
		return fmt.Errorf("report: schema.json: %w", err) // caught by the tests
	}
	if err := s.ValidateJSON(data, jsonschema.Options{}); err != nil {
		return fmt.Errorf("report: does not match schema %s: %w", Schema, err)
	}
	return nil
}
