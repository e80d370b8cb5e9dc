package pipeline_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/gorgonia"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/onnx"
	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/teacher/ort"
)

// needORT skips a test when ONNX Runtime cannot be loaded (no cgo, or no
// library), or fails it when DISTILL_REQUIRE_ORT is set, as package
// onnx's and teacher/ort's tests do.
func needORT(t *testing.T) {
	t.Helper()
	_, err := ort.Check("")
	if err == nil {
		return
	}
	if os.Getenv("DISTILL_REQUIRE_ORT") != "" {
		t.Fatalf("DISTILL_REQUIRE_ORT is set but ONNX Runtime does not load: %v", err)
	}
	t.Skip(err)
}

// onnxTeacherYAML is a small synthetic recipe whose teacher is the ONNX
// file at path; extra is added to the teacher section, student to the
// student's distill section.
func onnxTeacherYAML(path, extra, student string, classes int) string {
	return `
name: onnx-teacher
seed: 3
data:
  dataset: synthetic
  synthetic: {train: 256, test: 128, shape: [16], classes: ` + strconv.Itoa(classes) + `}
training: {epochs: 2, batch_size: 32}
teacher:
  onnx: ` + path + `
` + extra + `
students:
  - name: s
    model: {hidden: [8]}
    distill: {` + student + `}
    baseline: false
transfer: {enabled: true}
serving: {measure: false}
quantize: {enabled: false}
`
}

// exportedTeacher writes an MLP for the synthetic task (16 inputs,
// classes outputs) as ONNX through distill's exporter, its weights
// initialised (or w when given), and returns the file and the spec.
func exportedTeacher(t *testing.T, dir string, classes int, w model.Weights) (string, model.Spec) {
	t.Helper()
	spec, err := recipe.Model{Hidden: []int{32}}.Spec("teacher", []int{16}, classes)
	if err != nil {
		t.Fatal(err)
	}
	if w == nil {
		if w, err = spec.Init(5); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "teacher.onnx")
	if err := onnx.WriteFileFP32(path, spec, w); err != nil {
		t.Fatal(err)
	}
	return path, spec
}

