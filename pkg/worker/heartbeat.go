package worker

import (
	"container/heap"
	"sync"
	"time"

	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

// inProgresser is the part of a jetstream.Msg a heartbeat needs.
type inProgresser interface {
	InProgress() error
}

// heartbeats keeps the jobs being worked on from being delivered again
// while their calls run: each job that is still running half its AckWait
// after it started (or after its last heartbeat) gets an InProgress,
// which restarts the server's AckWait.
//
// One goroutine serves every job of the worker from a heap ordered by
// when each next needs a heartbeat, so 10,000 calls in flight cost 10,000
// heap entries, not 10,000 timers or goroutines; most calls end long
// before their first heartbeat and only go in and out of the heap.
type heartbeats struct {
	mu   sync.Mutex
	due  beatHeap
	wake chan struct{} // a new earliest entry
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// beat is one job whose message is kept alive.
type beat struct {
	msg   inProgresser
	every time.Duration
	at    time.Time
	index int // in the heap; -1 once removed
}

func newHeartbeats() *heartbeats {
	return &heartbeats{wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

// start runs the heartbeat loop until stop.
func (h *heartbeats) start() { go h.run() }

// stop ends the loop started by start and waits for it; later calls do
// nothing more.
func (h *heartbeats) stop() {
	h.once.Do(func() { close(h.quit) })
	<-h.done
}

// track keeps msg alive until untrack, with a heartbeat every half of
// ackWait.
func (h *heartbeats) track(msg inProgresser, ackWait time.Duration) *beat {
	b := &beat{msg: msg, every: max(ackWait/2, 10*time.Millisecond)}
	b.at = time.Now().Add(b.every)
	h.mu.Lock()
	heap.Push(&h.due, b)
	first := b.index == 0
	h.mu.Unlock()
	if first {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
	return b
}

// untrack stops the heartbeats of b; a nil b is ignored.
func (h *heartbeats) untrack(b *beat) {
	if b == nil {
		return
	}
	h.mu.Lock()
	if b.index >= 0 {
		heap.Remove(&h.due, b.index)
	}
	h.mu.Unlock()
}

func (h *heartbeats) run() {
	defer close(h.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var send []inProgresser
	for {
		now := time.Now()
		next := now.Add(time.Hour)
		send = send[:0]
		h.mu.Lock()
		for len(h.due) > 0 && !h.due[0].at.After(now) {
			b := h.due[0]
			send = append(send, b.msg)
			b.at = now.Add(b.every)
			heap.Fix(&h.due, 0)
		}
		if len(h.due) > 0 {
			next = h.due[0].at
		}
		h.mu.Unlock()
		// Outside the lock: each is a publish, which may wait on the
		// connection's buffer.
		for _, m := range send {
			_ = m.InProgress()
		}
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-h.wake:
		case <-h.quit:
			return
		}
	}
}

// beatHeap orders beats by when they are next due.
type beatHeap []*beat

func (q beatHeap) Len() int           { return len(q) }
func (q beatHeap) Less(i, k int) bool { return q[i].at.Before(q[k].at) }
func (q beatHeap) Swap(i, k int) {
	q[i], q[k] = q[k], q[i]
	q[i].index, q[k].index = i, k
}
func (q *beatHeap) Push(x any) {
	b := x.(*beat)
	b.index = len(*q)
	*q = append(*q, b)
}
func (q *beatHeap) Pop() any {
	old := *q
	b := old[len(old)-1]
	old[len(old)-1] = nil
	b.index = -1
	*q = old[:len(old)-1]
	return b
}

// ackWaitOf is the AckWait of a provider's work consumers: its ack_wait,
// else one sized from its timeout.
func ackWaitOf(pc provider.Config) time.Duration {
	if pc.AckWait > 0 {
		return pc.AckWait
	}
	return natsx.AckWaitFor(pc.Timeout)
}
