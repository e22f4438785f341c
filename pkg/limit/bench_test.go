package limit

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// The per-call cost of the limits, as a worker pays it: one Admit per
// fetch (here per call, the worst case), one Wait and one Observe per
// call. b.N calls.

// okHeader is a typical 2xx answer's headers, with no rate-limit fields.
var okHeader = http.Header{"Content-Type": {"application/json"}, "Date": {"Sat, 21 Nov 2026 10:00:00 GMT"}, "Content-Length": {"42"}}

func benchCalls(b *testing.B, l *Limiter, lane job.Lane, h http.Header) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a, _ := l.Admit(ctx, lane, 1)
		_ = l.Wait(ctx, nil, lane, nil)
		l.Observe(time.Now(), 200, h)
		_ = a
	}
}

// BenchmarkNoLimit: a provider with no rate, quota or pause: the common
// case, and the one the 8,000 calls/s of the worker take.
func BenchmarkNoLimit(b *testing.B) {
	benchCalls(b, NewLimiter("acme", Spec{PauseOn429: true}), job.LaneBulk, okHeader)
}

// BenchmarkRateLimited: a rate high enough never to wait, so what is
// measured is the bookkeeping: the bucket under its lock, the bulk queue.
func BenchmarkRateLimited(b *testing.B) {
	for _, lane := range job.Lanes {
		b.Run(string(lane), func(b *testing.B) {
			benchCalls(b, NewLimiter("acme", Spec{Rate: 1e9, Burst: 1e6, PauseOn429: true}), lane, okHeader)
		})
	}
}

// BenchmarkRateLimitHeaders: every answer carries the mock's rate-limit
// headers (X-RateLimit-* and the IETF fields), read on each call.
func BenchmarkRateLimitHeaders(b *testing.B) {
	h := okHeader.Clone()
	h["X-Ratelimit-Limit"] = []string{"100"}
	h["X-Ratelimit-Remaining"] = []string{"57"}
	h["X-Ratelimit-Reset"] = []string{"1"}
	h["Ratelimit-Policy"] = []string{`"default";q=1000000000;w=1`} // never the bottleneck here
	h["Ratelimit"] = []string{`"default";r=57;t=1`}
	benchCalls(b, NewLimiter("acme", Spec{PauseOn429: true}), job.LaneBulk, h)
}

// BenchmarkNoLimitParallel and BenchmarkRateLimitedParallel: calls from
// every core at once, as thousands of calls in flight make them.
func BenchmarkNoLimitParallel(b *testing.B) {
	benchParallel(b, NewLimiter("acme", Spec{PauseOn429: true}))
}

func BenchmarkRateLimitedParallel(b *testing.B) {
	benchParallel(b, NewLimiter("acme", Spec{Rate: 1e9, Burst: 1e6, PauseOn429: true}))
}

func benchParallel(b *testing.B, l *Limiter) {
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = l.Admit(ctx, job.LaneBulk, 1)
			_ = l.Wait(ctx, nil, job.LaneBulk, nil)
			l.Observe(time.Now(), 200, okHeader)
		}
	})
}
