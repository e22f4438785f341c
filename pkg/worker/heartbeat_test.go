package worker

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

type countBeats struct{ n atomic.Int64 }

func (c *countBeats) InProgress() error { c.n.Add(1); return nil }

func TestHeartbeatsOnlyForLongCalls(t *testing.T) {
	h := newHeartbeats()
	h.start()
	defer h.stop()

	// 10,000 short calls in flight at once, ended before their first beat.
	short := make([]*countBeats, 10000)
	beats := make([]*beat, len(short))
	for i := range short {
		short[i] = &countBeats{}
		beats[i] = h.track(short[i], time.Minute)
	}
	long := &countBeats{}
	lb := h.track(long, 40*time.Millisecond)
	for _, b := range beats {
		h.untrack(b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for long.n.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("long call got %d heartbeats in 5s, want 3 (one every 20ms)", long.n.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.untrack(lb)
	h.untrack(lb) // twice is harmless
	for i, c := range short {
		if c.n.Load() != 0 {
			t.Fatalf("short call %d got %d heartbeats", i, c.n.Load())
		}
	}
	if left := h.tracked(); left != 0 {
		t.Fatalf("%d entries left after every call ended", left)
	}
}

// tracked counts the beats in every queue, walking each list both ways so
// that a broken link shows as a count that differs.
func (h *heartbeats) tracked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, q := range h.queues {
		fwd, back := 0, 0
		for b := q.head; b != nil; b = b.next {
			fwd++
		}
		for b := q.tail; b != nil; b = b.prev {
			back++
		}
		if fwd != back {
			return -1
		}
		n += fwd
	}
	return n
}

// Beats of different intervals are served from their own queues, each in
// due order, and untracking from the middle, the front and the back of a
// queue leaves the others beating.
func TestHeartbeatsQueues(t *testing.T) {
	h := newHeartbeats()
	h.start()
	defer h.stop()

	a, b, c := &countBeats{}, &countBeats{}, &countBeats{}
	slow := &countBeats{}
	ba := h.track(a, 40*time.Millisecond)
	bb := h.track(b, 40*time.Millisecond)
	bc := h.track(c, 40*time.Millisecond)
	bs := h.track(slow, 200*time.Millisecond)
	h.untrack(bb) // the middle of its queue
	if n := h.tracked(); n != 3 {
		t.Fatalf("tracked %d, want 3", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.n.Load() < 3 || c.n.Load() < 3 || slow.n.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("in 5s: a %d, c %d heartbeats (want 3 each), slow %d (want 1)", a.n.Load(), c.n.Load(), slow.n.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b.n.Load() != 0 {
		t.Fatalf("untracked call got %d heartbeats", b.n.Load())
	}
	h.untrack(ba) // whichever end of the queue it is at now
	h.untrack(bc)
	h.untrack(bs)
	if n := h.tracked(); n != 0 {
		t.Fatalf("tracked %d after every call ended, want 0", n)
	}
	// A queue that emptied takes beats again.
	d := &countBeats{}
	bd := h.track(d, 40*time.Millisecond)
	defer h.untrack(bd)
	for d.n.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat for a call tracked after its queue emptied")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkHeartbeatTrack is the cost a call pays for being kept alive,
// with 10,000 others in flight that end in another order than they began,
// as calls of 500–800 ms do.
func BenchmarkHeartbeatTrack(b *testing.B) {
	h := newHeartbeats()
	c := &countBeats{}
	inFlight := make([]*beat, 10000)
	for i := range inFlight {
		inFlight[i] = h.track(c, time.Minute)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		i := r.IntN(len(inFlight))
		h.untrack(inFlight[i])
		inFlight[i] = h.track(c, time.Minute)
	}
}
