package provider

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testH1(t testing.TB) *h1Transport {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := newH1Transport(d.DialContext, &http.Transport{}, 1000)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// connCounter counts the connections a test server accepted and closed.
type connCounter struct {
	opened, closed atomic.Int64
	closedCh       chan struct{}
}

func countConns(srv *httptest.Server) *connCounter {
	cc := &connCounter{closedCh: make(chan struct{}, 1000)}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			cc.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			cc.closed.Add(1)
			cc.closedCh <- struct{}{}
		}
	}
	return cc
}

func get(t testing.TB, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return string(b)
}

func TestH1ReusesOneConnection(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.Write([]byte("part one, "))
			w.(http.Flusher).Flush() // forces chunked encoding
			w.Write([]byte("part two"))
			return
		}
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	}))
	cc := countConns(srv)
	srv.Start()
	defer srv.Close()
	c := &http.Client{Transport: testH1(t)}
	for i := range 20 {
		path := fmt.Sprintf("/n%d", i)
		if i%2 == 1 {
			path = "/chunked"
		}
		want := "GET " + path
		if path == "/chunked" {
			want = "part one, part two"
		}
		if got := get(t, c, srv.URL+path); got != want {
			t.Fatalf("request %d: body %q, want %q", i, got, want)
		}
	}
	if n := cc.opened.Load(); n != 1 {
		t.Fatalf("20 sequential requests opened %d connections, want 1", n)
	}
}

func TestH1PostBodyAndHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo", r.Header.Get("X-Test"))
		fmt.Fprintf(w, "%s %d %s %s", r.Method, r.ContentLength, r.Header.Get("Content-Type"), b)
	}))
	defer srv.Close()
	c := &http.Client{Transport: testH1(t)}
	for range 3 {
		resp, err := c.Post(srv.URL+"/x", "application/json", strings.NewReader(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got, want := string(b), `POST 7 application/json {"a":1}`; got != want {
			t.Fatalf("body %q, want %q", got, want)
		}
	}
	req, _ := http.NewRequest("PUT", srv.URL, nil)
	req.Header.Set("X-Test", "héllo")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Echo"); got != "héllo" {
		t.Fatalf("header echoed as %q", got)
	}
}

func TestH1RefusesHeaderInjection(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c := &http.Client{Transport: testH1(t)}
	for _, h := range [][2]string{{"X-A", "v\r\nX-Injected: 1"}, {"X-A", "v\nb"}, {"X A", "v"}, {"X:A", "v"}} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header[h[0]] = []string{h[1]}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("header %q: %q was sent", h[0], h[1])
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("server saw %d requests", n)
	}
}

// rawServer accepts connections and hands each to serve.
func rawServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); serve(c) })
		}
	})
	return "http://" + ln.Addr().String()
}

// readRequest reads one request off c, body included.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return req, err
}

// A server that answers and then closes without saying so leaves a dead
// connection in the pool. A replayable request that meets it is sent again
// on a new connection, once; a request that cannot be replayed fails.
func TestH1RetriesOnAConnectionTheServerClosed(t *testing.T) {
	var conns, requests atomic.Int64
	url := rawServer(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		requests.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		// and close: no Connection: close header
	})
	tr := testH1(t)
	tr.checkAfter = time.Hour // no peek: the retry must do it
	c := &http.Client{Transport: tr}
	for i := range 3 {
		if got := get(t, c, url); got != "ok" {
			t.Fatalf("GET %d: %q", i, got)
		}
	}
	for i := range 3 {
		req, _ := http.NewRequest("POST", url, strings.NewReader("body"))
		req.Header.Set("Idempotency-Key", fmt.Sprint("k", i))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("POST with an idempotency key %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body) // read to the end: the connection goes back to the pool
		resp.Body.Close()
	}
	if got := requests.Load(); got != 6 {
		t.Fatalf("server answered %d requests, want 6", got)
	}
	// A POST without a key on the dead connection is not sent again.
	resp, err := c.Post(url, "text/plain", strings.NewReader("body"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("a POST without an idempotency key was replayed on a new connection")
	}
	if got := requests.Load(); got != 6 {
		t.Fatalf("server answered %d requests, want still 6", got)
	}
}

// A connection idle past checkAfter is peeked at before reuse, so a server
// that closed it costs no failed write.
func TestH1PeeksAtLongIdleConnections(t *testing.T) {
	var requests atomic.Int64
	closed := make(chan struct{}, 10)
	url := rawServer(t, func(c net.Conn) {
		if _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		requests.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close()
		closed <- struct{}{}
	})
	tr := testH1(t)
	tr.checkAfter = 0
	c := &http.Client{Transport: tr}
	get(t, c, url)
	<-closed
	// The pooled connection is dead; the peek must find it, so even a POST
	// without a key (never replayed) goes through.
	resp, err := c.Post(url, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatalf("POST after the server closed the idle connection: %v", err)
	}
	resp.Body.Close()
	if got := requests.Load(); got != 2 {
		t.Fatalf("server answered %d requests, want 2", got)
	}
}

func TestH1ConnectionsNotReused(t *testing.T) {
	cases := map[string]string{
		"connection close":  "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"close delimited":   "HTTP/1.0 200 OK\r\n\r\nok",
		"unsolicited bytes": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			var conns atomic.Int64
			url := rawServer(t, func(c net.Conn) {
				conns.Add(1)
				br := bufio.NewReader(c)
				for {
					if _, err := readRequest(br); err != nil {
						return
					}
					io.WriteString(c, answer)
					if name == "close delimited" {
						return
					}
				}
			})
			tr := testH1(t)
			tr.checkAfter = time.Hour
			c := &http.Client{Transport: tr}
			for i := range 3 {
				if got := get(t, c, url); got != "ok" {
					t.Fatalf("GET %d: %q", i, got)
				}
			}
			if got := conns.Load(); got != 3 {
				t.Fatalf("3 requests used %d connections, want 3", got)
			}
		})
	}
}

