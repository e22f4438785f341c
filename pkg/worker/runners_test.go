package worker

import (
	"sync/atomic"
	"testing"
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
