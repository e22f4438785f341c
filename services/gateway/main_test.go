package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/gateway"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/streams"
)

// started runs the gateway main in the background and returns the URL it
// listens on, read from its log, and the channel run's error comes on.
func started(t *testing.T, ctx context.Context, args ...string) (url string, done <-chan error) {
	t.Helper()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := run(ctx, append(args, "--log-format", "json"), pw)
		pw.CloseWithError(io.EOF)
		errc <- err
	}()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct{ Msg, URL string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "gateway listening" {
				select {
				case urls <- line.URL:
				default:
				}
			}
		}
		close(urls)
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			t.Fatalf("the gateway ended before it listened: %v", <-errc)
		}
		return u, errc
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not start within 30s")
	}
	return "", nil
}

// TestGatewayServiceEnqueuesAndStops runs the gateway main against an
// external server: a job posted with a token is stored in JOBS (which the
// main created), and cancel stops it.
func TestGatewayServiceEnqueuesAndStops(t *testing.T) {
	srv := natstest.Start(t)
	t.Setenv("SWITCHYARD_GATEWAY__TOKENS", "t0ken")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, done := started(t, ctx, "--nats-url", srv.URL(), "--listen", "127.0.0.1:0")

	post := func(token string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, url+"/v1/jobs?lane=bulk",
			strings.NewReader(`{"id": "svc-1", "provider": "acme", "task": "ping", "request": {"path": "/ping"}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := post("wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d, want 401", resp.StatusCode)
	}
	resp := post("t0ken")
	var acc gateway.Accepted
	if err := json.NewDecoder(resp.Body).Decode(&acc); err != nil || resp.StatusCode != http.StatusAccepted ||
		len(acc.Jobs) != 1 || acc.Jobs[0] != (gateway.JobResult{ID: "svc-1", Status: gateway.StatusStored, StreamSeq: 1}) {
		t.Fatalf("answer %d %+v (%v)", resp.StatusCode, acc, err)
	}
	_, js := srv.Connect(t)
	s, err := js.Stream(ctx, streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil || m.Subject != "jobs.acme.bulk.ping" {
		t.Fatalf("stored message: %+v, %v", m, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not stop within 30s of cancel")
	}
	if _, err := http.Get(url + "/healthz"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("after exit: %v, want the connection refused", err)
	}
}

// TestGatewayServiceStartErrors: a config that cannot work fails the start
// and names the key.
func TestGatewayServiceStartErrors(t *testing.T) {
	srv := natstest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tests := []struct {
		name    string
		listen  string
		wantErr string
	}{
		{"port taken", ln.Addr().String(), "gateway.listen: "},
		{"beyond loopback without tokens", ":0", "config: gateway: tokens: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			err := run(context.Background(), []string{"--nats-url", srv.URL(), "--listen", tt.listen, "--log-format", "json"}, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
