// Package pipeline runs a whole compression pipeline from a recipe:
// obtain a teacher, distil students from it (with same-size baselines
// trained on hard labels), evaluate them all and write a report.
//
// A run is a sequence of stages (data → teachers → transfer set →
// students and baselines → quantize → eval → report). The teacher and
// student stages are done by packages teacher and student, the others by
// this package's files of the same names; this package sequences them,
// and stages.go holds the resume keys and stage records. Each stage writes its outputs into the run directory and
// reads only what earlier stages wrote there, and records a stage file
// keyed by the recipe sections it depends on: running the same recipe
// again on the same directory skips finished stages, and changing one
// section reruns only the stages that depend on it.
//
// The pieces are usable on their own without a recipe: package loss has
// the objectives, train the training loop for any model and data source,
// teacher and student the two halves of distillation, eval the metrics
// and report the output files.
package pipeline
