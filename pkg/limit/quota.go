package limit

import (
	"context"
	"fmt"
	"math"
	"time"
)

// quotaRecheck is how often a replica whose quota is spent asks again
// before the day ends: other replicas may hand back what they reserved.
const quotaRecheck = 10 * time.Second

// counter adds to a fleet-wide counter and returns the new total.
type counter interface {
	add(ctx context.Context, subject string, delta int64) (int64, error)
}

// quota is this replica's part of a provider's daily quota: tokens
// reserved in chunks from a counter per UTC day that the whole fleet
// increments (see the package doc). Not safe for concurrent use: the
// Limiter's lock guards it.
type quota struct {
	limit int64
	// day is the UTC day (days since the Unix epoch) that avail belongs to.
	day   int64
	avail int64
	// used is the fleet's total reserved today as of the last reservation.
	used int64
	// spentUntil is when a spent quota resumes (wall clock), zero if not
	// spent; retryAt (monotonic ns) is when to ask the counter again.
	spentUntil time.Time
	retryAt    int64
	// want asks the fleet's writer for a refill; busy is set during one.
	want, busy bool
}

func newQuota(limit int64) *quota { return &quota{limit: limit, day: math.MinInt64} }

// dayOf returns t's UTC day: days since the Unix epoch.
func dayOf(t time.Time) int64 { return t.Unix() / 86400 }

// dayStart returns when UTC day d starts.
func dayStart(d int64) time.Time { return time.Unix(d*86400, 0).UTC() }

// quotaSubject is the counter of provider's calls on UTC day d.
func quotaSubject(provider string, d int64) string {
	return fmt.Sprintf("%s.%s.%s", quotaPrefix, provider, dayStart(d).Format("20060102"))
}

// roll moves to day, dropping what was left of the day before.
func (q *quota) roll(day int64) {
	if day != q.day {
		q.day, q.avail, q.used, q.spentUntil, q.retryAt, q.want = day, 0, 0, time.Time{}, 0, true
	}
}

// available returns the tokens this replica holds for today and the day
// they belong to; when none, retry is when (monotonic ns) to look again.
// It asks for a refill when the tokens run low.
func (q *quota) available(wall time.Time, now int64, notify func()) (avail, day, retry int64) {
	q.roll(dayOf(wall))
	if q.avail > 0 {
		return q.avail, q.day, 0
	}
	if !q.spentUntil.IsZero() {
		if now < q.retryAt {
			return 0, q.day, min(q.retryAt, now+int64(q.spentUntil.Sub(wall)))
		}
		q.want = true
	}
	if q.want && !q.busy && notify != nil {
		notify()
	}
	return 0, q.day, now + int64(time.Second)
}

// take uses n tokens and asks for a refill below half a chunk.
func (q *quota) take(n, chunk int64, notify func()) {
	q.avail -= n
	if q.avail < chunk/2+1 && q.spentUntil.IsZero() && !q.busy && !q.want {
		q.want = true
		if notify != nil {
			notify()
		}
	}
}

// giveBack returns n tokens of day; tokens of a day that is over are
// dropped (they stay counted in that day's total). It reports whether
// tokens became available where there were none.
func (q *quota) giveBack(day, n int64) bool {
	if day != q.day || n <= 0 {
		return false
	}
	q.avail += n
	return q.avail == n
}

// quotaChunkLocked is how many tokens to reserve at once: about two
// seconds' worth at the rate in force (or at the measured rate, at least
// 100, when none), never more than a tenth of the quota's share of this
// replica, so that what replicas hold unused stays small.
func (l *Limiter) quotaChunkLocked() int64 {
	c := max(100, int64(l.measured))
	if l.b.limited() {
		c = int64(math.Ceil(2 * l.rate))
	}
	c = min(c, l.q.limit/int64(10*max(1, l.members)))
	return max(1, c)
}

// wantsQuota reports whether a refill is due.
func (l *Limiter) wantsQuota() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.q != nil && l.q.want && !l.q.busy
}

// refillQuota reserves a chunk of today's quota from the fleet's counter:
// one increment, returning the new total. What the increment took beyond
// the quota is undone at once, so the total only overshoots the quota
// between an increment and its undo, and no replica is ever granted more
// than the quota left.
func (l *Limiter) refillQuota(ctx context.Context, c counter) error {
	l.mu.Lock()
	q := l.q
	if q == nil || !q.want || q.busy {
		l.mu.Unlock()
		return nil
	}
	day := dayOf(time.Now())
	q.roll(day)
	q.want, q.busy = false, true
	chunk := l.quotaChunkLocked()
	l.mu.Unlock()

	subject := quotaSubject(l.name, day)
	total, err := c.add(ctx, subject, chunk)
	var granted int64
	var undoErr error
	if err == nil {
		granted = min(max(q.limit-(total-chunk), 0), chunk)
		if excess := chunk - granted; excess > 0 {
			_, undoErr = c.add(ctx, subject, -excess)
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	q.busy = false
	now, wall := l.mono(), time.Now()
	if err != nil {
		q.want, q.retryAt = true, now+int64(time.Second)
		return fmt.Errorf("reserve daily quota of %s: %w", l.name, err)
	}
	if q.day == day {
		q.avail += granted
		q.used = min(total, q.limit)
		if granted == 0 {
			q.spentUntil = dayStart(day + 1)
			q.retryAt = now + int64(min(quotaRecheck, q.spentUntil.Sub(wall)))
		} else {
			q.spentUntil = time.Time{}
		}
	}
	l.broadcastLocked()
	if undoErr != nil {
		return fmt.Errorf("hand back %s's quota reserved past the limit (the day's count stays high by it): %w", l.name, undoErr)
	}
	return nil
}

// returnQuota hands back the tokens of today this replica holds unused, so
// other replicas can use them: called at Stop.
func (l *Limiter) returnQuota(ctx context.Context, c counter) error {
	l.mu.Lock()
	q := l.q
	if q == nil || q.avail <= 0 || q.day != dayOf(time.Now()) {
		l.mu.Unlock()
		return nil
	}
	n, day := q.avail, q.day
	q.avail = 0
	l.mu.Unlock()
	_, err := c.add(ctx, quotaSubject(l.name, day), -n)
	return err
}
