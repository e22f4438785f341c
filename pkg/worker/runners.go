package worker

import (
	"sync"
	"sync/atomic"
	"time"
)

// runnerIdle is how long a runner goroutine waits for its next job before
// it exits.
const runnerIdle = 5 * time.Second

// runners runs each job on a goroutine kept from an earlier job when one is
// idle, rather than on a new one. A new goroutine starts on a small stack
// that a job's call path grows (and copies) two or three times; at
// thousands of jobs a second that was a few percent of the worker's CPU.
//
// Idle runners wait in a stack, each on a channel of its own, and the most
// recently parked takes the next job, its stack still warm. A runner idle
// for idleFor exits, so a quiet worker holds none; one timer for all of
// them ends those, where a timer per runner, reset after every job and
// selected on with the job channel, cost about 4 % of the worker's CPU.
type runners struct {
	wg      sync.WaitGroup // jobs running
	idleFor time.Duration
	alive   atomic.Int64 // runner goroutines, for tests

	mu      sync.Mutex
	idle    []*runner // parked, the longest parked first
	reaping bool      // a reap is scheduled
	closed  bool
}

// runner is one parked goroutine. Go hands it a job on work, which has
// room for one so the handover never waits; a closed work ends it.
type runner struct {
	work  chan func()
	since time.Time // parked since
}

func newRunners() *runners { return &runners{idleFor: runnerIdle} }

// Go runs f on an idle runner, or on a new one.
func (r *runners) Go(f func()) {
	r.wg.Add(1)
	r.mu.Lock()
	if n := len(r.idle); n > 0 {
		x := r.idle[n-1]
		r.idle[n-1] = nil
		r.idle = r.idle[:n-1]
		r.mu.Unlock()
		x.work <- f
		return
	}
	r.mu.Unlock()
	r.alive.Add(1)
	go r.loop(&runner{work: make(chan func(), 1)}, f)
}

func (r *runners) loop(x *runner, f func()) {
	defer r.alive.Add(-1)
	for {
		f()
		// Parked before the job counts as done, so that a Go after Wait
		// finds this runner idle.
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			r.wg.Done()
			return
		}
		x.since = time.Now()
		r.idle = append(r.idle, x)
		if !r.reaping {
			r.reaping = true
			time.AfterFunc(r.idleFor, r.reap)
		}
		r.mu.Unlock()
		r.wg.Done()
		var ok bool
		if f, ok = <-x.work; !ok {
			return
		}
	}
}

// reap ends the runners parked for idleFor or longer, and schedules itself
// again while any are parked.
func (r *runners) reap() {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	k := 0
	for k < len(r.idle) && now.Sub(r.idle[k].since) >= r.idleFor {
		close(r.idle[k].work)
		k++
	}
	n := copy(r.idle, r.idle[k:])
	clear(r.idle[n:])
	r.idle = r.idle[:n]
	r.reaping = n > 0 && !r.closed
	if r.reaping {
		time.AfterFunc(r.idleFor-now.Sub(r.idle[0].since), r.reap)
	}
}

// Wait waits for every job to finish.
func (r *runners) Wait() { r.wg.Wait() }

// Close lets the idle runners exit now. Go may still be called after it; the
// jobs then run on new goroutines that exit after them.
func (r *runners) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, x := range r.idle {
		close(x.work)
	}
	r.idle = nil
}
