package mockapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// setup serves a Server for cfg on a local port, closed at cleanup.
func setup(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s := New(cfg)
	return s, serve(t, s)
}

// serve serves h on a local port, closed at cleanup.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}

// frozen is a clock that stands still, for tests that count requests per
// second and must not depend on how fast the machine sends them.
func frozen() int64 { return 0 }

type answer struct {
	status int
	header http.Header
	echo   echo
}

// call makes one request and decodes the echo, if any.
func call(t *testing.T, method, url, key string, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set(DefaultIdempotencyHeader, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &a.echo); err != nil {
			t.Fatalf("body %q: %v", data, err)
		}
	}
	return a
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       Config
		wantErr   bool
		wantField string
	}{
		{"zero", Config{}, false, ""},
		{"fixed latency", Config{LatencyMin: time.Second}, false, ""},
		{"range", Config{LatencyMin: time.Millisecond, LatencyMax: time.Second, ErrorRate: 1}, false, ""},
		{"negative min", Config{LatencyMin: -1}, true, "LatencyMin"},
		{"negative max", Config{LatencyMax: -1}, true, "LatencyMax"},
		{"max below min", Config{LatencyMin: 2 * time.Second, LatencyMax: time.Second}, true, "LatencyMax"},
		{"error rate above 1", Config{ErrorRate: 1.5}, true, "ErrorRate"},
		{"error rate negative", Config{ErrorRate: -0.1}, true, "ErrorRate"},
		{"error rate NaN", Config{ErrorRate: math.NaN()}, true, "ErrorRate"},
		{"tail", Config{LatencyMax: time.Second, TailRate: 0.01, TailLatency: 10 * time.Second}, false, ""},
		{"tail at max", Config{LatencyMin: time.Second, TailRate: 1, TailLatency: time.Second}, false, ""},
		{"tail latency unused", Config{TailLatency: time.Second}, false, ""},
		{"tail rate above 1", Config{TailRate: 1.1, TailLatency: time.Second}, true, "TailRate"},
		{"tail rate NaN", Config{TailRate: math.NaN(), TailLatency: time.Second}, true, "TailRate"},
		{"tail latency negative", Config{TailLatency: -1}, true, "TailLatency"},
		{"tail latency missing", Config{LatencyMax: time.Second, TailRate: 0.1}, true, "TailLatency"},
		{"tail below min", Config{LatencyMin: 2 * time.Second, TailRate: 0.1, TailLatency: time.Second}, true, "TailLatency"},
		{"rate limit", Config{RateLimit: 50, Burst: 5, LimitMode: LimitHeaders, RetryAfter: time.Second}, false, ""},
		{"rate limit fraction", Config{RateLimit: 0.5, LimitMode: LimitSilent}, false, ""},
		{"rate limit negative", Config{RateLimit: -1}, true, "RateLimit"},
		{"rate limit NaN", Config{RateLimit: math.NaN()}, true, "RateLimit"},
		{"rate limit infinite", Config{RateLimit: math.Inf(1)}, true, "RateLimit"},
		{"burst negative", Config{RateLimit: 1, Burst: -1}, true, "Burst"},
		{"limit mode unknown", Config{RateLimit: 1, LimitMode: "loud"}, true, "LimitMode"},
		{"retry after negative", Config{RateLimit: 1, RetryAfter: -time.Second}, true, "RetryAfter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), tt.wantField+":") {
				t.Errorf("err %q does not start with %q", err, tt.wantField)
			}
		})
	}
}

func TestNewPanicsOnBadConfig(t *testing.T) {
	t.Parallel()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "ErrorRate") {
			t.Errorf("recover() = %v, want a panic naming ErrorRate", r)
		}
	}()
	New(Config{ErrorRate: 2})
}

func TestLatencyBounds(t *testing.T) {
	t.Parallel()
	const lo, hi = 50 * time.Millisecond, 80 * time.Millisecond
	_, ts := setup(t, Config{LatencyMin: lo, LatencyMax: hi, Seed: 1})
	start := time.Now()
	if a := call(t, "GET", ts.URL+"/x", "", ""); a.status != http.StatusOK {
		t.Fatalf("status %d", a.status)
	}
	if d := time.Since(start); d < lo {
		t.Errorf("request took %s, want at least LatencyMin %s", d, lo)
	}
}

