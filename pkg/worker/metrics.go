package worker

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/limit"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

// Metric names a worker exports; see Worker.Collector.
const (
	metricCalls         = "switchyard_calls_total"
	metricCallSeconds   = "switchyard_call_duration_seconds"
	metricInFlight      = "switchyard_calls_in_flight"
	metricRetries       = "switchyard_retries_total"
	metricDeadLetters   = "switchyard_dead_letters_total"
	metricWaits         = "switchyard_ratelimit_waits_total"
	metricWaitSeconds   = "switchyard_ratelimit_wait_seconds_total"
	metricPending       = "switchyard_consumer_pending"
	metricAckPending    = "switchyard_consumer_ack_pending"
	metricConsumerPause = "switchyard_consumer_paused"
	metricUseful        = "switchyard_provider_useful_workers"
	metricRate          = "switchyard_provider_rate_limit"
	metricMembers       = "switchyard_provider_members"
	metricSlots         = "switchyard_provider_slots"
	metricPaused        = "switchyard_provider_paused"
	metricAdaptive      = "switchyard_provider_rate_adaptive"
	metricQuotaLimit    = "switchyard_provider_quota_limit"
	metricQuotaUsed     = "switchyard_provider_quota_used"
	metricQuotaSpent    = "switchyard_provider_quota_spent"
)

// callBuckets span the calls a worker makes: 10 ms to a minute, about
// 1.8× apart, so p50 and p99 of a 500 ms third party land in narrow
// buckets and a timeout at 30 or 60 s is still told apart from a slow call.
var callBuckets = []float64{.01, .025, .05, .1, .2, .35, .5, .75, 1, 1.5, 2.5, 4, 7, 12, 20, 30, 45, 60}

// lagRefresh is the least time between two ConsumerInfo calls of a lane
// for the lag metrics: a scrape never costs more than one round trip per
// consumer, and many scrapers (or a scrape storm) no more than one per
// lagRefresh.
const lagRefresh = 5 * time.Second

// lagTimeout bounds the ConsumerInfo calls of one scrape.
const lagTimeout = 2 * time.Second

// metrics holds a worker's Prometheus metrics. The per-call ones are
// resolved per lane when the lane is made (laneMetrics), so a call costs a
// few atomic adds and no label lookup; the rest are read at scrape time
// (Collect): the lanes' consumer info (cached, see lagRefresh), the
// limiters' waits and where each provider's limits stand.
type metrics struct {
	w *Worker

	calls    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	retries  *prometheus.CounterVec
	dead     *prometheus.CounterVec

	waits, waitSeconds, pending, ackPending, consumerPaused *prometheus.Desc
	useful, rate, members, slots, paused, adaptive          *prometheus.Desc
	quotaLimit, quotaUsed, quotaSpent                       *prometheus.Desc

	// collectMu serializes scrapes, so concurrent ones share one refresh
	// of the consumer info and one latency window.
	collectMu sync.Mutex
	// latency windows per provider for the useful workers: the sum and
	// count of the call histogram at the last scrape, and the mean latency
	// of the calls between the last two scrapes that saw any.
	lastSum   map[string]float64
	lastCount map[string]uint64
	lastMean  map[string]time.Duration
}

func newMetrics(w *Worker) *metrics {
	pl := []string{"provider", "lane"}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &metrics{
		w: w,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricCalls,
			Help: "Calls made to providers, by HTTP status code, or by error class when no answer came (timeout, network, invalid, canceled)."},
			[]string{"provider", "lane", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricCallSeconds,
			Help: "How long provider calls took, answered or not.", Buckets: callBuckets}, pl),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricInFlight,
			Help: "Calls this replica is making right now."}, pl),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRetries,
			Help: "Calls that were a retry: the job's second attempt or later."}, pl),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricDeadLetters,
			Help: "Jobs this replica gave up and stored in DLQ, by reason (error class). provider is _other for a provider this replica does not serve."},
			[]string{"provider", "lane", "class"}),

		waits:          desc(metricWaits, "Calls that waited 1 ms or more for their turn under the provider's limits (rate token, pause).", pl...),
		waitSeconds:    desc(metricWaitSeconds, "Time calls spent waiting for their turn under the provider's limits.", pl...),
		pending:        desc(metricPending, "Jobs not yet delivered to any worker (the work consumer's num_pending; read at most every 5s).", pl...),
		ackPending:     desc(metricAckPending, "Jobs delivered to a worker and not yet acknowledged (the work consumer's num_ack_pending).", pl...),
		consumerPaused: desc(metricConsumerPause, "1 while the work consumer is paused (switchyard provider pause).", pl...),
		useful: desc(metricUseful, "ceil(fleet rate limit × mean call latency ÷ this replica's slots): the most replicas the rate limit keeps busy; "+
			"cap an autoscaler at it. Absent without a rate limit or before the first calls.", "provider"),
		rate:       desc(metricRate, "The rate limit in force in calls/s: scope=fleet for the whole fleet, scope=replica for this replica's share; 0 for none.", "provider", "scope"),
		members:    desc(metricMembers, "Live replicas serving the provider, this one included.", "provider"),
		slots:      desc(metricSlots, "This replica's concurrency slots for the provider.", "provider"),
		paused:     desc(metricPaused, "1 while the provider is paused for the fleet (Retry-After, spent rate-limit budget).", "provider"),
		adaptive:   desc(metricAdaptive, "1 while 429s hold the provider's rate below its ceiling.", "provider"),
		quotaLimit: desc(metricQuotaLimit, "The provider's daily quota; absent without one.", "provider"),
		quotaUsed:  desc(metricQuotaUsed, "Calls of the daily quota the fleet has reserved today.", "provider"),
		quotaSpent: desc(metricQuotaSpent, "1 while the daily quota is spent.", "provider"),

		lastSum: map[string]float64{}, lastCount: map[string]uint64{}, lastMean: map[string]time.Duration{},
	}
}

