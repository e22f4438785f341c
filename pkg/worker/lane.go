package worker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/limit"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/streams"
)

// errCodeWQConsumerNotUnique is the server's answer when a consumer's filter
// overlaps another's on a work-queue stream.
const errCodeWQConsumerNotUnique jetstream.ErrorCode = 10100

// idleSharedPoll bounds how long an idle lane may hold a slot the other
// lane could use while it waits for work.
const idleSharedPoll = 100 * time.Millisecond

// lane fetches the jobs of one provider's lane. While it has a backlog it
// runs Config.MaxPulls fetch loops (pullers) that share the provider's
// slots: while the server fills one pull request, the worker starts the
// calls of another, so a backlog never waits on a round trip. Measured on 2
// cores, a single puller spent most of its time waiting for its batch while
// half the provider's slots sat free. An idle lane keeps only its first
// puller waiting, so idle lanes hold few slots.
//
// Before each fetch a puller asks the provider's limiter what the lane may
// start: nothing while the provider is paused or its daily quota spent (the
// jobs wait in the stream), and under a rate limit only what its share of
// the rate lets start within the next 50 ms. Each job then waits for its
// own turn just before its call (see process).
type lane struct {
	w        *Worker
	provider *provider.Provider
	lane     job.Lane
	slots    *slots
	limiter  *limit.Limiter
	m        *laneMetrics  // see metrics.go
	pause    consumerPause // see pause.go

	mu       sync.Mutex // guards consumer, which a puller may rebind
	consumer jetstream.Consumer

	// busy is set while fetches come back full: there is a backlog. wake
	// is closed (and replaced) when busy is set, to start the other pullers.
	busy   atomic.Bool
	wakeMu sync.Mutex
	wake   chan struct{}
}

func newLane(w *Worker, p *provider.Provider, l job.Lane, s *slots, lim *limit.Limiter) *lane {
	return &lane{w: w, provider: p, lane: l, slots: s, limiter: lim, wake: make(chan struct{}), m: w.metrics.lane(p, l)}
}

func (l *lane) setBusy(busy bool) {
	if !busy {
		l.busy.Store(false)
		return
	}
	if !l.busy.Swap(true) {
		l.wakeMu.Lock()
		close(l.wake)
		l.wake = make(chan struct{})
		l.wakeMu.Unlock()
	}
}