// TestDrawLatency checks the distribution without waiting for it.
func TestDrawLatency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    Config
		lo, hi time.Duration
	}{
		{"range", Config{LatencyMin: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond}, 10 * time.Millisecond, 20 * time.Millisecond},
		{"fixed", Config{LatencyMin: 7 * time.Millisecond}, 7 * time.Millisecond, 7 * time.Millisecond},
		{"zero", Config{}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(tt.cfg)
			gotMin, gotMax := time.Duration(math.MaxInt64), time.Duration(0)
			for seq := range uint64(10000) {
				d, _ := s.draw(seq)
				gotMin, gotMax = min(gotMin, d), max(gotMax, d)
			}
			if gotMin < tt.lo || gotMax > tt.hi {
				t.Errorf("draws in [%s, %s], want within [%s, %s]", gotMin, gotMax, tt.lo, tt.hi)
			}
			// A uniform draw should come close to both ends.
			if slack := (tt.hi - tt.lo) / 100; gotMin > tt.lo+slack || gotMax < tt.hi-slack {
				t.Errorf("draws in [%s, %s] do not cover [%s, %s]", gotMin, gotMax, tt.lo, tt.hi)
			}
		})
	}
}

// TestDrawTail checks that a TailRate share of requests waits in
// [LatencyMax, TailLatency] and the rest in [LatencyMin, LatencyMax].
func TestDrawTail(t *testing.T) {
	t.Parallel()
	const (
		lo, hi, tail = 10 * time.Millisecond, 20 * time.Millisecond, 10 * time.Second
		rate, n      = 0.1, 50000
	)
	s := New(Config{LatencyMin: lo, LatencyMax: hi, TailRate: rate, TailLatency: tail, ErrorRate: 0.5, Seed: 9})
	tailMin, tailMax, tails, fails := time.Duration(math.MaxInt64), time.Duration(0), 0, 0
	for seq := range uint64(n) {
		d, fail := s.draw(seq)
		if fail {
			fails++
		}
		switch {
		case d > hi && d <= tail:
			tails++
			tailMin, tailMax = min(tailMin, d), max(tailMax, d)
		case d < lo || d > tail:
			t.Fatalf("seq %d: latency %s outside [%s, %s]", seq, d, lo, tail)
		}
	}
	// Deterministic for the seed; the tolerances are far outside what a
	// fair draw would miss by.
	if got := float64(tails) / n; math.Abs(got-rate) > 0.01 {
		t.Errorf("tail share %.4f, want %.2f", got, rate)
	}
	if slack := (tail - hi) / 100; tailMin > hi+slack || tailMax < tail-slack {
		t.Errorf("tail draws in [%s, %s] do not cover [%s, %s]", tailMin, tailMax, hi, tail)
	}
	// The tail has its own draws: the error share stays what it was.
	if got := float64(fails) / n; math.Abs(got-0.5) > 0.02 {
		t.Errorf("failed share %.4f with a tail, want 0.5", got)
	}
	// Without a tail, the same seed draws the same ordinary latencies.
	plain := New(Config{LatencyMin: lo, LatencyMax: hi, ErrorRate: 0.5, Seed: 9})
	for seq := range uint64(1000) {
		d, fail := s.draw(seq)
		pd, pfail := plain.draw(seq)
		if fail != pfail || d <= hi && d != pd {
			t.Fatalf("seq %d: (%s, %v) with a tail, (%s, %v) without", seq, d, fail, pd, pfail)
		}
	}
}

// TestDrawTailAtMax: with LatencyMax zero the tail starts at LatencyMin.
func TestDrawTailAtMax(t *testing.T) {
	t.Parallel()
	s := New(Config{LatencyMin: time.Second, TailRate: 1, TailLatency: 3 * time.Second})
	for seq := range uint64(1000) {
		if d, _ := s.draw(seq); d < time.Second || d > 3*time.Second {
			t.Fatalf("seq %d: latency %s outside [1s, 3s]", seq, d)
		}
	}
}

func TestDrawErrorRate(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{0, 0.01, 0.3, 0.5, 1} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			t.Parallel()
			s := New(Config{ErrorRate: rate, Seed: 42})
			const n = 20000
			fails := 0
			for seq := range uint64(n) {
				if _, fail := s.draw(seq); fail {
					fails++
				}
			}
			// Deterministic for the seed; the tolerance is far outside
			// what a fair draw would miss by.
			if got := float64(fails) / n; math.Abs(got-rate) > 0.02 {
				t.Errorf("failed share %.4f, want %.2f", got, rate)
			}
		})
	}
}

