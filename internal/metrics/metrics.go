// Package metrics defines orgkms' Prometheus metrics. Labels carry route
// patterns, providers, operations and outcomes only: never org data, key
// material or request content.
package metrics

import (
	"time"

	"github.com/orgkms/orgkms/internal/jobs"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is the set of orgkms metrics, registered on its own registry.
type Metrics struct {
	Registry         *prometheus.Registry
	HTTPRequests     *prometheus.CounterVec   // route, code
	HTTPDuration     *prometheus.HistogramVec // route
	MasterKeyCalls   *prometheus.CounterVec   // provider, op, outcome
	MasterKeyLatency *prometheus.HistogramVec // provider, op
	JobSteps         *prometheus.CounterVec   // kind, step
	JobRuns          *prometheus.CounterVec   // kind, outcome
}

// New creates and registers the metrics. cacheHits and cacheMisses are read
// at scrape time.
func New(cacheHits, cacheMisses, cachedOrgs func() float64) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orgkms_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "orgkms_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		MasterKeyCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orgkms_master_key_calls_total", Help: "Remote master-key calls by provider, operation and outcome (ok or an error code).",
		}, []string{"provider", "op", "outcome"}),
		MasterKeyLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "orgkms_master_key_call_duration_seconds", Help: "Remote master-key call latency.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"provider", "op"}),
		JobSteps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orgkms_job_steps_total", Help: "Durable steps of re-wrap jobs committed by this node, by job kind and step.",
		}, []string{"kind", "step"}),
		JobRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orgkms_job_runs_total", Help: "Runs of re-wrap jobs on this node by job kind and outcome (done, retry, failed, lost, interrupted).",
		}, []string{"kind", "outcome"}),
	}
	r.MustRegister(m.HTTPRequests, m.HTTPDuration, m.MasterKeyCalls, m.MasterKeyLatency, m.JobSteps, m.JobRuns,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "orgkms_key_cache_hits_total", Help: "Key cache hits (org root key found unwrapped in memory)."}, cacheHits),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "orgkms_key_cache_misses_total", Help: "Key cache misses (org root key unwrapped by the master key)."}, cacheMisses),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orgkms_key_cache_orgs", Help: "Orgs whose keys are cached unwrapped in memory."}, cachedOrgs),
	)
	return m
}

// RegisterLiveNodes adds the gauge orgkms_cluster_live_nodes, read from
// live at scrape time.
func (m *Metrics) RegisterLiveNodes(live func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orgkms_cluster_live_nodes",
		Help: "orgkms nodes on the database whose heartbeat is within cluster.node_timeout, as this node last counted them."}, live))
}

// ObserveMasterKey records one remote master-key call; it matches masterkey.Observer.
func (m *Metrics) ObserveMasterKey(provider, op, outcome string, d time.Duration) {
	m.MasterKeyCalls.WithLabelValues(provider, op, outcome).Inc()
	m.MasterKeyLatency.WithLabelValues(provider, op).Observe(d.Seconds())
}

// ObserveJob records a job step or outcome; it matches jobs.Config.Observer.
func (m *Metrics) ObserveJob(ev jobs.Event) {
	if ev.Step != "" {
		m.JobSteps.WithLabelValues(string(ev.Kind), ev.Step).Inc()
	}
	if ev.Outcome != "" {
		m.JobRuns.WithLabelValues(string(ev.Kind), string(ev.Outcome)).Inc()
	}
}
