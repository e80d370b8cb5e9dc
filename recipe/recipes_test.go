package recipe

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/train"
)

const readmePath = "../recipes/README.md"

func shippedRecipes(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob("../recipes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 3 {
		t.Fatalf("found %d recipes in ../recipes, want at least 3", len(paths))
	}
	return paths
}

func TestShippedRecipesParse(t *testing.T) {
	for _, path := range shippedRecipes(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			r, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSuffix(filepath.Base(path), ".yaml"); r.Name != want {
				t.Errorf("name = %q, want the file name %q", r.Name, want)
			}
		})
	}
}

// TestShippedRecipeContents pins what the shipped recipes promise.
func TestShippedRecipeContents(t *testing.T) {
	load := func(name string) *Recipe {
		t.Helper()
		r, err := Load("../recipes/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}

	q := load("mnist-quick.yaml")
	check("quick dataset", q.Data.Dataset, "mnist")
	check("quick seed", q.Seed, int64(1))
	check("quick teacher hidden", q.Teacher.Model.Hidden, []int{512, 512})
	check("quick teacher activation", q.Teacher.Model.Activation, "relu")
	check("quick teacher dropout", q.Teacher.Model.Dropout, 0.0)
	tt := q.Teacher.Training
	check("quick teacher optimizer", tt.Optimizer, backend.Adam)
	check("quick teacher lr", tt.LR, 3e-3)
	check("quick teacher epochs", tt.Epochs, 3)
	check("quick teacher batch", tt.BatchSize, 128)
	check("quick teacher schedule", tt.Schedule.Kind, train.Cosine)
	check("quick students", len(q.Students), 1)
	s := q.Students[0]
	check("quick student name", s.Name, "small")
	check("quick student hidden", s.Model.Hidden, []int{128, 128})
	check("quick student distill", s.Distill, Distill{Temperature: 4, Alpha: 0.9})
	check("quick student epochs", s.Training.Epochs, 4)
	check("quick student baseline", s.BaselineEnabled(), true)
	check("quick eval", q.Eval, Eval{BatchSize: DefaultEvalBatch, ECEBins: DefaultECEBins})

	h := load("mnist-hinton.yaml")
	check("hinton teacher", h.Teacher.Model, Model{Type: "mlp", Hidden: []int{1200, 1200}, Activation: "relu", Dropout: 0.5, InputDropout: 0.2})
	check("hinton teacher epochs", h.Teacher.Training.Epochs, 30)
	check("hinton teacher lr", h.Teacher.Training.LR, 1e-3)
	check("hinton teacher schedule", h.Teacher.Training.Schedule.Kind, train.Cosine)
	check("hinton teacher batch", h.Teacher.Training.BatchSize, 128)
	hs := h.Students[0]
	check("hinton student name", hs.Name, "hinton-800")
	check("hinton student model", hs.Model, Model{Type: "mlp", Hidden: []int{800, 800}, Activation: "relu"})
	check("hinton student distill", hs.Distill, Distill{Temperature: 20, Alpha: 0.9})
	check("hinton student epochs", hs.Training.Epochs, 30)
	check("hinton student optimizer", hs.Training.Optimizer, backend.Adam)
	check("hinton student baseline", hs.BaselineEnabled(), true)

	for _, name := range []string{"fashion-resnet.yaml", "fashion-resnet-quick.yaml"} {
		f := load(name)
		check(name+" dataset", f.Data.Dataset, "fashion-mnist")
		check(name+" teacher type", f.Teacher.Model.Type, "resnet")
		s := f.Students[0]
		check(name+" student type", s.Model.Type, "resnet")
		check(name+" student baseline", s.BaselineEnabled(), true)
		check(name+" quantize", f.Quantize.Enabled && f.Quantize.MaxDrop > 0, true)
		check(name+" hint student", s.Distill.Hints[0].Student, "layer2.0")
	}
	fq := load("fashion-resnet-quick.yaml")
	check("fashion quick epochs", fq.Teacher.Training.Epochs, 1)
	check("fashion quick train limit", fq.Data.TrainLimit, 6000)

	o := load("fashion-onnx-teacher.yaml")
	check("onnx teacher file", filepath.Base(o.Teacher.ONNX), "teacher.onnx")
	check("onnx teacher source", o.Teacher.Source(), "onnx")
	check("onnx teacher preprocess", o.Teacher.Preprocess, Preprocess{Mean: []float64{0.2860}, Std: []float64{0.3530}})
	check("onnx teacher hint", o.Students[0].Distill.Hints[0].Teacher, "/layer2/layer2.0/relu_1/Relu_output_0")
	check("onnx teacher hint adapter", fmt.Sprint(o.Students[0].Distill.Hints[0].Adapter), "conv1x1")

	y := load("synthetic-tiny.yaml")
	check("tiny dataset", y.Data.Dataset, "synthetic")
	check("tiny teacher epochs", y.Teacher.Training.Epochs, 2)
	for _, s := range y.Students {
		check("tiny "+s.Name+" epochs", s.Training.Epochs, 2)
	}
}

// TestReadmeNamesEveryKey checks that the reference has a table row for
// every YAML key of every type in the recipe.
func TestReadmeNamesEveryKey(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := yamlKey(f)
			if key == "" {
				continue
			}
			if !strings.Contains(string(readme), "| `"+key+"` |") {
				t.Errorf("%s: no table row for key %q (%s.%s)", readmePath, key, typ.Name(), f.Name)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[Recipe]())
	if len(seen) < 10 {
		t.Errorf("walked only %d types", len(seen))
	}
}

// readmeSection returns the lines of the README section with the given
// heading, up to the next heading.
func readmeSection(t *testing.T, heading string) []string {
	t.Helper()
	f, err := os.Open(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	in, fence := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fence = !fence
		}
		if strings.HasPrefix(l, "#") && !fence {
			if in {
				break
			}
			in = l == heading
			continue
		}
		if in {
			lines = append(lines, l)
		}
	}
	if !in {
		t.Fatalf("%s: no section %q", readmePath, heading)
	}
	return lines
}

// TestReadmeDefaults checks the reference tables' default column against
// the code's defaults.
func TestReadmeDefaults(t *testing.T) {
	g := func(v any) string { return fmt.Sprintf("`%v`", v) }
	tests := []struct {
		section, key, want string
	}{
		{"### Top level", "backend", g(DefaultBackend)},
		{"### Top level", "device", g(DefaultDevice)},
		{"### Top level", "seed", g(DefaultSeed)},
		{"### data", "dataset", g(DefaultDataset)},
		{"### data.synthetic", "train", g(DefaultSynthTrain)},
		{"### data.synthetic", "test", g(DefaultSynthTest)},
		{"### data.synthetic", "shape", "`[1, 8, 8]`"},
		{"### data.synthetic", "classes", g(DefaultSynthClass)},
		{"### training", "epochs", g(DefaultEpochs)},
		{"### training", "batch_size", g(DefaultBatchSize)},
		{"### training", "optimizer", g(DefaultOptimizer)},
		{"### training", "lr", g(DefaultAdamLR) + " with adam, " + g(DefaultSGDLR) + " with sgd"},
		{"### training", "momentum", g(DefaultMomentum) + " with sgd"},
		{"### training.schedule", "kind", g(DefaultSchedule)},
		{"### training.schedule", "gamma", g(DefaultStepGamma) + " for `step`, " + g(DefaultExpGamma) + " for `exponential`"},
		{"### students[].distill", "temperature", g(DefaultTemperature)},
		{"### students[].distill", "alpha", g(DefaultAlpha)},
		{"### model", "type", g(DefaultModelType)},
		{"### model", "activation", g(DefaultActivation)},
		{"### model.conv[]", "kernel", g(DefaultKernel)},
		{"### model.conv[]", "stride", g(DefaultStride)},
		{"### model.stem and model.stages[]", "kernel", g(DefaultKernel)},
		{"### model.stem and model.stages[]", "repeat", g(DefaultRepeat)},
		{"### model.stem and model.stages[]", "expand", g(DefaultExpand)},
		{"### model.nodes[]", "momentum", g(defaultBNMomentum)},
		{"### model.nodes[]", "eps", g(defaultBNEps)},
		{"### eval", "batch_size", g(DefaultEvalBatch)},
		{"### eval", "ece_bins", g(DefaultECEBins)},
		{"### transfer", "dtype", g("float32")},
		{"### quantize", "method", g(DefaultMethod)},
		{"### quantize", "percentile", g(DefaultPercentile)},
		{"### quantize", "calibration", g(DefaultCalibration)},
		{"### quantize", "validation", g(DefaultValidation)},
		{"### students[].distill.hints and .attention", "distance", g(loss.DefaultDistance)},
		{"### students[].distill.hints and .attention", "adapter", g(loss.DefaultAdapter)},
	}
	for _, tc := range tests {
		var row string
		for _, l := range readmeSection(t, tc.section) {
			if strings.HasPrefix(l, "| `"+tc.key+"` |") {
				row = l
			}
		}
		if row == "" {
			t.Errorf("%s: no row for %s", tc.section, tc.key)
			continue
		}
		cols := strings.Split(row, "|")
		if len(cols) < 4 || !strings.Contains(cols[3], tc.want) {
			t.Errorf("%s: %s: default column does not say %s:\n%s", tc.section, tc.key, tc.want, row)
		}
	}
}

// TestReadmeExampleParses keeps the annotated example valid, and checks
// that it shows every key.
func TestReadmeExampleParses(t *testing.T) {
	lines := readmeSection(t, "## A complete, annotated recipe")
	start := slices.Index(lines, "```yaml")
	if start < 0 {
		t.Fatal("no ```yaml block")
	}
	end := slices.Index(lines[start+1:], "```")
	if end < 0 {
		t.Fatal("unterminated ```yaml block")
	}
	example := strings.Join(lines[start+1:start+1+end], "\n")
	r, err := Parse([]byte(example), "")
	if err != nil {
		t.Fatalf("the README's example does not parse:\n%v", err)
	}
	if r.Name != "my-run" || len(r.Students) != 2 || r.Students[0].Model.Type != "cnn" {
		t.Errorf("unexpected example recipe: %+v", r)
	}
	// Every key appears in the example, commented out or not.
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			return
		}
		for i := range typ.NumField() {
			key := yamlKey(typ.Field(i))
			if key == "" {
				continue
			}
			if !strings.Contains(example, key+":") {
				t.Errorf("the README's example does not show key %q", key)
			}
			walk(typ.Field(i).Type)
		}
	}
	walk(reflect.TypeFor[Recipe]())
}

// TestMarshalRoundTrip: what yaml.Marshal writes, Parse reads back to a
// recipe with the same hash.
func TestMarshalRoundTrip(t *testing.T) {
	paths := shippedRecipes(t)
	ok, err := filepath.Glob("testdata/ok/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range append(paths, ok...) {
		t.Run(path, func(t *testing.T) {
			r, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, r)
		})
	}
}

func roundTrip(t testing.TB, r *Recipe) {
	t.Helper()
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	r2, err := Parse(out, "")
	if err != nil {
		t.Fatalf("reading back what Marshal wrote:\n%v\n---\n%s", err, out)
	}
	if r.Hash() != r2.Hash() {
		out2, _ := yaml.Marshal(r2)
		t.Fatalf("hash changed across Marshal and Parse:\n%s\n--- read back as:\n%s", out, out2)
	}
}
