// Package recipe reads the YAML recipe that drives a whole distill run:
// the dataset, the teacher (trained or loaded from a checkpoint), the
// students distilled from it, how each model trains, evaluation, and
// where results go. recipes/README.md in the repository is the reference
// for the format: every key, its type, default and allowed range.
//
// # Reading a recipe
//
// Load reads a file and Parse reads bytes. Both decode strictly: an
// unknown key, a value of the wrong type and a value out of range are
// all errors, and every problem in the file is reported at once in an
// *Error whose Problems carry the file, line, column and dotted key path
// ("students[1].distill.temperature") of each:
//
//	mnist.yaml:12:5: students[0].distill.temperature: must be > 0, got -1
//	mnist.yaml:14:7: students[0].distill.temprature: unknown key; did you mean "temperature"?
//
// A successfully parsed Recipe has every default filled in (documented on
// each field), the default Name taken from the file name, and data.dir
// and teacher.checkpoint resolved against the recipe file's directory.
// A key with no value (or null) counts as left out; a value that is
// written is kept and checked, so alpha: 0 means zero and epochs: 0 is
// an error rather than a request for the default.
//
// # Training sections
//
// The top-level training section is the base for every model. The
// teacher's and each student's own training section override it key by
// key (schedule keys included), and defaults fill what neither gives;
// TrainingFor computes this. Parse stores the result in Teacher.Training
// and each Students[i].Training, and leaves the top-level section as
// written. A Training remembers which keys the YAML gave, so an explicit
// zero (momentum: 0 with SGD) survives merging; in Go, MarkSet does the
// same.
//
// # Recipes built in Go
//
// A Recipe can also be built in Go: SetDefaults fills its defaults as
// Parse would (treating zero values as unset) and Validate runs the same
// checks, reporting problems by key without line numbers. Model.Spec
// turns a model section into a model.Spec for a given input shape
// (Data.Shape gives the dataset's), and Hash identifies the canonical
// recipe for caching. yaml.Marshal writes a recipe back in a form that
// Parse reads to an equal one.
package recipe
