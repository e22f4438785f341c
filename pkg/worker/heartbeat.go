package worker

import (
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
// One goroutine serves every job of the worker. Jobs that share an AckWait
// wait in one queue, in the order they began, which is also the order
// their heartbeats fall due; so tracking and untracking a call are O(1)
// list operations, where a heap ordered by due time cost O(log n) cache
// misses per call at 10,000 in flight. Most calls end long before their
// first heartbeat and only go in and out of their queue.
type heartbeats struct {
	mu     sync.Mutex
	queues map[time.Duration]*beatQueue // by the interval of their beats
	wake   chan struct{}                // a queue that was empty has a beat
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// beat is one job whose message is kept alive.
type beat struct {
	msg        inProgresser
	at         time.Time  // the next heartbeat is due
	q          *beatQueue // nil once untracked
	prev, next *beat
}

// beatQueue is a list of beats with the same interval, earliest due first:
// a beat goes in at the back, due one interval from now, so the list stays
// sorted by due time.
type beatQueue struct {
	every      time.Duration
	head, tail *beat
}

func (q *beatQueue) push(b *beat) {
	b.q, b.prev, b.next = q, q.tail, nil
	if q.tail != nil {
		q.tail.next = b
	} else {
		q.head = b
	}
	q.tail = b
}

func (q *beatQueue) remove(b *beat) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		q.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		q.tail = b.prev
	}
	b.q, b.prev, b.next = nil, nil, nil
}

func newHeartbeats() *heartbeats {
	return &heartbeats{queues: map[time.Duration]*beatQueue{}, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
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
	every := max(ackWait/2, 10*time.Millisecond)
	b := &beat{msg: msg}
	h.mu.Lock()
	q := h.queues[every]
	if q == nil {
		q = &beatQueue{every: every}
		h.queues[every] = q
	}
	// Read under the lock, so that beats enter their queue in the order of
	// their due times.
	b.at = time.Now().Add(every)
	first := q.head == nil
	q.push(b)
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
	if b.q != nil {
		b.q.remove(b)
	}
	h.mu.Unlock()
}

func (h *heartbeats) run() {
	defer close(h.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var send []inProgresser
	for {
		send = send[:0]
		h.mu.Lock()
		now := time.Now()
		next := now.Add(time.Hour)
		for _, q := range h.queues {
			for b := q.head; b != nil && !b.at.After(now); b = q.head {
				send = append(send, b.msg)
				q.remove(b)
				b.at = now.Add(q.every)
				q.push(b)
			}
			if q.head != nil && q.head.at.Before(next) {
				next = q.head.at
			}
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

// ackWaitOf is the AckWait of a provider's work consumers: its ack_wait,
// else one sized from its timeout.
func ackWaitOf(pc provider.Config) time.Duration {
	if pc.AckWait > 0 {
		return pc.AckWait
	}
	return natsx.AckWaitFor(pc.Timeout)
}
