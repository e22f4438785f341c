package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

// These tests run several Worker instances against one NATS server: each
// is a replica of the fleet, as separate processes would be. The fake API
// enforces its own rate limit and measures what arrived, to 10 ms: the
// most requests in any one-second window, and how many it refused.

// startReplicas starts n workers serving providers and waits until each
// sees all n in every provider's membership.
func (b *bundle) startReplicas(t *testing.T, n int, providers map[string]provider.Config) []*worker.Worker {
	t.Helper()
	ws := make([]*worker.Worker, n)
	for i := range n {
		ws[i] = b.startWorker(t, worker.Config{ID: fmt.Sprintf("replica-%d", i), MembershipTTL: time.Second}, providers)
	}
	for _, w := range ws {
		awaitLimits(t, w, 5*time.Second, func(s []limitsView) (bool, string) {
			for _, p := range s {
				if p.Members != n {
					return false, fmt.Sprintf("%s sees %d members of %s, want %d", w.ID(), p.Members, p.Provider, n)
				}
			}
			return true, ""
		})
	}
	return ws
}

type limitsView = struct {
	Provider string
	Members  int
	Rate     float64
	Adaptive bool
}

func awaitLimits(t *testing.T, w *worker.Worker, timeout time.Duration, cond func([]limitsView) (bool, string)) {
	t.Helper()
	waitFor(t, timeout, func() (bool, string) {
		var vs []limitsView
		for _, s := range w.Limits() {
			vs = append(vs, limitsView{s.Provider, s.Members, s.Rate, s.Adaptive})
		}
		return cond(vs)
	})
}

// backlog publishes n jobs of prov on lane, asynchronously: a backlog is
// there at once, not trickling in at the pace of round trips.
func (b *bundle) backlog(t *testing.T, prov string, lane job.Lane, n int, path string) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%s-%06d", prov, lane, i)
		data, err := json.Marshal(newJob(ids[i], prov, "charge", path))
		if err != nil {
			t.Fatal(err)
		}
		m := &nats.Msg{Subject: job.Subject(prov, lane, "charge"), Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{ids[i]}}}
		if _, err := b.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			t.Fatalf("publish job %d: %v", i, err)
		}
	}
	select {
	case <-b.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		t.Fatalf("%d publishes still unacknowledged after a minute", b.js.PublishAsyncPending())
	}
	return ids
}

// rateBetween measures the requests per second the API received during d.
func rateBetween(api *mockapi.Server, d time.Duration) float64 {
	before := api.Stats().Requests
	time.Sleep(d)
	return float64(api.Stats().Requests-before) / d.Seconds()
}

// The fleet's rate limit, in calls/s, and burst (the default for this
// rate) in these tests. The fake API allows the same rate with a more
// generous burst, as providers do.
const (
	fleetRate  = 100
	fleetBurst = 2
)

// maxPerSecond is the most calls the API may see in any second: the rate
// limit plus 5 %. The limit package's bound is rate + max(burst, replicas),
// 104 here; the rest is for goroutines and loopback HTTP running late on a
// busy test machine, which moves calls across the edges of a window.
const maxPerSecond = fleetRate * 105 / 100

func limited(c *provider.Config) {
	c.Concurrency, c.MaxAttempts = 20, 10
	c.RateLimit = provider.RateLimit{Rate: fleetRate, Per: time.Second, Burst: fleetBurst}
}

