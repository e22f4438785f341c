package limit

import (
	"fmt"
	"sync/atomic"
	"time"
)

// BreakerSpec configures a provider's circuit breaker; see the package
// documentation.
type BreakerSpec struct {
	// FailureRate and MinCalls: open when at least FailureRate of the
	// calls in the last Window failed, once there were MinCalls.
	FailureRate float64
	MinCalls    int
	Window      time.Duration
	// Consecutive opens it after that many failures in a row.
	Consecutive int
	// OpenFor is how long it stays open the first time; it doubles with
	// each failed probe, up to MaxOpenFor.
	OpenFor, MaxOpenFor time.Duration
	// Probes is how many calls the probing replica lets through.
	Probes int
	// ProbeWait is how long the other replicas give the prober to decide
	// before one of them takes over (it may have died).
	ProbeWait time.Duration
}

// Breaker states, as in the key breaker.<provider> and in Snapshot.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half_open"
)

const (
	stClosed int32 = iota
	stOpen
	stHalfOpen
)

var stateNames = [...]string{BreakerClosed, BreakerOpen, BreakerHalfOpen}

// Breaker is the value of breaker.<provider>: the state every replica
// follows. Each write is a compare-and-set on the key's revision, so of
// the replicas that see the open period end, one becomes the prober.
type Breaker struct {
	State string `json:"state"`
	// Until: when an open breaker may be probed; for a half-open one, when
	// the others may take over from a silent prober.
	Until time.Time `json:"until,omitzero"`
	// Opens counts the opens since the last close: the open period is
	// OpenFor·2^(Opens-1), at most MaxOpenFor.
	Opens int `json:"opens,omitempty"`
	// Replica wrote it; in half_open, it is the prober.
	Replica string    `json:"replica"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Outcome is what a finished call says about the provider's health.
type Outcome int

const (
	// Neutral: says nothing (a 429, a call cut short by a stop, a request
	// never sent).
	Neutral Outcome = iota
	// Success: the provider answered (2xx, or a 4xx: it is up).
	Success
	// Failure: no answer, a timeout, a 408 or a 5xx.
	Failure
)

// breaker is a Limiter's circuit breaker. state is read without a lock on
// the path of every call; the rest is guarded by the Limiter's mu.
type breaker struct {
	spec        BreakerSpec
	win         *window
	consecutive atomic.Int64
	state       atomic.Int32
	// since is when the state last changed, on the monotonic clock.
	since atomic.Int64
	// held counts failures held for the breaker (HoldForBreaker).
	held atomic.Int64

	until     int64     // monotonic: end of open, or the prober's deadline
	untilWall time.Time // the same, for reports and the key
	opens     int
	reason    string
	replica   string // who wrote the state in force
	// prober is set while this replica probes; probeAdmits and
	// probeStarts are the probe calls it may still fetch and start;
	// probeFrom is when probing began: calls started before it are not
	// probes.
	prober                   bool
	probeAdmits, probeStarts int
	probeFrom                int64
	// rev is the revision of the key as last seen; pending is a write for
	// the fleet's writer; claiming is set while a claim to probe is
	// pending.
	rev      uint64
	pending  *Breaker
	claiming bool
	// opened counts opens seen here, for reports.
	opened int64
}

func newBreaker(spec BreakerSpec) *breaker {
	return &breaker{spec: spec, win: newWindow(spec.Window)}
}

// openFor is the open period after opens opens.
func (b *breaker) openFor(opens int) time.Duration {
	d := b.spec.OpenFor
	for i := 1; i < opens && d < b.spec.MaxOpenFor; i++ {
		d *= 2
	}
	return min(d, b.spec.MaxOpenFor)
}

// Record feeds a finished call's outcome (started is when it started, from
// time.Now) to the provider's breaker and retry budget.
func (l *Limiter) Record(started time.Time, o Outcome) {
	if o == Neutral || (l.brk == nil && l.bud == nil) {
		return
	}
	now := l.mono()
	if l.bud != nil && o == Success {
		l.bud.win.add(now, true)
	}
	b := l.brk
	if b == nil {
		return
	}
	st := b.state.Load()
	if st == stClosed {
		if l.monoAt(started) < b.since.Load() {
			return // started before the breaker closed: old news
		}
		if o == Success {
			if b.consecutive.Load() != 0 {
				b.consecutive.Store(0)
			}
			b.win.add(now, true)
			return
		}
		run := b.consecutive.Add(1)
		s := b.win.add(now, false)
		total := s.ok + s.fail
		switch {
		case run >= int64(b.spec.Consecutive):
			l.tripBreaker(fmt.Sprintf("%d failures in a row", run))
		case total >= int64(b.spec.MinCalls) && float64(s.fail) >= b.spec.FailureRate*float64(total):
			l.tripBreaker(fmt.Sprintf("%d of %d calls failed in %s", s.fail, total, b.spec.Window))
		}
		return
	}
	if st != stHalfOpen {
		return // calls that were in flight when it opened
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b.state.Load() != stHalfOpen || !b.prober || l.monoAt(started) < b.probeFrom {
		return
	}
	if o == Success {
		l.setBreakerLocked(Breaker{State: BreakerClosed, Reason: "a probe call succeeded"}, true)
		return
	}
	l.setBreakerLocked(Breaker{State: BreakerOpen, Opens: b.opens + 1, Reason: "a probe call failed"}, true)
}

// tripBreaker opens a closed breaker.
func (l *Limiter) tripBreaker(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.brk.state.Load() != stClosed {
		return
	}
	l.setBreakerLocked(Breaker{State: BreakerOpen, Opens: 1, Reason: reason}, true)
}

// setBreakerLocked puts the breaker in rec's state (filling in Until, At
// and Replica), and has the fleet told when publish is set.
func (l *Limiter) setBreakerLocked(rec Breaker, publish bool) {
	b := l.brk
	wall := time.Now()
	rec.At, rec.Replica = wall, l.replica
	switch rec.State {
	case BreakerOpen:
		rec.Until = wall.Add(b.openFor(rec.Opens))
	case BreakerHalfOpen:
		rec.Until = wall.Add(b.spec.ProbeWait)
	}
	l.applyBreakerLocked(rec)
	if publish && l.notify != nil {
		b.pending = &rec
		l.notify()
	}
}

// applyBreakerLocked takes rec as the state in force.
func (l *Limiter) applyBreakerLocked(rec Breaker) {
	b := l.brk
	now := l.mono()
	prev := b.state.Load()
	st := stClosed
	switch rec.State {
	case BreakerOpen:
		st = stOpen
	case BreakerHalfOpen:
		st = stHalfOpen
	}
	if st == stOpen && prev != stOpen {
		b.opened++
	}
	b.opens, b.reason, b.replica = rec.Opens, rec.Reason, rec.Replica
	wasProber, lastUntil := b.prober, b.untilWall
	b.prober = st == stHalfOpen && rec.Replica == l.replica
	b.until, b.untilWall = 0, time.Time{}
	if !rec.Until.IsZero() {
		b.until, b.untilWall = now+int64(time.Until(rec.Until)), rec.Until
	}
	if b.prober && (!wasProber || prev != stHalfOpen || !rec.Until.Equal(lastUntil)) {
		// A new claim (this replica's first, or a renewal): fresh probes.
		b.probeAdmits, b.probeStarts, b.probeFrom = b.spec.Probes, b.spec.Probes, now
	}
	if st != prev && (st == stClosed || st == stOpen) {
		// A fresh count: the failures that opened it, or the outage
		// before a close, must not decide the next transition.
		b.win.reset()
		b.consecutive.Store(0)
	}
	if st != prev {
		b.since.Store(now)
	}
	b.state.Store(st)
	b.claiming = false
	l.recomputeLocked()
	l.broadcastLocked()
}

// remoteBreaker applies a state another replica (or this one) wrote, at
// revision rev of the key.
func (l *Limiter) remoteBreaker(rec Breaker, rev uint64) {
	if l.brk == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if rev <= l.brk.rev {
		return
	}
	l.brk.rev = rev
	// A write not yet made was decided on the state before this one: a
	// claim to probe, or an open, may be stale. The next tick or failure
	// makes it again if it still holds.
	l.brk.pending = nil
	l.applyBreakerLocked(rec)
}

// breakerGateLocked says whether the breaker holds calls back at now, and
// until when (0: until the state changes). A prober lets its probes
// through: for admit, it takes from the probes it may fetch, else from
// those it may start.
func (l *Limiter) breakerGateLocked(now int64, admit bool, n *int) (bool, int64) {
	b := l.brk
	switch b.state.Load() {
	case stClosed:
		return false, 0
	case stOpen:
		if now < b.until {
			return true, b.until
		}
		if l.claimProbeLocked(); b.state.Load() == stOpen {
			return true, 0
		}
	}
	if !b.prober {
		if now >= b.until {
			l.claimProbeLocked() // the prober went silent
		}
		return true, 0
	}
	left := &b.probeStarts
	if admit {
		left = &b.probeAdmits
	}
	if *left == 0 && now >= b.until {
		// The probes were spent without an answer (a fetch that found
		// nothing): claim again for fresh ones (alone: at once).
		l.claimProbeLocked()
	}
	if *left == 0 || b.state.Load() != stHalfOpen {
		return true, 0
	}
	*n = min(*n, *left)
	*left -= *n
	return false, 0
}

// unadmitProbes hands back probe admissions a fetch found nothing for (an
// idle lane), so the provider's other lane can probe at once.
func (l *Limiter) unadmitProbes(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.brk; b.prober && b.state.Load() == stHalfOpen && b.probeAdmits < b.spec.Probes {
		b.probeAdmits = min(b.spec.Probes, b.probeAdmits+n)
		l.broadcastLocked()
	}
}

// claimProbeLocked asks the fleet to make this replica the prober; alone,
// it becomes the prober at once.
func (l *Limiter) claimProbeLocked() {
	b := l.brk
	if b.claiming {
		return
	}
	if l.notify == nil {
		l.setBreakerLocked(Breaker{State: BreakerHalfOpen, Opens: b.opens, Reason: "probing"}, false)
		return
	}
	b.claiming = true
	wall := time.Now()
	b.pending = &Breaker{State: BreakerHalfOpen, Opens: b.opens, Reason: "probing", Replica: l.replica, At: wall, Until: wall.Add(b.spec.ProbeWait)}
	l.notify()
}

// tickBreaker claims the probe when the open period is over, so a replica
// with nothing waiting to fetch still probes. The fleet calls it with
// tick.
func (l *Limiter) tickBreakerLocked(now int64) {
	if b := l.brk; b != nil && b.state.Load() != stClosed && now >= b.until && b.until != 0 && (!b.prober || b.probeAdmits == 0) {
		l.claimProbeLocked()
	}
}

// takeBreaker returns the breaker write to publish and the revision it
// expects, if any.
func (l *Limiter) takeBreaker() (*Breaker, uint64) {
	if l.brk == nil {
		return nil, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.brk.pending
	l.brk.pending = nil
	return p, l.brk.rev
}

// breakerWritten records the revision a write got; a claim that went
// through makes this replica the prober.
func (l *Limiter) breakerWritten(rec Breaker, rev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rev <= l.brk.rev {
		return
	}
	l.brk.rev = rev
	if rec.State == BreakerHalfOpen {
		l.applyBreakerLocked(rec)
	}
}

// breakerLost is told that a write lost the race: the state in force is
// cur (nil: no key) at rev.
func (l *Limiter) breakerLost(cur *Breaker, rev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.brk.claiming = false
	if cur == nil || rev <= l.brk.rev {
		return
	}
	l.brk.rev = rev
	l.applyBreakerLocked(*cur)
}

// HoldForBreaker reports whether a failed call's job should wait for the
// breaker rather than spend an attempt: the breaker is not closed (the
// failure may just have opened it, or was a probe), so the failure is the
// outage's, not the job's. It counts the jobs it holds, for reports.
func (l *Limiter) HoldForBreaker() bool {
	if l.brk == nil || l.brk.state.Load() == stClosed {
		return false
	}
	l.brk.held.Add(1)
	return true
}

// BreakerState returns the breaker's state: BreakerClosed when off.
func (l *Limiter) BreakerState() string {
	if l.brk == nil {
		return BreakerClosed
	}
	return stateNames[l.brk.state.Load()]
}
