package cost

import (
	"bytes"
	"cmp"
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
	// MemoryGiB is the memory a model can use there: the machine's for a
	// CPU entry, the GPU's for a GPU one; 0 when unknown.
	MemoryGiB float64 `yaml:"memory_gib,omitempty"`
	// Match says which measuring hardware the entry stands for, so that
	// a run is priced at the entry of the machine it ran on (see
	// Table.Match); an entry without it is only used by name.
	Match *Match `yaml:"match,omitempty"`
}

// Match describes the hardware a price entry stands for: a GPU by a
// part of its name, or a CPU machine by architecture, vendor and vCPUs.
type Match struct {
	// GPU is matched, case-insensitively, as a part of the GPU's name
	// as nvidia-smi gives it ("H100" matches "NVIDIA H100 80GB HBM3").
	GPU string `yaml:"gpu,omitempty"`
	// Arch is GOARCH (amd64, arm64), CPU the vendor (intel, amd, arm),
	// VCPUs the logical CPUs: the entry of a CPU machine.
	Arch  string `yaml:"arch,omitempty"`
	CPU   string `yaml:"cpu,omitempty"`
	VCPUs int    `yaml:"vcpus,omitempty"`
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
		if p.MemoryGiB < 0 || math.IsNaN(p.MemoryGiB) || math.IsInf(p.MemoryGiB, 0) {
			bad("%s: memory_gib is %v; give the memory in GiB, > 0, or leave it out", where, p.MemoryGiB)
		}
		if mt := p.Match; mt != nil {
			switch {
			case mt.GPU != "" && (mt.Arch != "" || mt.CPU != "" || mt.VCPUs != 0):
				bad("%s: match names a gpu and a CPU machine; a GPU entry gives only gpu:", where)
			case mt.GPU == "" && (mt.Arch == "" || mt.CPU == "" || mt.VCPUs <= 0):
				bad("%s: match needs gpu: (part of the GPU's name) or arch:, cpu: and vcpus: > 0 (a CPU machine)", where)
			case mt.CPU != "" && !slices.Contains(cpuVendors, mt.CPU):
				bad("%s: match cpu %q must be one of %s", where, mt.CPU, strings.Join(cpuVendors, ", "))
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

// Default machines Apply prices a report at when none is named and the
// report does not say what it was measured on (reports written before
// distill recorded the hardware).
const (
	DefaultCPUMachine = "aws-c7i.xlarge"
	DefaultGPUMachine = "aws-a100-80gb"
)

// cpuVendors are the values of Match.CPU.
var cpuVendors = []string{"intel", "amd", "arm"}

// cpuVendor names the vendor of m's CPU (a Match.CPU value) from its
// vendor id, model name and GOARCH, or "" when none says.
func cpuVendor(m report.Machine) string {
	model := strings.ToLower(m.CPUVendor + " " + m.CPU)
	switch {
	case m.Arch == "arm64" || m.Arch == "arm":
		return "arm"
	case strings.Contains(model, "intel"):
		return "intel"
	case strings.Contains(model, "amd"):
		return "amd"
	}
	return ""
}

// ErrNoPriceMatch is wrapped by Match's error when no entry stands for
// the hardware.
var ErrNoPriceMatch = errors.New("no price table entry matches this hardware")

// Match returns the entry that stands for the machine a report was
// measured on, and a sentence saying how it was chosen, for the report.
//
// On a CUDA device, the entries whose gpu is part of the GPU's name; on
// a CPU, the entries of its architecture and vendor, preferring the same
// number of vCPUs and otherwise the nearest (the costs then assume the
// throughput measured here, unscaled, and the sentence says so). Among
// equals, the lowest on-demand price. When nothing matches, the error
// wraps ErrNoPriceMatch and says how to choose an entry.
func (t *Table) Match(m report.Machine) (name, how string, err error) {
	names := t.Names()
	if strings.HasPrefix(strings.ToLower(m.Device), "cuda") {
		if m.GPU == "" {
			return "", "", fmt.Errorf("cost: %w: the GPU's name is unknown (nvidia-smi gave none); name the machine to price at (serving.machine in the recipe, --machine on the command line) from %s", ErrNoPriceMatch, strings.Join(names, ", "))
		}
		var found []string
		for _, n := range names {
			if mt := t.Machines[n].Match; mt != nil && mt.GPU != "" && strings.Contains(strings.ToLower(m.GPU), strings.ToLower(mt.GPU)) {
				found = append(found, n)
			}
		}
		if len(found) == 0 {
			return "", "", fmt.Errorf("cost: %w: no entry of price table %s has a GPU matching %q; add one (docs/cost.md) or name the machine to price at (serving.machine, --machine)", ErrNoPriceMatch, t.Name, m.GPU)
		}
		best := t.cheapest(found)
		how = fmt.Sprintf("GPU %q matches %s", m.GPU, strings.Join(found, ", "))
		if len(found) > 1 {
			how += "; priced at the cheapest on demand"
		}
		return best, how, nil
	}
	vendor := cpuVendor(m)
	var same []string
	var nearest []string
	gap := math.MaxInt
	for _, n := range names {
		mt := t.Machines[n].Match
		if mt == nil || mt.GPU != "" || mt.Arch != m.Arch || mt.CPU != vendor {
			continue
		}
		d := mt.VCPUs - m.CPUs
		if d == 0 {
			same = append(same, n)
		}
		if d < 0 {
			d = -d*2 + 1 // prefer a larger machine over a smaller one at the same distance
		} else {
			d *= 2
		}
		switch {
		case d < gap:
			gap, nearest = d, []string{n}
		case d == gap:
			nearest = append(nearest, n)
		}
	}
	cpu := fmt.Sprintf("%d× %s %s CPU", m.CPUs, m.Arch, cmp.Or(vendor, "unknown-vendor"))
	if m.CPU != "" {
		cpu = fmt.Sprintf("%d× %s (%s)", m.CPUs, m.CPU, m.Arch)
	}
	switch {
	case len(same) > 0:
		best := t.cheapest(same)
		return best, fmt.Sprintf("%s matches %s by vendor and vCPUs", cpu, strings.Join(same, ", ")), nil
	case len(nearest) > 0:
		best := t.cheapest(nearest)
		return best, fmt.Sprintf("no entry has %d vCPUs of this vendor; %s (%d vCPUs) is the nearest, and its costs assume the throughput measured here on %d CPUs, not scaled by core count", m.CPUs, best, t.Machines[best].Match.VCPUs, m.CPUs), nil
	}
	return "", "", fmt.Errorf("cost: %w: price table %s has no %s %s entry for %s; add one (docs/cost.md) or name the machine to price at (serving.machine, --machine) from %s", ErrNoPriceMatch, t.Name, m.Arch, cmp.Or(vendor, "CPU"), cpu, strings.Join(names, ", "))
}

// cheapest returns the entry of names with the lowest on-demand price,
// the first name among equals.
func (t *Table) cheapest(names []string) string {
	best := names[0]
	for _, n := range names[1:] {
		if t.Machines[n].OnDemand < t.Machines[best].OnDemand {
			best = n
		}
	}
	return best
}

// DefaultMachine returns the price table entry Apply assumes for a
// report that does not say what it was measured on: DefaultGPUMachine
// for CUDA devices, DefaultCPUMachine otherwise. It is a guess, and the
// report says so.
func DefaultMachine(device string) string {
	if strings.HasPrefix(strings.ToLower(device), "cuda") {
		return DefaultGPUMachine
	}
	return DefaultCPUMachine
}
