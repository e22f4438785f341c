package provider_test

import (
	"math"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/provider"
)

// ceiling is the documented upper bound of Backoff: min(cap, base·2^(attempt-1)).
func ceiling(attempt int, base, cap time.Duration) time.Duration {
	c := base
	for i := 1; i < attempt && c < cap; i++ {
		c *= 2
	}
	return min(c, cap)
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		base, cap time.Duration
	}{
		{name: "defaults", base: time.Second, cap: 5 * time.Minute},
		{name: "small cap", base: 100 * time.Millisecond, cap: 300 * time.Millisecond},
		{name: "base equals cap", base: time.Second, cap: time.Second},
		{name: "nanoseconds", base: 1, cap: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for attempt := 1; attempt <= 10; attempt++ {
				limit := ceiling(attempt, tt.base, tt.cap)
				if want := min(tt.cap, tt.base*time.Duration(1<<(attempt-1))); limit != want {
					t.Fatalf("test helper: ceiling(%d) = %s, want %s", attempt, limit, want)
				}
				for range 200 {
					if d := provider.Backoff(attempt, tt.base, tt.cap); d < 0 || d > limit {
						t.Fatalf("Backoff(%d, %s, %s) = %s, want in [0, %s]", attempt, tt.base, tt.cap, d, limit)
					}
				}
			}
		})
	}
}

func TestBackoffJitter(t *testing.T) {
	t.Parallel()
	const attempt, base, cap = 5, time.Second, 5 * time.Minute
	limit := ceiling(attempt, base, cap) // 16s
	first := provider.Backoff(attempt, base, cap)
	allEqual, highest := true, first
	for range 1000 {
		d := provider.Backoff(attempt, base, cap)
		allEqual = allEqual && d == first
		highest = max(highest, d)
	}
	if allEqual {
		t.Errorf("1000 draws all returned %s: no jitter", first)
	}
	// With full jitter the chance that 1000 draws all fall in the lower
	// half is 2^-1000.
	if highest <= limit/2 {
		t.Errorf("highest of 1000 draws = %s, want above half the ceiling %s", highest, limit)
	}
}

func TestBackoffExtremes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		attempts  []int
		base, cap time.Duration
	}{
		{name: "huge attempt", attempts: []int{64, 100, 1000, math.MaxInt}, base: time.Second, cap: 5 * time.Minute},
		{name: "zero and negative attempts", attempts: []int{0, -1, math.MinInt}, base: time.Second, cap: 5 * time.Minute},
		{name: "base above cap", attempts: []int{1, 2, 50}, base: time.Hour, cap: time.Minute},
		// Regression: doubling overflowed past a cap this large, and a
		// ceiling of MaxInt64 made rand.N panic.
		{name: "maximal cap", attempts: []int{1, 2, 40, 63, 64, 100, 1000}, base: time.Second, cap: math.MaxInt64},
		{name: "maximal base and cap", attempts: []int{1, 2, 1000}, base: math.MaxInt64, cap: math.MaxInt64},
		{name: "zero base", attempts: []int{1, 1000}, base: 0, cap: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, attempt := range tt.attempts {
				limit := tt.cap
				if attempt <= 1 {
					limit = min(tt.base, tt.cap)
				}
				for range 100 {
					if d := provider.Backoff(attempt, tt.base, tt.cap); d < 0 || d > limit {
						t.Fatalf("Backoff(%d, %s, %s) = %s, want in [0, %s]", attempt, tt.base, tt.cap, d, limit)
					}
				}
			}
		})
	}
	t.Run("huge attempt reaches the cap", func(t *testing.T) {
		t.Parallel()
		// The ceiling is the cap, so 100 draws all in its lower half has a
		// chance of 2^-100; a ceiling collapsed by overflow would fail.
		for _, cap := range []time.Duration{5 * time.Minute, math.MaxInt64} {
			highest := time.Duration(0)
			for range 100 {
				highest = max(highest, provider.Backoff(1000, time.Second, cap))
			}
			if highest <= cap/2 {
				t.Errorf("cap %s: highest of 100 draws at attempt 1000 = %s, want above half the cap", cap, highest)
			}
		}
	})
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	p := newProvider(t, provider.Config{BaseURL: "https://api.test", BackoffBase: 10 * time.Millisecond, BackoffCap: 40 * time.Millisecond})
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		wantMin    time.Duration
		wantMax    time.Duration
	}{
		{name: "no Retry-After", attempt: 1, wantMin: 0, wantMax: 10 * time.Millisecond},
		{name: "no Retry-After capped", attempt: 10, wantMin: 0, wantMax: 40 * time.Millisecond},
		{name: "Retry-After longer than backoff", attempt: 1, retryAfter: 3 * time.Second, wantMin: 3 * time.Second, wantMax: 3 * time.Second},
		{name: "Retry-After above the cap wins", attempt: 10, retryAfter: time.Hour, wantMin: time.Hour, wantMax: time.Hour},
		{name: "absurd Retry-After is bounded", attempt: 1, retryAfter: 300 * 24 * time.Hour, wantMin: provider.MaxRetryAfter, wantMax: provider.MaxRetryAfter},
		{name: "short Retry-After", attempt: 3, retryAfter: 5 * time.Millisecond, wantMin: 5 * time.Millisecond, wantMax: 40 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for range 200 {
				if d := p.RetryDelay(tt.attempt, tt.retryAfter); d < tt.wantMin || d > tt.wantMax {
					t.Fatalf("RetryDelay(%d, %s) = %s, want in [%s, %s]", tt.attempt, tt.retryAfter, d, tt.wantMin, tt.wantMax)
				}
			}
		})
	}
}
