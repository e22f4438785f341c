package worker

import (
	"sync"
	"time"
)

// runnerIdle is how long a runner goroutine waits for its next job before
// it exits.
const runnerIdle = 5 * time.Second

// runners runs each job on a goroutine kept from an earlier job when one is
// idle, rather than on a new one. A new goroutine starts on a small stack
// that a job's call path grows (and copies) two or three times; at
// thousands of jobs a second that was a few percent of the worker's CPU.
// A runner idle for runnerIdle exits, so a quiet worker holds none.
type runners struct {
	wg   sync.WaitGroup // jobs running
	work chan func()    // unbuffered: a send succeeds only into an idle runner
	quit chan struct{}
	once sync.Once
}

func newRunners() *runners {
	return &runners{work: make(chan func()), quit: make(chan struct{})}
}

// Go runs f on an idle runner, or on a new one.
func (r *runners) Go(f func()) {
	r.wg.Add(1)
	select {
	case r.work <- f:
	default:
		go r.loop(f)
	}
}

func (r *runners) loop(f func()) {
	idle := time.NewTimer(runnerIdle)
	defer idle.Stop()
	for {
		f()
		r.wg.Done()
		idle.Reset(runnerIdle)
		select {
		case f = <-r.work:
		case <-idle.C:
			return
		case <-r.quit:
			return
		}
	}
}

// Wait waits for every job to finish.
func (r *runners) Wait() { r.wg.Wait() }

// Close lets the idle runners exit now. Go may still be called after it; the
// jobs then run on new goroutines that exit after them.
func (r *runners) Close() { r.once.Do(func() { close(r.quit) }) }
