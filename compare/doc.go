// Package compare sets the reports of any number of distill runs side by
// side: any backend, any recipe, measured on any machine.
//
// Load reads each run's report.json; New lines up every model of every
// run with its quality (accuracy), size, batch-1 latency, throughput,
// serving cost per million requests at each pricing tier and its
// savings against one baseline run's teacher, and marks the models on
// the accuracy–cost Pareto frontier. Markdown renders the comparison as
// Markdown tables; HTML as a self-contained page whose charts (accuracy
// against cost with the frontier, latency percentiles per model) are
// inline SVG drawn with gonum.org/v1/plot. Write writes both atomically.
//
// The costs are the ones package cost put in the reports, each priced
// at its own run's machine; Options.Reprice prices every report anew
// (another price table, machine or latency target) from the serving
// measurements they carry. `distill compare` is this package's command.
package compare
