// Package serve answers inference requests for a compiled model over
// HTTP, with dynamic batching, a bounded queue, request limits,
// Prometheus metrics and graceful shutdown; Load is a load generator
// that measures it from the client side.
//
// A Server is usable in-process: Predict runs examples through the
// batcher directly, Handler is an http.Handler for any mux or test
// server, and Serve runs it on a listener. Each Server has its own
// prometheus.Registry, so several can live in one process.
//
// Endpoints:
//
//	POST /v1/predict  JSON {"inputs": [[...], ...]} → {"logits": [[...]], "classes": [...]},
//	                  or application/octet-stream: little-endian float32, n × input size
//	                  → little-endian float32, n × classes
//	GET  /v1/model    name, input shape, classes, precision
//	GET  /healthz     200 "ok" while serving, 503 once shutting down
//	GET  /metrics     Prometheus text format
//
// Batching is dynamic: a worker takes every request already queued (up
// to MaxBatch examples) when it becomes free, and while the batch is not
// full and other requests are still being received it waits up to
// MaxWait for them, so batches grow with the load while a lone request
// waits for nothing. A request with more examples
// than MaxBatch is refused with 413 rather than split, so that one
// client cannot occupy the worker for several batches.
package serve
