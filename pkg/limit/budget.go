package limit

import (
	"context"
	"sync/atomic"
	"time"
)

// BudgetSpec caps a provider's retries at a share of its recent successful
// calls: at most Ratio·S + MinPerSecond·Window retries in any Window in
// which S calls succeeded. Each replica keeps its own budget over its own
// calls, so the fleet retries at most Ratio·S_fleet + N·MinPerSecond·Window
// in a window (N replicas): the ratio holds for the fleet exactly, the
// floor grows with the replicas. A retry is counted when it is decided
// (the failed call's job is scheduled again), not when it is made. The
// worker does not charge 429s to it: the limiter already paces those
// retries (a pause, the adaptive rate).
type BudgetSpec struct {
	Ratio        float64
	MinPerSecond float64
	Window       time.Duration
}

// budget is a Limiter's retry budget.
type budget struct {
	spec  BudgetSpec
	floor int64 // MinPerSecond·Window, in retries
	win   *window
	// taken and deferred count retries allowed and failures over the
	// budget (each of which waited for room rather than spend an attempt).
	taken, deferred atomic.Int64
}

func newBudget(spec BudgetSpec) *budget {
	return &budget{spec: spec, floor: int64(spec.MinPerSecond * spec.Window.Seconds()), win: newWindow(spec.Window)}
}

// allowance is how many retries the window allows for ok successes.
func (b *budget) allowance(ok int64) int64 {
	return int64(b.spec.Ratio*float64(ok)) + max(b.floor, 1)
}

// take counts one retry if the window has room for it.
func (b *budget) take(now int64) bool {
	b.win.mu.Lock()
	s := b.win.sumLocked(now)
	ok := s.retrys < b.allowance(s.ok)
	if ok {
		b.win.slotLocked(now).retrys++
	}
	b.win.mu.Unlock()
	if ok {
		b.taken.Add(1)
	}
	return ok
}

// TakeRetry asks the provider's retry budget for one retry of a failed
// call, and counts it when there is room. With no budget it always
// allows. When it says no, the failure must not spend an attempt: see
// AwaitRetry.
func (l *Limiter) TakeRetry() bool {
	if l.bud == nil {
		return true
	}
	if l.bud.take(l.mono()) {
		return true
	}
	l.bud.deferred.Add(1)
	return false
}

// AwaitRetry waits, for a failed call over the retry budget, first delay
// (the backoff the retry would have had) and then until the budget has
// room, which it takes; it keeps ka's job alive meanwhile. The caller
// holds the job and its slot while it waits, so a provider failing faster
// than its budget allows soon stops fetching new jobs. It returns ctx's
// error or ErrStopped if those end first.
func (l *Limiter) AwaitRetry(ctx context.Context, stop <-chan struct{}, delay time.Duration, ka KeepAliver) error {
	a := &alive{ka: ka, last: l.mono()}
	if err := l.sleep(ctx, stop, l.mono()+int64(delay), nil, a); err != nil {
		return err
	}
	if l.bud == nil {
		return nil
	}
	for !l.bud.take(l.mono()) {
		// Room comes with successes or as old retries leave the window:
		// look again each bucket.
		if err := l.sleep(ctx, stop, l.mono()+l.bud.win.width, nil, a); err != nil {
			return err
		}
	}
	return nil
}
