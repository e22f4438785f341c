package limit

import (
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// horizon is how far ahead Admit lets a lane fetch: the calls it admits
// can all start within it. Long enough to fetch in batches at high rates
// (50 calls at 1,000/s), short enough that a fetched job waits no longer
// than that for its turn, and that live finds a token soon after bulk
// scheduled its batch.
const horizon = int64(50 * time.Millisecond)

// keepAliveEvery is how often a job waiting for its turn (a pause, a slow
// rate) tells the server it is still being worked on; AckWait is at least
// 10s (natsx.AckWaitFor).
const keepAliveEvery = 5 * time.Second

// ErrStopped is returned by Wait when its stop channel closes before the
// call's turn came: the call was never made.
var ErrStopped = errors.New("limit: stopped while waiting for the call's turn")

// Spec is what a Limiter enforces for one provider. Rates and counts are
// for the whole fleet; the Limiter takes this replica's share.
type Spec struct {
	// Rate is the fleet's rate limit in calls/s; 0 for none.
	Rate float64
	// Burst is the fleet's burst in calls; 0 for a tenth of a second's
	// worth of the rate. (provider.Config defaults it to a fiftieth.)
	Burst int
	// Recovery is how long the adaptive rate takes to climb back after a
	// cut. Default 15s.
	Recovery time.Duration
	// Concurrency and LiveReserve are the provider's slots. With
	// FleetConcurrency they hold for the fleet: this replica's share is
	// passed to OnConcurrency whenever it changes.
	Concurrency, LiveReserve int
	FleetConcurrency         bool
	OnConcurrency            func(size, liveReserve int)
	// DailyQuota caps the fleet's calls per UTC day; 0 for none.
	DailyQuota int64
	// PauseOn429 lets a 429 with Retry-After, or rate-limit headers saying
	// the budget is spent, pause the provider for the fleet; PauseOn503
	// does the same for a 503 with Retry-After.
	PauseOn429, PauseOn503 bool
	// Breaker, when set, is the provider's circuit breaker; Budget its
	// retry budget.
	Breaker *BreakerSpec
	Budget  *BudgetSpec
}

// Admission is what Admit grants: N calls, each with a quota token of the
// day it was granted on. Hand back what is not used with Unadmit.
type Admission struct {
	N   int
	day int64
}

// KeepAliver is told, while a job waits for its turn, that it is still
// being worked on: a jetstream.Msg (InProgress) is one.
type KeepAliver interface {
	InProgress() error
}

// Limiter enforces one provider's limits in this replica: its share of the
// fleet's rate, pauses, the adaptive rate, its share of the daily quota and
// of the fleet's concurrency. The hot path (Admit, Wait, Observe) takes no
// lock at all for a provider with no limit and no pause, and one short
// local lock otherwise: it never waits on the network. It is safe for
// concurrent use.
type Limiter struct {
	name string
	spec Spec
	base time.Time // the monotonic clock's origin

	// simple is set while nothing limits the provider: no rate, no quota,
	// no pause. adapting mirrors ad.active() for Observe's fast path.
	simple   atomic.Bool
	adapting atomic.Bool
	// paused is the end of the pause in monotonic ns, 0 for none.
	paused atomic.Int64
	// started counts calls started, for the measured rate.
	started atomic.Int64
	// waits and waited count, per lane, the calls that waited for their
	// turn and the nanoseconds they waited, for metrics (see Waits).
	waits, waited [2]atomic.Int64

	mu       sync.Mutex
	b        bucket
	promised int // bulk calls admitted that have not taken their token
	bulkQ    []*bulkWaiter
	ad       adapt
	members  int
	others   float64 // the other members' reported rates, summed
	policy   float64 // the provider's RateLimit-Policy, calls/s
	ceiling  float64 // this replica's share of the fleet rate, 0 for none
	rate     float64 // the rate in force, +Inf for none
	q        *quota
	slots    [2]int // this replica's concurrency and live reserve
	measured float64
	ring     [5]struct{ at, count int64 }
	ringAt   int

	pauseUntil  time.Time // wall clock, for reports
	pauseReason string
	published   time.Time // the latest pause end published or received
	toPublish   *Pause
	// notify wakes the fleet's writer (pause to publish, quota to refill).
	notify func()
	// changed is closed and replaced when waiters should look again.
	changed chan struct{}
	// quotaWaiters counts Admit calls waiting for quota tokens. A new
	// Admit queues behind them rather than taking tokens given back for
	// them: else an idle lane, whose empty fetches hand its tokens back
	// and take them again at once, would keep the last tokens of a spent
	// quota from a lane with a backlog.
	quotaWaiters int
	// keepAlive is keepAliveEvery; tests shorten it.
	keepAlive time.Duration

	// brk and bud are the circuit breaker and the retry budget, nil when
	// off; replica names this replica in the breaker's key.
	brk     *breaker
	bud     *budget
	replica string
}

// NewLimiter returns a Limiter for one provider, on its own: as the only
// member of its fleet, with nothing published and no daily quota. Use
// Fleet.Add for a limiter that shares its limits with other replicas.
func NewLimiter(name string, spec Spec) *Limiter {
	if spec.Recovery <= 0 {
		spec.Recovery = 15 * time.Second
	}
	l := &Limiter{name: name, spec: spec, base: time.Now(), members: 1, ad: newAdapt(spec.Recovery), changed: make(chan struct{}), keepAlive: keepAliveEvery}
	l.slots = [2]int{spec.Concurrency, spec.LiveReserve}
	if spec.Breaker != nil {
		l.brk = newBreaker(*spec.Breaker)
	}
	if spec.Budget != nil && spec.Budget.Ratio > 0 {
		l.bud = newBudget(*spec.Budget)
	}
	l.mu.Lock()
	l.recomputeLocked()
	l.mu.Unlock()
	return l
}

// Name returns the provider's name.
func (l *Limiter) Name() string { return l.name }

func (l *Limiter) mono() int64 { return int64(time.Since(l.base)) }

// monoAt converts a time from time.Now (with its monotonic reading) to the
// limiter's clock.
func (l *Limiter) monoAt(t time.Time) int64 { return int64(t.Sub(l.base)) }

func laneIndex(lane job.Lane) int {
	if lane == job.LaneBulk {
		return bulk
	}
	return live
}

// Admit waits until lane may start calls, then admits up to want of them:
// as many as can start within the next 50 ms at the current rate, each
// with a daily-quota token. It waits while the provider is paused or its
// quota is spent, so a lane fetches nothing it cannot start soon. Every
// admitted call is then either made (after Wait) or handed back with
// Unadmit.
func (l *Limiter) Admit(ctx context.Context, lane job.Lane, want int) (Admission, error) {
	if want <= 0 {
		return Admission{}, nil
	}
	if l.simple.Load() {
		return Admission{N: want}, nil
	}
	li := laneIndex(lane)
	queued := false // counted in quotaWaiters
	defer func() {
		if queued {
			l.mu.Lock()
			l.quotaWaiters--
			l.mu.Unlock()
		}
	}()
	for {
		l.mu.Lock()
		now := l.mono()
		var a Admission
		var until int64
		if l.q != nil && !queued && l.quotaWaiters > 0 {
			until = now + int64(time.Second) // behind the others; changed wakes it
		} else {
			a, until = l.admitLocked(now, li, want)
		}
		if a.N == 0 && l.q != nil && l.q.avail == 0 && !queued {
			queued = true
			l.quotaWaiters++
		}
		changed := l.changed
		l.mu.Unlock()
		if a.N > 0 {
			return a, nil
		}
		if err := waitUntil(ctx, time.Duration(until-now), changed); err != nil {
			return Admission{}, err
		}
	}
}

// admitLocked admits what it can at now; when nothing, it says until when
// to wait (or until changed closes).
func (l *Limiter) admitLocked(now int64, li, want int) (Admission, int64) {
	if l.brk != nil {
		if held, until := l.breakerGateLocked(now, true, &want); held {
			return Admission{}, until
		}
	}
	if p := l.paused.Load(); p != 0 {
		if now < p {
			return Admission{}, p
		}
		l.unpauseLocked()
	}
	a := Admission{N: want}
	if l.q != nil {
		avail, day, retry := l.q.available(time.Now(), now, l.notify)
		if avail == 0 {
			return Admission{}, retry
		}
		a.N, a.day = int(min(int64(a.N), avail)), day
	}
	if l.b.limited() {
		promised := 0
		if li == bulk {
			promised = l.promised
		}
		n, first := l.b.ahead(now, horizon, li, promised)
		if li == bulk && first > now {
			// Wait for bulk's next token to be due, then take a horizon's
			// worth at once: fetches stay batches.
			return Admission{}, first
		}
		if n == 0 {
			return Admission{}, first - horizon
		}
		a.N = min(a.N, n)
		if li == bulk {
			l.promised += a.N
		}
	}
	if l.q != nil {
		l.q.take(int64(a.N), l.quotaChunkLocked(), l.notify)
	}
	return a, 0
}

// Unadmit hands back n calls of a that will not be made.
func (l *Limiter) Unadmit(lane job.Lane, a Admission, n int) {
	if n > 0 && l.brk != nil && l.brk.state.Load() == stHalfOpen {
		l.unadmitProbes(n)
	}
	if n <= 0 || (l.q == nil && (lane != job.LaneBulk || l.simple.Load())) {
		return
	}
	l.mu.Lock()
	if lane == job.LaneBulk && l.promised > 0 {
		l.promised = max(0, l.promised-n)
		// A fetch waiting for bulk's promised tokens may go now: jobs that
		// end without a call (cancelled, expired) then drain at once
		// rather than one per token interval.
		l.broadcastLocked()
	}
	if l.q != nil {
		if l.q.giveBack(a.day, int64(n)) {
			// A lane of this replica may be waiting for quota that only
			// these tokens can give it: the fleet's may be spent.
			l.broadcastLocked()
		}
	}
	l.mu.Unlock()
}

// Wait waits for an admitted call's turn: its rate token, and the end of
// any pause. While it waits longer than a few seconds it keeps ka's job
// alive. It returns nil when the call may start (the admission is then
// used), ctx's error when ctx ends, or ErrStopped when stop closes; in
// both cases the call must not be made and its admission is still held.
//
// A live call takes its token at once, with a start time that may be a
// little ahead. Bulk calls queue in arrival order and each takes its token
// only when one is due, so bulk never holds tokens ahead of time that a
// live call arriving later would have to wait behind.
func (l *Limiter) Wait(ctx context.Context, stop <-chan struct{}, lane job.Lane, ka KeepAliver) error {
	if l.simple.Load() {
		l.started.Add(1)
		return nil
	}
	from := l.mono()
	var err error
	a := &alive{ka: ka, last: l.mono()}
	if lane == job.LaneBulk {
		err = l.waitBulk(ctx, stop, a)
	} else {
		err = l.waitLive(ctx, stop, a)
	}
	if err == nil {
		l.started.Add(1)
	}
	l.countWait(laneIndex(lane), l.mono()-from)
	return err
}

// minCountedWait is the shortest wait Waits counts as one: below it a call
// took a token at once, give or take the clock and the lock.
const minCountedWait = int64(time.Millisecond)

func (l *Limiter) countWait(li int, d int64) {
	if d >= minCountedWait {
		l.waits[li].Add(1)
		l.waited[li].Add(d)
	}
}

// Waits reports how many calls of lane waited for their turn (a rate
// token, the end of a pause) for a millisecond or more, and how long they
// waited together, since the limiter was made.
func (l *Limiter) Waits(lane job.Lane) (n int64, total time.Duration) {
	li := laneIndex(lane)
	return l.waits[li].Load(), time.Duration(l.waited[li].Load())
}

func (l *Limiter) waitLive(ctx context.Context, stop <-chan struct{}, ka *alive) error {
	probed := false
	for {
		l.mu.Lock()
		now := l.mono()
		if l.brk != nil && !probed {
			one := 1
			if held, until := l.breakerGateLocked(now, false, &one); held {
				changed := l.changed
				l.mu.Unlock()
				if err := l.sleep(ctx, stop, untilOrNever(until), changed, ka); err != nil {
					return err
				}
				continue
			}
			probed = true
		}
		if p := l.paused.Load(); p != 0 {
			if now < p {
				l.mu.Unlock()
				if err := l.sleep(ctx, stop, p, nil, ka); err != nil {
					return err
				}
				continue
			}
			l.unpauseLocked()
		}
		start, mark := l.b.take(now, live)
		l.mu.Unlock()
		if start <= now {
			return nil
		}
		err := l.sleep(ctx, stop, start, nil, ka)
		if p := l.paused.Load(); err == nil && (p == 0 || l.mono() >= p) {
			return nil
		}
		// Stopped, or paused meanwhile: the token goes back.
		l.mu.Lock()
		l.b.giveBack(mark)
		l.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// bulkWaiter is a bulk call in the queue for tokens; ready closes when it
// is at the head.
type bulkWaiter struct{ ready chan struct{} }

func (l *Limiter) waitBulk(ctx context.Context, stop <-chan struct{}, ka *alive) error {
	l.mu.Lock()
	if now := l.mono(); len(l.bulkQ) == 0 && l.paused.Load() == 0 && l.breakerClosed() && l.b.due(now, bulk) <= now {
		// No queue and a token free: take it.
		l.b.take(now, bulk)
		l.promised = max(0, l.promised-1)
		l.mu.Unlock()
		return nil
	}
	w := &bulkWaiter{ready: make(chan struct{})}
	l.bulkQ = append(l.bulkQ, w)
	if len(l.bulkQ) == 1 {
		close(w.ready)
	}
	l.mu.Unlock()
	// Wait to be at the head of the queue.
	if err := l.sleep(ctx, stop, math.MaxInt64, w.ready, ka); err != nil {
		l.leaveBulk(w)
		return err
	}
	probed := false
	for {
		l.mu.Lock()
		now := l.mono()
		until := int64(0)
		one := 1
		held := false
		if l.brk != nil && !probed {
			held, until = l.breakerGateLocked(now, false, &one)
			until = untilOrNever(until)
			probed = !held
		}
		if held {
			// Held back by the breaker: wait below.
		} else if p := l.paused.Load(); p != 0 && now < p {
			until = p
		} else {
			if p != 0 {
				l.unpauseLocked()
			}
			if until = l.b.due(now, bulk); until <= now {
				l.b.take(now, bulk)
				l.promised = max(0, l.promised-1)
				l.popBulkLocked(w)
				l.mu.Unlock()
				return nil
			}
		}
		changed := l.changed
		l.mu.Unlock()
		if err := l.sleep(ctx, stop, until, changed, ka); err != nil {
			l.leaveBulk(w)
			return err
		}
	}
}

// popBulkLocked removes w from the bulk queue and hands the head on.
func (l *Limiter) popBulkLocked(w *bulkWaiter) {
	i := slices.Index(l.bulkQ, w)
	if i < 0 {
		return
	}
	l.bulkQ = slices.Delete(l.bulkQ, i, i+1)
	if i == 0 && len(l.bulkQ) > 0 {
		close(l.bulkQ[0].ready)
	}
}

func (l *Limiter) leaveBulk(w *bulkWaiter) {
	l.mu.Lock()
	l.popBulkLocked(w)
	l.mu.Unlock()
}

// alive keeps a waiting job's message alive: it tells ka at most every
// keepAlive, counted from the wait's start however often the wait is woken
// (a wake that came sooner each time would otherwise starve it).
type alive struct {
	ka   KeepAliver
	last int64 // monotonic: the wait's start or the last InProgress
}

// sleep waits until the monotonic time until, or until wake closes,
// telling a's job every keepAliveEvery.
func (l *Limiter) sleep(ctx context.Context, stop <-chan struct{}, until int64, wake <-chan struct{}, a *alive) error {
	for {
		now := l.mono()
		d := until - now
		if d <= 0 {
			return nil
		}
		if a != nil && a.ka != nil {
			if now-a.last >= int64(l.keepAlive) {
				_ = a.ka.InProgress()
				a.last = now
			}
			d = min(d, a.last+int64(l.keepAlive)-now)
		}
		select {
		case <-wake:
			return nil
		default:
		}
		t := time.NewTimer(time.Duration(min(d, int64(l.keepAlive))))
		select {
		case <-t.C:
		case <-wake:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-stop:
			t.Stop()
			return ErrStopped
		}
	}
}

// untilOrNever turns "until the state changes" (0) into a time that never
// comes, for sleep.
func untilOrNever(until int64) int64 {
	if until == 0 {
		return math.MaxInt64
	}
	return until
}

// breakerClosed reports whether no breaker holds calls back.
func (l *Limiter) breakerClosed() bool {
	return l.brk == nil || l.brk.state.Load() == stClosed
}

// waitUntil waits for d, changed to close, or ctx to end.
func waitUntil(ctx context.Context, d time.Duration, changed <-chan struct{}) error {
	if d <= 0 {
		d = time.Second // nothing to wait for but a change; look again anyway
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-changed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Observe feeds the answer to a call started at started (a time from
// time.Now) back into the limits: Retry-After, rate-limit headers and 429s.
// status is 0 when no answer came. It is cheap for a 2xx answer without
// rate-limit headers.
func (l *Limiter) Observe(started time.Time, status int, h http.Header) {
	ok := status >= 200 && status < 300
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
	case hasLimitHeaders(h):
	case ok && l.adapting.Load():
	default:
		return
	}
	wall := time.Now()
	sig := readSignal(h, wall)

	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.mono()
	changed := false
	if sig.policyRate > 0 && sig.policyRate != l.policy {
		l.policy, changed = sig.policyRate, true
	}
	switch {
	case status == http.StatusTooManyRequests:
		guided := true
		switch {
		case !l.spec.PauseOn429:
			guided = false
		case sig.retryAfter > 0:
			l.pauseLocked(now, wall, sig.retryAfter, "429 with Retry-After", true)
		case sig.exhausted && sig.reset > 0:
			l.pauseLocked(now, wall, sig.reset, "429 with no calls left until the reset", true)
		default:
			guided = false
		}
		// The rate adapts down only where the provider gave no other
		// guidance: a pause it asked for, or a policy it announced, is
		// the answer, and a cut on top would leave the fleet below what
		// the provider said it takes for a whole recovery.
		if !guided && sig.policyRate == 0 && l.ad.cut(now, l.monoAt(started), l.rate, l.measured) {
			changed = true
		}
	case status == http.StatusServiceUnavailable && sig.retryAfter > 0 && l.spec.PauseOn503:
		l.pauseLocked(now, wall, sig.retryAfter, "503 with Retry-After", true)
	case sig.exhausted && sig.reset > 0 && l.spec.PauseOn429:
		l.pauseLocked(now, wall, sig.reset, "no calls left until the reset", true)
	}
	if ok && l.ad.active() {
		if l.ad.raise(now, l.ceiling) {
			changed = true
		} else {
			l.recomputeLocked() // the cap rose a little; no one needs waking
		}
	}
	if changed {
		l.recomputeLocked()
		l.broadcastLocked()
	}
}

// pauseLocked pauses the provider for d from now (monotonic) / wall, and
// has the fleet told when publish is set.
func (l *Limiter) pauseLocked(now int64, wall time.Time, d time.Duration, reason string, publish bool) {
	d = min(d, MaxPause)
	until := now + int64(d)
	if until <= l.paused.Load() {
		return
	}
	l.paused.Store(until)
	l.simple.Store(false)
	l.pauseUntil, l.pauseReason = wall.Add(d), reason
	if publish && l.notify != nil && l.pauseUntil.Sub(l.published) > 250*time.Millisecond {
		l.published = l.pauseUntil
		l.toPublish = &Pause{Until: l.pauseUntil, Reason: reason}
		l.notify()
	}
	l.broadcastLocked()
}

// remotePause applies a pause another replica published.
func (l *Limiter) remotePause(p Pause) {
	wall := time.Now()
	d := p.Until.Sub(wall)
	if d <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.Until.After(l.published) {
		l.published = p.Until
	}
	reason := p.Reason
	if p.Replica != "" {
		reason += " (seen by " + p.Replica + ")"
	}
	l.pauseLocked(l.mono(), wall, d, reason, false)
}

// takePause returns the pause to publish, if any.
func (l *Limiter) takePause() *Pause {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.toPublish
	l.toPublish = nil
	return p
}

func (l *Limiter) unpauseLocked() {
	l.paused.Store(0)
	l.pauseReason = ""
	l.pauseUntil = time.Time{}
	l.recomputeLocked()
}

// recomputeLocked derives the rate in force from the configured and
// announced fleet rates, the members and the adaptive cap.
func (l *Limiter) recomputeLocked() {
	fleet := l.spec.Rate
	if l.policy > 0 && (fleet == 0 || l.policy < fleet) {
		fleet = l.policy
	}
	n := max(1, l.members)
	l.ceiling = 0
	rate := math.Inf(1)
	if fleet > 0 {
		l.ceiling = fleet / float64(n)
		rate = l.ceiling
	}
	if l.ad.active() {
		rate = min(rate, l.ad.cap)
	}
	// This replica's burst: its share of the configured one while the
	// configured rate is in force; else a tenth of a second's worth. (A
	// configured rate's default burst is smaller, a fiftieth, to keep the
	// busiest second near the rate; an announced policy counts over its own
	// window, and an adaptive rate is already below what the provider
	// took.)
	local := 1
	switch {
	case fleet == 0:
		if !math.IsInf(rate, 1) {
			local = max(1, int(rate/10))
		}
	case l.spec.Burst > 0 && fleet == l.spec.Rate:
		local = max(1, l.spec.Burst/n)
	default:
		local = max(1, int(math.Ceil(fleet/10))/n)
	}
	// Live's headroom: tokens bulk may not take. Bulk takes a token only
	// once it is due, and a call that starts late (timers, a busy CPU)
	// loses the lateness unless bulk's own tolerance is at least one
	// token; so a burst of 2 keeps no headroom (a live call then waits at
	// most one interval for its token), a larger one keeps a tenth of it.
	headroom := 0
	if local >= 3 {
		headroom = max(1, local/10)
	}
	l.rate = rate
	l.b.set(rate, local, headroom)
	if !l.b.limited() {
		l.promised = 0 // admitted with no rate to keep: nothing promised
	}
	l.adapting.Store(l.ad.active())
	l.simple.Store(!l.b.limited() && l.q == nil && l.paused.Load() == 0 && l.breakerClosed())
}

func (l *Limiter) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// setMembers tells the limiter who serves the provider: n replicas, this
// one at rank (in the sorted order every replica sees), the others
// reporting others calls/s between them. It returns this replica's
// concurrency share and whether it changed, and whether the member count
// changed.
func (l *Limiter) setMembers(n, rank int, others float64) (size, reserve int, resized, moved bool) {
	n = max(1, n)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.others = others
	if moved = n != l.members; moved {
		l.ad.rescale(float64(l.members) / float64(n))
		l.members = n
		l.recomputeLocked()
		l.broadcastLocked()
	}
	if !l.spec.FleetConcurrency {
		return 0, 0, false, moved
	}
	size, reserve = concurrencyShare(l.spec.Concurrency, l.spec.LiveReserve, n, rank)
	if [2]int{size, reserve} == l.slots {
		return size, reserve, false, moved
	}
	l.slots = [2]int{size, reserve}
	return size, reserve, true, moved
}

// concurrencyShare divides a fleet's slots among n replicas: total/n each,
// the remainder to the first ranks, at least one each; and the live
// reserve the same way (so the fleet reserves what was configured, not one
// per replica), always leaving bulk one slot.
func concurrencyShare(total, reserve, n, rank int) (int, int) {
	share := func(x int) int {
		s := x / n
		if rank < x%n {
			s++
		}
		return s
	}
	size := max(share(total), 1)
	return size, min(share(reserve), size-1)
}

// tick samples the calls started, for the measured rate. The fleet calls
// it about every 250 ms.
func (l *Limiter) tick(now int64) {
	count := l.started.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ringAt = (l.ringAt + 1) % len(l.ring)
	l.ring[l.ringAt].at, l.ring[l.ringAt].count = now, count
	// The oldest sample, about a second ago; at first the zero sample of
	// the limiter's start.
	oldest := l.ring[(l.ringAt+1)%len(l.ring)]
	if now > oldest.at {
		l.measured = float64(count-oldest.count) / (float64(now-oldest.at) / float64(time.Second))
	}
	if p := l.paused.Load(); p != 0 && now >= p {
		l.unpauseLocked()
	}
	l.tickBreakerLocked(now)
}

// Snapshot is where a provider's limits stand in this replica: what
// `switchyard status` shows.
type Snapshot struct {
	Provider string `json:"provider"`
	// Members is how many replicas serve the provider, this one included.
	Members int `json:"members"`
	// Rate is the rate this replica may call at now, in calls/s; 0 when
	// nothing limits it.
	Rate float64 `json:"rate"`
	// FleetRate is the fleet's: this replica's Rate plus what the others
	// last reported (or Rate times Members before they have); 0 when
	// nothing limits this replica.
	FleetRate float64 `json:"fleet_rate"`
	// ConfiguredRate is the fleet rate from the config, PolicyRate the one
	// the provider announced (RateLimit-Policy); 0 when absent.
	ConfiguredRate float64 `json:"configured_rate,omitempty"`
	PolicyRate     float64 `json:"policy_rate,omitempty"`
	// Adaptive is set while 429s hold the rate below its ceiling.
	Adaptive bool `json:"adaptive,omitempty"`
	// Started is the rate calls actually started at here, over about the
	// last second.
	Started float64 `json:"started"`
	// Concurrency and LiveReserve are this replica's slots.
	Concurrency int `json:"concurrency"`
	LiveReserve int `json:"live_reserve"`
	// PausedUntil is when a pause ends, zero when none; PauseReason why.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	PauseReason string    `json:"pause_reason,omitempty"`
	// QuotaLimit is the daily quota (0 for none); QuotaUsed the fleet's
	// calls reserved today, as of this replica's last reservation;
	// QuotaResumesAt, when set, is when a spent quota starts again.
	QuotaLimit     int64     `json:"quota_limit,omitempty"`
	QuotaUsed      int64     `json:"quota_used,omitempty"`
	QuotaResumesAt time.Time `json:"quota_resumes_at,omitzero"`
	// Breaker is the circuit breaker's state (BreakerClosed, BreakerOpen,
	// BreakerHalfOpen), empty when it is off. BreakerUntil is when an open
	// one may be probed, or a prober's deadline; BreakerReason why it is
	// where it is; BreakerProber is set while this replica probes;
	// BreakerOpened counts the opens this replica saw.
	Breaker       string    `json:"breaker,omitempty"`
	BreakerUntil  time.Time `json:"breaker_until,omitzero"`
	BreakerReason string    `json:"breaker_reason,omitempty"`
	BreakerProber bool      `json:"breaker_prober,omitempty"`
	BreakerOpened int64     `json:"breaker_opened,omitempty"`
	// BreakerHeld counts failed calls whose jobs waited for the breaker
	// instead of spending an attempt.
	BreakerHeld int64 `json:"breaker_held,omitempty"`
	// RetriesAllowed counts the retries the budget let through since
	// start, RetriesDeferred the failures over it, which waited for room
	// instead of spending an attempt; RetryRoom is how many more the
	// window allows now. All zero when there is no budget.
	RetriesAllowed  int64 `json:"retries_allowed,omitempty"`
	RetriesDeferred int64 `json:"retries_deferred,omitempty"`
	RetryRoom       int64 `json:"retry_room,omitempty"`
}

// Snapshot reports where the provider's limits stand.
func (l *Limiter) Snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Snapshot{
		Provider: l.name, Members: max(1, l.members), ConfiguredRate: l.spec.Rate, PolicyRate: l.policy,
		Adaptive: l.ad.active(), Started: l.measured, Concurrency: l.slots[0], LiveReserve: l.slots[1],
	}
	if !math.IsInf(l.rate, 1) {
		s.Rate = l.rate
		s.FleetRate = l.rate + l.others
		if l.others == 0 {
			// The others have not reported (or report no limit): assume
			// they have the same share.
			s.FleetRate = l.rate * float64(s.Members)
		}
	}
	if p := l.paused.Load(); p != 0 && l.mono() < p {
		s.PausedUntil, s.PauseReason = l.pauseUntil, l.pauseReason
	}
	if l.q != nil {
		s.QuotaLimit, s.QuotaUsed, s.QuotaResumesAt = l.q.limit, l.q.used, l.q.spentUntil
	}
	if b := l.brk; b != nil {
		s.Breaker, s.BreakerReason, s.BreakerProber, s.BreakerOpened = stateNames[b.state.Load()], b.reason, b.prober, b.opened
		s.BreakerHeld = b.held.Load()
		if s.Breaker != BreakerClosed {
			s.BreakerUntil = b.untilWall
		}
	}
	if b := l.bud; b != nil {
		s.RetriesAllowed, s.RetriesDeferred = b.taken.Load(), b.deferred.Load()
		w := b.win.sum(l.mono())
		s.RetryRoom = max(0, b.allowance(w.ok)-w.retrys)
	}
	return s
}
