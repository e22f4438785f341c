package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

func TestSlotsKeepTheLiveReserve(t *testing.T) {
	ctx := context.Background()
	s := newSlots(10, 2)

	if n, _ := s.acquire(ctx, job.LaneBulk, 100); n != 8 {
		t.Fatalf("bulk took %d slots, want 8 (10 less the live reserve of 2)", n)
	}
	// Bulk is at its share: a further acquire waits even though 2 are free.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.acquire(short, job.LaneBulk, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("bulk past its share: err = %v, want to wait", err)
	}
	if n, _ := s.acquire(ctx, job.LaneLive, 100); n != 2 {
		t.Fatalf("live took %d slots, want the 2 reserved", n)
	}

	// A release wakes a waiter.
	got := make(chan int)
	go func() {
		n, _ := s.acquire(ctx, job.LaneLive, 5)
		got <- n
	}()
	s.release(job.LaneBulk, 3)
	if n := <-got; n != 3 {
		t.Fatalf("live woke with %d slots, want the 3 released", n)
	}
	if live, bulk := s.inUse(); live != 5 || bulk != 5 {
		t.Fatalf("in use: live %d bulk %d, want 5 and 5", live, bulk)
	}
}

func TestSlotsLiveMayUseEverySlot(t *testing.T) {
	s := newSlots(4, 1)
	if n, _ := s.acquire(context.Background(), job.LaneLive, 10); n != 4 {
		t.Fatalf("live took %d, want all 4", n)
	}
}

// TestSlotsAreFair: with one slot, a lane that releases and re-acquires at
// once must not starve a lane already waiting.
func TestSlotsAreFair(t *testing.T) {
	ctx := context.Background()
	s := newSlots(1, 0)
	if n, _ := s.acquire(ctx, job.LaneLive, 1); n != 1 {
		t.Fatal("live did not get the slot")
	}
	bulkGot := make(chan int)
	go func() {
		n, _ := s.acquire(ctx, job.LaneBulk, 1)
		bulkGot <- n
	}()
	// Wait until bulk is queued.
	for {
		s.mu.Lock()
		queued := len(s.waiters)
		s.mu.Unlock()
		if queued == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	s.release(job.LaneLive, 1)
	liveAgain := make(chan int)
	go func() {
		n, _ := s.acquire(ctx, job.LaneLive, 1)
		liveAgain <- n
	}()
	if n := <-bulkGot; n != 1 {
		t.Fatalf("bulk got %d", n)
	}
	select {
	case <-liveAgain:
		t.Fatal("live took the slot that bulk holds")
	case <-time.After(20 * time.Millisecond):
	}
	s.release(job.LaneBulk, 1)
	if n := <-liveAgain; n != 1 {
		t.Fatalf("live got %d after bulk released", n)
	}
}

func TestSlotsCancelledWaiterLeavesNoTrace(t *testing.T) {
	s := newSlots(1, 0)
	_, _ = s.acquire(context.Background(), job.LaneLive, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := s.acquire(ctx, job.LaneBulk, 1)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	s.release(job.LaneLive, 1)
	if live, bulk := s.inUse(); live != 0 || bulk != 0 {
		t.Fatalf("in use after cancel: live %d bulk %d", live, bulk)
	}
}

// inUse returns the slots taken by each lane.
func (s *slots) inUse() (live, bulk int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live, s.bulk
}
