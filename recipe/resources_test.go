package recipe

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// synthBase is a small valid recipe on synthetic data (2048 + 512
// examples of shape [1, 8, 8]) that the size tests extend.
const synthBase = `
data: {dataset: synthetic}
teacher:
  model: {hidden: [64]}
students:
  - model: {hidden: [16]}
serving: {batches: [1, 8]}
`

// testMemory is the budget of the size tests: 1 GiB.
var testMemory = Memory{Bytes: 1 << 30, Source: "the test allows 1.0 GiB"}

func TestCheckResources(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		// key and fragments of the one problem expected; key "" = none.
		key   string
		words []string
	}{
		{"fits", synthBase, "", nil},
		{"teacher hidden 1e12", `
data: {dataset: synthetic}
teacher:
  model: {hidden: [1000000000000]}
students:
  - model: {hidden: [16]}
`, "teacher.model", []string{`model "teacher" has 6.9e+13 parameters`, "TiB", "the test allows 1.0 GiB", "at most about 6.71e+07 parameters fit", "reduce its hidden sizes"}},
		{"conv channels 1e9", `
data: {dataset: synthetic}
teacher:
  model: {type: cnn, conv: [{channels: 1000000000}]}
students:
  - model: {hidden: [16]}
`, "teacher.model", []string{"parameters", "TiB", "conv channels"}},
		{"student too large", `
data: {dataset: synthetic}
teacher:
  model: {hidden: [64]}
students:
  - name: s
    model: {hidden: [100000, 100000]}
`, "students[0].model", []string{`model "s" has 1e+10 parameters`}},
		{"ensemble member too large", `
data: {dataset: synthetic}
teacher:
  model: {hidden: [64]}
ensemble:
  - name: big
    model: {hidden: [100000, 100000]}
students:
  - model: {hidden: [16]}
`, "ensemble[0].model", []string{`model "big"`}},
		{"sizes whose products overflow int64", `
data: {dataset: synthetic}
teacher:
  model: {hidden: [4000000000000000000, 4000000000000000000]}
students:
  - model: {hidden: [16]}
`, "teacher.model", []string{"more than 9.2e+18 parameters", "more than 8 EiB"}},
		{"conv output that overflows when flattened", `
data: {dataset: synthetic, synthetic: {shape: [1, 64, 64]}}
teacher:
  model: {type: cnn, conv: [{channels: 4000000000000000000, kernel: 1}], hidden: [8]}
students:
  - model: {hidden: [16]}
`, "teacher.model", []string{"more than 9.2e+18 parameters"}},
		{"training batch", `
data: {dataset: synthetic, synthetic: {train: 60000, shape: [1, 28, 28]}}
training: {batch_size: 60000}
teacher:
  model: {type: cnn, conv: [{channels: 64}], hidden: [64]}
students:
  - model: {hidden: [16]}
`, "training.batch_size", []string{`model "teacher"`, "training batch of 60000", "at most batch size"}},
		{"training batch of the model's own section", `
data: {dataset: synthetic, synthetic: {train: 60000, shape: [1, 28, 28]}}
teacher:
  model: {type: cnn, conv: [{channels: 64}], hidden: [64]}
  training: {batch_size: 60000}
students:
  - model: {hidden: [16]}
`, "teacher.training.batch_size", []string{"at most batch size"}},
		{"training batch larger than the data is what the data holds", `
data: {dataset: synthetic}
training: {batch_size: 1000000000000}
teacher:
  model: {hidden: [64]}
students:
  - model: {hidden: [16]}
`, "", nil},
		{"eval batch larger than the test set is clipped", `
data: {dataset: synthetic}
teacher:
  model: {hidden: [64]}
students:
  - model: {hidden: [16]}
eval: {batch_size: 1000000000000}
`, "", nil},
		{"eval batch", `
data: {dataset: synthetic, synthetic: {test: 10000, shape: [1, 28, 28]}}
teacher:
  model: {type: cnn, conv: [{channels: 64}], hidden: [64]}
students:
  - model: {hidden: [16]}
eval: {batch_size: 10000}
serving: {batches: [1]}
`, "eval.batch_size", []string{`evaluating model "teacher" at batch size 10000`, "at most batch size"}},
		{"serving batch", `
data: {dataset: synthetic}
teacher:
  model: {hidden: [64]}
students:
  - model: {hidden: [16]}
serving: {batches: [1, 1000000000000]}
`, "serving.batches[1]", []string{`batch size 1e+12 needs at least`, "TiB", "at most batch size"}},
		{"serving batches are not checked when serving is not measured", `
data: {dataset: synthetic}
teacher:
  model: {hidden: [64]}
students:
  - model: {hidden: [16]}
serving: {measure: false, batches: [1, 1000000000000]}
`, "", nil},
		{"teacher copies", `
data: {dataset: synthetic}
teacher:
  model: {hidden: [64]}
  copies: 1000000000000
  augment: {shift: 1}
students:
  - model: {hidden: [16]}
`, "teacher.copies", []string{"on 2.05e+15 rows (2048 examples and 1e+12 augmented copies of each)", "shuffled order", "at most 65494 copies fit"}},
		{"transfer copies", `
data: {dataset: synthetic}
teacher:
  model: {hidden: [64]}
transfer: {copies: 1000000000000, augment: {shift: 1}}
students:
  - model: {hidden: [16]}
`, "transfer.copies", []string{`training model "student0"`, "at most 65494 copies fit"}},
		{"synthetic data too large", `
data: {dataset: synthetic, synthetic: {train: 1000000000000}}
teacher:
  model: {hidden: [64]}
students:
  - model: {hidden: [16]}
`, "data.synthetic.train", []string{"the training and test sets", "at most 4.13e+06 examples fit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.yaml), "r.yaml")
			if err != nil {
				t.Fatalf("the recipe does not parse: %v", err)
			}
			err = r.CheckResources(testMemory)
			if tc.key == "" {
				if err != nil {
					t.Fatalf("CheckResources: %v, want nil", err)
				}
				return
			}
			var re *Error
			if !errors.As(err, &re) || len(re.Problems) != 1 {
				t.Fatalf("CheckResources = %v, want one problem at %s", err, tc.key)
			}
			p := re.Problems[0]
			if p.Key != tc.key || p.File != "r.yaml" {
				t.Errorf("problem at %s in %q, want %s in r.yaml: %v", p.Key, p.File, tc.key, p)
			}
			for _, w := range tc.words {
				if !strings.Contains(p.Message, w) {
					t.Errorf("message %q lacks %q", p.Message, w)
				}
			}
		})
	}
}