// laneMetrics are the per-call metrics of one lane, resolved once.
type laneMetrics struct {
	m        *metrics
	provider string
	lane     job.Lane
	inFlight prometheus.Gauge
	latency  prometheus.Observer
	retries  prometheus.Counter
	// codes caches the calls counter of each HTTP status (100–599),
	// resolved on first use; classes that of each class in callClasses.
	codes   [600]atomic.Pointer[prometheus.Counter]
	classes [len(callClasses)]prometheus.Counter

	// The consumer info last read for the lag metrics, and when.
	infoMu     sync.Mutex
	infoAt     time.Time
	infoOK     bool
	pending    uint64
	ackPending int
	paused     bool
}

func (m *metrics) lane(p *provider.Provider, l job.Lane) *laneMetrics {
	name := p.Name()
	lm := &laneMetrics{
		m: m, provider: name, lane: l,
		inFlight: m.inFlight.WithLabelValues(name, string(l)),
		latency:  m.latency.WithLabelValues(name, string(l)),
		retries:  m.retries.WithLabelValues(name, string(l)),
	}
	for i, c := range callClasses {
		lm.classes[i] = m.calls.WithLabelValues(name, string(l), string(c))
	}
	return lm
}

// callClasses are the code label of a call that got no answer: the error
// classes a call can end in, "canceled" for a call cut short by a stop,
// and "other" for anything else.
var callClasses = [...]job.Class{job.ClassTimeout, job.ClassNetwork, job.ClassInvalid, "canceled", "other"}

// begin counts a call starting; attempt is the job's attempt number.
func (lm *laneMetrics) begin(attempt int) {
	lm.inFlight.Inc()
	if attempt > 1 {
		lm.retries.Inc()
	}
}

// end counts a call that begin counted, by its answer's status or, when
// no answer came, its error's class.
func (lm *laneMetrics) end(reply *provider.Reply, err error, took time.Duration) {
	lm.inFlight.Dec()
	lm.latency.Observe(took.Seconds())
	if reply != nil && reply.HTTPStatus >= 100 && reply.HTTPStatus < len(lm.codes) {
		lm.code(reply.HTTPStatus).Inc()
		return
	}
	class := job.Class("other")
	if perr, ok := err.(*provider.Error); ok { // what Call returns, without errors.As's reflection
		class = perr.Class
	} else if perr := (*provider.Error)(nil); errors.As(err, &perr) {
		class = perr.Class
	} else if errors.Is(err, context.Canceled) {
		class = "canceled"
	}
	lm.class(class).Inc()
}

func (lm *laneMetrics) code(status int) prometheus.Counter {
	if c := lm.codes[status].Load(); c != nil {
		return *c
	}
	c := lm.m.calls.WithLabelValues(lm.provider, string(lm.lane), strconv.Itoa(status))
	lm.codes[status].Store(&c)
	return c
}

func (lm *laneMetrics) class(class job.Class) prometheus.Counter {
	for i, c := range callClasses {
		if c == class {
			return lm.classes[i]
		}
	}
	return lm.classes[len(callClasses)-1]
}

