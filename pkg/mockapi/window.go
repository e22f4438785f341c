package mockapi

import (
	"sync"
	"sync/atomic"
	"time"
)

const (
	// windowTick is the resolution of the per-second maxima.
	windowTick = 10 * time.Millisecond
	// windowTicks is how many ticks make the one-second window.
	windowTicks = int64(time.Second / windowTick)
)

// window finds the most requests received, and admitted, in any one-second
// sliding window, to 10 ms: a ring of 100 buckets with running sums, the
// maxima raised on each request. That is what rate-limit tests compare with
// the limit, and a mean over the run would hide a burst.
//
// One short critical section per request keeps the sums exact; a lock-free
// ring would have to let a slow request count into a bucket another one is
// already reusing for a later tick.
type window struct {
	mu sync.Mutex
	// last is the newest tick counted; buckets hold ticks
	// (last-windowTicks, last].
	last               int64
	received, admitted [windowTicks]int64
	// sumReceived and sumAdmitted are the sums of the buckets.
	sumReceived, sumAdmitted int64
	maxReceived, maxAdmitted int64
}

// add counts a request that arrived at now, in nanoseconds on the server's
// monotonic clock; admitted says whether the rate limit let it through.
func (w *window) add(now int64, admitted bool) {
	tick := now / int64(windowTick)
	w.mu.Lock()
	defer w.mu.Unlock()
	if tick > w.last {
		// Empty the buckets of the ticks that left the window. After a
		// quiet second or more that is all of them.
		for t := w.last + 1; t <= min(tick, w.last+windowTicks); t++ {
			i := t % windowTicks
			w.sumReceived -= w.received[i]
			w.sumAdmitted -= w.admitted[i]
			w.received[i], w.admitted[i] = 0, 0
		}
		w.last = tick
	} else if tick <= w.last-windowTicks {
		// This request read the clock over a second before another that
		// took the lock first: its bucket is gone, so count it as the
		// newest. Only a goroutine stalled for a second gets here.
		tick = w.last
	}
	i := tick % windowTicks
	w.received[i]++
	w.sumReceived++
	w.maxReceived = max(w.maxReceived, w.sumReceived)
	if admitted {
		w.admitted[i]++
		w.sumAdmitted++
		w.maxAdmitted = max(w.maxAdmitted, w.sumAdmitted)
	}
}

// maxima returns the most requests received and admitted in one second.
func (w *window) maxima() (received, admitted int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxReceived, w.maxAdmitted
}

// reset forgets every count.
func (w *window) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.received, w.admitted = [windowTicks]int64{}, [windowTicks]int64{}
	w.sumReceived, w.sumAdmitted, w.maxReceived, w.maxAdmitted = 0, 0, 0, 0
}

// meter is what a provider measures and the total over several providers
// measures again rather than sums: requests at once, and per second.
type meter struct {
	inFlight atomic.Int64
	peak     atomic.Int64
	win      window
}

// enter counts a request in flight and raises the peak.
func (m *meter) enter() {
	n := m.inFlight.Add(1)
	for {
		p := m.peak.Load()
		if n <= p || m.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (m *meter) leave() { m.inFlight.Add(-1) }

// reset zeroes the maxima; requests in flight stay counted, and the peak
// restarts from them.
func (m *meter) reset() {
	m.win.reset()
	m.peak.Store(m.inFlight.Load())
}