// TestShippedRecipesFit pins that the size checks refuse nothing that
// the shipped recipes ask for, even on a machine with 1 GiB.
func TestShippedRecipesFit(t *testing.T) {
	for _, path := range shippedRecipes(t) {
		r, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.CheckResources(testMemory); err != nil {
			t.Errorf("%s: %v", filepath.Base(path), err)
		}
	}
}

func TestSaturatingArithmetic(t *testing.T) {
	const max = math.MaxInt64
	for _, tc := range []struct{ a, b, mul, add int64 }{
		{0, max, 0, max},
		{3, 4, 12, 7},
		{1 << 32, 1 << 30, 1 << 62, 1<<32 + 1<<30},
		{1 << 32, 1 << 31, max, 1<<32 + 1<<31},
		{max, 1, max, max},
		{max / 2, 3, max, max/2 + 3},
		{max / 2, max/2 + 2, max, max},
	} {
		if got := mul(tc.a, tc.b); got != tc.mul {
			t.Errorf("mul(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.mul)
		}
		if got := add(tc.a, tc.b); got != tc.add {
			t.Errorf("add(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.add)
		}
	}
	if got := numel([]int{1 << 40, 1 << 40}); got != max {
		t.Errorf("numel of 2^80 = %d, want saturated", got)
	}
	if got := numel([]int{3, -1}); got != max {
		t.Errorf("numel of a wrapped (negative) shape = %d, want saturated", got)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0:             "0 B",
		1023:          "1023 B",
		1536:          "1.5 KiB",
		23 << 30:      "23.0 GiB",
		1 << 60:       "1.0 EiB",
		math.MaxInt64: "more than 8 EiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMachineMemory(t *testing.T) {
	m := MachineMemory()
	if m.Bytes <= 0 || m.Source == "" {
		t.Fatalf("MachineMemory() = %+v, want a positive budget and its source", m)
	}
	if !strings.Contains(m.Source, formatBytes(m.Bytes)) {
		t.Errorf("source %q does not state the budget %s", m.Source, formatBytes(m.Bytes))
	}
}
