package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/internal/httpserve"
	"github.com/switchyard-io/switchyard/pkg/cancel"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/limit"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/streams"
)

// maxPendingOutcomes bounds the outcomes published and not yet acknowledged
// by the server; a publisher past it waits (see publish).
const maxPendingOutcomes = 8192

// Worker runs the jobs of its providers. Create it with New, run it with
// Start, and end it with Stop.
type Worker struct {
	cfg Config
	js  jetstream.JetStream
	pub *storer // publishes outcomes (see publish); from Start
	// settling bounds the calls that have returned and whose outcomes are
	// being stored; see call.
	settling  chan struct{}
	logger    *slog.Logger
	providers map[string]*provider.Provider
	lanes     []*lane
	unrouted  *unroutedSweeper
	// fleet shares each provider's limits with the other replicas.
	fleet *limit.Fleet
	// metrics are the worker's Prometheus metrics (see Collector);
	// pauses follows the work consumers' pause advisories.
	metrics *metrics
	pauses  *nats.Subscription
	// streamsReady looks the streams up for Ready, caching success.
	streamsReady httpserve.ReadyFunc

	// historyScans bounds the searches for dead jobs' earlier attempts.
	historyScans chan struct{}
	// beats keeps long calls' messages from being delivered again.
	beats *heartbeats
	// cancels holds the tombstones of cancelled jobs and batches.
	cancels *cancel.Watcher

	stopFetch context.CancelFunc
	stopWork  context.CancelFunc
	loops     sync.WaitGroup // fetch loops and the sweeper
	calls     *runners       // jobs being processed

	mu       sync.Mutex
	started  bool
	stopped  bool
	stopDone chan struct{}
}

// New builds a worker for the given providers. It does not touch NATS
// until Start.
func New(js jetstream.JetStream, cfg Config, providers []*provider.Provider, logger *slog.Logger) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if len(providers) == 0 {
		return nil, errors.New("worker: no providers configured")
	}
	w := &Worker{
		calls:     newRunners(),
		cfg:       cfg,
		js:        js,
		settling:  make(chan struct{}, maxPendingOutcomes),
		logger:    logger.With("worker", cfg.ID),
		providers: make(map[string]*provider.Provider, len(providers)),
		stopDone:  make(chan struct{}),
	}
	w.metrics = newMetrics(w)
	w.streamsReady = httpserve.CacheOK(streamsCheckEvery, w.lookUpStreams)
	w.cancels = cancel.NewWatcher(js, w.logger)
	w.fleet = limit.NewFleet(js, limit.FleetConfig{Replica: cfg.ID, TTL: cfg.MembershipTTL}, w.logger)
	sort.Slice(providers, func(i, k int) bool { return providers[i].Name() < providers[k].Name() })
	for _, p := range providers {
		if _, dup := w.providers[p.Name()]; dup {
			return nil, fmt.Errorf("worker: provider %s given twice", p.Name())
		}
		w.providers[p.Name()] = p
		pc := p.Config()
		s := newSlots(pc.Concurrency, pc.LiveReserve)
		lim := w.fleet.Add(p.Name(), limitSpec(pc, s))
		for _, l := range job.Lanes {
			w.lanes = append(w.lanes, newLane(w, p, l, s, lim))
		}
	}
	w.unrouted = &unroutedSweeper{w: w}
	w.historyScans = make(chan struct{}, historyScans)
	w.beats = newHeartbeats()
	return w, nil
}

// limitSpec is what the limiter of a provider enforces.
func limitSpec(pc provider.Config, s *slots) limit.Spec {
	return limit.Spec{
		Rate: pc.RateLimit.PerSecond(), Burst: pc.RateLimit.Burst, Recovery: pc.RateLimit.Recovery,
		Concurrency: pc.Concurrency, LiveReserve: pc.LiveReserve,
		FleetConcurrency: pc.ConcurrencyScope == provider.ScopeFleet, OnConcurrency: s.resize,
		DailyQuota: pc.DailyQuota,
		PauseOn429: pc.FleetPause != provider.PauseOff, PauseOn503: pc.FleetPause == provider.PauseOn429And503,
		Budget:  &limit.BudgetSpec{Ratio: pc.RetryBudget.Ratio, MinPerSecond: pc.RetryBudget.MinPerSecond, Window: pc.RetryBudget.Window},
		Breaker: breakerSpec(pc),
	}
}