// deadLettered counts a dead letter stored. Dead letters are rare, so the
// labels are looked up here; a provider or lane this replica does not
// serve (a sweep of unrouted jobs, an invalid subject) is counted as
// _other, so that no job can add label values.
func (m *metrics) deadLettered(dl *job.DeadLetter) {
	prov, lane := "_other", "_other"
	if _, ok := m.w.providers[dl.Provider]; ok {
		prov = dl.Provider
	}
	if dl.Lane == job.LaneLive || dl.Lane == job.LaneBulk {
		lane = string(dl.Lane)
	}
	m.dead.WithLabelValues(prov, lane, string(dl.Reason)).Inc()
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.calls.Describe(ch)
	m.latency.Describe(ch)
	m.inFlight.Describe(ch)
	m.retries.Describe(ch)
	m.dead.Describe(ch)
	for _, d := range []*prometheus.Desc{m.waits, m.waitSeconds, m.pending, m.ackPending, m.consumerPaused,
		m.useful, m.rate, m.members, m.slots, m.paused, m.adaptive, m.quotaLimit, m.quotaUsed, m.quotaSpent} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.collectMu.Lock()
	defer m.collectMu.Unlock()
	m.calls.Collect(ch)
	m.latency.Collect(ch)
	m.inFlight.Collect(ch)
	m.retries.Collect(ch)
	m.dead.Collect(ch)

	ctx, cancel := context.WithTimeout(context.Background(), lagTimeout)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, l := range m.w.lanes {
		lm, lane := l.m, string(l.lane)
		n, waited := l.limiter.Waits(l.lane)
		ch <- prometheus.MustNewConstMetric(m.waits, prometheus.CounterValue, float64(n), lm.provider, lane)
		ch <- prometheus.MustNewConstMetric(m.waitSeconds, prometheus.CounterValue, waited.Seconds(), lm.provider, lane)
		if pending, ackPending, paused, ok := l.lag(ctx); ok {
			gauge(m.pending, float64(pending), lm.provider, lane)
			gauge(m.ackPending, float64(ackPending), lm.provider, lane)
			gauge(m.consumerPaused, b2f(paused), lm.provider, lane)
		}
	}
	now := time.Now()
	for _, s := range m.w.Limits() {
		p := s.Provider
		gauge(m.rate, s.FleetRate, p, "fleet")
		gauge(m.rate, s.Rate, p, "replica")
		gauge(m.members, float64(s.Members), p)
		gauge(m.slots, float64(s.Concurrency), p)
		gauge(m.paused, b2f(s.PausedUntil.After(now)), p)
		gauge(m.adaptive, b2f(s.Adaptive), p)
		if s.QuotaLimit > 0 {
			gauge(m.quotaLimit, float64(s.QuotaLimit), p)
			gauge(m.quotaUsed, float64(s.QuotaUsed), p)
			gauge(m.quotaSpent, b2f(!s.QuotaResumesAt.IsZero()), p)
		}
		if n, ok := limit.UsefulWorkers(s.FleetRate, m.meanLatency(p), float64(s.Concurrency)); ok {
			gauge(m.useful, float64(n), p)
		}
	}
}

// meanLatency is the mean latency of the provider's calls between the last
// two scrapes that saw calls; 0 (unknown) before the first calls. Both
// lanes count: they call the same provider.
func (m *metrics) meanLatency(prov string) time.Duration {
	var sum float64
	var count uint64
	for _, l := range m.w.lanes {
		if l.m.provider != prov {
			continue
		}
		var d dto.Metric
		if err := l.m.latency.(prometheus.Metric).Write(&d); err != nil || d.Histogram == nil {
			continue
		}
		sum += d.Histogram.GetSampleSum()
		count += d.Histogram.GetSampleCount()
	}
	if dc := count - m.lastCount[prov]; count > m.lastCount[prov] {
		m.lastMean[prov] = time.Duration((sum - m.lastSum[prov]) / float64(dc) * float64(time.Second))
	}
	m.lastSum[prov], m.lastCount[prov] = sum, count
	if m.lastMean[prov] <= 0 {
		return -1
	}
	return m.lastMean[prov]
}

// lag returns the lane's consumer's pending, ack pending and pause, read
// at most every lagRefresh; ok is false until a read succeeded. A read
// also tells the lane whether its consumer is paused, should a pause
// advisory have been missed.
func (l *lane) lag(ctx context.Context) (pending uint64, ackPending int, paused, ok bool) {
	lm := l.m
	lm.infoMu.Lock()
	defer lm.infoMu.Unlock()
	if time.Since(lm.infoAt) >= lagRefresh {
		lm.infoAt = time.Now()
		l.mu.Lock()
		c := l.consumer
		l.mu.Unlock()
		if c != nil {
			if ci, err := c.Info(ctx); err == nil {
				lm.infoOK = true
				lm.pending, lm.ackPending, lm.paused = ci.NumPending, ci.NumAckPending, ci.Paused
				l.pause.learn(ci)
			}
		}
	}
	return lm.pending, lm.ackPending, lm.paused, lm.infoOK
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collector returns the worker's metrics, for the process's registry: the
// per-call counters and histograms, and what is read at scrape time (the
// work consumers' lag, the limits). Register it on one registry only.
func (w *Worker) Collector() prometheus.Collector { return w.metrics }