func TestRateLimitHoldsAcrossReplicas(t *testing.T) {
	for _, n := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("replicas=%d", n), func(t *testing.T) {
			b := setup(t, mockapi.Config{RateLimit: fleetRate, Burst: 20})
			b.startReplicas(t, n, map[string]provider.Config{"acme": b.provider(b.url, limited)})
			b.backlog(t, "acme", job.LaneBulk, 450, "/charge")

			time.Sleep(time.Second) // the backlog's start, burst included
			got := rateBetween(b.api, 2*time.Second)
			st := b.api.Stats()
			t.Logf("%d replicas: %.1f calls/s steady; most in any second %d (admitted %d); %d refused of %d",
				n, got, st.MaxPerSecond, st.MaxAdmittedPerSecond, st.Throttled, st.Requests)
			if st.MaxPerSecond > maxPerSecond {
				t.Errorf("the API saw %d calls in one second, more than 5%% above the rate limit of %d", st.MaxPerSecond, fleetRate)
			}
			if st.Throttled > 0 {
				t.Errorf("the API refused %d calls", st.Throttled)
			}
			// How close the fleet comes to its limit is measured (logged
			// above, and in the limit package's benchmarks), not asserted:
			// on a loaded machine timers fire late and calls start late. A
			// fleet calling at half its limit is broken, though.
			if got < 0.5*fleetRate {
				t.Errorf("steady rate %.1f/s: the fleet leaves its limit of %d/s unused", got, fleetRate)
			}
		})
	}
}

func TestTheOthersTakeUpTheShareOfAReplicaThatLeaves(t *testing.T) {
	b := setup(t, mockapi.Config{RateLimit: fleetRate, Burst: 20})
	ws := b.startReplicas(t, 4, map[string]provider.Config{"acme": b.provider(b.url, limited)})
	b.backlog(t, "acme", job.LaneBulk, 500, "/charge")

	before := rateBetween(b.api, 1500*time.Millisecond)
	ws[3].Stop(context.Background())
	for _, w := range ws[:3] {
		awaitLimits(t, w, time.Second, func(s []limitsView) (bool, string) {
			return s[0].Members == 3 && s[0].Rate > 33 && s[0].Rate < 34, fmt.Sprintf("%s: %+v", w.ID(), s)
		})
	}
	after := rateBetween(b.api, 2*time.Second)
	st := b.api.Stats()
	t.Logf("4 replicas: %.1f/s; after one left, 3: %.1f/s; most in any second %d; refused %d", before, after, st.MaxPerSecond, st.Throttled)
	// Three replicas keeping their quarter shares would call at 3/4 of the
	// rate before; taking up the leaver's share keeps it.
	if after < 0.8*before {
		t.Errorf("after a replica left the fleet called at %.1f/s, against %.1f/s before: its share was not taken up", after, before)
	}
	if st.MaxPerSecond > maxPerSecond || st.Throttled > 0 {
		t.Errorf("most in one second %d (bound %d), refused %d", st.MaxPerSecond, maxPerSecond, st.Throttled)
	}
}

// arrivals records when requests arrive at a handler and how they were
// answered.
type arrivals struct {
	next http.Handler
	mu   sync.Mutex
	log  []arrival
}

type arrival struct {
	at     time.Time
	status int
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	a.next.ServeHTTP(sw, r)
	a.mu.Lock()
	a.log = append(a.log, arrival{at, sw.status})
	a.mu.Unlock()
}

func (a *arrivals) snapshot() []arrival {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := append([]arrival(nil), a.log...)
	sort.Slice(out, func(i, k int) bool { return out[i].at.Before(out[k].at) })
	return out
}

