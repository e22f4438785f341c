package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

func TestPrivateAddr(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "127.255.255.254": true, "10.0.0.1": true, "172.16.0.1": true, "172.31.255.255": true,
		"192.168.0.1": true, "169.254.169.254": true, "0.0.0.0": true, "0.1.2.3": true, "100.64.0.1": true,
		"100.100.100.200": true, "198.18.0.1": true, "224.0.0.1": true, "255.255.255.255": true, "192.0.0.170": true,
		"::1": true, "::": true, "fe80::1": true, "fe80::1%eth0": true, "fd00:ec2::254": true, "ff02::1": true,
		"::ffff:127.0.0.1": true, "::ffff:169.254.169.254": true, "64:ff9b::7f00:1": true, "64:ff9b::a9fe:a9fe": true,
		"93.184.215.14": false, "8.8.8.8": false, "172.32.0.1": false, "100.128.0.1": false, "2606:4700::1": false,
		"64:ff9b::808:808": false, "::ffff:8.8.8.8": false,
	} {
		if got := privateAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("privateAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

// unchecked builds a provider without Validate, as if the base_url's name
// had resolved to a public address when the config was loaded and to a
// private one (DNS rebinding) when the call dials.
func unchecked(t *testing.T, cfg Config) *Provider {
	t.Helper()
	p, err := build("acme", cfg.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestDialRefusesPrivateAddressesWithoutOptIn(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndexByte(srv.URL, ':'):]
	// localhost resolves to 127.0.0.1 or ::1 through /etc/hosts: a name
	// the config check does not resolve, as a rebinding name would be.
	for _, base := range []string{srv.URL, "http://localhost" + port} {
		p := unchecked(t, Config{BaseURL: base, Timeout: 5 * time.Second})
		_, err := p.Call(context.Background(), &job.Job{V: 1, ID: "j1", Provider: "acme", Task: "t", Request: job.Request{Path: "/x"}})
		var perr *Error
		if !errors.As(err, &perr) || !errors.Is(err, ErrPrivateNetwork) {
			t.Fatalf("base %s: Call error = %v, want an *Error matching ErrPrivateNetwork", base, err)
		}
		if perr.Retryable || perr.Class != job.ClassNetwork {
			t.Errorf("base %s: error class %s retryable %v, want network, not retryable", base, perr.Class, perr.Retryable)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the private server got %d calls", n)
	}
	// The opt-in lets the same call through.
	p := unchecked(t, Config{BaseURL: srv.URL, AllowPrivateNetwork: true})
	if _, err := p.Call(context.Background(), &job.Job{V: 1, ID: "j1", Provider: "acme", Task: "t", Request: job.Request{Path: "/x"}}); err != nil {
		t.Fatalf("with allow_private_network: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the server got %d calls, want 1", n)
	}
}

func TestRedirects(t *testing.T) {
	t.Setenv("SWITCHYARD_TEST_REDIRECT_TOKEN", "s3cr3t-redirect")
	var elsewhereCalls atomic.Int64
	var elsewhereAuth atomic.Value
	elsewhere := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		elsewhereCalls.Add(1)
		elsewhereAuth.Store(r.Header.Get("X-Api-Key"))
	}))
	t.Cleanup(elsewhere.Close)
	var loops atomic.Int64
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/here":
			http.Redirect(w, r, "/api/there", http.StatusFound)
		case "/api/there":
			if r.Header.Get("X-Api-Key") != "s3cr3t-redirect" {
				w.WriteHeader(http.StatusUnauthorized)
			}
		case "/api/away":
			http.Redirect(w, r, elsewhere.URL+"/stolen", http.StatusTemporaryRedirect)
		case "/api/loop":
			loops.Add(1)
			http.Redirect(w, r, "/api/loop", http.StatusFound)
		}
	}))
	t.Cleanup(home.Close)
	auth := AuthConfig{Header: "X-Api-Key", Env: "SWITCHYARD_TEST_REDIRECT_TOKEN"}
	call := func(policy, path string) (*Reply, error) {
		p := unchecked(t, Config{BaseURL: home.URL + "/api", FollowRedirects: policy, AllowPrivateNetwork: true, Auth: auth})
		return p.Call(context.Background(), &job.Job{V: 1, ID: "j1", Provider: "acme", Task: "t", Request: job.Request{Method: "POST", Path: path, Body: []byte(`{}`)}})
	}
	tests := []struct {
		policy, path string
		wantStatus   int
		wantErr      string
	}{
		{RedirectsOff, "/here", http.StatusFound, "follow_redirects: same_host"},
		{RedirectsSameHost, "/here", http.StatusOK, ""},
		{RedirectsOff, "/away", http.StatusTemporaryRedirect, "redirects are followed only"},
		{RedirectsSameHost, "/away", http.StatusTemporaryRedirect, "redirects are followed only"},
		{RedirectsSameHost, "/loop", http.StatusFound, "redirects are followed only"},
	}
	for _, tt := range tests {
		reply, err := call(tt.policy, tt.path)
		if reply == nil || reply.HTTPStatus != tt.wantStatus {
			t.Fatalf("%s %s: reply %+v, err %v; want status %d", tt.policy, tt.path, reply, err, tt.wantStatus)
		}
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s %s: err %v, want one containing %q", tt.policy, tt.path, err, tt.wantErr)
		}
	}
	if n := elsewhereCalls.Load(); n != 0 {
		t.Fatalf("the other host got %d calls (auth %q)", n, elsewhereAuth.Load())
	}
	if n := loops.Load(); n != MaxRedirects+1 {
		t.Errorf("a redirect loop made %d calls, want %d", n, MaxRedirects+1)
	}
}

// TestAnswerSizeIsCapped: headers beyond 64 KiB end the call; a body is
// kept up to response_body_limit and the rest is not stored.
func TestAnswerSizeIsCapped(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/headers" {
			for i := range 100 {
				w.Header().Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("h", 1<<10))
			}
		}
		_, _ = w.Write([]byte(strings.Repeat("b", 1<<20)))
	}))
	t.Cleanup(srv.Close)
	p := unchecked(t, Config{BaseURL: srv.URL, AllowPrivateNetwork: true, ResponseBodyLimit: 1000})
	call := func(path string) (*Reply, error) {
		return p.Call(context.Background(), &job.Job{V: 1, ID: "j1", Provider: "acme", Task: "t", Request: job.Request{Path: path}})
	}
	if reply, err := call("/headers"); reply != nil || err == nil || !strings.Contains(err.Error(), "exceeded") {
		t.Errorf("100 KiB of headers: reply %v, err %v; want no reply and an error", reply, err)
	}
	reply, err := call("/body")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(reply.Response.BodyText); got != 1000 || !reply.Response.Truncated {
		t.Errorf("1 MiB body kept as %d bytes, truncated %v; want 1000, true", got, reply.Response.Truncated)
	}
}