// TestONNXTeacherChecks: distill validate (pipeline.Check) rejects an
// ONNX teacher that cannot teach this recipe before any work, naming
// the key and both sides. None of these needs ONNX Runtime: the file is
// read first.
func TestONNXTeacherChecks(t *testing.T) {
	dir := t.TempDir()
	path, spec := exportedTeacher(t, dir, 4, nil)
	notONNX := filepath.Join(dir, "notes.onnx")
	if err := os.WriteFile(notONNX, []byte("this is not a model\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hidden := spec.Layers[0].Name
	for _, tc := range []struct {
		name, yaml string
		key, want  string
	}{
		{"class count", onnxTeacherYAML(path, "", "", 5), "teacher.onnx", "predicts 4 classes"},
		{"input shape", strings.Replace(onnxTeacherYAML(path, "", "", 4), "shape: [16]", "shape: [1, 5, 5]", 1), "teacher.onnx", "but the data's examples have shape [1 5 5]"},
		{"missing file", onnxTeacherYAML(filepath.Join(dir, "gone.onnx"), "", "", 4), "teacher.onnx", "does not exist"},
		{"not ONNX", onnxTeacherYAML(notONNX, "", "", 4), "teacher.onnx", "is not an ONNX model"},
		{"unknown hint tensor", onnxTeacherYAML(path, "", "hints: [{student: "+hidden+", teacher: "+hidden+"x}]", 4), "students[0].distill.hints[0].teacher", "has no tensor \"" + hidden + "x\""},
		{"unknown output", onnxTeacherYAML(path, "  output: probs\n", "", 4), "teacher.output", "has no output \"probs\""},
		{"missing runtime", onnxTeacherYAML(path, "  runtime: "+filepath.Join(dir, "libonnxruntime.so")+"\n", "", 4), "teacher.runtime", "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := recipe.Parse([]byte(tc.yaml), "")
			if err != nil {
				t.Fatal(err)
			}
			err = pipeline.Check(r, pipeline.Options{})
			var rerr *recipe.Error
			if !errors.As(err, &rerr) {
				t.Fatalf("Check = %v (%T), want a *recipe.Error at %s", err, err, tc.key)
			}
			for _, p := range rerr.Problems {
				if p.Key == tc.key && strings.Contains(p.Message, tc.want) {
					return
				}
			}
			t.Errorf("Check =\n%v\nwant a problem at %s containing %q", err, tc.key, tc.want)
		})
	}
	// The suggestion for a misspelt tensor lists the near names.
	r, err := recipe.Parse([]byte(onnxTeacherYAML(path, "", "hints: [{student: "+hidden+", teacher: x/"+hidden+"}]", 4)), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Check(r, pipeline.Options{}); err == nil || !strings.Contains(err.Error(), "in their names: [\""+hidden) {
		t.Errorf("Check = %v, want tensors named like %q suggested", err, hidden)
	}
}

// TestONNXTeacherEndToEnd trains a teacher in distill, exports it with
// distill's ONNX exporter, and runs a recipe whose teacher is that file
// through ONNX Runtime: transfer set, a hint at a named tensor, and the
// teacher's accuracy in the report equal to the same network's in
// distill.
func TestONNXTeacherEndToEnd(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	// The teacher, trained by distill itself.
	trained := strings.Replace(onnxTeacherYAML("X", "", "", 4), "  onnx: X\n", "  model: {hidden: [32]}\n", 1)
	first := runYAML(t, trained, pipeline.Options{OutDir: filepath.Join(dir, "trained")})
	spec, w, err := model.Load(filepath.Join(dir, "trained", "models", "teacher.json"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "teacher.onnx")
	if err := onnx.WriteFileFP32(path, spec, w); err != nil {
		t.Fatal(err)
	}
	hidden := spec.Layers[1].Name // the hidden layer's activation
	y := onnxTeacherYAML(path, "", "hints: [{student: "+spec.Layers[1].Name+", teacher: "+hidden+", adapter: linear}], hint_epochs: 1", 4)
	y = strings.Replace(y, "transfer: {enabled: true}", "transfer: {enabled: true, cache_dir: "+filepath.Join(dir, "cache")+"}", 1)
	r, err := recipe.Parse([]byte(y), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Check(r, pipeline.Options{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// The tensor's shape, known once ONNX Runtime ran the model, must
	// pair with the student's layer: 8 values cannot regress 32 without
	// an adapter.
	noAdapter, err := recipe.Parse([]byte(strings.Replace(y, "adapter: linear", "adapter: none", 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Check(noAdapter, pipeline.Options{}); err == nil || !strings.Contains(err.Error(), "students[0].distill: ") {
		t.Errorf("Check of a hint whose shapes differ, without an adapter = %v, want a problem at students[0].distill", err)
	}
	out := filepath.Join(dir, "onnx")
	rep, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	teacherOf := func(rep *report.Report) report.Model {
		for _, m := range rep.Models {
			if m.Role == report.RoleTeacher {
				return m
			}
		}
		t.Fatal("no teacher in the report")
		return report.Model{}
	}
	a, b := teacherOf(first), teacherOf(rep)
	// Same network, same test set: ONNX Runtime's float32 arithmetic may
	// flip at most a near-tie.
	if math.Abs(a.Accuracy-b.Accuracy) > 1.0/128+1e-9 {
		t.Errorf("teacher accuracy %v through ONNX Runtime, %v in distill", b.Accuracy, a.Accuracy)
	}
	if b.Params != a.Params || b.Bytes <= 0 || b.Path != path {
		t.Errorf("ONNX teacher in the report: params %d (distill's: %d), bytes %d, path %q", b.Params, a.Params, b.Bytes, b.Path)
	}
	if _, err := os.Stat(filepath.Join(out, "models", "teacher.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an ONNX teacher left a model file in the run directory: %v", err)
	}
	var student bool
	for _, m := range rep.Models {
		student = student || m.Name == "s" && m.Accuracy > 0
	}
	if !student || rep.Transfer == nil || rep.Transfer.Rows != 256 {
		t.Errorf("student distilled: %v, transfer use %+v", student, rep.Transfer)
	}
	// A rerun reuses the finished stages, the transfer set included.
	rep2 := runYAML(t, y, pipeline.Options{OutDir: out})
	if teacherOf(rep2).Accuracy != b.Accuracy {
		t.Errorf("rerun: teacher accuracy %v, first run %v", teacherOf(rep2).Accuracy, b.Accuracy)
	}
	// Without a transfer set ONNX Runtime runs in the training loop,
	// giving the hint's tensor and the soft targets batch by batch.
	inLoop := runYAML(t, strings.Replace(y, "transfer: {enabled: true, cache_dir: "+filepath.Join(dir, "cache")+"}", "", 1), pipeline.Options{OutDir: filepath.Join(dir, "loop")})
	if inLoop.Transfer != nil || teacherOf(inLoop).Accuracy != b.Accuracy {
		t.Errorf("in the loop: transfer %+v, teacher accuracy %v (want %v)", inLoop.Transfer, teacherOf(inLoop).Accuracy, b.Accuracy)
	}
	for _, m := range inLoop.Models {
		if m.Name == "s" && !strings.Contains(m.Method, "hint") {
			t.Errorf("student method %q: want the hint", m.Method)
		}
	}
}

// stateDictYAML loads PyTorch's state_dict of a small torchvision-style
// ResNet (teacher/testdata/pytorch, made by make_teachers.py) onto the
// recipe's resnet.
func stateDictYAML(path string, stem int) string {
	return `
name: statedict-teacher
seed: 3
data:
  dataset: synthetic
  synthetic: {train: 64, test: 32, shape: [1, 28, 28], classes: 10}
training: {epochs: 1, batch_size: 32}
teacher:
  safetensors: ` + path + `
  model: {type: resnet, stem: {channels: ` + strconv.Itoa(stem) + `}, stages: [{channels: 8}, {channels: 16, stride: 2}]}
  preprocess: {mean: [0.5], std: [0.25]}
students:
  - name: s
    model: {hidden: [8]}
    baseline: false
serving: {measure: false}
quantize: {enabled: false}
`
}

// TestStateDictTeacher runs a recipe whose teacher is a PyTorch
// state_dict: its tensors become the teacher's weights (the run
// directory's teacher holds exactly them), and one that does not fit the
// recipe's model is refused by Check with the tensors named.
func TestStateDictTeacher(t *testing.T) {
	path, err := filepath.Abs(filepath.Join("..", "teacher", "testdata", "pytorch", "resnet.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no PyTorch fixture: %v", err)
	}
	bad, err := recipe.Parse([]byte(stateDictYAML(path, 4)), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Check(bad, pipeline.Options{}); err == nil || !strings.Contains(err.Error(), "teacher.safetensors: ") || !strings.Contains(err.Error(), "conv1.weight") {
		t.Errorf("Check of a state_dict for another stem = %v, want its mis-shaped tensors at teacher.safetensors", err)
	}

	r, err := recipe.Parse([]byte(stateDictYAML(path, 8)), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Check(r, pipeline.Options{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	out := t.TempDir()
	rep, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	spec, got, err := model.Load(filepath.Join(out, "models", "teacher.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := model.LoadStateDict(path, spec, model.StateDictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		g := got[name]
		if len(g.Data) != len(w.Data) {
			t.Fatalf("%s: %d values saved, the state_dict has %d", name, len(g.Data), len(w.Data))
		}
		for i := range w.Data {
			if g.Data[i] != w.Data[i] {
				t.Fatalf("%s[%d] = %v saved, %v in the state_dict", name, i, g.Data[i], w.Data[i])
			}
		}
	}
	if len(rep.Models) < 2 {
		t.Errorf("report models %v: want the teacher and the student", rep.Models)
	}
}

// TestONNXTeacherWithoutRuntime: where ONNX Runtime cannot load (a build
// without cgo, or no library), validation says how to provide it.
func TestONNXTeacherWithoutRuntime(t *testing.T) {
	if _, err := ort.Check(""); err == nil {
		t.Skip("ONNX Runtime loads here: nothing to explain")
	}
	path, _ := exportedTeacher(t, t.TempDir(), 4, nil)
	r, err := recipe.Parse([]byte(onnxTeacherYAML(path, "", "", 4)), "")
	if err != nil {
		t.Fatal(err)
	}
	err = pipeline.Check(r, pipeline.Options{})
	if err == nil || !strings.Contains(err.Error(), "teacher.onnx: ") || !strings.Contains(err.Error(), "onnxruntime-node") || !strings.Contains(err.Error(), "install-ort.sh") {
		t.Errorf("Check = %v, want a teacher.onnx problem saying how to install ONNX Runtime", err)
	}
}

// TestONNXEnsembleMember: an ensemble member may be an ONNX file too; it
// gives logits to the mixture (transfer set included) and is evaluated
// in the report, and its file is checked like the main teacher's.
func TestONNXEnsembleMember(t *testing.T) {
	dir := t.TempDir()
	path, _ := exportedTeacher(t, dir, 4, nil)
	y := strings.Replace(onnxTeacherYAML("X", "", "", 4), "  onnx: X\n", "  model: {hidden: [16]}\nensemble:\n  - {name: exported, onnx: "+path+", weight: 2}\n", 1)
	y = strings.Replace(y, "transfer: {enabled: true}", "transfer: {enabled: true, cache_dir: "+filepath.Join(dir, "cache")+"}", 1)
	bad, err := recipe.Parse([]byte(strings.Replace(y, "classes: 4", "classes: 3", 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Check(bad, pipeline.Options{}); err == nil || !strings.Contains(err.Error(), "ensemble[0].onnx: ") || !strings.Contains(err.Error(), "predicts 4 classes") {
		t.Errorf("Check of a member with 4 classes for 3-class data = %v", err)
	}
	needORT(t)
	rep := runYAML(t, y, pipeline.Options{OutDir: filepath.Join(dir, "out")})
	var teachers []string
	for _, m := range rep.Models {
		if m.Role == report.RoleTeacher {
			teachers = append(teachers, m.Name)
			if m.Accuracy <= 0 {
				t.Errorf("teacher %s: accuracy %v", m.Name, m.Accuracy)
			}
		}
	}
	if strings.Join(teachers, ",") != "teacher,exported" {
		t.Errorf("teachers in the report %v, want teacher and exported", teachers)
	}
	if rep.Transfer == nil {
		t.Error("no transfer set")
	}
}

// TestPreprocessedCheckpointTeacher runs a teacher that reads 3×8×8 BGR
// images on 1×6×6 grey data: its preprocessing resizes, repeats and
// reverses the channels and normalises before the teacher sees the data,
// and the teacher's accuracy in the report is what it scores on the test
// set so prepared. A resize that does not make the teacher's input is
// refused by Check, before any work, naming both shapes.
func TestPreprocessedCheckpointTeacher(t *testing.T) {
	dir := t.TempDir()
	spec, err := model.CNN(model.CNNConfig{Name: "rgb-teacher", Input: []int{3, 8, 8}, Conv: []model.ConvBlock{{Channels: 4, Kernel: 3}}, Hidden: []int{8}, Classes: 4})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(5)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "teacher.json")
	if err := model.Save(path, spec, w); err != nil {
		t.Fatal(err)
	}
	y := func(size string) string {
		return `
name: rgb-teacher
seed: 3
data:
  dataset: synthetic
  synthetic: {train: 64, test: 48, shape: [1, 6, 6], classes: 4}
training: {epochs: 1, batch_size: 16}
teacher:
  checkpoint: ` + path + `
  preprocess: {size: ` + size + `, channels: 3, channel_order: bgr, mean: [0.1, 0.2, 0.3], std: [0.5]}
students:
  - name: s
    model: {hidden: [8]}
    baseline: false
serving: {measure: false}
quantize: {enabled: false}
`
	}
	bad, err := recipe.Parse([]byte(y("[7, 7]")), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Check(bad, pipeline.Options{}); err == nil || !strings.Contains(err.Error(), "teacher.checkpoint") || !strings.Contains(err.Error(), "[3 7 7]") || !strings.Contains(err.Error(), "[3 8 8]") {
		t.Errorf("Check with a resize to 7×7 for an 8×8 teacher = %v, want both shapes named at teacher.checkpoint", err)
	}

	r, err := recipe.Parse([]byte(y("[8, 8]")), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Check(r, pipeline.Options{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	rep, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatal(err)
	}
	// The teacher's accuracy on the test set prepared here by hand.
	_, test, err := pipeline.LoadData(context.Background(), r.Data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := gorgonia.Open(backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tm, err := m.Load(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	n := test.Len()
	x := make([]float32, 0, n*3*64)
	for e := 0; e < n; e++ {
		grey := test.X[e*36 : (e+1)*36]
		var plane [64]float32
		// 6 → 8 bilinear with align_corners=False: source ¾·(d+½)−½.
		for oy := 0; oy < 8; oy++ {
			for ox := 0; ox < 8; ox++ {
				sy, sx := max(0.75*(float64(oy)+0.5)-0.5, 0), max(0.75*(float64(ox)+0.5)-0.5, 0)
				y0, x0 := int(sy), int(sx)
				y1, x1 := min(y0+1, 5), min(x0+1, 5)
				fy, fx := sy-float64(y0), sx-float64(x0)
				at := func(y, x int) float64 { return float64(grey[y*6+x]) }
				plane[oy*8+ox] = float32((1-fy)*((1-fx)*at(y0, x0)+fx*at(y0, x1)) + fy*((1-fx)*at(y1, x0)+fx*at(y1, x1)))
			}
		}
		for _, mean := range []float32{0.1, 0.2, 0.3} { // every channel is the grey one, so BGR order shows only in the means
			for _, v := range plane {
				x = append(x, (v-mean)/0.5)
			}
		}
	}
	logits := make([]float32, n*4)
	if err := tm.Forward(x, n, logits); err != nil {
		t.Fatal(err)
	}
	right := 0
	for e := 0; e < n; e++ {
		row := logits[e*4 : (e+1)*4]
		best := 0
		for c := range row {
			if row[c] > row[best] {
				best = c
			}
		}
		if int32(best) == test.Y[e] {
			right++
		}
	}
	var got float64 = -1
	for _, m := range rep.Models {
		if m.Role == report.RoleTeacher {
			got = m.Accuracy
		}
	}
	if want := float64(right) / float64(n); math.Abs(got-want) > 1e-9 {
		t.Errorf("teacher accuracy %v in the report, %v on the test set prepared by hand", got, want)
	}
}
