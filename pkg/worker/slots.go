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
type slots struct {
	mu      sync.Mutex
	size    int
	bulkMax int
	live    int
	bulk    int
	freed   chan struct{} // closed and replaced on every release
}

func newSlots(size, reserve int) *slots {
	return &slots{size: size, bulkMax: size - reserve, freed: make(chan struct{})}
}

// acquire waits until at least one slot is free for lane and takes up to
// want of them.
func (s *slots) acquire(ctx context.Context, lane job.Lane, want int) (int, error) {
	for {
		s.mu.Lock()
		n := min(want, s.size-s.live-s.bulk)
		if lane == job.LaneBulk {
			n = min(n, s.bulkMax-s.bulk)
		}
		if n > 0 {
			if lane == job.LaneBulk {
				s.bulk += n
			} else {
				s.live += n
			}
			s.mu.Unlock()
			return n, nil
		}
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (s *slots) release(lane job.Lane, n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	if lane == job.LaneBulk {
		s.bulk -= n
	} else {
		s.live -= n
	}
	close(s.freed)
	s.freed = make(chan struct{})
	s.mu.Unlock()
}

// inUse returns the slots taken by each lane.
func (s *slots) inUse() (live, bulk int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live, s.bulk
}
