package worker

import (
	"sync/atomic"
	"testing"
	"time"
)

// Runners reuse idle goroutines, Wait covers every job, and Close lets the
// idle ones go while later jobs still run.
func TestRunners(t *testing.T) {
	r := newRunners()
	var ran atomic.Int64
	release := make(chan struct{})
	for range 100 {
		r.Go(func() { <-release; ran.Add(1) })
	}
	close(release)
	r.Wait()
	if got := ran.Load(); got != 100 {
		t.Fatalf("%d jobs ran, want 100", got)
	}
	// One job at a time, each after the last finished: an idle runner
	// takes each, so they all run, in turn, and Wait sees each.
	for range 1000 {
		r.Go(func() { ran.Add(1) })
		r.Wait()
	}
	if got := ran.Load(); got != 1100 {
		t.Fatalf("%d jobs ran, want 1100", got)
	}
	r.Close()
	r.Close() // idempotent
	done := make(chan struct{})
	r.Go(func() { close(done) })
	<-done
	r.Wait()
}

// awaitAlive waits until r has n runner goroutines.
func awaitAlive(t *testing.T, r *runners, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.alive.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d runners alive after 10s, want %d", r.alive.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Jobs one after another run on one goroutine; jobs at once on as many.
func TestRunnersReuseIdleGoroutines(t *testing.T) {
	r := newRunners()
	defer r.Close()
	for range 1000 {
		r.Go(func() {})
		r.Wait()
	}
	if n := r.alive.Load(); n != 1 {
		t.Fatalf("%d runners for 1,000 jobs in turn, want 1", n)
	}
	release := make(chan struct{})
	for range 50 {
		r.Go(func() { <-release })
	}
	close(release)
	r.Wait()
	if n := r.alive.Load(); n != 50 {
		t.Fatalf("%d runners after 50 jobs at once, want 50", n)
	}
	for range 50 {
		r.Go(func() {})
	}
	r.Wait()
	if n := r.alive.Load(); n != 50 {
		t.Fatalf("%d runners after 50 more jobs, want the same 50", n)
	}
}

// Idle runners exit after idleFor, the ones parked longest first, and a
// job after that starts a new one.
func TestRunnersIdleOnesExit(t *testing.T) {
	r := newRunners()
	r.idleFor = 50 * time.Millisecond
	defer r.Close()
	release := make(chan struct{})
	for range 10 {
		r.Go(func() { <-release })
	}
	close(release)
	r.Wait()
	awaitAlive(t, r, 0)
	var ran atomic.Bool
	r.Go(func() { ran.Store(true) })
	r.Wait()
	if !ran.Load() || r.alive.Load() != 1 {
		t.Fatalf("after the idle ones exited: ran %v, %d alive", ran.Load(), r.alive.Load())
	}
}

func TestRunnersCloseEndsIdleOnes(t *testing.T) {
	r := newRunners()
	release := make(chan struct{})
	for range 20 {
		r.Go(func() { <-release })
	}
	close(release)
	r.Wait()
	r.Close()
	awaitAlive(t, r, 0)
}
