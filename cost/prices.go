package cost

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/distill-dev/distill/internal/fileio"
	"github.com/distill-dev/distill/report"
)

//go:embed prices.yaml
var defaultPricesYAML []byte

// DefaultPricesYAML returns the text of the price table compiled into
// distill: a starting point for a table of your own.
func DefaultPricesYAML() []byte { return bytes.Clone(defaultPricesYAML) }

// DefaultTableName is the Name of the compiled-in price table.
const DefaultTableName = "default"

// Price is one price table entry: what a machine type (or one GPU)
// costs per hour at each tier, in the table's currency.
type Price struct {
	Description string  `yaml:"description"`
	OnDemand    float64 `yaml:"on_demand"`
	// Spot and Reserved are 0 when unknown.
	Spot     float64 `yaml:"spot"`
	Reserved float64 `yaml:"reserved"`
	// Source names where the prices come from (URL text) and AsOf when
	// they were read (YYYY-MM-DD).
	Source string `yaml:"source"`
	AsOf   string `yaml:"as_of"`
}

// Hourly returns the price per hour at each tier.
func (p Price) Hourly() report.TierPrices {
	return report.TierPrices{OnDemand: p.OnDemand, Spot: p.Spot, Reserved: p.Reserved}
}

// Table is a price table: machine type name → Price.
type Table struct {
	// Name says where the table comes from: DefaultTableName, a file's
	// path, or a list of them joined by " + " after Merge.
	Name string `yaml:"-"`
	// Currency is the currency of every price; only "USD" is supported.
	Currency string           `yaml:"currency"`
	Machines map[string]Price `yaml:"machines"`
}

// DefaultPrices returns the price table compiled into distill
// (cost/prices.yaml). Its prices are list prices as of the date each
// entry gives: defaults to check and override, not quotes.
func DefaultPrices() *Table {
	t, err := ParsePrices(DefaultTableName, defaultPricesYAML)
	if err != nil {
		panic(fmt.Sprintf("cost: the compiled-in price table is invalid: %v", err)) // caught by the tests
	}
	return t
}

// maxPricesSize bounds a price table file: the built-in one is a few
// kilobytes, so a larger file is a wrong path, not a table.
const maxPricesSize = 4 << 20

// LoadPrices reads the price table file at path and returns the default
// table with the file's entries added: an entry of the file replaces the
// default entry of the same name.
func LoadPrices(path string) (*Table, error) {
	b, err := fileio.ReadFileMax(path, maxPricesSize, "a price table")
	if err != nil {
		return nil, fmt.Errorf("cost: read price table: %w", err)
	}
	t, err := ParsePrices(path, b)
	if err != nil {
		return nil, err
	}
	return DefaultPrices().Merge(t), nil
}

// ParsePrices decodes a price table in YAML (the format of
// cost/prices.yaml, described in docs/cost.md) named name. Decoding is
// strict: an unknown key, a missing or non-positive on_demand price, a
// negative or non-finite price, a date that is not YYYY-MM-DD or a
// currency other than USD is an error that names the entry, the key and
// its line.
func ParsePrices(name string, data []byte) (t *Table, err error) {
	defer func() {
		// yaml.v3 reports errors by panicking and recovering; one that
		// escapes is a bug there that must not take the caller down.
		if v := recover(); v != nil {
			t, err = nil, fmt.Errorf("cost: price table %s: invalid YAML (the parser failed: %v)", name, v)
		}
	}()
	t = &Table{Name: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	switch err := dec.Decode(t); {
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("cost: price table %s is empty; it needs currency: USD and machines: (see docs/cost.md)", name)
	case err != nil:
		return nil, fmt.Errorf("cost: price table %s: %w", name, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil { // for line numbers; parsed above
		return nil, fmt.Errorf("cost: price table %s: %w", name, err)
	}
	lines := entryLines(&doc)
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if t.Currency != "USD" {
		bad("currency is %q; only USD is supported: convert the prices and write currency: USD", t.Currency)
	}
	if len(t.Machines) == 0 {
		bad("no machines: add at least one entry under machines:")
	}
	for _, m := range slices.Sorted(maps.Keys(t.Machines)) {
		p := t.Machines[m]
		where := fmt.Sprintf("line %d: machine %q", lines[m], m)
		if m == "" || strings.ContainsAny(m, " \t\n") {
			bad("%s: a machine name must be non-empty and without spaces", where)
		}
		if !(p.OnDemand > 0) || math.IsInf(p.OnDemand, 0) {
			bad("%s: on_demand is %v; give the on-demand price per hour, a positive number", where, p.OnDemand)
		}
		for _, f := range []struct {
			key string
			v   float64
		}{{"spot", p.Spot}, {"reserved", p.Reserved}} {
			if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				bad("%s: %s is %v; give a price per hour >= 0, or leave it out if unknown", where, f.key, f.v)
			}
		}
		if p.AsOf != "" {
			if _, err := time.Parse(time.DateOnly, p.AsOf); err != nil {
				bad("%s: as_of %q is not a date written YYYY-MM-DD", where, p.AsOf)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cost: price table %s: %w", name, err)
	}
	return t, nil
}

// entryLines maps each machine name to the line of its key.
func entryLines(doc *yaml.Node) map[string]int {
	lines := map[string]int{}
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return lines
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "machines" || root.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		ms := root.Content[i+1].Content
		for j := 0; j+1 < len(ms); j += 2 {
			lines[ms[j].Value] = ms[j].Line
		}
	}
	return lines
}

// Merge returns a table holding t's entries and o's, o's replacing t's
// of the same name whole (a tier o leaves out is unknown, not t's).
// Neither table is changed.
func (t *Table) Merge(o *Table) *Table {
	m := &Table{Name: t.Name + " + " + o.Name, Currency: t.Currency, Machines: maps.Clone(t.Machines)}
	if m.Machines == nil {
		m.Machines = map[string]Price{}
	}
	maps.Copy(m.Machines, o.Machines)
	return m
}

// Names returns the table's machine names, sorted.
func (t *Table) Names() []string { return slices.Sorted(maps.Keys(t.Machines)) }

// Lookup returns the entry of machine, or an error listing the names
// the table has.
func (t *Table) Lookup(machine string) (Price, error) {
	p, ok := t.Machines[machine]
	if !ok {
		return Price{}, fmt.Errorf("cost: price table %s has no machine %q; choose one of %s, or add it to a price table of your own (see docs/cost.md)",
			t.Name, machine, strings.Join(t.Names(), ", "))
	}
	return p, nil
}

// Default machines Apply prices a report at when none is named.
const (
	DefaultCPUMachine = "aws-c7i.xlarge"
	DefaultGPUMachine = "aws-a100-80gb"
)

// DefaultMachine returns the price table entry Apply assumes for a
// report measured on device: DefaultGPUMachine for CUDA devices,
// DefaultCPUMachine otherwise. It is a guess; name the machine that
// matches the one measured on.
func DefaultMachine(device string) string {
	if strings.HasPrefix(strings.ToLower(device), "cuda") {
		return DefaultGPUMachine
	}
	return DefaultCPUMachine
}
