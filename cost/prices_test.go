package cost

import (
	"errors"

	"github.com/distill-dev/distill/report"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultPrices(t *testing.T) {
	tab := DefaultPrices()
	if tab.Currency != "USD" || tab.Name != DefaultTableName {
		t.Errorf("currency %q, name %q", tab.Currency, tab.Name)
	}
	for _, name := range []string{DefaultCPUMachine, DefaultGPUMachine, "aws-c7i.large", "gcp-c3-standard-4", "gcp-a100-80gb", "azure-a100-80gb"} {
		if _, err := tab.Lookup(name); err != nil {
			t.Error(err)
		}
	}
	for name, p := range tab.Machines {
		// Every default says where it comes from and when, and knows all
		// three tiers, ordered as they are in every market.
		if p.Source == "" || p.AsOf == "" || p.Description == "" {
			t.Errorf("%s: source %q, as_of %q, description %q", name, p.Source, p.AsOf, p.Description)
		}
		if !(p.Spot > 0 && p.Spot < p.Reserved && p.Reserved < p.OnDemand) {
			t.Errorf("%s: want 0 < spot < reserved < on_demand, got %v, %v, %v", name, p.Spot, p.Reserved, p.OnDemand)
		}
	}
	// The numbers the issue asks for.
	for name, want := range map[string][2]float64{"aws-a100-80gb": {3.20, 0.96}, "gcp-a100-80gb": {3.47, 1.04}, "azure-a100-80gb": {3.40, 0.85}} {
		if p := tab.Machines[name]; p.OnDemand != want[0] || p.Spot != want[1] {
			t.Errorf("%s: %v / %v, want %v / %v", name, p.OnDemand, p.Spot, want[0], want[1])
		}
	}
	// DefaultPricesYAML is a copy.
	b := DefaultPricesYAML()
	b[0] = '!'
	if DefaultPricesYAML()[0] == '!' {
		t.Error("DefaultPricesYAML returns the table itself")
	}
}

func TestDefaultMachine(t *testing.T) {
	for dev, want := range map[string]string{"cpu": DefaultCPUMachine, "": DefaultCPUMachine, "cuda": DefaultGPUMachine, "cuda:1": DefaultGPUMachine, "CUDA:0": DefaultGPUMachine} {
		if got := DefaultMachine(dev); got != want {
			t.Errorf("DefaultMachine(%q) = %q, want %q", dev, got, want)
		}
	}
}

func TestParsePrices(t *testing.T) {
	tab, err := ParsePrices("mine.yaml", []byte(`currency: USD
machines:
  a:
    on_demand: 1.5
    as_of: 2024-12-31
  b:
    description: only on demand known
    on_demand: 2
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tab.Names(), ","); got != "a,b" {
		t.Errorf("names %s", got)
	}
	if p := tab.Machines["a"]; p.OnDemand != 1.5 || p.AsOf != "2024-12-31" || p.Spot != 0 {
		t.Errorf("a = %+v", p)
	}
}

func TestParsePricesErrors(t *testing.T) {
	entry := func(body string) string {
		return "currency: USD\nmachines:\n  ok:\n    on_demand: 1\n  box:\n" + body
	}
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"empty", "", []string{"price table t.yaml is empty"}},
		{"syntax", "currency: USD\nmachines: [", []string{"t.yaml", "yaml:"}},
		{"unknown key", entry("    on_demand: 1\n    colour: red\n"), []string{"line 7", "field colour not found"}},
		{"unknown top key", "currency: USD\nregion: eu\nmachines:\n  a:\n    on_demand: 1\n", []string{"field region not found"}},
		{"wrong type", entry("    on_demand: cheap\n"), []string{"line 6", "cheap"}},
		{"no on_demand", entry("    spot: 1\n"), []string{`line 5: machine "box": on_demand is 0; give the on-demand price per hour`}},
		{"negative on_demand", entry("    on_demand: -1\n"), []string{`machine "box": on_demand is -1`}},
		{"infinite", entry("    on_demand: .inf\n"), []string{`machine "box": on_demand is +Inf`}},
		{"negative spot", entry("    on_demand: 1\n    spot: -0.5\n"), []string{`machine "box": spot is -0.5; give a price per hour >= 0, or leave it out`}},
		{"NaN reserved", entry("    on_demand: 1\n    reserved: .nan\n"), []string{`machine "box": reserved is NaN`}},
		{"bad date", entry("    on_demand: 1\n    as_of: June 2025\n"), []string{`as_of "June 2025" is not a date written YYYY-MM-DD`}},
		{"currency", "currency: EUR\nmachines:\n  a:\n    on_demand: 1\n", []string{`currency is "EUR"; only USD is supported`}},
		{"no currency", "machines:\n  a:\n    on_demand: 1\n", []string{`currency is ""`}},
		{"no machines", "currency: USD\n", []string{"no machines"}},
		{"space in name", "currency: USD\nmachines:\n  my box:\n    on_demand: 1\n", []string{`machine "my box": a machine name must be non-empty and without spaces`}},
		{"several problems", entry("    spot: -1\n"), []string{"on_demand is 0", "spot is -1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePrices("t.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, "price table t.yaml") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadPricesAndMerge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prices.yaml")
	own := "currency: USD\nmachines:\n  aws-c7i.xlarge:\n    on_demand: 0.5\n  my-box:\n    on_demand: 0.01\n"
	if err := os.WriteFile(path, []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	tab, err := LoadPrices(path)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Name != "default + "+path {
		t.Errorf("name %q", tab.Name)
	}
	// The file's entry replaces the default whole: its spot price is
	// unknown, not the default's.
	if p := tab.Machines["aws-c7i.xlarge"]; p.OnDemand != 0.5 || p.Spot != 0 || p.Source != "" {
		t.Errorf("overridden entry = %+v", p)
	}
	if _, err := tab.Lookup("my-box"); err != nil {
		t.Error(err)
	}
	if _, err := tab.Lookup("aws-a100-80gb"); err != nil {
		t.Error("defaults lost:", err)
	}
	if DefaultPrices().Machines["aws-c7i.xlarge"].OnDemand == 0.5 {
		t.Error("Merge changed the default table")
	}
	if _, err := LoadPrices(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestPricesAsOfIsDate(t *testing.T) {
	for name, p := range DefaultPrices().Machines {
		d, err := time.Parse(time.DateOnly, p.AsOf)
		if err != nil || d.Year() < 2024 {
			t.Errorf("%s: as_of %q", name, p.AsOf)
		}
	}
}

func TestMatch(t *testing.T) {
	tab := DefaultPrices()
	for _, tc := range []struct {
		name string
		m    report.Machine
		want string
		how  []string
	}{
		{"h100", report.Machine{Device: "cuda:0", GPU: "NVIDIA H100 80GB HBM3"}, "aws-h100-80gb", []string{"aws-h100-80gb, gcp-h100-80gb", "cheapest"}},
		{"h200", report.Machine{Device: "cuda", GPU: "NVIDIA H200"}, "aws-h200-141gb", []string{`"NVIDIA H200"`}},
		{"a10g", report.Machine{Device: "cuda:0", GPU: "NVIDIA A10G"}, "aws-g5.xlarge", nil},
		{"l4", report.Machine{Device: "cuda:0", GPU: "NVIDIA L4"}, "aws-g6.xlarge", nil},
		{"t4", report.Machine{Device: "cuda:0", GPU: "Tesla T4"}, "aws-g4dn.xlarge", nil},
		{"a100", report.Machine{Device: "cuda:0", GPU: "NVIDIA A100-SXM4-80GB"}, "aws-a100-80gb", nil},
		{"2 intel", report.Machine{Device: "cpu", Arch: "amd64", CPU: "Intel(R) Xeon(R) Platinum 8488C", CPUs: 2}, "aws-c7i.large", []string{"by vendor and vCPUs"}},
		{"4 intel", report.Machine{Device: "cpu", Arch: "amd64", CPU: "Intel(R) Core(TM) i7", CPUs: 4}, "aws-c7i.xlarge", []string{"aws-c7i.xlarge, azure-d4s-v5, gcp-c3-standard-4"}},
		{"6 intel", report.Machine{Device: "cpu", Arch: "amd64", CPU: "Intel(R) Core(TM) i5", CPUs: 6}, "aws-c7i.2xlarge", []string{"no entry has 6 vCPUs", "(8 vCPUs) is the nearest", "not scaled"}},
		{"16 amd", report.Machine{Device: "cpu", Arch: "amd64", CPU: "AMD EPYC 9R14", CPUs: 16}, "aws-c7a.xlarge", []string{"nearest"}},
		{"arm", report.Machine{Device: "cpu", Arch: "arm64", CPUs: 4}, "aws-c7g.xlarge", nil},
		{"vendor id", report.Machine{Device: "cpu", Arch: "amd64", CPU: "QEMU Virtual CPU version 2.5+", CPUVendor: "GenuineIntel", CPUs: 2}, "aws-c7i.large", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, how, err := tab.Match(tc.m)
			if err != nil || got != tc.want {
				t.Fatalf("Match = %q, %v; want %q", got, err, tc.want)
			}
			for _, w := range tc.how {
				if !strings.Contains(how, w) {
					t.Errorf("how %q does not say %q", how, w)
				}
			}
		})
	}
	for _, m := range []report.Machine{
		{Device: "cuda:0", GPU: "NVIDIA GeForce RTX 4090"},
		{Device: "cuda:0"},
		{Device: "cpu", Arch: "riscv64", CPUs: 4},
		{Device: "cpu", Arch: "amd64", CPU: "QEMU Virtual CPU", CPUs: 4},
	} {
		_, _, err := tab.Match(m)
		if !errors.Is(err, ErrNoPriceMatch) || !strings.Contains(err.Error(), "serving.machine") {
			t.Errorf("Match(%+v) error = %v; want ErrNoPriceMatch saying how to name a machine", m, err)
		}
	}
}

func TestParseGPUQuery(t *testing.T) {
	name, mem, drv := parseGPUQuery("NVIDIA H100 80GB HBM3, 81559, 550.54.15\n")
	if name != "NVIDIA H100 80GB HBM3" || mem != 81559 || drv != "550.54.15" {
		t.Errorf("got %q %d %q", name, mem, drv)
	}
	if name, _, _ := parseGPUQuery("No devices were found"); name != "" {
		t.Errorf("parsed %q from an error message", name)
	}
	for dev, want := range map[string]int{"cuda": 0, "cuda:1": 1, "CUDA:3": 3} {
		if i, ok := cudaIndex(dev); !ok || i != want {
			t.Errorf("cudaIndex(%q) = %d, %v", dev, i, ok)
		}
	}
	for _, dev := range []string{"cpu", "cuda:x", "cuda1", "cuda:-1"} {
		if _, ok := cudaIndex(dev); ok {
			t.Errorf("cudaIndex(%q) accepted", dev)
		}
	}
}
