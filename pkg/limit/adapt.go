package limit

import (
	"math"
	"time"
)

// AIMD parameters.
const (
	// decrease is the factor a 429 cuts the rate by.
	decrease = 0.7
	// minRate is the lowest rate adaptation goes to, in calls/s: one call
	// every 100 s still finds out when the provider allows more.
	minRate = 0.01
	// maxIncreaseStep bounds the time one success may count for, so an
	// idle spell does not turn into a jump.
	maxIncreaseStep = int64(250 * time.Millisecond)
)

// adapt is the additive-increase, multiplicative-decrease cap a replica
// puts on its own rate when the provider refuses calls without saying how
// fast it may go. A 429 cuts the cap to decrease times the rate the calls
// were going at; each success then raises it, at a slope that climbs back
// to that rate in Recovery. Past it, where no 429 came from yet, the slope
// doubles every Recovery, so a limit that went away is forgotten in a few
// Recovery times rather than many. The cap is lifted once it is no lower
// than the configured share (or, with no rate configured, twice the rate
// of the last cut): adaptation is over.
//
// Only a 429 for a call started a little after the last cut counts (ten
// calls' time at the new rate, between 200 ms and a quarter of Recovery),
// so the calls already in flight at the old rate, and those that meet the
// provider's bucket still empty from the crossing, cut it once, not once
// each (TCP's one decrease per window).
//
// Not safe for concurrent use: the Limiter's lock guards it.
type adapt struct {
	recovery int64 // ns
	// cap is the current cap in calls/s; +Inf when not adapting.
	cap float64
	// last is the rate cut at the last decrease; slope the increase per
	// second of successes.
	last, slope float64
	// cutAt and raisedAt are monotonic ns of the last decrease and
	// increase; pastAt of when the cap passed last (0 before). A 429 cuts
	// again only for a call started hold ns or more after cutAt.
	cutAt, raisedAt, pastAt, hold int64
}

func newAdapt(recovery time.Duration) adapt {
	return adapt{recovery: int64(recovery), cap: math.Inf(1), cutAt: math.MinInt64 / 2}
}

func (a *adapt) active() bool { return !math.IsInf(a.cap, 1) }

// cut lowers the cap after a 429 for a call that started at started. rate
// is the rate the replica was allowed (+Inf for none), measured the rate
// its calls actually started at (0 if unknown). It reports whether it cut:
// not for a call started before the last cut, nor with neither a rate nor
// a measure to cut from.
func (a *adapt) cut(now, started int64, rate, measured float64) bool {
	if started < a.cutAt+a.hold {
		return false
	}
	base := rate
	if measured > 0 && measured < base {
		base = measured
	}
	if math.IsInf(base, 1) || base <= 0 {
		return false // no rate and nothing measured yet: nothing to cut from
	}
	a.last = base
	a.cap = max(minRate, decrease*base)
	a.slope = (1 - decrease) * base / (float64(a.recovery) / float64(time.Second))
	a.cutAt, a.raisedAt, a.pastAt = now, now, 0
	a.hold = min(max(int64(10/a.cap*float64(time.Second)), int64(200*time.Millisecond)), a.recovery/4)
	return true
}

// raise counts a success at now. ceiling is the configured share (0 for
// none). It reports whether adaptation just ended.
func (a *adapt) raise(now int64, ceiling float64) bool {
	if !a.active() {
		return false
	}
	step := min(now-a.raisedAt, maxIncreaseStep)
	if step <= 0 {
		return false
	}
	a.raisedAt = now
	slope := a.slope
	if a.cap >= a.last {
		if a.pastAt == 0 {
			a.pastAt = now
		}
		slope *= math.Exp2(min(float64(now-a.pastAt)/float64(a.recovery), 20))
	}
	a.cap += slope * float64(step) / float64(time.Second)
	if (ceiling > 0 && a.cap >= ceiling) || (ceiling == 0 && a.cap >= 2*a.last) {
		a.cap = math.Inf(1)
		return true
	}
	return false
}

// rescale keeps the fleet's adapted total when the replica's share of it
// changes by factor f (old members / new members).
func (a *adapt) rescale(f float64) {
	if a.active() {
		a.cap = max(minRate, a.cap*f)
		a.last *= f
		a.slope *= f
	}
}
