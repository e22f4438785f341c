package limit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/limit"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
)

func breakerSpec() *limit.BreakerSpec {
	return &limit.BreakerSpec{FailureRate: 0.5, MinCalls: 10, Window: time.Second, Consecutive: 3,
		OpenFor: 150 * time.Millisecond, MaxOpenFor: time.Second, Probes: 1, ProbeWait: time.Second}
}

// admits reports how many of 5 live calls Admit grants within d.
func admits(l *limit.Limiter, d time.Duration) int { return admitsOn(l, job.LaneLive, d) }

func admitsOn(l *limit.Limiter, lane job.Lane, d time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	a, err := l.Admit(ctx, lane, 5)
	if err != nil {
		return 0
	}
	return a.N
}

// starts reports whether Wait lets a call start within d.
func starts(l *limit.Limiter, lane job.Lane, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return l.Wait(ctx, nil, lane, nil) == nil
}

func TestBreakerOpensProbesAndCloses(t *testing.T) {
	t.Parallel()
	l := limit.NewLimiter("acme", limit.Spec{Breaker: breakerSpec()})
	for range 2 {
		l.Record(time.Now(), limit.Failure)
	}
	l.Record(time.Now(), limit.Neutral) // a 429 breaks no run
	if got := l.BreakerState(); got != limit.BreakerClosed {
		t.Fatalf("after 2 failures: %s, want closed", got)
	}
	l.Record(time.Now(), limit.Failure)
	if got := l.BreakerState(); got != limit.BreakerOpen {
		t.Fatalf("after 3 failures in a row: %s, want open", got)
	}
	if n := admits(l, 50*time.Millisecond); n != 0 {
		t.Fatalf("an open breaker admitted %d calls", n)
	}
	if starts(l, job.LaneBulk, 20*time.Millisecond) {
		t.Fatal("an open breaker let a fetched call start")
	}
	// After OpenFor: half-open, one probe.
	if n := admits(l, time.Second); n != 1 {
		t.Fatalf("half-open admitted %d calls, want the 1 probe", n)
	}
	if s := l.Snapshot(); s.Breaker != limit.BreakerHalfOpen || !s.BreakerProber {
		t.Fatalf("snapshot %+v, want half_open and probing", s)
	}
	probe := time.Now()
	if !starts(l, job.LaneLive, 50*time.Millisecond) {
		t.Fatal("the probe did not start")
	}
	if starts(l, job.LaneLive, 20*time.Millisecond) {
		t.Fatal("a second call started while the probe runs")
	}
	// A failed probe reopens it for twice as long.
	l.Record(probe, limit.Failure)
	s := l.Snapshot()
	if s.Breaker != limit.BreakerOpen || time.Until(s.BreakerUntil) < 200*time.Millisecond {
		t.Fatalf("after a failed probe: %+v, want open for about 300ms", s)
	}
	if n := admits(l, 2*time.Second); n != 1 {
		t.Fatalf("half-open again admitted %d, want 1", n)
	}
	probe = time.Now()
	if !starts(l, job.LaneBulk, 50*time.Millisecond) {
		t.Fatal("the second probe did not start")
	}
	l.Record(probe.Add(-time.Hour), limit.Success) // a call from before: not a probe
	if got := l.BreakerState(); got != limit.BreakerHalfOpen {
		t.Fatalf("an old call's success decided the probe: %s", got)
	}
	l.Record(probe, limit.Success)
	if got := l.BreakerState(); got != limit.BreakerClosed {
		t.Fatalf("after a successful probe: %s, want closed", got)
	}
	if n := admits(l, 20*time.Millisecond); n != 5 {
		t.Fatalf("closed admitted %d of 5", n)
	}
	if got := l.Snapshot().BreakerOpened; got != 2 {
		t.Errorf("opened %d times, want 2", got)
	}
}

func TestBreakerOpensOnTheFailureRate(t *testing.T) {
	t.Parallel()
	spec := breakerSpec()
	spec.Consecutive = 100
	l := limit.NewLimiter("acme", limit.Spec{Breaker: spec})
	for i := range 9 { // 5 failures of 9: below MinCalls
		if i%2 == 0 {
			l.Record(time.Now(), limit.Failure)
		} else {
			l.Record(time.Now(), limit.Success)
		}
	}
	if got := l.BreakerState(); got != limit.BreakerClosed {
		t.Fatalf("9 calls: %s, want closed below min_calls", got)
	}
	l.Record(time.Now(), limit.Success) // 5 of 10 failed
	l.Record(time.Now(), limit.Failure) // 6 of 11: failed
	if got := l.BreakerState(); got != limit.BreakerOpen {
		t.Fatalf("6 of 11 failed: %s, want open", got)
	}
}

