package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric names, for dashboards and tests.
const (
	MetricRequestDuration = "distill_serve_request_duration_seconds"
	MetricRequests        = "distill_serve_requests_total"
	MetricBatchSize       = "distill_serve_batch_size"
	MetricForwardDuration = "distill_serve_forward_duration_seconds"
	MetricQueueDepth      = "distill_serve_queue_depth"
)

type metrics struct {
	reg       *prometheus.Registry
	latency   prometheus.Histogram
	requests  *prometheus.CounterVec
	batchSize prometheus.Histogram
	forward   prometheus.Histogram
}

func newMetrics(maxBatch int, queueDepth func() float64) *metrics {
	var sizes []float64
	for b := 1; b < maxBatch; b *= 2 {
		sizes = append(sizes, float64(b))
	}
	sizes = append(sizes, float64(maxBatch))
	// 25 µs to ~26 s: loopback requests on a small model take tens of
	// microseconds, an overloaded server seconds.
	lat := prometheus.ExponentialBuckets(25e-6, 2, 21)
	m := &metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricRequestDuration,
			Help:    "Time from reading a /v1/predict request to writing its answer, any status.",
			Buckets: lat,
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRequests,
			Help: "/v1/predict requests answered, by HTTP status code.",
		}, []string{"code"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricBatchSize,
			Help:    "Examples per model call.",
			Buckets: sizes,
		}),
		forward: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricForwardDuration,
			Help:    "Time of one model call on a batch.",
			Buckets: lat,
		}),
	}
	m.reg.MustRegister(m.latency, m.requests, m.batchSize, m.forward,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: MetricQueueDepth,
			Help: "Requests waiting for a worker.",
		}, queueDepth),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
