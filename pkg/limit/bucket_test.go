package limit

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestBucketNeverExceedsItsBound drives a bucket with random takes from
// both lanes at random times, some of them handed back (as Wait does when
// a pause or a stop comes first), and checks the bound the package doc
// states: in any window of length w, at most w/interval + burst starts.
func TestBucketNeverExceedsItsBound(t *testing.T) {
	t.Parallel()
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		rate := 1 + rng.Float64()*999
		burst := 1 + rng.IntN(20)
		headroom := rng.IntN(burst)
		var b bucket
		b.set(rate, burst, headroom)
		type held struct{ start, mark int64 }
		var starts []int64
		var pending []held
		now := int64(0)
		for range 3000 {
			now += int64(rng.ExpFloat64() * float64(b.interval) / 2)
			if rng.IntN(500) == 0 {
				now += int64(time.Second) // a quiet spell: the bucket fills
			}
			start, mark := b.take(now, rng.IntN(2))
			if start < now {
				t.Fatalf("seed %d: start %d before now %d", seed, start, now)
			}
			pending = append(pending, held{start, mark})
			// Settle some: most start, some go back, in any order.
			for len(pending) > 0 && rng.IntN(3) > 0 {
				i := rng.IntN(len(pending))
				h := pending[i]
				pending = slices.Delete(pending, i, i+1)
				if rng.IntN(8) == 0 {
					b.giveBack(h.mark)
				} else {
					starts = append(starts, h.start)
				}
			}
		}
		for _, h := range pending {
			starts = append(starts, h.start)
		}
		slices.Sort(starts)
		for _, w := range []int64{0, b.interval, 10 * b.interval, int64(time.Second)} {
			bound := int(w/b.interval) + burst
			for i, j := 0, 0; j < len(starts); j++ {
				for starts[j]-starts[i] > w {
					i++
				}
				if n := j - i + 1; n > bound {
					t.Fatalf("seed %d (rate %.1f burst %d headroom %d): %d starts within %s, bound %d",
						seed, rate, burst, headroom, n, time.Duration(w), bound)
				}
			}
		}
	}
}

func TestBucketPacesEvenly(t *testing.T) {
	t.Parallel()
	var b bucket
	b.set(100, 1, 0) // one call every 10 ms, no burst
	var prev int64 = -1
	for i := range 100 {
		start, _ := b.take(0, bulk) // a backlog: all asked for at once
		if prev >= 0 && start-prev != int64(10*time.Millisecond) {
			t.Fatalf("call %d starts %s after the one before, want 10ms", i, time.Duration(start-prev))
		}
		prev = start
	}
}

func TestBucketLiveFindsATokenWhileBulkSaturates(t *testing.T) {
	t.Parallel()
	var b bucket
	b.set(100, 10, 1)
	now := int64(0)
	// A bulk backlog takes every token as soon as it is due, for a while.
	for now < int64(time.Second) {
		for b.due(now, bulk) <= now {
			b.take(now, bulk)
		}
		now += int64(time.Millisecond)
	}
	if start, _ := b.take(now, live); start != now {
		t.Fatalf("live waits %s behind bulk, want no wait", time.Duration(start-now))
	}
}

func TestBucketAhead(t *testing.T) {
	t.Parallel()
	var b bucket
	b.set(100, 5, 1) // 10 ms a token; live tolerance 40 ms, bulk 30 ms
	tests := []struct {
		name      string
		lane      int
		promised  int
		wantN     int
		wantFirst int64
	}{
		// A full bucket: the burst now plus 50 ms more.
		{"live, full", live, 0, 5 + 5, 0},
		{"bulk leaves live its headroom", bulk, 0, 4 + 5, 0},
		{"bulk after promising its burst", bulk, 4, 5, int64(10 * time.Millisecond)},
		{"bulk after promising past the horizon", bulk, 10, 0, int64(70 * time.Millisecond)},
	}
	for _, tt := range tests {
		n, first := b.ahead(0, horizon, tt.lane, tt.promised)
		if n != tt.wantN || first != tt.wantFirst {
			t.Errorf("%s: ahead = %d, %s; want %d, %s", tt.name, n, time.Duration(first), tt.wantN, time.Duration(tt.wantFirst))
		}
	}
	var unlimited bucket
	if n, first := unlimited.ahead(7, horizon, bulk, 3); n < 1<<30 || first != 7 {
		t.Errorf("unlimited ahead = %d, %d", n, first)
	}
}
