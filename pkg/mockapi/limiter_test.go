package mockapi

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLimiterSequence walks the bucket on a simulated clock.
func TestLimiterSequence(t *testing.T) {
	t.Parallel()
	l := newLimiter(10, 3) // a token every 100ms, 3 at most
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	steps := []struct {
		at            int64 // ms
		wantOK        bool
		wantWait      time.Duration
		wantRemaining int64
		wantFull      time.Duration
	}{
		{at: 1000, wantOK: true, wantRemaining: 2, wantFull: 100 * time.Millisecond},
		{at: 1000, wantOK: true, wantRemaining: 1, wantFull: 200 * time.Millisecond},
		{at: 1000, wantOK: true, wantRemaining: 0, wantFull: 300 * time.Millisecond},
		{at: 1000, wantOK: false, wantWait: 100 * time.Millisecond, wantRemaining: 0, wantFull: 300 * time.Millisecond},
		{at: 1050, wantOK: false, wantWait: 50 * time.Millisecond, wantRemaining: 0, wantFull: 250 * time.Millisecond},
		{at: 1100, wantOK: true, wantRemaining: 0, wantFull: 300 * time.Millisecond},
		{at: 1350, wantOK: true, wantRemaining: 1, wantFull: 150 * time.Millisecond},
		{at: 5000, wantOK: true, wantRemaining: 2, wantFull: 100 * time.Millisecond},
	}
	for i, st := range steps {
		ok, wait := l.take(ms(st.at))
		remaining, full := l.state(ms(st.at))
		if ok != st.wantOK || wait != st.wantWait || remaining != st.wantRemaining || full != st.wantFull {
			t.Errorf("step %d at %dms: ok %v wait %s remaining %d full %s; want %v %s %d %s",
				i, st.at, ok, wait, remaining, full, st.wantOK, st.wantWait, st.wantRemaining, st.wantFull)
		}
	}
	l.reset()
	if ok, _ := l.take(ms(5000)); !ok {
		t.Error("refused right after reset")
	}
}

// TestLimiterExactUnderConcurrency: however many goroutines race for the
// bucket at one instant, exactly burst of them win.
func TestLimiterExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	const burst, goroutines, each = 37, 16, 100
	l := newLimiter(1, burst)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				if ok, _ := l.take(int64(time.Hour)); ok {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := admitted.Load(); got != burst {
		t.Errorf("admitted %d of %d, want exactly the burst %d", got, goroutines*each, burst)
	}
}

