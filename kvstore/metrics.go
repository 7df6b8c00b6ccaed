package kvstore

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// metrics are the KV service's raftkv_* Prometheus metrics. They exist
// whether or not they are registered, so the code that updates them needs no
// checks; the gauges are read at scrape time.
type metrics struct {
	applyDuration  prometheus.Histogram
	watchersLagged prometheus.Counter
	leasesExpired  prometheus.Counter

	all []prometheus.Collector
}

func newMetrics(kv *KV) *metrics {
	m := &metrics{
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raftkv_apply_duration_seconds",
			Help:    "Time to apply one batch of committed entries (or a snapshot) to the store and wake its watchers and writers.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100 µs .. 3.3 s
		}),
		watchersLagged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_watchers_lagged_total",
			Help: "Watchers closed because they fell more than --watch-buffer revisions behind.",
		}),
		leasesExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_leases_expired_total",
			Help: "Leases this member, as leader, revoked because their time ran out.",
		}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.all = []prometheus.Collector{
		m.applyDuration, m.watchersLagged, m.leasesExpired,
		gauge("raftkv_leases", "Leases in the store.",
			func() float64 { return float64(kv.store.LeaseCount()) }),
		gauge("raftkv_keys", "Keys in the store.",
			func() float64 { return float64(kv.store.Len()) }),
		gauge("raftkv_revision", "The store's revision: the log index of its latest change.",
			func() float64 { return float64(kv.store.Revision()) }),
		gauge("raftkv_watchers", "Open watchers.",
			func() float64 { return float64(kv.hub.count()) }),
	}
	return m
}

// register registers the metrics with reg as one collector; a nil reg keeps
// them unregistered. A failure costs only the metrics, so it is logged.
func (m *metrics) register(lg *zap.Logger, reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	if err := reg.Register(m); err != nil {
		lg.Error("kvstore metrics are not exported: register them (is the registerer shared with another node?)", zap.Error(err))
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all {
		c.Collect(ch)
	}
}
