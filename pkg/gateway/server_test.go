package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/pkg/gateway"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
)

func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	cfg := gateway.Config{Listen: "127.0.0.1:0"}

	// Shutdown before Start is safe, and so is a second one.
	gw, err := gateway.NewServer(nc, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown before Start: %v", err)
	}
	if err := gw.Start(ctx); err == nil {
		t.Error("Start after Shutdown succeeded")
	}

	gw, err = gateway.NewServer(nc, cfg, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if gw.URL() != "" || gw.Addr() != "" {
		t.Fatalf("URL %q, Addr %q before Start", gw.URL(), gw.Addr())
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(ctx); err == nil {
		t.Error("a second Start succeeded")
	}
	if !strings.HasPrefix(gw.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %q", gw.URL())
	}
	resp, err := http.Get(gw.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %d", resp.StatusCode)
	}

	// The port taken: the error names the key.
	taken, err := gateway.NewServer(nc, gateway.Config{Listen: gw.Addr()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := taken.Start(ctx); err == nil || !strings.HasPrefix(err.Error(), "gateway.listen: ") {
		t.Errorf("a taken port: err = %v, want one naming gateway.listen", err)
	}
	if err := taken.Shutdown(ctx); err != nil {
		t.Error(err)
	}

	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := http.Get(gw.URL() + "/healthz"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("after Shutdown: %v, want the connection refused", err)
	}
}

func TestNewServerValidates(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, _ := srv.Connect(t)
	_, err := gateway.NewServer(nc, gateway.Config{Listen: "0.0.0.0:8473"}, nil)
	if err == nil || !strings.Contains(err.Error(), "gateway: tokens: required") {
		t.Fatalf("err = %v", err)
	}
}

// TestServerMetrics: with WithMetrics the gateway serves GET /metrics,
// counting its answers by status code, and /readyz answers 503 while NATS
// is down and 200 once it is back.
func TestServerMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	gw, err := gateway.NewServer(nc, gateway.Config{Listen: "127.0.0.1:0"}, natstest.Logger(t), gateway.WithMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Shutdown(ctx) })
	get := func(path string) (int, string) {
		resp, err := http.Get(gw.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	resp, err := http.Post(gw.URL()+"/v1/jobs", "application/json",
		strings.NewReader(`{"provider":"acme","task":"ping","request":{"path":"/ping"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs: %s", resp.Status)
	}
	get("/nowhere")
	code, body := get("/metrics")
	for _, want := range []string{`switchyard_gateway_requests_total{code="202"} 1`, `switchyard_gateway_requests_total{code="404"} 1`,
		`switchyard_gateway_request_duration_seconds_count{code="202"} 1`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("GET /metrics = %d without %q:\n%s", code, want, body)
		}
	}

	srv.Stop()
	waitStatus := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := get("/readyz")
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("readyz = %d %s, want %d", code, body, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitStatus(http.StatusServiceUnavailable)
	srv.Restart()
	waitStatus(http.StatusOK)
}
