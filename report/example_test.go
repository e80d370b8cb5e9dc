package report_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/distill-dev/distill/report"
)

func ExampleReport_Markdown() {
	r := &report.Report{
		Recipe:  "xor",
		Backend: "reference",
		Device:  "cpu",
		Seed:    1,
		Dataset: report.Dataset{Name: "xor", Train: 800, Test: 200},
		Models: []report.Model{
			{Name: "teacher", Role: report.RoleTeacher, Params: 4354, Bytes: 17696, Accuracy: 0.99, Errors: 2, Agreement: 1, ECE: 0.01},
			{Name: "baseline", Role: report.RoleBaseline, Params: 50, Bytes: 480, Accuracy: 0.9, Errors: 20, Agreement: 0.9, ECE: 0.08},
			{Name: "student", Role: report.RoleStudent, Params: 50, Bytes: 480, Accuracy: 0.95, Errors: 10, Agreement: 0.96, ECE: 0.04, Method: "kd", Temperature: 4, Alpha: 0.7},
		},
		Stages: []report.Stage{{Name: "teacher", Seconds: 3}, {Name: "student", Seconds: 1}},
	}
	fmt.Print(r.Markdown())
	// Output:
	// # Distillation report: xor
	//
	// - **Dataset:** xor, 800 train / 200 test examples
	// - **Backend:** reference on cpu
	// - **Seed:** 1
	//
	// ## Models
	//
	// | Model | Role | Params | Size | Accuracy | Errors | Agreement w/ teacher | ECE |
	// |---|---|--:|--:|--:|--:|--:|--:|
	// | teacher | teacher | 4,354 | 17.3 KiB | 99.00% | 2 | — | 0.0100 |
	// | student | student (kd, T=4, α=0.7) | 50 | 480 B | 95.00% | 10 | 96.00% | 0.0400 |
	// | baseline | baseline | 50 | 480 B | 90.00% | 20 | 90.00% | 0.0800 |
	//
	// ## Distillation vs baseline
	//
	// - **student** made 10 errors, 10 fewer than its baseline **baseline** (20): distillation cut errors by 50.0%, within noise. Accuracy 95.00% vs 90.00% (+5.00 points; 95% intervals 91.04–97.26% and 85.06–93.43%).
	//
	// ## Stages
	//
	// | Stage | Seconds | Share |
	// |---|--:|--:|
	// | teacher | 3.0 | 75.0% |
	// | student | 1.0 | 25.0% |
	// | **Total** | **4.0** | |
}

func ExampleReadJSON() {
	dir, err := os.MkdirTemp("", "report")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "report.json")

	r := &report.Report{Recipe: "xor", Models: []report.Model{{Name: "student", Role: report.RoleStudent, Accuracy: 0.95}}}
	if err := r.WriteJSON(path); err != nil {
		log.Fatal(err)
	}
	got, err := report.ReadJSON(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.Schema, got.Recipe, got.Models[0].Name, got.Models[0].Accuracy)
	// Output: distill.report/v1 xor student 0.95
}