func TestH1InformationalAnswersAreSkipped(t *testing.T) {
	url := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
		}
	})
	c := &http.Client{Transport: testH1(t)}
	for range 2 {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 || string(b) != "done" {
			t.Fatalf("got %d %q, want 201 done", resp.StatusCode, b)
		}
	}
}

func TestH1CapsTheResponseHead(t *testing.T) {
	url := rawServer(t, func(c net.Conn) {
		if _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 70<<10)+"\r\nContent-Length: 0\r\n\r\n")
	})
	c := &http.Client{Transport: testH1(t)}
	resp, err := c.Get(url)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a 70 KiB head was accepted")
	}
	if !strings.Contains(err.Error(), "exceeded 65536 bytes") {
		t.Fatalf("error %v does not name the cap", err)
	}
}

// stallingServer never finishes an answer: on /head it sends nothing, on
// /body the head and half the body, until the client goes or the test ends.
func stallingServer(t *testing.T) (*httptest.Server, *connCounter) {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Header().Set("Content-Length", "10")
			w.Write([]byte("12345"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	cc := countConns(srv)
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv, cc
}

// The request's context bounds the whole call: waiting for the head and
// reading the body. The connection is not reused afterwards.
func TestH1ContextEndsTheCall(t *testing.T) {
	srv, cc := stallingServer(t)
	c := &http.Client{Transport: testH1(t)}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/head", nil)
	_, err := c.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for the head: %v, want the deadline", err)
	}
	<-cc.closedCh

	ctx2, cancel2 := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx2, "GET", srv.URL+"/body", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel2()
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("reading the body after cancel: %v, want context.Canceled", err)
	}
	resp.Body.Close()
	<-cc.closedCh
}

