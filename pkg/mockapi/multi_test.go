package mockapi

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// setupMulti serves a Multi on a local port with a clock the test moves.
func setupMulti(t *testing.T, def Config, per map[string]Config) (*Multi, string, *atomic.Int64) {
	t.Helper()
	clock := new(atomic.Int64)
	m, err := newMulti(def, per, clock.Load)
	if err != nil {
		t.Fatal(err)
	}
	return m, serve(t, m).URL, clock
}

func TestMultiRouting(t *testing.T) {
	t.Parallel()
	m, url, _ := setupMulti(t, Config{}, map[string]Config{
		"limited": {RateLimit: 1, Burst: 2},
		"broken":  {ErrorRate: 1},
	})

	a := call(t, "POST", url+"/free/v1/items?x=1", "k1", "body")
	want := echo{N: 1, Status: 200, Method: "POST", Path: "/free/v1/items", Query: "x=1", IdempotencyKey: "k1", Calls: 1, BodyBytes: 4}
	if a.status != 200 || a.echo != want {
		t.Errorf("free: status %d, echo %+v\nwant %+v", a.status, a.echo, want)
	}
	// Providers keep their own keys and numbering.
	if a := call(t, "POST", url+"/limited/v1/items", "k1", ""); a.status != 200 || a.echo.N != 1 || a.echo.Calls != 1 {
		t.Errorf("limited: status %d, echo %+v; want 200, n 1, calls 1", a.status, a.echo)
	}
	// The clock stands still: the bucket of 2 has one token left.
	for i, wantStatus := range []int{200, 429, 429} {
		if a := call(t, "GET", url+"/limited", "", ""); a.status != wantStatus {
			t.Errorf("limited request %d: status %d, want %d", i+2, a.status, wantStatus)
		}
	}
	// The unlimited providers do not share that bucket.
	for range 5 {
		if a := call(t, "GET", url+"/free/v1/x", "", ""); a.status != 200 {
			t.Fatalf("free: status %d after limited was throttled", a.status)
		}
	}
	if a := call(t, "GET", url+"/broken/v1/x", "", ""); a.status != 503 || a.header.Get("Retry-After") != "1" {
		t.Errorf("broken: status %d, Retry-After %q; want 503 and 1", a.status, a.header.Get("Retry-After"))
	}
	// /status/ inside a provider; ErrorRate does not apply to it.
	if a := call(t, "GET", url+"/broken/status/418", "", ""); a.status != 418 || a.echo.Path != "/broken/status/418" {
		t.Errorf("broken/status/418: status %d, path %q", a.status, a.echo.Path)
	}
	// A provider path that only looks like a control endpoint.
	if a := call(t, "GET", url+"/free/stats", "", ""); a.status != 200 || a.echo.Path != "/free/stats" {
		t.Errorf("free/stats: status %d, echo %+v", a.status, a.echo)
	}

	ms := m.Stats()
	if got := slices.Sorted(maps.Keys(ms.Providers)); !slices.Equal(got, []string{"broken", "free", "limited"}) {
		t.Errorf("providers %v", got)
	}
	free, _ := m.Provider("free")
	limited, _ := m.Provider("limited")
	if free.Calls("k1") != 1 || limited.Calls("k1") != 1 {
		t.Errorf("Calls(k1): free %d, limited %d; want 1 each", free.Calls("k1"), limited.Calls("k1"))
	}
	checkStats(t, ms.Providers["limited"], Stats{
		Requests: 4, ByStatus: map[int]int64{200: 2, 429: 2}, Throttled: 2, PeakInFlight: 1,
		MaxPerSecond: 4, MaxAdmittedPerSecond: 2, Keys: 1,
	})
	checkStats(t, ms.Total, Stats{
		Requests: 13, ByStatus: map[int]int64{200: 9, 418: 1, 429: 2, 503: 1}, Throttled: 2, PeakInFlight: 1,
		MaxPerSecond: 13, MaxAdmittedPerSecond: 11, Keys: 2,
	})
}