func TestDrawReproducible(t *testing.T) {
	t.Parallel()
	cfg := Config{LatencyMax: time.Second, ErrorRate: 0.5, Seed: 7}
	a, b, other := New(cfg), New(cfg), New(Config{LatencyMax: time.Second, ErrorRate: 0.5, Seed: 8})
	same := 0
	for seq := range uint64(100) {
		da, fa := a.draw(seq)
		db, fb := b.draw(seq)
		if da != db || fa != fb {
			t.Fatalf("seq %d: same seed drew (%s, %v) and (%s, %v)", seq, da, fa, db, fb)
		}
		if do, _ := other.draw(seq); do == da {
			same++
		}
	}
	if same > 5 {
		t.Errorf("a different seed drew the same latency %d times in 100", same)
	}
}

func TestErrorRateAll(t *testing.T) {
	t.Parallel()
	s, ts := setup(t, Config{ErrorRate: 1})
	const n = 20
	for i := range n {
		a := call(t, "POST", ts.URL+"/v1/invoices", fmt.Sprint("k", i), `{}`)
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "1" {
			t.Fatalf("request %d: status %d, Retry-After %q; want 503 and 1", i, a.status, a.header.Get("Retry-After"))
		}
	}
	if got := s.Stats().ByStatus; !maps.Equal(got, map[int]int64{503: n}) {
		t.Errorf("ByStatus = %v, want all %d as 503", got, n)
	}
}

func TestStatusPaths(t *testing.T) {
	t.Parallel()
	// ErrorRate 1 shows that /status/ ignores it.
	_, ts := setup(t, Config{ErrorRate: 1})
	tests := []struct {
		path       string
		want       int
		retryAfter string
	}{
		{"/status/200", 200, ""},
		{"/status/204", 204, ""},
		{"/status/404", 404, ""},
		{"/status/408", 408, ""},
		{"/status/429", 429, "1"},
		{"/status/500", 500, ""},
		{"/status/503", 503, "1"},
		{"/status/abc", 400, ""},
		{"/status/99", 400, ""},
		{"/status/600", 400, ""},
		{"/status/404/x", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			a := call(t, "GET", ts.URL+tt.path, "", "")
			if a.status != tt.want {
				t.Errorf("status %d, want %d", a.status, tt.want)
			}
			if got := a.header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if tt.want != http.StatusNoContent && a.echo.Status != tt.want {
				t.Errorf("echoed status %d, want %d", a.echo.Status, tt.want)
			}
		})
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	_, ts := setup(t, Config{})
	a := call(t, "PATCH", ts.URL+"/v1/items/a%20b?expand=lines&expand=x", "key-1", "hello")
	want := echo{
		N: 1, Status: 200, Method: "PATCH", Path: "/v1/items/a%20b", Query: "expand=lines&expand=x",
		IdempotencyKey: "key-1", Calls: 1, BodyBytes: 5,
	}
	if a.echo != want {
		t.Errorf("echo = %+v\nwant   %+v", a.echo, want)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestStatsAndDuplicates(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	s.now = frozen
	ts := serve(t, s)
	for _, key := range []string{"a", "b", "a", "c", "", "a", "c", ""} {
		call(t, "POST", ts.URL+"/v1/x", key, "")
	}
	call(t, "GET", ts.URL+"/status/500", "d", "")

	for key, want := range map[string]int{"a": 3, "b": 1, "c": 2, "d": 1, "never": 0} {
		if got := s.Calls(key); got != want {
			t.Errorf("Calls(%q) = %d, want %d", key, got, want)
		}
	}
	if got := s.Duplicates(); got != 2 {
		t.Errorf("Duplicates() = %d, want 2 (a and c)", got)
	}
	want := Stats{
		Requests: 9, ByStatus: map[int]int64{200: 8, 500: 1},
		InFlight: 0, PeakInFlight: 1, MaxPerSecond: 9, MaxAdmittedPerSecond: 9, Keys: 4, Duplicates: 2,
	}
	checkStats(t, s.Stats(), want)

	// The endpoint shows the same numbers and does not count itself.
	resp, err := http.Get(ts.URL + "/_stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got Stats
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	checkStats(t, got, want)
	checkStats(t, s.Stats(), want)

	s.Reset()
	checkStats(t, s.Stats(), Stats{ByStatus: map[int]int64{}})
	if s.Calls("a") != 0 || s.Duplicates() != 0 {
		t.Errorf("after Reset: Calls(a) = %d, Duplicates() = %d", s.Calls("a"), s.Duplicates())
	}
	if a := call(t, "GET", ts.URL+"/x", "a", ""); a.echo.N != 1 || a.echo.Calls != 1 {
		t.Errorf("after Reset: echo n=%d calls=%d, want 1 and 1", a.echo.N, a.echo.Calls)
	}
}

func checkStats(t *testing.T, got, want Stats) {
	t.Helper()
	if !maps.Equal(got.ByStatus, want.ByStatus) {
		t.Errorf("ByStatus = %v, want %v", got.ByStatus, want.ByStatus)
	}
	got.ByStatus, want.ByStatus = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Stats = %+v\nwant    %+v", got, want)
	}
}

func TestCustomIdempotencyHeader(t *testing.T) {
	t.Parallel()
	s, ts := setup(t, Config{IdempotencyHeader: "X-Request-Id"})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", ts.URL+"/x", nil)
	req.Header.Set("X-Request-Id", "r1")
	req.Header.Set(DefaultIdempotencyHeader, "ignored")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s.Calls("r1") != 1 || s.Calls("ignored") != 0 {
		t.Errorf("Calls(r1) = %d, Calls(ignored) = %d; want 1 and 0", s.Calls("r1"), s.Calls("ignored"))
	}
}

// TestClientGoneReturnsPromptly: a request that would wait an hour must end
// as soon as its client goes away, over a real connection.
func TestClientGoneReturnsPromptly(t *testing.T) {
	t.Parallel()
	s := New(Config{LatencyMin: time.Hour})
	entered, done := make(chan struct{}), make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		s.ServeHTTP(w, r)
		close(done)
	}))
	t.Cleanup(ts.Close)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/slow", nil)
	callErr := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		callErr <- err
	}()

	<-entered
	cancel()
	if err := <-callErr; err == nil {
		t.Fatal("the canceled call succeeded")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a deadline for a hang, not a wait for the event
		t.Fatal("the handler still waits after its client went away")
	}
	checkStats(t, s.Stats(), Stats{Requests: 1, ByStatus: map[int]int64{}, Canceled: 1, PeakInFlight: 1, MaxPerSecond: 1, MaxAdmittedPerSecond: 1})
}

