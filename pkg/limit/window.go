package limit

import (
	"sync"
	"time"
)

// windowSlots is how many buckets a sliding window has: it forgets its
// oldest tenth at a time.
const windowSlots = 10

// window counts calls that succeeded, failed and were retried over a
// sliding window, in windowSlots buckets. One short lock per event: it is
// only on the path of a finished call, never of one waiting to start.
type window struct {
	width int64 // ns per bucket
	span  time.Duration

	mu    sync.Mutex
	slots [windowSlots]counts
}

type counts struct {
	at               int64 // bucket number; the counts are stale when it differs
	ok, fail, retrys int64
}

func newWindow(span time.Duration) *window {
	return &window{width: max(1, int64(span)/windowSlots), span: span}
}

// slotLocked returns the bucket of now, emptied if it held an older one.
func (w *window) slotLocked(now int64) *counts {
	n := now / w.width
	c := &w.slots[n%windowSlots]
	if c.at != n {
		*c = counts{at: n}
	}
	return c
}

func (w *window) sumLocked(now int64) (s counts) {
	n := now / w.width
	for _, c := range w.slots {
		if c.at > n-windowSlots && c.at <= n {
			s.ok, s.fail, s.retrys = s.ok+c.ok, s.fail+c.fail, s.retrys+c.retrys
		}
	}
	return s
}

// add counts one finished call and returns the window's sums.
func (w *window) add(now int64, ok bool) counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.slotLocked(now)
	if ok {
		c.ok++
	} else {
		c.fail++
	}
	return w.sumLocked(now)
}

func (w *window) sum(now int64) counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sumLocked(now)
}

func (w *window) reset() {
	w.mu.Lock()
	w.slots = [windowSlots]counts{}
	w.mu.Unlock()
}
