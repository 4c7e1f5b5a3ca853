package runtime

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the executor's Prometheus collectors.
type Metrics struct {
	submitted *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inflight  prometheus.Gauge
}

// NewMetrics creates the executor's collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fnhost_invocations_submitted_total",
			Help: "Invocations persisted, by function and trigger.",
		}, []string{"function", "trigger"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fnhost_attempts_total",
			Help: "Attempts finished, by function and outcome.",
		}, []string{"function", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fnhost_attempt_duration_seconds",
			Help:    "How long attempts ran, by function.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"function"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fnhost_inflight",
			Help: "Handlers running on this host now.",
		}),
	}
	reg.MustRegister(m.submitted, m.attempts, m.duration, m.inflight)
	return m
}