// A deadline given to roundTripUntil bounds the wait for the head and the
// body, without a context of its own.
func TestH1DeadlineEndsTheCall(t *testing.T) {
	srv, cc := stallingServer(t)
	tr := testH1(t)

	req, _ := http.NewRequest("GET", srv.URL+"/head", nil)
	start := time.Now()
	_, err := tr.roundTripUntil(req, start.Add(100*time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("waiting for the head: %v, want os.ErrDeadlineExceeded", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("the call ended after %s, before its deadline", d)
	}
	<-cc.closedCh

	req, _ = http.NewRequest("GET", srv.URL+"/body", nil)
	resp, err := tr.roundTripUntil(req, time.Now().Add(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("reading a stalled body: %v, want os.ErrDeadlineExceeded", err)
	}
	resp.Body.Close()
	<-cc.closedCh
}

// A pooled connection keeps the deadline of its last call; one that passed
// while it sat idle must not fail the next call, nor the idle check that
// reads from it.
func TestH1ReusesAConnectionPastItsLastDeadline(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	cc := countConns(srv)
	srv.Start()
	defer srv.Close()
	tr := testH1(t)
	tr.checkAfter = 0

	call := func(deadline time.Time) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		resp, err := tr.roundTripUntil(req, deadline)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "ok" {
			t.Fatalf("body %q, %v", b, err)
		}
		resp.Body.Close()
	}
	first := time.Now().Add(50 * time.Millisecond)
	call(first)
	time.Sleep(time.Until(first) + 10*time.Millisecond) // the idle connection's deadline passes
	call(time.Now().Add(time.Second))
	call(time.Time{})
	if n := cc.opened.Load(); n != 1 {
		t.Fatalf("%d connections opened, want the first one reused", n)
	}
}

// A body closed before its end takes its connection with it: the rest of
// the answer would be read as the next one's head.
func TestH1UnreadBodyClosesTheConnection(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 100<<10)))
	}))
	cc := countConns(srv)
	srv.Start()
	defer srv.Close()
	c := &http.Client{Transport: testH1(t)}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-cc.closedCh
	if got := get(t, c, srv.URL); len(got) != 100<<10 {
		t.Fatalf("second body %d bytes", len(got))
	}
	if n := cc.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestH1PrunesIdleConnections(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	cc := countConns(srv)
	srv.Start()
	defer srv.Close()
	tr := testH1(t)
	tr.idleTimeout = 50 * time.Millisecond
	c := &http.Client{Transport: tr}
	// Three calls at once leave three idle connections.
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 3 {
		wg.Go(func() { <-start; get(t, c, srv.URL) })
	}
	close(start)
	wg.Wait()
	opened := cc.opened.Load()
	for range opened {
		<-cc.closedCh // the transport closes each once it has idled 50 ms
	}
	tr.mu.Lock()
	n := tr.nidle
	tr.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d idle connections left after pruning", n)
	}
	if got := get(t, c, srv.URL); got != "" {
		t.Fatalf("body %q", got)
	}
}

func TestH1ManyCallsAtOnce(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	cc := countConns(srv)
	srv.Start()
	defer srv.Close()
	tr := testH1(t)
	tr.maxIdle = 50
	c := &http.Client{Transport: tr}
	const callers, calls = 100, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers*calls)
	for g := range callers {
		wg.Go(func() {
			for i := range calls {
				want := fmt.Sprintf("%d-%d", g, i)
				req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(want))
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != want {
					errs <- fmt.Errorf("got %q (%v), want %q", b, err, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tr.mu.Lock()
	idle := tr.nidle
	tr.mu.Unlock()
	if idle > 50 {
		t.Fatalf("%d idle connections kept, cap 50", idle)
	}
	if n := cc.opened.Load(); n > callers*calls/2 {
		t.Fatalf("%d connections for %d calls: keep-alive is not working", n, callers*calls)
	}
	t.Logf("%d calls over %d connections, %d idle at the end", callers*calls, cc.opened.Load(), idle)
}

func TestH1HandsHTTPSToTheFallback(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	defer srv.Close()
	d := &net.Dialer{}
	tr := newH1Transport(d.DialContext, srv.Client().Transport, 10)
	defer tr.CloseIdleConnections()
	if got := get(t, &http.Client{Transport: tr}, srv.URL); got != "HTTP/1.1" {
		t.Fatalf("got %q", got)
	}
}

// BenchmarkTransport compares net/http's Transport with h1Transport, 256
// callers against one in-process server. The server's CPU is in the
// figure too; the difference is the client's.
func BenchmarkTransport(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	d := &net.Dialer{}
	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"net-http", &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1000, MaxIdleConns: 1000}},
		{"h1", newH1Transport(d.DialContext, &http.Transport{}, 1000)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := &http.Client{Transport: bc.rt}
			b.SetParallelism(128)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(srv.URL + "/x")
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			c.CloseIdleConnections()
		})
	}
}