// waitBusy waits until the lane has a backlog; false if ctx ended first.
func (l *lane) waitBusy(ctx context.Context) bool {
	l.wakeMu.Lock()
	wake := l.wake
	l.wakeMu.Unlock()
	if l.busy.Load() {
		return true
	}
	select {
	case <-wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// bind applies the lane's consumer definition and binds to it.
func (l *lane) bind(ctx context.Context) error {
	def, over := consumerFor(l.provider, l.lane)
	c, err := natsx.ApplyConsumer(ctx, l.w.js, streams.Jobs, def, over, l.w.logger)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWQConsumerNotUnique {
		// An unrouted-jobs sweeper may be draining a subject of this lane
		// from before any worker served it. Its consumer is disposable.
		if l.w.unrouted.clear(ctx, job.LaneFilter(l.provider.Name(), l.lane)) {
			c, err = natsx.ApplyConsumer(ctx, l.w.js, streams.Jobs, def, over, l.w.logger)
		}
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.consumer = c
	l.mu.Unlock()
	l.pause.learn(c.CachedInfo())
	return nil
}

func (l *lane) consumerName() string { return job.WorkConsumer(l.provider.Name(), l.lane) }

// want is how many slots the next fetch asks for, and how long it may
// wait. A lane with a backlog takes all it can start. An idle lane waits
// for work holding few slots: live its reserve (which bulk cannot use
// anyway), bulk one; and where those are slots the other lane could use,
// only briefly.
func (l *lane) want() (int, time.Duration) {
	wait := l.w.cfg.FetchMaxWait
	if l.busy.Load() {
		return l.w.cfg.MaxBatch, wait
	}
	if reserve := l.slots.reserve(); l.lane == job.LaneLive && reserve > 0 {
		return min(reserve, l.w.cfg.MaxBatch), wait
	}
	if l.lane == job.LaneLive || l.slots.contended() {
		wait = min(wait, idleSharedPoll)
	}
	return 1, wait
}

// run is one puller's loop.
func (l *lane) run(fetchCtx, workCtx context.Context, puller int) {
	log := l.w.logger.With("provider", l.provider.Name(), "lane", l.lane)
	pause := time.Duration(0)
	for fetchCtx.Err() == nil {
		if puller > 0 && !l.waitBusy(fetchCtx) {
			return
		}
		if !l.waitResumed(fetchCtx) {
			return
		}
		if pause > 0 {
			select {
			case <-time.After(pause):
			case <-fetchCtx.Done():
				return
			}
		}
		want, wait := l.want()
		adm, err := l.limiter.Admit(fetchCtx, l.lane, want)
		if err != nil {
			return
		}
		n, err := l.slots.acquire(fetchCtx, l.lane, adm.N)
		if err != nil {
			l.limiter.Unadmit(l.lane, adm, adm.N)
			return
		}
		l.limiter.Unadmit(l.lane, adm, adm.N-n)
		got, err := l.fetch(fetchCtx, workCtx, n, wait, adm)
		l.slots.release(l.lane, n-got)
		l.limiter.Unadmit(l.lane, adm, n-got)
		l.setBusy(got == n)
		switch {
		case err == nil || fetchCtx.Err() != nil:
			pause = 0
		case consumerGone(err):
			// Deleted under us, or the server lost its state: make it again.
			log.Warn("work consumer missing; recreating it", "err", err)
			if err := l.bind(fetchCtx); err != nil {
				log.Warn("recreate work consumer", "err", err)
			}
			pause = min(max(2*pause, 250*time.Millisecond), 5*time.Second)
		default:
			log.Warn("fetch failed; retrying", "err", err)
			pause = min(max(2*pause, 100*time.Millisecond), 5*time.Second)
		}
	}
}

// consumerGone reports whether a fetch failed because the consumer (or its
// stream) no longer exists.
func consumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, nats.ErrNoResponders) ||
		strings.Contains(err.Error(), "consumer not found")
}

// fetch asks for n messages and starts each one as it arrives, each
// holding a slot and a limiter admission of adm. It returns how many
// arrived.
func (l *lane) fetch(fetchCtx, workCtx context.Context, n int, wait time.Duration, adm limit.Admission) (int, error) {
	// The pull is never cut short on our side, not even by Stop: the server
	// may already have sent messages to it, and dropping those would leave
	// them waiting out their AckWait. The server ends it after wait.
	l.mu.Lock()
	c := l.consumer
	l.mu.Unlock()
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(wait))
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		l.w.calls.Go(func() {
			c := &call{lane: l, stop: fetchCtx.Done(), adm: adm, admitted: true}
			defer c.done()
			l.w.process(workCtx, c, msg)
		})
	}
	err = batch.Error()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, jetstream.ErrNoMessages) {
		err = nil // an empty lane, or a fetch cut short by Stop
	}
	return got, err
}

// call is one message taken from a lane. It holds one of the provider's
// slots until done: a slot bounds calls in flight at the provider, so it is
// given back as soon as the call returns, while the outcome is still being
// stored. Storing is bounded on its own (see Worker.settling), so a slow
// NATS server holds back fetching without idling the provider's slots.
//
// It also holds the limiter's admission of the job until the job's turn to
// call comes (then the call uses it) or the job ends without a call (then
// it is handed back).
type call struct {
	lane     *lane
	released bool
	// stop closes when the worker stops fetching: a job still waiting for
	// its turn is handed back rather than started.
	stop     <-chan struct{}
	adm      limit.Admission
	admitted bool
}

// done gives the slot back, and the admission if no call used it; later
// calls do nothing. Only the goroutine running the message calls it.
func (c *call) done() {
	if !c.released {
		c.released = true
		c.lane.slots.release(c.lane.lane, 1)
	}
	if c.admitted {
		c.admitted = false
		c.lane.limiter.Unadmit(c.lane.lane, c.adm, 1)
	}
}
