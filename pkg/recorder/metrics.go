package recorder

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// lagRefresh is the least time between two ConsumerInfo calls for the lag
// metrics, whatever the number of scrapers.
const lagRefresh = 5 * time.Second

// commitBuckets span one batch's transaction: a millisecond for a few
// rows on SQLite to 30 s, the store call's timeout.
var commitBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// metrics are a recorder's Prometheus metrics: results written and commit
// latency, counted per commit, and the recorder consumer's lag, read at
// scrape time (at most every lagRefresh).
type metrics struct {
	results    prometheus.Counter
	commitOK   prometheus.Counter
	commitErr  prometheus.Counter
	commitTime prometheus.Histogram

	pending, ackPending, healthy *prometheus.Desc

	mu         sync.Mutex
	consumer   jetstream.Consumer
	infoAt     time.Time
	infoOK     bool
	numPending uint64
	numAck     int
}

func newMetrics() *metrics {
	commits := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_recorder_commits_total",
		Help: "Batches the recorder tried to write, by outcome (ok, error); a failed batch is retried."}, []string{"outcome"})
	return &metrics{
		results: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_recorder_results_total",
			Help: "Results written to the results store (one per attempt outcome)."}),
		commitOK:  commits.WithLabelValues("ok"),
		commitErr: commits.WithLabelValues("error"),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchyard_recorder_commit_duration_seconds",
			Help: "How long writing one batch of results to the store took, failed writes included.", Buckets: commitBuckets}),
		pending: prometheus.NewDesc("switchyard_recorder_pending",
			"Results not yet delivered to a recorder (the recorder consumer's num_pending; read at most every 5s).", nil, nil),
		ackPending: prometheus.NewDesc("switchyard_recorder_ack_pending",
			"Results delivered to a recorder and not yet written and acknowledged.", nil, nil),
		healthy: prometheus.NewDesc("switchyard_recorder_store_healthy",
			"1 while the last write to the results store succeeded.", nil, nil),
	}
}

// committed counts one write of n results that took d.
func (m *metrics) committed(n int, d time.Duration, err error) {
	m.commitTime.Observe(d.Seconds())
	if err != nil {
		m.commitErr.Inc()
		return
	}
	m.commitOK.Inc()
	m.results.Add(float64(n))
}

// collector is the prometheus.Collector of a Recorder.
type collector struct{ r *Recorder }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	m := c.r.metrics
	m.results.Describe(ch)
	m.commitOK.Describe(ch)
	m.commitTime.Describe(ch)
	ch <- m.pending
	ch <- m.ackPending
	ch <- m.healthy
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.r.metrics
	m.results.Collect(ch)
	m.commitOK.Collect(ch)
	m.commitErr.Collect(ch)
	m.commitTime.Collect(ch)
	healthy := 0.0
	if c.r.Healthy() {
		healthy = 1
	}
	ch <- prometheus.MustNewConstMetric(m.healthy, prometheus.GaugeValue, healthy)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.consumer != nil && time.Since(m.infoAt) >= lagRefresh {
		m.infoAt = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if ci, err := m.consumer.Info(ctx); err == nil {
			m.infoOK, m.numPending, m.numAck = true, ci.NumPending, ci.NumAckPending
		}
		cancel()
	}
	if m.infoOK {
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(m.numPending))
		ch <- prometheus.MustNewConstMetric(m.ackPending, prometheus.GaugeValue, float64(m.numAck))
	}
}

// Collector returns the recorder's metrics, for the process's registry:
// results written, commits and their latency, the recorder consumer's lag
// and the store's health. Register it on one registry only.
func (r *Recorder) Collector() prometheus.Collector { return collector{r} }
