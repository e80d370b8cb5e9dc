package pipeline_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/tensorboard"
)

// runYAML parses a recipe and runs it with opts, failing the test on any
// error.
func runYAML(t *testing.T, y string, opts pipeline.Options) *report.Report {
	t.Helper()
	r, err := recipe.Parse([]byte(y), "")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := pipeline.Run(context.Background(), r, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func loadTiny(t *testing.T) *recipe.Recipe {
	t.Helper()
	r, err := recipe.Load(filepath.Join("..", "recipes", "synthetic-tiny.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEndToEnd runs the whole pipeline on synthetic data: teacher,
// students, baselines, eval, report files.
func TestEndToEnd(t *testing.T) {
	out := t.TempDir()
	var events []pipeline.Event
	rep, err := pipeline.Run(context.Background(), loadTiny(t), pipeline.Options{OutDir: out, Progress: func(e pipeline.Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 {
		t.Error("no progress events")
	}
	roles := map[report.Role]int{}
	for _, m := range rep.Models {
		roles[m.Role]++
		if _, err := os.Stat(filepath.Join(out, m.Path)); err != nil {
			t.Errorf("model %s: %v", m.Name, err)
		}
		if m.Params <= 0 || m.Bytes <= 0 {
			t.Errorf("model %s: params %d bytes %d", m.Name, m.Params, m.Bytes)
		}
	}
	if roles[report.RoleTeacher] != 1 || roles[report.RoleStudent] < 1 || roles[report.RoleBaseline] < 1 || roles[report.RoleStudentInt8] != roles[report.RoleStudent] {
		t.Errorf("roles %v: want a teacher, students, baselines and an INT8 model of each student", roles)
	}
	acc := map[string]float64{}
	for _, m := range rep.Models {
		acc[m.Name] = m.Accuracy
	}
	for _, m := range rep.Models {
		if m.Role == report.RoleStudentInt8 {
			if m.Source == "" || m.Calibration != "entropy" {
				t.Errorf("INT8 model %s: source %q calibration %q", m.Name, m.Source, m.Calibration)
			}
			if d := acc[m.Source] - m.Accuracy; d > 0.03 {
				t.Errorf("INT8 %s lost %.3f accuracy against %s", m.Name, d, m.Source)
			}
		}
	}
	if rep.Models[0].Accuracy < 0.9 {
		t.Errorf("teacher accuracy %v on the synthetic task, want >= 0.9", rep.Models[0].Accuracy)
	}
	back, err := report.ReadJSON(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Models) != len(rep.Models) || back.Schema != report.Schema {
		t.Errorf("report.json holds %d models, schema %q", len(back.Models), back.Schema)
	}
	if _, err := os.Stat(filepath.Join(out, "report.md")); err != nil {
		t.Error(err)
	}
	tbFiles, _ := filepath.Glob(filepath.Join(out, "tensorboard", "teacher", "*", "events.out.tfevents.*"))
	if len(tbFiles) != 1 {
		t.Fatalf("teacher TensorBoard files: %v", tbFiles)
	}
	f, err := os.Open(tbFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := tensorboard.ReadEvents(f)
	if err != nil || len(evs) < 2 {
		t.Errorf("teacher curves: %d events, %v", len(evs), err)
	}
}

// TestRerunSkipsFinishedStages checks that a second run of the same
// recipe trains nothing, and that changing a student retrains only it.
func TestRerunSkipsFinishedStages(t *testing.T) {
	out := t.TempDir()
	r := loadTiny(t)
	first, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	trained := func(r *recipe.Recipe) map[string]bool {
		got := map[string]bool{}
		_, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: out, Progress: func(e pipeline.Event) {
			if e.Step == 1 && e.Epochs > 0 { // a training step, not evaluation's
				got[e.Model] = true
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := trained(r); len(got) != 0 {
		t.Fatalf("rerun trained %v, want nothing", got)
	}
	r2 := *r
	r2.Students = append([]recipe.Student(nil), r.Students...)
	r2.Students[0].Distill.Temperature *= 2
	got := trained(&r2)
	if !got[r.Students[0].Name] || len(got) != 1 {
		t.Fatalf("after changing %s's temperature the run trained %v, want only it", r.Students[0].Name, got)
	}
	_ = first
}

const ensembleRecipe = `
name: ens
seed: 3
data:
  dataset: synthetic
  synthetic: {train: 256, test: 128, shape: [1, 6, 6], classes: 3}
training: {epochs: 2, batch_size: 32, lr: 1.0e-2}
teacher:
  model: {hidden: [24]}
ensemble:
  - name: wide
    model: {hidden: [48]}
    weight: 2
transfer:
  copies: 2
  augment: {shift: 1}
  cache_dir: CACHE
students:
  - name: s
    model: {hidden: [6]}
    distill: {temperature: 3, alpha: 0.9}
serving: {measure: false}
`

// TestEnsembleWithTransferSet trains two teachers, has them label an
// augmented transfer set once, and distils from their mixture; a second
// student reuses the cached set without running the teachers.
func TestEnsembleWithTransferSet(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	y := strings.ReplaceAll(ensembleRecipe, "CACHE", cache)
	r, err := recipe.Parse([]byte(y), "")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	built := 0
	rep, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: out, Progress: func(e pipeline.Event) {
		if e.Stage == "transfer" {
			built++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if built == 0 {
		t.Error("the transfer set was not built")
	}
	names := map[string]string{}
	for _, m := range rep.Models {
		names[m.Name] = string(m.Role) + " " + m.Method
	}
	if names["wide"] != "teacher " || !strings.Contains(names["s"], "2 teachers") || !strings.Contains(names["s"], "transfer set ×3") {
		t.Errorf("models: %v", names)
	}
	// The student's 2 epochs over 256 × 3 rows read both teachers'
	// targets from the set: 3,072 teacher passes not run.
	if u := rep.Transfer; u == nil || u.Rows != 768 || u.TeacherExamplesAvoided != 3072 {
		t.Errorf("transfer use %+v, want 768 rows and 3072 teacher passes avoided", u)
	}
	manifests, _ := filepath.Glob(filepath.Join(cache, "*", "manifest.json"))
	if len(manifests) != 1 {
		t.Fatalf("%d transfer sets in the cache, want 1", len(manifests))
	}

	// Another student (another run dir, another temperature): the cached
	// set serves it without running the teachers.
	r2, _ := recipe.Parse([]byte(strings.Replace(y, "temperature: 3", "temperature: 5", 1)), "")
	built = 0
	if _, err := pipeline.Run(context.Background(), r2, pipeline.Options{OutDir: out, Progress: func(e pipeline.Event) {
		if e.Stage == "transfer" {
			built++
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if built != 0 {
		t.Errorf("the cached transfer set was rebuilt (%d progress events)", built)
	}
}

const featureRecipe = `
name: feat
data:
  dataset: synthetic
  synthetic: {train: 256, test: 128, shape: [1, 8, 8], classes: 3}
training: {epochs: 2, batch_size: 32, lr: 1.0e-2}
teacher:
  model: {type: cnn, conv: [{channels: 6, kernel: 3, padding: 1, pool: 2}], hidden: [16]}
students:
  - name: fit
    model: {type: cnn, conv: [{channels: 3, kernel: 3, padding: 1, pool: 2}], hidden: [8]}
    distill:
      hints: [{student: act_conv1, teacher: act_conv1}]
      hint_epochs: 1
      attention: [{student: pool1, teacher: pool1}]
    baseline: false
serving: {measure: false}
`

// TestFeatureDistillation runs FitNets' two stages (hints with a 1×1 conv
// adapter, then distillation) with an attention term on CNNs, and checks
// that a pairing that cannot fit is a recipe error naming both layers.
func TestFeatureDistillation(t *testing.T) {
	rep := runYAML(t, featureRecipe, pipeline.Options{OutDir: t.TempDir()})
	m := rep.Models[1]
	if m.Name != "fit" || !strings.Contains(m.Method, "hint (1 epoch first)") || !strings.Contains(m.Method, "attention") {
		t.Errorf("student %s method %q", m.Name, m.Method)
	}
	if m.Accuracy < 0.6 {
		t.Errorf("feature-distilled student accuracy %v", m.Accuracy)
	}
	_, err := recipe.Parse([]byte(strings.Replace(featureRecipe, "{student: pool1, teacher: pool1}", "{student: pool1, teacher: fc1}", 1)), "x.yaml")
	if err == nil || !strings.Contains(err.Error(), `"pool1"`) || !strings.Contains(err.Error(), `"fc1"`) {
		t.Errorf("mismatched attention pairing: %v", err)
	}
}

// TestFeatureDistillationFromTransferSet runs the FitNets + attention
// student from transfer sets: the set stores the teacher layers the terms
// read (act_conv1 and pool1) besides its logits, and the student trains
// from the cache, without the teacher in its loop. Without augmented
// copies the cached student must match the one trained with the teacher
// in the loop; with copies it must train.
func TestFeatureDistillationFromTransferSet(t *testing.T) {
	run := func(transfer string) (report.Model, string) {
		dir := t.TempDir()
		cache := filepath.Join(dir, "cache")
		y := featureRecipe
		if transfer != "" {
			y = strings.Replace(y, "students:", "transfer: {"+transfer+", cache_dir: "+cache+"}\nstudents:", 1)
		}
		rep := runYAML(t, y, pipeline.Options{OutDir: filepath.Join(dir, "run")})
		return rep.Models[1], cache
	}
	live, _ := run("")
	cached, _ := run("copies: 0")
	if math.Abs(cached.Accuracy-live.Accuracy) > 0.02 || math.Abs(cached.Agreement-live.Agreement) > 0.02 {
		t.Errorf("student from the cached set: accuracy %v, agreement %v; with the teacher in the loop: %v, %v", cached.Accuracy, cached.Agreement, live.Accuracy, live.Agreement)
	}
	aug, cache := run("copies: 1, augment: {shift: 1}")
	if !strings.Contains(aug.Method, "hint") || !strings.Contains(aug.Method, "attention") || !strings.Contains(aug.Method, "transfer set ×2") {
		t.Errorf("student %s method %q", aug.Name, aug.Method)
	}
	if aug.Accuracy < 0.34 { // 3 classes
		t.Errorf("student from the augmented set: accuracy %v", aug.Accuracy)
	}
	manifests, _ := filepath.Glob(filepath.Join(cache, "*", "manifest.json"))
	if len(manifests) != 1 {
		t.Fatalf("%d transfer sets in the cache, want 1", len(manifests))
	}
	b, err := os.ReadFile(manifests[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, layer := range []string{`"name":"act_conv1"`, `"name":"pool1"`} {
		if !strings.Contains(strings.ReplaceAll(string(b), " ", ""), layer) {
			t.Errorf("the manifest does not list the teacher layer %s", layer)
		}
	}
}

// TestAugmentedTeacher trains the teacher on its data plus augmented
// copies: twice the steps per epoch with one copy, the report says so,
// and a changed augmentation retrains the teacher.
func TestAugmentedTeacher(t *testing.T) {
	base := strings.Replace(ensembleRecipe, "ensemble:\n  - name: wide\n    model: {hidden: [48]}\n    weight: 2\ntransfer:\n  copies: 2\n  augment: {shift: 1}\n  cache_dir: CACHE\n", "", 1)
	out := t.TempDir()
	steps := func(y string) (int, *report.Report) {
		r, err := recipe.Parse([]byte(y), "")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		rep, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: out, Progress: func(e pipeline.Event) {
			if e.Model == "teacher" && e.Epochs > 0 { // training steps, not evaluation
				n = e.Steps
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		return n, rep
	}
	plain, _ := steps(base)
	aug := strings.Replace(base, "  model: {hidden: [24]}\n", "  model: {hidden: [24]}\n  copies: 1\n  augment: {shift: 1, rotate: 5}\n", 1)
	augSteps, rep := steps(aug)
	if plain == 0 || augSteps != 2*plain {
		t.Errorf("teacher steps: %d plain, %d with one augmented copy; want twice as many", plain, augSteps)
	}
	if m := rep.Models[0]; m.Name != "teacher" || !strings.Contains(m.Method, "data ×2, augmented shift=1 rotate=5") {
		t.Errorf("teacher method %q", m.Method)
	}
	if again, _ := steps(aug); again != 0 {
		t.Errorf("the same augmented teacher was trained again (%d steps)", again)
	}
	if other, _ := steps(strings.Replace(aug, "rotate: 5", "rotate: 6", 1)); other != augSteps {
		t.Errorf("a changed augmentation did not retrain the teacher (%d steps)", other)
	}
	if _, err := recipe.Parse([]byte(strings.Replace(aug, "copies: 1", "copies: 0", 1)), "x.yaml"); err == nil || !strings.Contains(err.Error(), "teacher.copies") {
		t.Errorf("augment without copies: %v", err)
	}
}

// TestMaxNorm trains a recipe whose training has max_norm: every saved
// linear weight row (a unit's incoming weights) is within the bound.
func TestMaxNorm(t *testing.T) {
	y := strings.Replace(featureRecipe, "training: {epochs: 2, batch_size: 32, lr: 1.0e-2}", "training: {epochs: 2, batch_size: 32, lr: 1.0e-2, max_norm: 0.5}", 1)
	r, err := recipe.Parse([]byte(y), "")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: out}); err != nil {
		t.Fatal(err)
	}
	spec, w, err := model.Load(filepath.Join(out, "models", "teacher"))
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := spec.Params()
	checked := 0
	for _, p := range ps {
		if !backend.MaxNormed(spec, p) {
			continue
		}
		d := w[p.Name].Data
		per := len(d) / p.Shape[0]
		for u := 0; u < p.Shape[0]; u++ {
			var ss float64
			for _, v := range d[u*per : (u+1)*per] {
				ss += float64(v) * float64(v)
			}
			if math.Sqrt(ss) > 0.5+1e-5 {
				t.Errorf("%s unit %d has incoming weight norm %v > 0.5", p.Name, u, math.Sqrt(ss))
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no constrained weights")
	}
}

// TestUnlabelledTransferSet is the semi-supervised case: the teacher and
// the baseline see the first 128 labelled examples, and the student
// distils on the other 384 training inputs, whose labels are never read.
func TestUnlabelledTransferSet(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	y := `
name: semi
data:
  dataset: synthetic
  synthetic: {train: 512, test: 256, shape: [1, 6, 6], classes: 3}
  train_limit: 128
training: {epochs: 4, batch_size: 32, lr: 1.0e-2}
teacher:
  model: {hidden: [32]}
transfer:
  unlabelled: {from: 128}
  cache_dir: ` + cache + `
students:
  - name: s
    model: {hidden: [16]}
    distill: {temperature: 2, alpha: 0.9}
serving: {measure: false}
`
	rep := runYAML(t, y, pipeline.Options{OutDir: filepath.Join(dir, "run")})
	s := rep.Models[1]
	if s.Name != "s" || !strings.Contains(s.Method, "unlabelled") {
		t.Errorf("student %s method %q", s.Name, s.Method)
	}
	if s.Accuracy < 0.5 {
		t.Errorf("student accuracy %v on 3 classes", s.Accuracy)
	}
	manifests, _ := filepath.Glob(filepath.Join(cache, "*", "manifest.json"))
	if len(manifests) != 1 {
		t.Fatalf("%d transfer sets, want 1", len(manifests))
	}
	b, _ := os.ReadFile(manifests[0])
	var m struct {
		Description struct {
			Source struct {
				Examples int  `json:"examples"`
				Labelled bool `json:"labelled"`
			} `json:"source"`
		} `json:"description"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if src := m.Description.Source; src.Examples != 384 || src.Labelled {
		t.Errorf("the set's source: %+v, want 384 unlabelled examples", src)
	}
	bad := strings.Replace(y, "{from: 128}", "{from: 512}", 1)
	r, _ := recipe.Parse([]byte(bad), "")
	if _, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: filepath.Join(dir, "bad")}); err == nil || !strings.Contains(err.Error(), "transfer.unlabelled.from") {
		t.Errorf("from past the end: %v", err)
	}
}

// TestAugmentBaselines trains the baseline on the transfer set's inputs:
// as many steps as the distilled student, with its method saying so, and
// a recipe error when there are no copies to train on.
func TestAugmentBaselines(t *testing.T) {
	y := `
name: augbase
data:
  dataset: synthetic
  synthetic: {train: 128, test: 64, shape: [1, 6, 6], classes: 3}
training: {epochs: 2, batch_size: 32, lr: 1.0e-2}
teacher:
  model: {hidden: [16]}
transfer:
  copies: 2
  augment: {shift: 1}
  augment_baselines: true
  cache_dir: CACHE
students:
  - name: s
    model: {hidden: [8]}
serving: {measure: false}
`
	dir := t.TempDir()
	y = strings.Replace(y, "CACHE", filepath.Join(dir, "cache"), 1)
	steps := map[string]int{}
	rep := runYAML(t, y, pipeline.Options{OutDir: filepath.Join(dir, "run"), Progress: func(e pipeline.Event) {
		if e.Steps > 0 && e.Stage != "eval" { // training and labelling, not evaluation
			steps[e.Model] = e.Steps
		}
	}})
	if steps["s-baseline"] == 0 || steps["s-baseline"] != steps["s"] || steps["s"] != 3*steps["teacher"] {
		t.Errorf("steps %v: want the baseline to train on the student's 3× inputs", steps)
	}
	var method string
	for _, m := range rep.Models {
		if m.Name == "s-baseline" {
			method = m.Method
		}
	}
	if !strings.Contains(method, "data ×3 augmented shift=1") {
		t.Errorf("baseline method %q", method)
	}
	if _, err := recipe.Parse([]byte(strings.Replace(y, "  copies: 2\n  augment: {shift: 1}\n", "", 1)), "x.yaml"); err == nil || !strings.Contains(err.Error(), "augment_baselines") {
		t.Errorf("augment_baselines without copies: %v", err)
	}
}
