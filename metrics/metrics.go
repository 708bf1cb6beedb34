// Package metrics holds Stepcast's Prometheus metrics. Each process has one
// Metrics on its own registry, served at /metrics together with the Temporal
// SDK's metrics.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Send outcomes.
const (
	SendSent      = "sent"      // LINE accepted the push
	SendDuplicate = "duplicate" // LINE had already accepted this retry key (409)
	SendSkipped   = "skipped"   // not pushed: the friend blocked the account
	SendFailed    = "failed"    // LINE refused the push for good
	SendRetry     = "retry"     // a transient failure; Temporal retries
	SendHeld      = "held"      // LINE's monthly limit: the step waits for the quota
)

// Metrics are the counters and gauges Stepcast reports.
type Metrics struct {
	Registry           *prometheus.Registry
	WebhookEvents      *prometheus.CounterVec
	WebhookDuplicates  prometheus.Counter
	WebhookBacklog     prometheus.Gauge
	EnrollmentsStarted *prometheus.CounterVec
	Sends              *prometheus.CounterVec
}

// New creates the metrics on a fresh registry with the Go and process
// collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		WebhookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepcast_webhook_events_received_total",
			Help: "LINE webhook events received with a valid signature, by event type.",
		}, []string{"type"}),
		WebhookDuplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stepcast_webhook_events_duplicate_total",
			Help: "Webhook events dropped because their webhookEventId was already received (LINE redeliveries).",
		}),
		WebhookBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stepcast_webhook_inbox_backlog",
			Help: "Webhook events stored but not yet applied (friends upserted, workflows started or signalled).",
		}),
		EnrollmentsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepcast_enrollments_started_total",
			Help: "Enrollment workflows started, by scenario key.",
		}, []string{"scenario"}),
		Sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepcast_sends_total",
			Help: "Step send attempts by outcome: sent, duplicate, skipped, failed, retry, held.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.WebhookEvents, m.WebhookDuplicates, m.WebhookBacklog, m.EnrollmentsStarted, m.Sends,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
