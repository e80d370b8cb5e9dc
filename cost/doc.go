// Package cost answers "what does each model cost to serve, and does
// distilling pay off?" with measured numbers.
//
// Measure times a model (any eval.Predictor: a backend model or an
// infer program) the way a server runs it: batch-1 latency percentiles
// over many requests, throughput over a sweep of batch sizes, each after
// a warm-up, in fixed-duration repeated windows; the model's own memory
// at each batch size when the predictor can report it (infer.Program
// can), and the process-wide peak Go heap and RSS. The result is a
// report.Serving, with a description of the method. Which engine a
// model is measured on is the caller's choice (package pipeline times
// every model of a report on the engine it would be served on).
//
// A price table (Table; the default is cost/prices.yaml, compiled in,
// and users pass their own with LoadPrices) gives what a machine type or
// GPU costs per hour on demand, on spot and reserved. Apply combines the
// two into a report's costs:
//
//	$ per 1M requests = price per hour ÷ (3600 × requests/s) × 10⁶
//
// at the batch size with the highest throughput whose p99 batch latency
// stays under a latency target (100 ms by default); the savings of each
// model against the teacher in percent; what making each model cost
// (its stage's seconds × the price); and the break-even volume, the
// number of requests after which serving the cheaper model has saved
// what making it cost:
//
//	break-even requests = training cost ÷ (teacher's cost − model's cost per request)
//
// The arithmetic is in small pure functions (PerMillion, TrainingUSD,
// SavingsPercent, BreakEven, BestBatch) that Apply composes.
// docs/cost.md describes the method and the price table format.
package cost
