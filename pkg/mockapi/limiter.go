package mockapi

import (
	"math"
	"sync/atomic"
	"time"
)

// limiter is a token bucket kept as one number, the generic cell rate
// algorithm: tat, the theoretical arrival time, is when the bucket will be
// full again. A request at now takes a token when tat, pushed on by one
// token's interval, stays within burst intervals of now. Keeping the whole
// state in one atomic makes the bucket exact under any concurrency without a
// lock: a request either moves tat with a compare-and-swap or retries.
//
// Times are nanoseconds on the server's monotonic clock.
type limiter struct {
	// interval is the time one token takes to refill.
	interval int64
	// tolerance is burst intervals: how far ahead of now tat may run.
	tolerance int64
	tat       atomic.Int64
}

func newLimiter(rate float64, burst int64) *limiter {
	interval := max(1, int64(math.Round(float64(time.Second)/rate)))
	return &limiter{interval: interval, tolerance: burst * interval}
}

// take reports whether a request at now gets a token. When it does not,
// wait is how long until one is free.
func (l *limiter) take(now int64) (ok bool, wait time.Duration) {
	for {
		tat := l.tat.Load()
		next := max(tat, now) + l.interval
		if over := next - now - l.tolerance; over > 0 {
			return false, time.Duration(over)
		}
		if l.tat.CompareAndSwap(tat, next) {
			return true, 0
		}
	}
}

// state reports the tokens left at now and how long until the bucket is
// full, for the rate-limit headers.
func (l *limiter) state(now int64) (remaining int64, full time.Duration) {
	behind := max(0, l.tat.Load()-now)
	return max(0, (l.tolerance-behind)/l.interval), time.Duration(behind)
}

// reset fills the bucket.
func (l *limiter) reset() { l.tat.Store(0) }

// ceilSeconds rounds d up to whole seconds, at least 1: a Retry-After of 0
// would invite an immediate retry into the same limit.
func ceilSeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}
