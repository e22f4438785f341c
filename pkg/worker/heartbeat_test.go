package worker

import (
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
	h.mu.Lock()
	left := len(h.due)
	h.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d entries left after every call ended", left)
	}
}

// BenchmarkHeartbeatTrack is the cost a call pays for being kept alive,
// with 10,000 others in flight.
func BenchmarkHeartbeatTrack(b *testing.B) {
	h := newHeartbeats()
	for range 10000 {
		h.track(&countBeats{}, time.Minute)
	}
	c := &countBeats{}
	b.ResetTimer()
	for b.Loop() {
		h.untrack(h.track(c, time.Minute))
	}
}