func serve(t *testing.T, h http.Handler) string {
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestRetryAfterPausesTheProviderOnEveryReplica(t *testing.T) {
	b := setup(t, mockapi.Config{})
	// acme limits at 20/s and asks for 2 s when refusing; no rate is
	// configured for it, so the fleet finds out the hard way.
	acme := &arrivals{next: mockapi.New(mockapi.Config{RateLimit: 20, Burst: 1, RetryAfter: 2 * time.Second})}
	// globex has no limit but a slow trickle of work through the test.
	globex := &arrivals{next: mockapi.New(mockapi.Config{LatencyMin: 50 * time.Millisecond})}
	b.startReplicas(t, 2, map[string]provider.Config{
		"acme":   b.provider(serve(t, acme), func(c *provider.Config) { c.MaxAttempts = 10 }),
		"globex": b.provider(serve(t, globex), func(c *provider.Config) { c.Concurrency = 2 }),
	})
	b.backlog(t, "globex", job.LaneBulk, 150, "/charge")
	b.backlog(t, "acme", job.LaneBulk, 100, "/charge")

	var first time.Time
	waitFor(t, 10*time.Second, func() (bool, string) {
		for _, a := range acme.snapshot() {
			if a.status == http.StatusTooManyRequests {
				first = a.at
				return true, ""
			}
		}
		return false, "no 429 yet"
	})
	time.Sleep(2500 * time.Millisecond)

	// Calls already on the wire when the first 429 came may still land;
	// then nothing until the 2 s are over.
	var next time.Time
	for _, a := range acme.snapshot() {
		if a.at.After(first.Add(200 * time.Millisecond)) {
			next = a.at
			break
		}
	}
	gap := next.Sub(first)
	t.Logf("after the first 429 acme was called again %s later", gap)
	if next.IsZero() || gap < 1800*time.Millisecond || gap > 2600*time.Millisecond {
		t.Errorf("acme called again %s after a Retry-After of 2s; want about 2s, from either replica", gap)
	}
	during := 0
	for _, a := range globex.snapshot() {
		if a.at.After(first.Add(200*time.Millisecond)) && a.at.Before(first.Add(1800*time.Millisecond)) {
			during++
		}
	}
	if during < 10 {
		t.Errorf("globex got %d calls during acme's pause: the pause stopped another provider", during)
	}
}

// switchable serves a silently rate-limited API while limit is set, and
// the same API without the limit otherwise.
type switchable struct {
	limited, open http.Handler
	limit         atomic.Bool
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.limit.Load() {
		s.limited.ServeHTTP(w, r)
		return
	}
	s.open.ServeHTTP(w, r)
}

func TestAnUnannouncedLimitIsLearnedAndForgotten(t *testing.T) {
	b := setup(t, mockapi.Config{})
	const silentLimit = 50
	silent := mockapi.New(mockapi.Config{RateLimit: silentLimit, Burst: 5, LimitMode: mockapi.LimitSilent})
	api := &switchable{limited: silent, open: mockapi.New(mockapi.Config{})}
	api.limit.Store(true)
	ws := b.startReplicas(t, 2, map[string]provider.Config{"acme": b.provider(serve(t, api), func(c *provider.Config) {
		limited(c) // 100/s configured: twice what the API takes
		c.RateLimit.Recovery = 2 * time.Second
		c.MaxAttempts = 50
	})})
	b.backlog(t, "acme", job.LaneBulk, 900, "/charge")

	time.Sleep(3 * time.Second) // converge
	silent.Reset()
	time.Sleep(4 * time.Second)
	st := silent.Stats()
	share := float64(st.Throttled) / float64(st.Requests)
	admitted := float64(st.Requests-st.Throttled) / 4
	t.Logf("under a silent %d/s limit: %.1f calls/s admitted, %d of %d refused (%.2f%%)", silentLimit, admitted, st.Throttled, st.Requests, 100*share)
	// A 2s recovery probes the limit about every 2.5s, and each probe
	// costs a few refusals (one per replica and the calls in flight): a
	// few percent (2-3% measured). TestAnUnannouncedLimitIsLearnedWithNoRateConfigured checks the
	// share with the default recovery.
	if share > 0.10 {
		t.Errorf("%.1f%% of calls refused after converging, want under 10%% with a 2s recovery", 100*share)
	}
	if admitted < 0.3*silentLimit {
		t.Errorf("%.1f calls/s admitted: the rate collapsed far below the %d/s the API takes", admitted, silentLimit)
	}
	for _, w := range ws {
		if s := w.Limits()[0]; !s.Adaptive || s.Rate >= fleetRate/2 {
			t.Errorf("%s: %+v, want an adaptive rate below its configured share", w.ID(), s)
		}
	}

	// The limit goes away: successes bring the configured rate back.
	api.limit.Store(false)
	for i := range 800 {
		b.publish(t, newJob(fmt.Sprintf("more-%04d", i), "acme", "charge", "/charge"), job.LaneBulk)
	}
	for _, w := range ws {
		awaitLimits(t, w, 15*time.Second, func(s []limitsView) (bool, string) {
			return !s[0].Adaptive && s[0].Rate == fleetRate/2, fmt.Sprintf("%s: %+v", w.ID(), s[0])
		})
	}
}

func TestAnUnannouncedLimitIsLearnedWithNoRateConfigured(t *testing.T) {
	const silentLimit = 50
	b := setup(t, mockapi.Config{RateLimit: silentLimit, Burst: 5, LimitMode: mockapi.LimitSilent})
	b.startReplicas(t, 2, map[string]provider.Config{"acme": b.provider(b.url, func(c *provider.Config) {
		c.Concurrency, c.MaxAttempts = 20, 50 // and no rate: the fleet would go as fast as it can
	})})
	b.backlog(t, "acme", job.LaneBulk, 1000, "/charge")
	time.Sleep(3 * time.Second)
	b.api.Reset()
	const window = 8 * time.Second // long enough that 1 % is a few calls
	time.Sleep(window)
	st := b.api.Stats()
	share := float64(st.Throttled) / float64(st.Requests)
	admitted := float64(st.Requests-st.Throttled) / window.Seconds()
	t.Logf("no rate configured, silent %d/s limit: %.1f calls/s admitted, %d of %d refused (%.2f%%)", silentLimit, admitted, st.Throttled, st.Requests, 100*share)
	// The share refused is the property; how close to the limit the
	// fleet settles is measured (logged), and only a collapse fails: on a
	// saturated test machine calls start late and the rate looks low.
	if share >= 0.01 {
		t.Errorf("%.2f%% of calls refused after converging, want under 1%%", 100*share)
	}
	if admitted < 0.3*silentLimit {
		t.Errorf("%.1f calls/s admitted, far below the %d/s the API takes", admitted, silentLimit)
	}
}

func TestAnAnnouncedLimitIsFollowed(t *testing.T) {
	// The API announces 50/s in RateLimit-Policy; the config says nothing.
	b := setup(t, mockapi.Config{RateLimit: 50, Burst: 10, LimitMode: mockapi.LimitHeaders})
	ws := b.startReplicas(t, 2, map[string]provider.Config{"acme": b.provider(b.url, func(c *provider.Config) { c.Concurrency, c.MaxAttempts = 20, 20 })})
	b.backlog(t, "acme", job.LaneBulk, 300, "/charge")
	time.Sleep(time.Second)
	b.api.Reset()
	got := rateBetween(b.api, 2*time.Second)
	st := b.api.Stats()
	t.Logf("following RateLimit-Policy 50/s: %.1f calls/s, %d of %d refused", got, st.Throttled, st.Requests)
	if share := float64(st.Throttled) / float64(st.Requests); share > 0.02 {
		t.Errorf("%d of %d calls refused once the policy was known", st.Throttled, st.Requests)
	}
	if got < 40 || got > 55 {
		t.Errorf("called at %.1f/s, want about the announced 50/s", got)
	}
	for _, w := range ws {
		if s := w.Limits()[0]; s.PolicyRate != 50 || s.Rate != 25 {
			t.Errorf("%s: %+v, want the policy's 50/s split in two", w.ID(), s)
		}
	}
}

func TestFleetConcurrencyCapsCallsInFlightAcrossReplicas(t *testing.T) {
	b := setup(t, mockapi.Config{LatencyMin: 150 * time.Millisecond})
	b.startReplicas(t, 3, map[string]provider.Config{"acme": b.provider(b.url, func(c *provider.Config) {
		c.Concurrency, c.ConcurrencyScope = 7, provider.ScopeFleet
	})})
	ids := b.backlog(t, "acme", job.LaneBulk, 60, "/charge")
	b.waitFinal(t, 30*time.Second, ids...)
	st := b.api.Stats()
	t.Logf("fleet concurrency 7 over 3 replicas: peak %d in flight", st.PeakInFlight)
	if st.PeakInFlight > 7 {
		t.Errorf("%d calls in flight at once, above the fleet's 7", st.PeakInFlight)
	}
	if st.PeakInFlight < 5 {
		t.Errorf("peak %d in flight: the fleet leaves most of its 7 slots unused", st.PeakInFlight)
	}
}

func TestASpentDailyQuotaStopsTheProviderCleanly(t *testing.T) {
	b := setup(t, mockapi.Config{})
	ws := b.startReplicas(t, 2, map[string]provider.Config{"acme": b.provider(b.url, func(c *provider.Config) { c.DailyQuota = 30 })})
	b.backlog(t, "acme", job.LaneBulk, 40, "/charge")
	b.backlog(t, "acme", job.LaneLive, 10, "/charge")
	waitFor(t, 10*time.Second, func() (bool, string) {
		c, _ := b.store.BatchCounts(context.Background(), "b1")
		return c[job.StatusSucceeded] == 30, fmt.Sprintf("%d succeeded: %v; API saw %d; %+v; %+v", c[job.StatusSucceeded], c, b.api.Stats().Requests, ws[0].Limits(), ws[1].Limits())
	})
	time.Sleep(time.Second) // nothing more may happen
	if calls := b.api.Stats().Requests; calls != 30 {
		t.Fatalf("the API got %d calls, want the quota of 30", calls)
	}
	if left := b.jobsLeft(t); left != 20 {
		t.Errorf("%d jobs left in JOBS, want the 20 over the quota", left)
	}
	// The jobs over the quota were never fetched: no attempt spent.
	for _, lane := range job.Lanes {
		c, err := b.js.Consumer(context.Background(), streams.Jobs, job.WorkConsumer("acme", lane))
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending != 0 || info.NumRedelivered != 0 {
			t.Errorf("%s: %d pending acks, %d redelivered; want the waiting jobs untouched", lane, info.NumAckPending, info.NumRedelivered)
		}
	}
	tomorrow := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	for _, w := range ws {
		if s := w.Limits()[0]; s.QuotaUsed != 30 || !s.QuotaResumesAt.Equal(tomorrow) {
			t.Errorf("%s: %+v, want the quota spent until %s", w.ID(), s, tomorrow)
		}
	}
}

func TestLiveJobsDoNotWaitBehindABulkBacklogUnderARateLimit(t *testing.T) {
	b := setup(t, mockapi.Config{LatencyMin: 50 * time.Millisecond, RateLimit: 40, Burst: 10})
	// The backlog is in the stream before any worker starts, as at 4 AM.
	const backlog = 100_000
	b.bulkBacklog(t, "acme", backlog)
	b.startReplicas(t, 2, map[string]provider.Config{"acme": b.provider(b.url, func(c *provider.Config) {
		c.Concurrency, c.MaxAttempts = 20, 10
		c.RateLimit = provider.RateLimit{Rate: 40, Burst: 8}
	})})
	time.Sleep(time.Second) // let the drain settle into its pace

	var live []string
	for i := range 20 {
		id := fmt.Sprintf("live-%02d", i)
		b.publish(t, newJob(id, "acme", "charge", "/charge"), job.LaneLive)
		live = append(live, id)
		time.Sleep(100 * time.Millisecond)
	}
	rows := b.waitFinal(t, 10*time.Second, live...)
	var worst time.Duration
	for _, r := range rows {
		worst = max(worst, r.StartedAt.Sub(r.EnqueuedAt))
	}
	st := b.api.Stats()
	left := b.jobsLeft(t)
	t.Logf("live queue wait with %d bulk jobs waiting, drained at 40/s: worst of %d %s; API: most in a second %d, refused %d",
		left, len(live), worst, st.MaxPerSecond, st.Throttled)
	if left < backlog/2 {
		t.Fatalf("only %d jobs left in the stream: the backlog drained faster than its rate limit", left)
	}
	// The bound is a second; measured, it is about a fetch (a few ms on a
	// quiet machine, a few hundred on a saturated one).
	if worst > time.Second {
		t.Errorf("a live job waited %s for its call", worst)
	}
	if st.Throttled > 0 {
		t.Errorf("the API refused %d calls", st.Throttled)
	}
}

// bulkBacklog publishes n bulk jobs of prov and checks they are all there.
func (b *bundle) bulkBacklog(t *testing.T, prov string, n int) {
	t.Helper()
	b.backlog(t, prov, job.LaneBulk, n, "/charge")
	if got := b.jobsLeft(t); got != uint64(n) {
		t.Fatalf("the stream holds %d jobs, want %d", got, n)
	}
}
