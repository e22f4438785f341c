package faulttest

import (
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/mockapi"
)

// provider is the mock third-party API on a fixed loopback port that can
// go down (listener and every connection closed: calls in flight fail,
// new ones are refused) and come back on the same port.
type provider struct {
	mock *mockapi.Server
	addr string

	mu  sync.Mutex
	srv *http.Server
}

func startProvider(t *testing.T, cfg mockapi.Config) *provider {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := &provider{mock: mockapi.New(cfg)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *provider) url() string { return "http://" + p.addr }

func (p *provider) serve(ln net.Listener) {
	srv := &http.Server{Handler: p.mock, ReadHeaderTimeout: 10 * time.Second}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener and every connection.
func (p *provider) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		_ = p.srv.Close()
		p.srv = nil
	}
}

// up listens on the same address again.
func (p *provider) up(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", p.addr)
		if err == nil {
			p.serve(ln)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("provider: listen again on %s: %v", p.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
