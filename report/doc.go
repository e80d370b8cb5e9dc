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
// teacher), RoleBaseline (the student's architecture trained without a
// teacher, the control that shows what distillation bought), or
// RoleStudentInt8 and RoleTeacherInt8 (a post-training INT8 quantization
// of the model its source field names). Accuracy,
// agreement (the fraction of test examples on which a model predicts the
// teacher's class) and ECE (expected calibration error) are fractions in
// [0, 1]; errors counts misclassified test examples; bytes is the size of
// the model's weights file.
//
// # Serving and cost
//
// A report whose models were measured and priced (by package cost) also
// has, all optional:
//
//	"machine": {"os": "linux", "arch": "amd64", "cpu": "...", "cpus": 4, "gomaxprocs": 4, "device": "cpu"},
//	"price": {"machine": "aws-c7i.xlarge", "currency": "USD",
//	          "usd_per_hour": {"on_demand": 0.1785, "spot": 0.068, "reserved": 0.1124},
//	          "source": "...", "as_of": "2025-06-01", "table": "default", "latency_target_ms": 100},
//	"training_cost": {"seconds": 465, "usd": {"on_demand": 0.023, ...}},
//
// and on each measured model
//
//	"serving": {"engine": "infer", "precision": "fp32",
//	            "latency_ms": {"p50": 1.2, "p95": 1.8, "p99": 3, "mean": 1.3}, "requests": 5000,
//	            "throughput": [{"batch": 1, "requests_per_second": 800,
//	                            "batch_latency_ms": {...}, "batches": 300, "seconds": 1,
//	                            "model_bytes": 4812800}, ...],
//	            "peak_heap_bytes": 50331648, "peak_rss_bytes": 125829120, "threads": 4, "method": "..."},
//	"cost": {"batch": 32, "requests_per_second": 3000, "latency_target_ms": 100, "within_target": true,
//	         "usd_per_million": {"on_demand": 0.0165, "spot": 0.0063, "reserved": 0.0104},
//	         "reference": "teacher", "savings_percent": 98, "training_usd": 0.0026,
//	         "break_even_requests": 160000}
//
// Money is in US dollars; a pricing tier that is left out is unknown,
// not free. docs/cost.md explains how each number is measured and
// computed, and Markdown adds a "Serving cost" section when any model
// has them.
//
// # JSON Schema
//
// report/schema.json (JSONSchema) is the contract as a JSON Schema, draft
// 2020-12. Its objects accept properties it does not list, as readers
// must; the tests check that it declares every field this version
// writes.
package report