// TestManyConcurrent holds 5,000 requests in flight at once. It calls
// ServeHTTP directly: the race detector allows only 8,128 live goroutines,
// and real connections would need several each.
func TestManyConcurrent(t *testing.T) {
	t.Parallel()
	const n = 5000
	s := New(Config{LatencyMin: time.Millisecond, LatencyMax: 5 * time.Millisecond, ErrorRate: 0.1, Seed: 3})
	var arrived sync.WaitGroup
	arrived.Add(n)
	release := make(chan struct{})
	// Hold every request until all have arrived, so the peak is exact.
	s.started = func() {
		arrived.Done()
		<-release
	}

	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			req := httptest.NewRequest("POST", "/v1/x", strings.NewReader(`{"i":1}`))
			req.Header.Set(DefaultIdempotencyHeader, fmt.Sprint("k", i%(n/2))) // every key twice
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			codes[i] = rec.Code
		})
	}
	arrived.Wait()
	if got := s.Stats().InFlight; got != n {
		t.Errorf("InFlight = %d while all are held, want %d", got, n)
	}
	close(release)
	wg.Wait()

	st := s.Stats()
	ok, unavailable := st.ByStatus[200], st.ByStatus[503]
	if st.Requests != n || ok+unavailable != n || st.InFlight != 0 || st.PeakInFlight != n {
		t.Errorf("Stats = %+v, want %d requests all answered, none in flight, peak %d", st, n, n)
	}
	if unavailable < n/20 || unavailable > n/5 {
		t.Errorf("%d of %d answered 503, want about 10%%", unavailable, n)
	}
	if st.Keys != n/2 || st.Duplicates != n/2 || s.Calls("k0") != 2 {
		t.Errorf("Keys = %d, Duplicates = %d, Calls(k0) = %d; want %d, %d, 2", st.Keys, st.Duplicates, s.Calls("k0"), n/2, n/2)
	}
	for i, c := range codes {
		if c != 200 && c != 503 {
			t.Fatalf("request %d answered %d", i, c)
		}
	}
}
