package api_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/api"
)

func openStore(t *testing.T) *recorder.SQLite {
	t.Helper()
	store, err := recorder.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	srv := api.NewServer(recorder.APIConfig{Listen: "127.0.0.1:0", Token: "t"}, openStore(t), nil, logger)

	// Stop before Start is safe.
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown before Start: %v", err)
	}
	srv = api.NewServer(recorder.APIConfig{Listen: "127.0.0.1:0", Token: "t"}, openStore(t), nil, logger)
	if srv.URL() != "" || srv.Addr() != "" {
		t.Fatalf("URL %q, Addr %q before Start", srv.URL(), srv.Addr())
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err == nil {
		t.Error("a second Start succeeded")
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %q", srv.URL())
	}
	if !strings.Contains(logs.String(), srv.Addr()) {
		t.Errorf("the listening address is not logged:\n%s", logs)
	}

	c, err := api.NewClient(srv.URL(), "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	_, err = c.Job(ctx, "none")
	var p *api.Problem
	if !errors.As(err, &p) || p.Status != http.StatusNotFound {
		t.Fatalf("job: %v, want a 404 problem over the real listener", err)
	}

	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := c.Ready(ctx); !errors.Is(err, api.ErrUnreachable) {
		t.Fatalf("after Shutdown: %v, want ErrUnreachable", err)
	}
	if err := srv.Start(ctx); err == nil {
		t.Error("Start after Shutdown succeeded")
	}
}

func TestServerOff(t *testing.T) {
	t.Parallel()
	srv := api.NewServer(recorder.APIConfig{Listen: "-"}, openStore(t), nil, slog.New(slog.DiscardHandler))
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if srv.URL() != "" {
		t.Errorf("URL = %q with the API off", srv.URL())
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if api.Enabled(recorder.APIConfig{Listen: "-"}) || !api.Enabled(recorder.APIConfig{Listen: "127.0.0.1:8472"}) {
		t.Error("Enabled disagrees with the config doc")
	}
}

func TestServerPortTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := api.NewServer(recorder.APIConfig{Listen: ln.Addr().String()}, openStore(t), nil, slog.New(slog.DiscardHandler))
	err = srv.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "recorder.api.listen") {
		t.Fatalf("Start on a taken port: %v, want an error naming recorder.api.listen", err)
	}
}

// TestServerWarnsWhenOpen: all interfaces and no token is allowed, loudly.
func TestServerWarnsWhenOpen(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	srv := api.NewServer(recorder.APIConfig{Listen: "0.0.0.0:0"}, openStore(t), nil, slog.New(slog.NewJSONHandler(logs, nil)))
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "recorder.api.token") {
		t.Errorf("no warning about an open API:\n%s", logs)
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Errorf("URL = %q, want loopback for a server on all interfaces", srv.URL())
	}
}
