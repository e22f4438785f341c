package api_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/recorder/api"
)

func TestNewClientBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "127.0.0.1:8472", "ftp://host", "http://", "://x"} {
		if _, err := api.NewClient(u, "", nil); err == nil {
			t.Errorf("NewClient(%q) succeeded", u)
		}
	}
	c, err := api.NewClient("http://127.0.0.1:8472/", "", nil)
	if err != nil || c.URL() != "http://127.0.0.1:8472" {
		t.Errorf("NewClient with a trailing slash: %v, %v", c, err)
	}
}

func TestClientUnreachable(t *testing.T) {
	t.Parallel()
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := api.NewClient("http://"+addr, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Jobs(context.Background(), api.ListQuery{})
	if !errors.Is(err, api.ErrUnreachable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("err = %v, want ErrUnreachable naming %s", err, addr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Job(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled call: %v, want context.Canceled", err)
	}
}

// TestClientNotTheAPI: something else answering on the port gives an
// error that says so rather than a JSON syntax error.
func TestClientNotTheAPI(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/jobs" {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>hello</html>"))
			return
		}
		http.Error(w, "nope", http.StatusTeapot)
	}))
	defer srv.Close()
	c, err := api.NewClient(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Jobs(context.Background(), api.ListQuery{})
	if err == nil || !strings.Contains(err.Error(), "not JSON") || !strings.Contains(err.Error(), "<html>hello") {
		t.Errorf("200 text/html: %v", err)
	}
	_, err = c.Job(context.Background(), "x")
	if err == nil || !strings.Contains(err.Error(), "418") || !strings.Contains(err.Error(), "nope") {
		t.Errorf("418 text/plain: %v", err)
	}
}

// TestClientEscapesIDs: ids travel as one path segment.
func TestClientEscapesIDs(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.EscapedPath()
		http.Error(w, "{}", http.StatusNotFound)
	}))
	defer srv.Close()
	c, _ := api.NewClient(srv.URL, "", nil)
	_, _ = c.Job(context.Background(), "a b?c")
	if path := <-got; path != "/v1/jobs/a%20b%3Fc" {
		t.Errorf("path = %q", path)
	}
}

func TestProblemError(t *testing.T) {
	t.Parallel()
	p := &api.Problem{Status: 400, Title: "Bad Request", Detail: "limit: too big"}
	if p.Error() != "400 Bad Request: limit: too big" {
		t.Errorf("Error() = %q", p.Error())
	}
}