func TestRetryBudget(t *testing.T) {
	t.Parallel()
	l := limit.NewLimiter("acme", limit.Spec{Budget: &limit.BudgetSpec{Ratio: 0.5, MinPerSecond: 2, Window: time.Second}})
	// No successes: the floor, 2 per second.
	for i := range 2 {
		if !l.TakeRetry() {
			t.Fatalf("retry %d refused: the floor allows 2 a second", i+1)
		}
	}
	if l.TakeRetry() {
		t.Fatal("a third retry passed with no success")
	}
	for range 10 {
		l.Record(time.Now(), limit.Success)
	}
	allowed := 0
	for l.TakeRetry() {
		allowed++
	}
	if allowed != 5 {
		t.Fatalf("10 successes allowed %d more retries, want 5", allowed)
	}
	s := l.Snapshot()
	if s.RetriesAllowed != 7 || s.RetriesDeferred != 2 || s.RetryRoom != 0 {
		t.Fatalf("snapshot %+v: want 7 allowed, 2 deferred, no room", s)
	}
	// A retry over budget waits for room: successes make it.
	done := make(chan error, 1)
	go func() { done <- l.AwaitRetry(context.Background(), nil, 0, nil) }()
	select {
	case err := <-done:
		t.Fatalf("AwaitRetry returned %v with no room", err)
	case <-time.After(150 * time.Millisecond):
	}
	l.Record(time.Now(), limit.Success)
	l.Record(time.Now(), limit.Success)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("AwaitRetry still waiting after two successes made room")
	}
}

func TestBreakerIsSharedAndOneReplicaProbes(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	spec := breakerSpec()
	spec.OpenFor = 300 * time.Millisecond
	specs := map[string]limit.Spec{"acme": {Breaker: spec}, "globex": {Breaker: spec}}
	rs := []*replica{startReplica(t, srv, "a", specs), startReplica(t, srv, "b", specs), startReplica(t, srv, "c", specs)}
	states := func(provider string) (open, half, probers int, all string) {
		for _, r := range rs {
			s := r.fleet.Limiter(provider).Snapshot()
			all += fmt.Sprintf(" %s", s.Breaker)
			switch s.Breaker {
			case limit.BreakerOpen:
				open++
			case limit.BreakerHalfOpen:
				half++
			}
			if s.BreakerProber {
				probers++
			}
		}
		return open, half, probers, all
	}
	for range 3 {
		rs[1].fleet.Limiter("acme").Record(time.Now(), limit.Failure)
	}
	took := await(t, 2*time.Second, func() (bool, string) {
		open, _, _, all := states("acme")
		return open == 3, "acme:" + all
	})
	t.Logf("open on every replica %s after one tripped", took)
	if _, _, _, all := states("globex"); all != " closed closed closed" {
		t.Fatalf("globex:%s, want closed everywhere", all)
	}
	// The open period ends: one replica probes, the others hold.
	await(t, 3*time.Second, func() (bool, string) {
		_, half, probers, all := states("acme")
		return half == 3 && probers == 1, fmt.Sprintf("acme:%s, %d probers", all, probers)
	})
	var prober, other *limit.Limiter
	for _, r := range rs {
		if l := r.fleet.Limiter("acme"); l.Snapshot().BreakerProber {
			prober = l
		} else {
			other = l
		}
	}
	if n := admits(other, 100*time.Millisecond); n != 0 {
		t.Fatalf("a replica that does not probe admitted %d calls", n)
	}
	if n := admits(prober, 100*time.Millisecond); n != 1 {
		t.Fatalf("the prober admitted %d calls, want 1", n)
	}
	probe := time.Now()
	if !starts(prober, job.LaneLive, 100*time.Millisecond) {
		t.Fatal("the probe did not start")
	}
	prober.Record(probe, limit.Success)
	await(t, 2*time.Second, func() (bool, string) {
		_, _, _, all := states("acme")
		return all == " closed closed closed", "acme:" + all
	})
	if n := admits(other, time.Second); n != 5 {
		t.Fatalf("after the close another replica admitted %d of 5", n)
	}
}

// A prober whose probe admissions found nothing to call hands them back
// for its other lane, and claims fresh ones once its deadline passes
// rather than holding the breaker half-open.
func TestAProberWithNothingToCallProbesAgain(t *testing.T) {
	t.Parallel()
	spec := breakerSpec()
	spec.OpenFor, spec.ProbeWait = 100*time.Millisecond, 200*time.Millisecond
	l := limit.NewLimiter("acme", limit.Spec{Breaker: spec})
	for range 3 {
		l.Record(time.Now(), limit.Failure)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	a, err := l.Admit(ctx, job.LaneLive, 5)
	if err != nil || a.N != 1 {
		t.Fatalf("half-open admitted %d (%v), want 1", a.N, err)
	}
	l.Unadmit(job.LaneLive, a, 1) // the live lane's fetch found nothing
	if n := admitsOn(l, job.LaneBulk, 50*time.Millisecond); n != 1 {
		t.Fatalf("the handed-back probe: bulk admitted %d, want 1", n)
	}
	// The bulk fetch found nothing either, and kept its admission.
	if n := admits(l, 50*time.Millisecond); n != 0 {
		t.Fatalf("admitted %d more before the deadline", n)
	}
	if n := admits(l, time.Second); n != 1 {
		t.Fatalf("after the deadline admitted %d, want a fresh probe", n)
	}
	if got := l.BreakerState(); got != limit.BreakerHalfOpen {
		t.Fatalf("state %s, want still half_open", got)
	}
}
