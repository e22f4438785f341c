package limit

import (
	"math"
	"time"
)

// Lane indexes of bucket.tol.
const (
	live = 0
	bulk = 1
)

// bucket is one replica's share of a provider's rate, as a token bucket kept
// as one number: tat, the theoretical arrival time of the generic cell rate
// algorithm. Unlike the usual form, which refuses a call that comes too
// early, take schedules it: it returns when the call may start, so a caller
// can reserve its turn and sleep until then.
//
// Each lane has its own tolerance (how far ahead of now tat may run, that
// is, burst-1 intervals). Bulk's is smaller by the live headroom, and bulk
// takes a token only once it is due (see Limiter.Wait), so bulk never
// takes the last tokens of the bucket and a live call finds one at once. For any window of length w, the calls started in it are at most
// w/interval + burst whatever the order of takes, lanes and give-backs
// (TestBucketNeverExceedsItsBound).
//
// Times are nanoseconds on the limiter's monotonic clock. The zero bucket
// is unlimited. Not safe for concurrent use: the Limiter's lock guards it.
type bucket struct {
	// interval is the time one token takes to refill; 0 means no limit.
	interval int64
	tol      [2]int64
	tat      int64
}

// set changes the rate (calls/s; 0 or +Inf for none), the burst (tokens)
// and the live headroom (tokens bulk may not take). tat is kept, so the
// calls already scheduled keep their times.
func (b *bucket) set(rate float64, burst, headroom int) {
	if rate <= 0 || math.IsInf(rate, 1) || math.IsNaN(rate) {
		b.interval = 0
		return
	}
	b.interval = max(1, int64(float64(time.Second)/rate))
	tol := int64(max(burst, 1)-1) * b.interval
	b.tol = [2]int64{tol, max(0, tol-int64(headroom)*b.interval)}
}

func (b *bucket) limited() bool { return b.interval > 0 }

// take reserves one token for lane at now and returns when the call may
// start (now, or later when the lane's share of the bucket is empty) and a
// mark that identifies the token for giveBack.
func (b *bucket) take(now int64, lane int) (start, mark int64) {
	if b.interval == 0 {
		return now, 0
	}
	start = max(now, b.tat-b.tol[lane])
	b.tat = max(b.tat, now) + b.interval
	return start, b.tat
}

// due returns when lane's next token is due: now if one is free.
func (b *bucket) due(now int64, lane int) int64 {
	if b.interval == 0 {
		return now
	}
	return max(now, b.tat-b.tol[lane])
}

// giveBack returns a token taken and never used, if no token was taken
// after it. Handing back an earlier one would let a later take start
// alongside tokens scheduled after it, past the burst; so that one is
// simply lost: the bucket errs on the side of fewer calls.
func (b *bucket) giveBack(mark int64) {
	if b.interval > 0 && mark != 0 && b.tat == mark {
		b.tat -= b.interval
	}
}

// ahead reports how many tokens lane could start within [now, now+horizon]
// once promised more have been taken, and when the first of them would
// start. It takes nothing.
func (b *bucket) ahead(now, horizon int64, lane, promised int) (n int, first int64) {
	if b.interval == 0 {
		return math.MaxInt32, now
	}
	due := max(b.tat, now) + int64(promised)*b.interval - b.tol[lane] // the next token's start, unclamped
	first = max(now, due)
	if due > now+horizon {
		return 0, first
	}
	return int(min((now+horizon-due)/b.interval+1, math.MaxInt32)), first
}
