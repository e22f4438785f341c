package limit

import (
	"math"
	"testing"
	"time"
)

func TestAdaptCutsOncePerRound(t *testing.T) {
	t.Parallel()
	a := newAdapt(10 * time.Second)
	sec := int64(time.Second)
	if !a.cut(5*sec, 4*sec, 100, 0) {
		t.Fatal("first 429 did not cut")
	}
	if a.cap != 70 {
		t.Fatalf("cap = %v after one cut from 100, want 70", a.cap)
	}
	// Calls started before the cut went at the old rate, and those just
	// after it met the provider's bucket still empty: their 429s say
	// nothing new.
	if a.cut(6*sec, 4*sec, 70, 0) || a.cap != 70 {
		t.Fatalf("a 429 of a call started before the cut cut again: cap %v", a.cap)
	}
	if a.cut(6*sec, 5*sec+int64(100*time.Millisecond), 70, 0) || a.cap != 70 {
		t.Fatalf("a 429 of a call started 100ms after the cut cut again: cap %v", a.cap)
	}
	if !a.cut(7*sec, 6*sec, 70, 0) || a.cap != 49 {
		t.Fatalf("cap = %v, want 49 after a second round", a.cap)
	}
}

func TestAdaptMeasuredRateBoundsTheCut(t *testing.T) {
	t.Parallel()
	a := newAdapt(10 * time.Second)
	// Allowed 1,000/s but only calling at 200/s: cut from what was sent.
	a.cut(1, 0, 1000, 200)
	if a.cap != 140 {
		t.Fatalf("cap = %v, want 140", a.cap)
	}
	// No rate configured and nothing measured yet: nothing to cut from.
	b := newAdapt(10 * time.Second)
	if b.cut(1, 0, math.Inf(1), 0) || b.active() {
		t.Fatalf("cut from nothing: cap %v", b.cap)
	}
}

func TestAdaptRecoversToTheCeilingInRecovery(t *testing.T) {
	t.Parallel()
	a := newAdapt(10 * time.Second)
	a.cut(0, 0, 100, 0)
	now := int64(0)
	step := int64(10 * time.Millisecond) // a success every 10 ms
	for a.active() {
		now += step
		a.raise(now, 100)
		if now > int64(20*time.Second) {
			t.Fatalf("still adapting after 20s: cap %v", a.cap)
		}
	}
	if got := time.Duration(now); got < 9*time.Second || got > 11*time.Second {
		t.Errorf("recovered in %s, want about the recovery time (10s)", got)
	}
}

func TestAdaptWithoutCeilingEndsAtTwiceTheCut(t *testing.T) {
	t.Parallel()
	a := newAdapt(time.Second)
	a.cut(0, 0, math.Inf(1), 50)
	now := int64(0)
	for a.active() && now < int64(time.Minute) {
		now += int64(time.Millisecond)
		a.raise(now, 0)
	}
	// Back from 35 to 50 in 1s, then past it at 15/s doubling every
	// second: 15+30 by 3s, 100 a little before.
	if got := time.Duration(now); got < 2500*time.Millisecond || got > 3*time.Second {
		t.Errorf("adaptation ended after %s, want about 2.9s", got)
	}
}

func TestAdaptIdleSpellCountsLittle(t *testing.T) {
	t.Parallel()
	a := newAdapt(time.Second)
	a.cut(0, 0, 100, 0)
	a.raise(int64(time.Hour), 100) // one success after an hour of nothing
	if a.cap > 70+30*0.25+1e-9 {
		t.Fatalf("cap = %v: an idle hour counted as more than 250ms of successes", a.cap)
	}
}

func TestAdaptRescale(t *testing.T) {
	t.Parallel()
	a := newAdapt(time.Second)
	a.cut(0, 0, 100, 0)
	a.rescale(2.0 / 4) // two members become four: each takes half
	if a.cap != 35 {
		t.Fatalf("cap = %v, want 35", a.cap)
	}
	var idle adapt = newAdapt(time.Second)
	idle.rescale(0.5)
	if idle.active() {
		t.Fatal("rescale started adapting")
	}
}