// breakerSpec is the limiter's view of a provider's breaker: nil when off.
// The others give a prober its call timeout and its open period to decide.
func breakerSpec(pc provider.Config) *limit.BreakerSpec {
	b := pc.Breaker
	if b.Disabled {
		return nil
	}
	return &limit.BreakerSpec{
		FailureRate: b.FailureRate, MinCalls: b.MinCalls, Window: b.Window, Consecutive: b.Consecutive,
		OpenFor: b.OpenFor, MaxOpenFor: b.MaxOpenFor, Probes: b.Probes, ProbeWait: pc.Timeout + b.OpenFor,
	}
}

// ID returns the worker's replica id.
func (w *Worker) ID() string { return w.cfg.ID }

// Limits reports where each provider's limits stand in this replica, in
// provider name order: the rate in force here and for the fleet, the
// replicas serving the provider, a pause and when it ends, the daily
// quota, the circuit breaker and the retry budget. The same figures from every replica are in the LIMITS bucket
// (see limit.ReadStatus).
func (w *Worker) Limits() []limit.Snapshot { return w.fleet.Snapshots() }

// Start binds every lane's consumer (creating it if needed) and starts the
// fetch loops. Cancelling ctx stops fetching, like the first step of Stop;
// calls already running are not cancelled by it.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.stopped {
		return errors.New("worker: already started (a worker runs once)")
	}
	// Join the fleet first, so the first fetch already takes this
	// replica's share of each provider's limits.
	if err := w.fleet.Start(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	// Load every tombstone before the first fetch, so that no job
	// cancelled before this replica started is called.
	if err := w.cancels.Start(ctx); err != nil {
		w.fleet.Stop(ctx)
		return fmt.Errorf("worker: %w", err)
	}
	pauses, err := w.watchPauses()
	if err != nil {
		w.cancels.Stop()
		w.fleet.Stop(ctx)
		return fmt.Errorf("worker: watch pause advisories: %w", err)
	}
	w.pauses = pauses
	for _, l := range w.lanes {
		if err := l.bind(ctx); err != nil {
			_ = pauses.Unsubscribe()
			w.cancels.Stop()
			w.fleet.Stop(ctx)
			return err
		}
	}
	if w.pub, err = newStorer(w.js.Conn(), publishTimeout); err != nil {
		_ = pauses.Unsubscribe()
		w.cancels.Stop()
		w.fleet.Stop(ctx)
		return fmt.Errorf("worker: subscribe to PubAcks: %w", err)
	}
	w.beats.start()
	fetchCtx, stopFetch := context.WithCancel(ctx)
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	w.stopFetch, w.stopWork = stopFetch, stopWork
	for _, l := range w.lanes {
		for puller := range w.cfg.MaxPulls {
			w.loops.Go(func() { l.run(fetchCtx, workCtx, puller) })
		}
	}
	w.loops.Go(func() { w.unrouted.run(fetchCtx) })
	w.started = true
	w.logger.Info("worker started", "providers", len(w.providers), "consumers", len(w.lanes))
	return nil
}

// Stop stops fetching, lets in-flight calls finish within ShutdownGrace (or
// until ctx is done), then cancels the rest, whose jobs are naked for
// another replica. It returns when every job has been handed back or
// settled. Stop is idempotent and safe to call before Start.
func (w *Worker) Stop(ctx context.Context) {
	w.mu.Lock()
	if !w.started || w.stopped {
		stopped := w.stopped
		w.stopped = true
		w.mu.Unlock()
		if stopped {
			<-w.stopDone
		} else {
			close(w.stopDone)
		}
		return
	}
	w.stopped = true
	w.mu.Unlock()
	defer close(w.stopDone)

	w.stopFetch()
	w.loops.Wait()
	_ = w.pauses.Unsubscribe()
	idle := make(chan struct{})
	go func() { w.calls.Wait(); close(idle) }()
	grace := time.NewTimer(w.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-idle:
	case <-grace.C:
		w.logger.Warn("shutdown grace over; handing back the jobs still running")
	case <-ctx.Done():
		w.logger.Warn("stop cancelled; handing back the jobs still running")
	}
	w.stopWork()
	<-idle
	w.calls.Close()
	w.beats.stop()
	w.pub.close() // after every outcome is stored
	// No call is in flight: leave the fleet, so the others take up this
	// replica's share now.
	w.fleet.Stop(ctx)
	w.cancels.Stop()
	for _, p := range w.providers {
		p.Close()
	}
	w.logger.Info("worker stopped")
}

// consumerFor returns the definition and overrides of a lane's consumer.
func consumerFor(p *provider.Provider, l job.Lane) ([]byte, natsx.Override) {
	ackWait := ackWaitOf(p.Config())
	return streams.WorkConsumer(p.Name(), string(l)), natsx.Override{"ack_wait": ackWait}
}