func TestCeilSeconds(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]int64{
		0: 1, time.Nanosecond: 1, time.Second: 1, time.Second + 1: 2, 2 * time.Second: 2, 2500 * time.Millisecond: 3,
	} {
		if got := ceilSeconds(d); got != want {
			t.Errorf("ceilSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}

func TestBurstDefault(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg  Config
		want int64
	}{
		{Config{RateLimit: 50}, 50},
		{Config{RateLimit: 2.5}, 3},
		{Config{RateLimit: 0.1}, 1},
		{Config{RateLimit: 50, Burst: 5}, 5},
	} {
		if got := tt.cfg.burst(); got != tt.want {
			t.Errorf("%+v: burst %d, want %d", tt.cfg, got, tt.want)
		}
	}
}

// TestRateLimitBound floods a 50/s, burst 5 server for about a second from
// a few clients and checks what got through against the bucket's bounds,
// measured around the run: at most burst + rate × elapsed, and, because a
// flood takes every token soon after it refills, not far below it.
func TestRateLimitBound(t *testing.T) {
	t.Parallel()
	const rate, burst, clients, run = 50, 5, 4, time.Second
	s, ts := setup(t, Config{RateLimit: rate, Burst: burst})
	var ok, limited, sent atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Since(start) < run {
				a := call(t, "POST", ts.URL+"/v1/x", fmt.Sprint("k", sent.Add(1)), "")
				switch a.status {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					t.Errorf("status %d", a.status)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	upper := burst + int64(rate*elapsed.Seconds())
	// A request that arrives when a token is free takes it, and the flood
	// leaves tokens free for a few ms at most; the first and last requests
	// may land a round trip inside the measured span; on a loaded machine
	// the four clients leave gaps of their own, so the floor is loose.
	lower := burst + int64(rate*(elapsed-500*time.Millisecond).Seconds())
	if got := ok.Load(); got > upper || got < lower {
		t.Errorf("admitted %d in %s, want within [%d, %d]", got, elapsed, lower, upper)
	}
	if limited.Load() < 100 {
		t.Errorf("only %d requests were limited: not a flood", limited.Load())
	}
	st := s.Stats()
	if st.Throttled != limited.Load() || st.ByStatus[429] != limited.Load() || st.ByStatus[200] != ok.Load() || st.Requests != sent.Load() {
		t.Errorf("Stats %+v; clients saw %d sent, %d ok, %d limited", st, sent.Load(), ok.Load(), limited.Load())
	}
	// Refused calls are not calls: only admitted keys count.
	if st.Keys != int(ok.Load()) || st.Duplicates != 0 {
		t.Errorf("Keys %d, Duplicates %d; want %d admitted keys, none repeated", st.Keys, st.Duplicates, ok.Load())
	}
	if st.MaxAdmittedPerSecond > burst+rate+1 || st.MaxPerSecond < st.Requests/2 {
		t.Errorf("MaxAdmittedPerSecond %d (want at most %d), MaxPerSecond %d of %d requests", st.MaxAdmittedPerSecond, burst+rate+1, st.MaxPerSecond, st.Requests)
	}
}

// TestThrottledSkipsLatency: a 429 is answered at once, without the
// latency admitted requests wait, and is no call for its idempotency key.
func TestThrottledSkipsLatency(t *testing.T) {
	t.Parallel()
	s := New(Config{LatencyMin: time.Hour, RateLimit: 1, Burst: 1})
	s.now = frozen // no refill
	entered := make(chan struct{})
	s.started = func() { close(entered) } // only the first request gets here
	ts := serve(t, s)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	held := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/held", nil)
		req.Header.Set(DefaultIdempotencyHeader, "first")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		held <- err
	}()
	<-entered

	// If the 429 waited for the latency, this would hang for an hour.
	a := call(t, "GET", ts.URL+"/refused", "second", "")
	if a.status != http.StatusTooManyRequests || a.echo.Status != 429 || a.echo.Error != "rate limited" || a.echo.Calls != 0 {
		t.Errorf("status %d, echo %+v; want 429 rate limited, no calls", a.status, a.echo)
	}
	checkStats(t, s.Stats(), Stats{
		Requests: 2, ByStatus: map[int]int64{429: 1}, Throttled: 1, InFlight: 1, PeakInFlight: 1,
		MaxPerSecond: 2, MaxAdmittedPerSecond: 1, Keys: 1,
	})
	if s.Calls("first") != 1 || s.Calls("second") != 0 {
		t.Errorf("Calls(first) = %d, Calls(second) = %d; want 1 and 0", s.Calls("first"), s.Calls("second"))
	}
	cancel()
	if err := <-held; err == nil {
		t.Error("the held request succeeded")
	}
}

// limitHeaders are every header a rate limit may add.
var limitHeaders = []string{"Retry-After", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Ratelimit-Policy", "Ratelimit"}

// TestLimitModes checks the headers each mode sends on three admitted
// answers and the 429 after them, on a frozen clock so the numbers are
// fixed: 2 requests/s is a token every 500ms, and the bucket holds 3.
func TestLimitModes(t *testing.T) {
	t.Parallel()
	none := map[string]string{}
	headers := func(r, t string) map[string]string {
		return map[string]string{
			"X-Ratelimit-Limit": "2", "X-Ratelimit-Remaining": r, "X-Ratelimit-Reset": t,
			"Ratelimit-Policy": `"default";q=2;w=1`, "Ratelimit": `"default";r=` + r + `;t=` + t,
		}
	}
	with := func(h map[string]string, k, v string) map[string]string {
		h[k] = v
		return h
	}
	tests := []struct {
		name       string
		mode       LimitMode
		retryAfter time.Duration
		want       [4]map[string]string // three admitted answers, then the 429
	}{
		{"default", "", 0, [4]map[string]string{none, none, none, {"Retry-After": "1"}}},
		{"retry-after", LimitRetryAfter, 0, [4]map[string]string{none, none, none, {"Retry-After": "1"}}},
		{"retry-after fixed", LimitRetryAfter, 1500 * time.Millisecond, [4]map[string]string{none, none, none, {"Retry-After": "2"}}},
		{"headers", LimitHeaders, 0, [4]map[string]string{
			headers("2", "1"), headers("1", "1"), headers("0", "2"), with(headers("0", "2"), "Retry-After", "1"),
		}},
		{"headers fixed", LimitHeaders, 2 * time.Second, [4]map[string]string{
			headers("2", "1"), headers("1", "1"), headers("0", "2"), with(headers("0", "2"), "Retry-After", "2"),
		}},
		{"silent", LimitSilent, 0, [4]map[string]string{none, none, none, none}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(Config{RateLimit: 2, Burst: 3, LimitMode: tt.mode, RetryAfter: tt.retryAfter})
			s.now = frozen
			ts := serve(t, s)
			for i, want := range tt.want {
				a := call(t, "GET", ts.URL+"/v1/x", "", "")
				wantStatus := http.StatusOK
				if i == 3 {
					wantStatus = http.StatusTooManyRequests
				}
				if a.status != wantStatus {
					t.Fatalf("answer %d: status %d, want %d", i+1, a.status, wantStatus)
				}
				if got := headerSubset(a.header, limitHeaders); !maps.Equal(got, want) {
					t.Errorf("answer %d: headers %v\nwant %v", i+1, got, want)
				}
			}
		})
	}
}

// TestSilentIsBare: the silent 429 carries nothing but what net/http adds
// to every answer.
func TestSilentIsBare(t *testing.T) {
	t.Parallel()
	s := New(Config{RateLimit: 1, Burst: 1, LimitMode: LimitSilent})
	s.now = frozen
	ts := serve(t, s)
	call(t, "GET", ts.URL+"/x", "", "")
	a := call(t, "GET", ts.URL+"/x", "", "")
	if a.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", a.status)
	}
	for name := range a.header {
		if name != "Date" && name != "Content-Length" {
			t.Errorf("silent 429 has header %s: %q", name, a.header[name])
		}
	}
	if a.echo != (echo{}) {
		t.Errorf("silent 429 has a body: %+v", a.echo)
	}
}

// TestHeadersOnEveryAnswer: in headers mode a 503 and a /status/ answer
// carry the limit headers too, so a client can pace itself on any answer.
func TestHeadersOnEveryAnswer(t *testing.T) {
	t.Parallel()
	s := New(Config{RateLimit: 100, LimitMode: LimitHeaders, ErrorRate: 1})
	s.now = frozen
	ts := serve(t, s)
	for _, path := range []string{"/v1/x", "/status/404", "/status/201"} {
		a := call(t, "GET", ts.URL+path, "", "")
		if got := a.header.Get("Ratelimit-Policy"); got != `"default";q=100;w=1` {
			t.Errorf("%s: status %d, RateLimit-Policy %q", path, a.status, got)
		}
		if a.header.Get("X-Ratelimit-Remaining") == "" || a.header.Get("Ratelimit") == "" {
			t.Errorf("%s: no remaining count in %v", path, a.header)
		}
	}
}

// headerSubset returns the values of the names present in h.
func headerSubset(h http.Header, names []string) map[string]string {
	got := map[string]string{}
	for _, name := range names {
		if v := h.Values(name); len(v) > 0 {
			got[name] = strings.Join(v, ", ")
		}
	}
	return got
}
