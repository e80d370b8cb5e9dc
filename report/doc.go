// Package report defines what a distill run writes when it finishes:
// report.json, a stable machine-readable contract, and report.md, the
// same results for people.
//
// # report.json, schema distill.report/v1
//
//	{
//	  "schema": "distill.report/v1",
//	  "recipe": "mnist-mlp",
//	  "backend": "gorgonia",
//	  "device": "cpu",
//	  "seed": 1,
//	  "dataset": {"name": "mnist", "train": 60000, "test": 10000},
//	  "models": [
//	    {"name": "teacher", "role": "teacher", "params": 1199882, "bytes": 4799808,
//	     "accuracy": 0.9842, "errors": 158, "agreement": 1, "ece": 0.0123,
//	     "path": "models/teacher.json"},
//	    ...
//	  ],
//	  "stages": [{"name": "teacher", "seconds": 312.4}, ...],
//	  "created": "2025-01-02T15:04:05Z",
//	  "version": "v0.1.0"
//	}
//
// Field names are lowercase (snake_case when they have several words).
// Later versions of the contract add fields and never rename or remove
// one, so readers must ignore fields they do not know; a change that
// breaks readers gets a new schema string. ReadJSON refuses any schema
// but Schema.
//
// Each model has a role: RoleTeacher, RoleStudent (trained with the
// teacher) or RoleBaseline (the student's architecture trained without a
// teacher, the control that shows what distillation bought). Accuracy,
// agreement (the fraction of test examples on which a model predicts the
// teacher's class) and ECE (expected calibration error) are fractions in
// [0, 1]; errors counts misclassified test examples; bytes is the size of
// the model's weights file.
package report