// TestMultiTotalsMeasured: the total's peaks are measured over all
// providers, not summed from peaks that came at different times.
func TestMultiTotalsMeasured(t *testing.T) {
	t.Parallel()
	m, url, clock := setupMulti(t, Config{}, nil)
	// hold sends n requests to provider and waits until all are in
	// flight; release lets them answer.
	hold := func(provider string, n int) (release func()) {
		s, err := m.Provider(provider)
		if err != nil {
			t.Fatal(err)
		}
		var arrived sync.WaitGroup
		arrived.Add(n)
		gate := make(chan struct{})
		s.started = func() {
			arrived.Done()
			<-gate
		}
		var done sync.WaitGroup
		for range n {
			done.Go(func() { call(t, "GET", url+"/"+provider+"/x", "", "") })
		}
		arrived.Wait()
		return func() {
			close(gate)
			done.Wait()
		}
	}

	// a: 2 at once, at 0s; then b: 3 at once, at 2s.
	hold("a", 2)()
	clock.Store(int64(2 * time.Second))
	release := hold("b", 3)
	if got := m.Stats().Total.InFlight; got != 3 {
		t.Errorf("total InFlight %d while b holds 3", got)
	}
	release()
	ms := m.Stats()
	if a, b := ms.Providers["a"], ms.Providers["b"]; a.PeakInFlight != 2 || b.PeakInFlight != 3 || a.MaxPerSecond != 2 || b.MaxPerSecond != 3 {
		t.Errorf("a %+v\nb %+v\nwant peaks and maxima 2 and 3", a, b)
	}
	if tot := ms.Total; tot.PeakInFlight != 3 || tot.MaxPerSecond != 3 || tot.Requests != 5 || tot.InFlight != 0 {
		t.Errorf("total %+v; want 5 requests, peak 3 and 3 per second, not the sums", tot)
	}

	// Both at once, later: now the total's peaks are both together.
	clock.Store(int64(4 * time.Second))
	releaseA, releaseB := hold("a", 2), hold("b", 3)
	releaseA()
	releaseB()
	if tot := m.Stats().Total; tot.PeakInFlight != 5 || tot.MaxPerSecond != 5 {
		t.Errorf("total %+v; want peak 5, 5 per second", tot)
	}
}

