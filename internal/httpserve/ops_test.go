package httpserve

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestOpsServesMetricsAndProbes(t *testing.T) {
	ctx := context.Background()
	var connected atomic.Bool
	ready := func(context.Context) error {
		if !connected.Load() {
			return errors.New("not connected to NATS")
		}
		return nil
	}
	ops := NewOps("worker.http.listen", "127.0.0.1:0", NewRegistry(), ready, slog.New(slog.DiscardHandler))
	if err := ops.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ops.Shutdown(ctx) })
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(ops.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not connected to NATS") {
		t.Errorf("readyz = %d %s, want 503 with the reason", code, body)
	}
	connected.Store(true)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("readyz = %d, want 200", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz = %d, want 200", code)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_") {
		t.Errorf("metrics = %d without the Go and process collectors", code)
	}
	if code, _ := get("/nowhere"); code != http.StatusNotFound {
		t.Errorf("/nowhere = %d, want 404", code)
	}

	// A taken port names the key; "-" turns the server off.
	taken := NewOps("worker.http.listen", strings.TrimPrefix(ops.URL(), "http://"), NewRegistry(), nil, slog.New(slog.DiscardHandler))
	if err := taken.Start(ctx); err == nil || !strings.HasPrefix(err.Error(), "worker.http.listen: ") {
		t.Errorf("taken port: err = %v, want one naming the key", err)
	}
	off := NewOps("worker.http.listen", "-", NewRegistry(), nil, slog.New(slog.DiscardHandler))
	if err := off.Start(ctx); err != nil || off.URL() != "" {
		t.Errorf("off: err %v, URL %q", err, off.URL())
	}
	if err := off.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := ops.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(ops.URL(), "http://"), time.Second); err == nil {
		t.Error("still listening after Shutdown")
	}
}

func TestCacheOKCachesSuccessOnly(t *testing.T) {
	calls := 0
	fail := true
	check := CacheOK(time.Hour, func(context.Context) error {
		calls++
		if fail {
			return errors.New("stream JOBS: not found")
		}
		return nil
	})
	ctx := context.Background()
	for range 2 {
		if err := check(ctx); err == nil {
			t.Fatal("a failing check passed")
		}
	}
	fail = false
	for range 3 {
		if err := check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 3 {
		t.Fatalf("checked %d times, want 3: each failure looks again, a success stands", calls)
	}
}