// writeRequest puts on the wire what req.Write does: both outputs parse
// into the same request, and the unusual requests it hands to req.Write
// come out byte for byte the same.
func TestWriteRequestMatchesRequestWrite(t *testing.T) {
	type shape struct {
		name   string
		own    bool // written by writeRequest itself, not req.Write
		method string
		url    string
		body   string
		header map[string][]string
		edit   func(*http.Request)
	}
	shapes := []shape{
		{name: "GET", own: true, method: "GET", url: "http://api.example:8080/v1/charge?id=7&x=%20y"},
		{name: "POST with body", own: true, method: "POST", url: "http://api.example/v1/charge", body: `{"amount":100}`,
			header: map[string][]string{"Content-Type": {"application/json"}, "Idempotency-Key": {"job-1"}, "User-Agent": {"switchyard/1"}}},
		{name: "POST without body", own: true, method: "POST", url: "http://api.example/v1/ping"},
		{name: "DELETE without body", own: true, method: "DELETE", url: "http://api.example/v1/x"},
		{name: "HEAD", own: true, method: "HEAD", url: "http://api.example/"},
		{name: "PUT, escaped path, several values", own: true, method: "PUT", url: "http://api.example/a%2Fb/c%20d", body: "xyz",
			header: map[string][]string{"X-Many": {"one", " two "}, "Authorization": {"Bearer s3cret"}}},
		{name: "empty user agent", own: true, method: "GET", url: "http://api.example/", header: map[string][]string{"User-Agent": {""}}},
		{name: "host override", own: true, method: "GET", url: "http://127.0.0.1:9/", edit: func(r *http.Request) { r.Host = "api.example" }},
		{name: "IPv6 host", own: true, method: "GET", url: "http://[::1]:8080/x"},
		// Handed to req.Write.
		{name: "close", method: "GET", url: "http://api.example/", edit: func(r *http.Request) { r.Close = true }},
		{name: "unknown length", method: "POST", url: "http://api.example/", body: "abc", edit: func(r *http.Request) { r.ContentLength = -1 }},
		{name: "zone", method: "GET", url: "http://[fe80::1%25eth0]:80/"},
	}
	build := func(t *testing.T, sh shape) *http.Request {
		var body io.Reader
		if sh.body != "" {
			body = strings.NewReader(sh.body)
		}
		req, err := http.NewRequest(sh.method, sh.url, body)
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range sh.header {
			req.Header[k] = vs
		}
		if sh.edit != nil {
			sh.edit(req)
		}
		return req
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			if _, _, own := plainRequest(build(t, sh)); own != sh.own {
				t.Fatalf("written by writeRequest itself: %v, want %v", own, sh.own)
			}
			var ours, theirs strings.Builder
			bw := bufio.NewWriter(&ours)
			if err := writeRequest(bw, build(t, sh)); err != nil {
				t.Fatal(err)
			}
			bw.Flush()
			if err := build(t, sh).Write(&theirs); err != nil {
				t.Fatal(err)
			}
			a, err := http.ReadRequest(bufio.NewReader(strings.NewReader(ours.String())))
			if err != nil {
				t.Fatalf("ours does not parse: %v\n%s", err, ours.String())
			}
			b, err := http.ReadRequest(bufio.NewReader(strings.NewReader(theirs.String())))
			if err != nil {
				t.Fatal(err)
			}
			ab, _ := io.ReadAll(a.Body)
			bb, _ := io.ReadAll(b.Body)
			if a.Method != b.Method || a.RequestURI != b.RequestURI || a.Host != b.Host || a.Proto != b.Proto ||
				a.ContentLength != b.ContentLength || fmt.Sprint(a.TransferEncoding) != fmt.Sprint(b.TransferEncoding) ||
				fmt.Sprint(a.Header) != fmt.Sprint(b.Header) || string(ab) != string(bb) {
				t.Fatalf("ours:\n%s\nreq.Write:\n%s", ours.String(), theirs.String())
			}
			if len(ours.String()) != len(theirs.String()) {
				t.Fatalf("ours is %d bytes, req.Write's %d:\n%s\n%s", len(ours.String()), len(theirs.String()), ours.String(), theirs.String())
			}
		})
	}
}

// A body shorter or longer than its ContentLength is an error, as in
// req.Write, and the body is closed either way.
func TestWriteRequestBodyLength(t *testing.T) {
	for _, tc := range []struct {
		body string
		n    int64
	}{{"abc", 5}, {"abcdef", 3}} {
		closed := false
		req, _ := http.NewRequest("POST", "http://api.example/", nil)
		req.Body = closeFunc{strings.NewReader(tc.body), func() { closed = true }}
		req.ContentLength = tc.n
		var sb strings.Builder
		bw := bufio.NewWriter(&sb)
		err := writeRequest(bw, req)
		if err == nil || !strings.Contains(err.Error(), "ContentLength") {
			t.Errorf("body %q with ContentLength %d: %v, want a length error", tc.body, tc.n, err)
		}
		if !closed {
			t.Errorf("body %q not closed", tc.body)
		}
	}
}

type closeFunc struct {
	io.Reader
	close func()
}

func (c closeFunc) Close() error { c.close(); return nil }