// TestMultiStatsJSON checks the wire shape of GET /stats.
func TestMultiStatsJSON(t *testing.T) {
	t.Parallel()
	_, url, _ := setupMulti(t, Config{}, map[string]Config{"idle": {}})
	call(t, "GET", url+"/acme/v1/x", "key", "")
	call(t, "GET", url+"/acme/status/404", "", "")

	resp, err := http.Get(url + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	stats := func(v any) map[string]any {
		m, _ := v.(map[string]any)
		return m
	}
	total, providers := stats(got["total"]), stats(got["providers"])
	acme, idle := stats(providers["acme"]), stats(providers["idle"])
	if len(got) != 2 || total == nil || len(providers) != 2 || acme == nil || idle == nil {
		t.Fatalf("shape %v; want total and providers acme and idle", got)
	}
	wantKeys := []string{
		"by_status", "canceled", "duplicates", "in_flight", "keys", "max_admitted_per_second",
		"max_per_second", "peak_in_flight", "requests", "throttled",
	}
	for name, st := range map[string]map[string]any{"total": total, "acme": acme, "idle": idle} {
		if keys := slices.Sorted(maps.Keys(st)); !slices.Equal(keys, wantKeys) {
			t.Errorf("%s has keys %v\nwant %v", name, keys, wantKeys)
		}
	}
	if bs := stats(total["by_status"]); len(bs) != 2 || bs["200"] != 1.0 || bs["404"] != 1.0 {
		t.Errorf("total by_status %v, want {\"200\": 1, \"404\": 1}", total["by_status"])
	}
	if total["requests"] != 2.0 || acme["keys"] != 1.0 || idle["requests"] != 0.0 {
		t.Errorf("total %v\nacme %v\nidle %v", total, acme, idle)
	}

	// The stats request counted nowhere.
	resp2, err := http.Get(url + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var again MultiStats
	if err := json.NewDecoder(resp2.Body).Decode(&again); err != nil {
		t.Fatal(err)
	}
	if again.Total.Requests != 2 || again.Total.MaxPerSecond != 2 {
		t.Errorf("after polling: total %+v, want 2 requests", again.Total)
	}
}

func TestMultiReset(t *testing.T) {
	t.Parallel()
	m, url, _ := setupMulti(t, Config{}, map[string]Config{"limited": {RateLimit: 1, Burst: 1}})
	call(t, "GET", url+"/limited/x", "k", "")
	call(t, "GET", url+"/limited/x", "k", "")
	call(t, "GET", url+"/other/x", "k", "")
	call(t, "GET", url+"/other/x", "k", "")
	if tot := m.Stats().Total; tot.Requests != 4 || tot.Throttled != 1 || tot.Duplicates != 1 {
		t.Fatalf("before reset: %+v", tot)
	}

	resp, err := http.Post(url+"/stats/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /stats/reset: status %d, want 204", resp.StatusCode)
	}
	ms := m.Stats()
	zero := Stats{ByStatus: map[int]int64{}}
	checkStats(t, ms.Total, zero)
	for _, name := range []string{"limited", "other"} {
		st, ok := ms.Providers[name]
		if !ok {
			t.Errorf("provider %s gone after reset", name)
		}
		checkStats(t, st, zero)
	}
	// Keys are forgotten and the bucket is full again.
	if a := call(t, "GET", url+"/limited/x", "k", ""); a.status != 200 || a.echo.N != 1 || a.echo.Calls != 1 {
		t.Errorf("after reset: status %d, echo %+v; want 200, n 1, calls 1", a.status, a.echo)
	}
}

func TestMultiControlAndBadPaths(t *testing.T) {
	t.Parallel()
	m, url, _ := setupMulti(t, Config{}, nil)
	tests := []struct {
		method, path string
		want         int
		wantBody     string // a substring
	}{
		{"GET", "/healthz", 200, `"status":"ok"`},
		{"HEAD", "/healthz", 200, ""},
		{"POST", "/healthz", 405, `"error"`},
		{"POST", "/stats", 405, `use GET`},
		{"GET", "/stats/reset", 405, `use POST`},
		{"GET", "/", 404, `"error":"provider \"\"`},
		{"GET", "/Acme/x", 404, `provider \"Acme\"`},
		{"GET", "/a.b/x", 404, `"error"`},
		{"GET", "/a%2Fb/x", 404, `"error"`},
		{"GET", "/" + strings.Repeat("a", 65) + "/x", 404, `"error"`},
		{"GET", "/stats/x", 404, `not be stats or healthz`},
		{"GET", "/healthz/x", 404, `"error"`},
		{"GET", "/" + strings.Repeat("a", 64) + "/x", 200, `"status":200`},
		{"GET", "/a_b-9", 200, `"path":"/a_b-9"`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, url+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("status %d, body %s; want %d with %s", resp.StatusCode, body, tt.want, tt.wantBody)
			}
			if resp.StatusCode != 204 && tt.method != "HEAD" && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
	t.Cleanup(func() {
		// Bad paths create no provider and count nowhere.
		ms := m.Stats()
		if len(ms.Providers) != 2 || ms.Total.Requests != 2 {
			t.Errorf("providers %v, total requests %d; want the two good ones", slices.Sorted(maps.Keys(ms.Providers)), ms.Total.Requests)
		}
	})
}

func TestNewMultiErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		def     Config
		per     map[string]Config
		wantErr string
	}{
		{"ok", Config{}, map[string]Config{"a": {RateLimit: 5}}, ""},
		{"bad default", Config{ErrorRate: 2}, nil, "mockapi: default: ErrorRate:"},
		{"bad provider config", Config{}, map[string]Config{"a": {Burst: -1}}, "mockapi: provider a: Burst:"},
		{"bad provider name", Config{}, map[string]Config{"A": {}}, `mockapi: provider "A": provider name must match`},
		{"reserved name", Config{}, map[string]Config{"stats": {}}, `provider "stats"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewMulti(tt.def, tt.per)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMultiMaxProviders(t *testing.T) {
	t.Parallel()
	m, err := NewMulti(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxProviders {
		if _, err := m.Provider("p" + strings.Repeat("x", i%60) + string(rune('a'+i/60))); err != nil {
			t.Fatalf("provider %d: %v", i, err)
		}
	}
	if _, err := m.Provider("one-more"); !errors.Is(err, ErrTooManyProviders) {
		t.Errorf("provider %d: err %v, want ErrTooManyProviders", MaxProviders+1, err)
	}
	if _, err := m.Provider("pa"); err != nil {
		t.Errorf("an existing provider: %v", err)
	}
}

// TestMultiConcurrentCreate: providers created by racing first requests
// are created once each.
func TestMultiConcurrentCreate(t *testing.T) {
	t.Parallel()
	m, err := NewMulti(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", "/"+names[i%len(names)]+"/x", nil)
			m.ServeHTTP(discard{}, req)
		})
	}
	wg.Wait()
	ms := m.Stats()
	if len(ms.Providers) != len(names) || ms.Total.Requests != 64 {
		t.Fatalf("providers %d, requests %d; want 4 and 64", len(ms.Providers), ms.Total.Requests)
	}
	for name, st := range ms.Providers {
		if st.Requests != 16 {
			t.Errorf("%s: %d requests, want 16", name, st.Requests)
		}
	}
}

// discard is a ResponseWriter that keeps nothing, so that tests and
// benchmarks can measure the handler alone.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
