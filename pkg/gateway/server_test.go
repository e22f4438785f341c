package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"

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
