package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCeilingCountsEveryRequest(t *testing.T) {
	t.Parallel()
	var (
		calls, inFlight, peak atomic.Int64
		mu                    sync.Mutex
		keys                  = map[string]int{}
		bodyBytes             atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		b, _ := io.ReadAll(r.Body)
		bodyBytes.Add(int64(len(b)))
		mu.Lock()
		keys[r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
		if r.URL.Path != "/acme/call" || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		time.Sleep(2 * time.Millisecond)
		if calls.Add(1)%100 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	c := runCeiling(context.Background(), srv.URL+"/acme/call", payload(50), 20, 1000, "k-")
	if c.Requests != 1000 || c.InFlight != 20 || c.Errors != 0 {
		t.Errorf("requests %d in flight %d errors %d", c.Requests, c.InFlight, c.Errors)
	}
	if c.ByStatus["200"] != 990 || c.ByStatus["503"] != 10 {
		t.Errorf("by status %v, want 990 × 200 and 10 × 503", c.ByStatus)
	}
	if calls.Load() != 1000 || len(keys) != 1000 || bodyBytes.Load() != 50*1000 {
		t.Errorf("server saw %d calls, %d distinct keys, %d body bytes", calls.Load(), len(keys), bodyBytes.Load())
	}
	if p := peak.Load(); p > 20 {
		t.Errorf("peak in flight %d above the loop's 20", p)
	}
	if c.Rate <= 0 || c.SteadyRate <= 0 || c.SteadySeconds <= 0 || c.SteadySeconds > c.Seconds {
		t.Errorf("rates: %+v", c)
	}
	// The first and the last round of 20 fall outside the steady part.
	if c.SteadyResponses < 940 || c.SteadyResponses > 980 {
		t.Errorf("steady responses %d, want 960 ± 20", c.SteadyResponses)
	}
}

func TestCeilingWithFewerRequestsThanSlots(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := runCeiling(context.Background(), srv.URL, nil, 100, 10, "k-")
	if c.ByStatus["200"] != 10 || c.SteadyResponses != 10 || c.SteadyRate != c.Rate {
		t.Errorf("%+v", c)
	}
}

func TestMockClient(t *testing.T) {
	t.Parallel()
	var resets atomic.Int64
	// A stand-in for loadtest/cmd/mockapi's control endpoints, answering
	// with its documented JSON.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /stats/reset", func(w http.ResponseWriter, r *http.Request) {
		resets.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"total": map[string]any{"requests": 12, "by_status": map[string]int{"200": 10, "503": 2}, "in_flight": 3,
				"peak_in_flight": 9, "throttled": 1, "max_per_second": 7, "max_admitted_per_second": 6, "keys": 11, "duplicates": 1, "canceled": 0},
			"providers": map[string]any{"acme": map[string]any{"requests": 12, "peak_in_flight": 9, "duplicates": 1}},
		})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	mc := newMockClient(srv.URL + "/")
	ctx := context.Background()
	if err := mc.WaitHealthy(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := mc.Reset(ctx); err != nil || resets.Load() != 1 {
		t.Fatalf("reset: %v (%d resets)", err, resets.Load())
	}
	st, err := mc.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tot := st.Total
	if tot.Requests != 12 || tot.ByStatus["200"] != 10 || tot.ByStatus["503"] != 2 || tot.InFlight != 3 || tot.PeakInFlight != 9 ||
		tot.Throttled != 1 || tot.MaxPerSecond != 7 || tot.MaxAdmittedPerSecond != 6 || tot.Keys != 11 || tot.Duplicates != 1 {
		t.Errorf("total %+v", tot)
	}
	if got := providerStats(st, "acme"); got.Requests != 12 || got.PeakInFlight != 9 {
		t.Errorf("acme %+v", got)
	}
	if got := providerStats(st, "unknown"); got.Requests != 12 || got.MaxPerSecond != 7 {
		t.Errorf("an unknown provider falls back to the total; got %+v", got)
	}
	if mc.ProviderURL("acme") != srv.URL+"/acme" {
		t.Errorf("provider URL %s", mc.ProviderURL("acme"))
	}
	// A wrong answer is an error that says what came back.
	if _, err := newMockClient(srv.URL+"/nope").do(ctx, http.MethodGet, "/stats", http.StatusOK); err == nil {
		t.Error("404 accepted")
	}
}
