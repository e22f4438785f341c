package worker

import (
	"context"
	"sync"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// slots bounds one provider's calls in flight in this replica. Both lanes
// draw from the same pool, but bulk may never hold the last `reserve` slots,
// so a bulk backlog cannot keep a live job waiting for longer than the call
// that frees a slot.
//
// Freed slots go to waiters first, in arrival order (skipping a waiter whose
// lane is at its share), so a loop that releases and re-acquires at once
// cannot starve the other lane.
type slots struct {
	mu      sync.Mutex
	size    int
	bulkMax int
	live    int
	bulk    int
	waiters []*slotWaiter
}

type slotWaiter struct {
	lane  job.Lane
	want  int
	ready chan int // receives the slots granted; buffered
}

func newSlots(size, reserve int) *slots {
	return &slots{size: size, bulkMax: size - reserve}
}

// acquire waits until at least one slot is free for lane and takes up to
// want of them.
func (s *slots) acquire(ctx context.Context, lane job.Lane, want int) (int, error) {
	s.mu.Lock()
	if len(s.waiters) == 0 {
		if n := s.take(lane, want); n > 0 {
			s.mu.Unlock()
			return n, nil
		}
	}
	w := &slotWaiter{lane: lane, want: want, ready: make(chan int, 1)}
	s.waiters = append(s.waiters, w)
	s.grant()
	s.mu.Unlock()

	select {
	case n := <-w.ready:
		return n, nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, q := range s.waiters {
			if q == w {
				s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
				return 0, ctx.Err()
			}
		}
		// Granted just as ctx ended: give the slots back.
		s.give(lane, <-w.ready)
		s.grant()
		return 0, ctx.Err()
	}
}

func (s *slots) release(lane job.Lane, n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.give(lane, n)
	s.grant()
	s.mu.Unlock()
}

// take takes up to want slots for lane, as many as are free to it.
func (s *slots) take(lane job.Lane, want int) int {
	n := min(want, s.size-s.live-s.bulk)
	if lane == job.LaneBulk {
		n = min(n, s.bulkMax-s.bulk)
		s.bulk += max(n, 0)
	} else {
		s.live += max(n, 0)
	}
	return max(n, 0)
}

func (s *slots) give(lane job.Lane, n int) {
	if lane == job.LaneBulk {
		s.bulk -= n
	} else {
		s.live -= n
	}
}

// grant hands free slots to waiters in arrival order.
func (s *slots) grant() {
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if n := s.take(w.lane, w.want); n > 0 {
			w.ready <- n
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.waiters[len(kept):])
	s.waiters = kept
}

// resize changes the pool to size slots, reserve of them for live. Calls
// holding slots beyond the new size keep them until they end; no new ones
// start meanwhile.
func (s *slots) resize(size, reserve int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.size, s.bulkMax = size, size-reserve
	s.grant()
}

// reserve returns how many slots only live may use.
func (s *slots) reserve() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size - s.bulkMax
}

// contended reports whether anyone is waiting for a slot.
func (s *slots) contended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters) > 0
}
