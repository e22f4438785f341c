package mockapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hangTimeout bounds waits for events that should come at once: a
// deadline for a hang, not a wait for the event.
const hangTimeout = 10 * time.Second

// await receives from ch, failing the test if nothing comes within
// hangTimeout.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangTimeout):
		t.Fatalf("no %s within %s", what, hangTimeout)
		panic("unreachable")
	}
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// setupLean serves h with serveLean on a local port until cleanup, when it
// checks that serveLean returns nil. It returns the base URL, the listener
// and a client with a pool of its own.
func setupLean(t testing.TB, h http.Handler) (string, *countingListener, *http.Client) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: inner}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serveLean(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serveLean returned %v, want nil", err)
			}
		case <-time.After(hangTimeout):
			t.Error("serveLean still running after cancel")
		}
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	t.Cleanup(tr.CloseIdleConnections)
	return "http://" + inner.Addr().String(), ln, &http.Client{Transport: tr}
}

// exchange is what a test compares of an answer.
type exchange struct {
	status        int
	proto         string
	header        http.Header
	contentLength int64
	body          string
}

type request struct {
	method, path string
	header       map[string]string
	body         string
}

func roundTrip(t *testing.T, client *http.Client, base string, rq request) exchange {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), rq.method, base+rq.path, strings.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	if rq.body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return exchange{resp.StatusCode, resp.Proto, resp.Header, resp.ContentLength, string(body)}
}

// TestLeanMatchesNetHTTP sends the same requests to two Multis on frozen
// clocks, one served by serveLean and one by net/http, and compares the
// answers: status, every header but Date, and body.
func TestLeanMatchesNetHTTP(t *testing.T) {
	t.Parallel()
	per := map[string]Config{
		"limited": {RateLimit: 1, Burst: 2, LimitMode: LimitHeaders},
		"retry":   {RateLimit: 1, Burst: 1, RetryAfter: 3 * time.Second},
		"silent":  {RateLimit: 1, Burst: 1, LimitMode: LimitSilent},
		"broken":  {ErrorRate: 1},
		"custom":  {IdempotencyHeader: "X-Request-Id"},
	}
	newHandler := func() http.Handler {
		m, err := newMulti(Config{}, per, frozen)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	leanURL, ln, leanClient := setupLean(t, newHandler())
	std := serve(t, newHandler())
	stdClient := std.Client()

	key := func(k string) map[string]string { return map[string]string{DefaultIdempotencyHeader: k} }
	requests := []request{
		{method: "GET", path: "/acme/v1/items?x=1&y=2"},
		{method: "POST", path: "/acme/v1/items", header: key("k1"), body: "hello"},
		{method: "POST", path: "/acme/v1/items", header: key("k1"), body: "hello"},
		{method: "PATCH", path: "/acme/v1/items/a%20b?expand=lines", header: key("k2"), body: `{"a":1}`},
		{method: "PUT", path: "/acme/v1/big", body: strings.Repeat("x", 100<<10)},
		{method: "POST", path: "/acme/v1/max", body: strings.Repeat("y", LeanMaxBody)},
		{method: "DELETE", path: "/acme/v1/items/1"},
		{method: "OPTIONS", path: "/acme/v1/items"},
		{method: "GET", path: "/acme/a(b)/c;d=1"},
		{method: "GET", path: "/acme/%41bc/%2F"},
		{method: "GET", path: "/acme/x?q=%zz&r="},
		{method: "GET", path: "/acme/x?"},
		{method: "GET", path: "/acme/status/503"},
		{method: "GET", path: "/acme/status/204"},
		{method: "GET", path: "/acme/status/429"},
		{method: "GET", path: "/acme/status/418"},
		{method: "GET", path: "/acme/status/abc"},
		{method: "GET", path: "/broken/v1/x"},
		{method: "GET", path: "/Acme/x"},
		{method: "GET", path: "/a%2Fb/x"},
		{method: "GET", path: "/stats/x"},
		{method: "POST", path: "/custom/x", header: map[string]string{"X-Request-Id": "r1", DefaultIdempotencyHeader: "ignored"}},
		{method: "POST", path: "/limited/x", header: key("l1")},
		{method: "POST", path: "/limited/x", header: key("l2")},
		{method: "POST", path: "/limited/x", header: key("l3")},
		{method: "GET", path: "/retry/x"},
		{method: "GET", path: "/retry/x"},
		{method: "GET", path: "/silent/x"},
		{method: "GET", path: "/silent/x"},
		{method: "GET", path: "/healthz"},
		{method: "HEAD", path: "/healthz"},
		{method: "POST", path: "/healthz"},
		{method: "GET", path: "/stats"},
		{method: "GET", path: "/stats/reset"},
		{method: "POST", path: "/stats/reset"},
		{method: "GET", path: "/stats"},
		{method: "GET", path: "/acme/after-reset", header: key("k1")},
	}
	got := make([]exchange, len(requests))
	for i, rq := range requests {
		want := roundTrip(t, stdClient, std.URL, rq)
		got[i] = roundTrip(t, leanClient, leanURL, rq)
		delete(want.header, "Date")
		name := fmt.Sprintf("request %d, %s %s", i, rq.method, rq.path)
		g := got[i]
		if g.status != want.status || g.proto != want.proto {
			t.Errorf("%s: %s %d, want %s %d (net/http)", name, g.proto, g.status, want.proto, want.status)
		}
		if !reflect.DeepEqual(g.header, want.header) {
			t.Errorf("%s: header\n%v\nwant (net/http)\n%v", name, g.header, want.header)
		}
		if g.contentLength != want.contentLength {
			t.Errorf("%s: ContentLength %d, want %d (net/http)", name, g.contentLength, want.contentLength)
		}
		if g.body != want.body {
			t.Errorf("%s: body\n%.300s\nwant (net/http)\n%.300s", name, g.body, want.body)
		}
	}
	// Some answers that show the mock at work, lest both servers agree on
	// something else.
	for _, tt := range []struct {
		i            int
		status       int
		header, want string
		body         string // a substring
	}{
		{2, 200, "Content-Type", "application/json", `"calls":2`},
		{5, 200, "Content-Type", "application/json", `"body_bytes":1048576`},
		{12, 503, "Retry-After", "1", `"status":503`},
		{13, 204, "Content-Length", "", ""},
		{21, 200, "Content-Type", "application/json", `"idempotency_key":"r1"`},
		{24, 429, "X-Ratelimit-Remaining", "0", `"rate limited"`},
		{26, 429, "Retry-After", "3", `"rate limited"`},
		{28, 429, "Retry-After", "", ""},
		{30, 200, "Content-Length", strconv.Itoa(len(got[29].body)), ""},
		{31, 405, "Allow", "GET", `use GET`},
		{35, 200, "Content-Type", "application/json", `"requests":0`},
		{36, 200, "Content-Type", "application/json", `"calls":1`},
	} {
		g := got[tt.i]
		if g.status != tt.status || g.header.Get(tt.header) != tt.want || !strings.Contains(g.body, tt.body) {
			t.Errorf("request %d: status %d, %s %q, body %.200s; want %d, %q, %s",
				tt.i, g.status, tt.header, g.header.Get(tt.header), g.body, tt.status, tt.want, tt.body)
		}
	}
	if n := ln.accepted.Load(); n != 1 {
		t.Errorf("the lean server accepted %d connections for %d requests in turn, want 1 (keep-alive)", n, len(requests))
	}
}

// rawConn is a client connection that speaks raw bytes.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, base string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A deadline for a hang, not a wait for the event.
	if err := c.SetDeadline(time.Now().Add(hangTimeout)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, raw string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
}

// read reads one answer to a request with method.
func (c *rawConn) read(t *testing.T, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a body: %v", err)
	}
	return resp, string(body)
}

// closed reports whether the server closed the connection: the next read
// ends rather than blocking until the deadline.
func (c *rawConn) closed(t *testing.T) bool {
	t.Helper()
	_, err := c.br.ReadByte()
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
		return true
	}
	if err == nil {
		t.Error("more bytes after the answers")
	} else {
		t.Errorf("waiting for the server to close: %v", err)
	}
	return false
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

// TestLeanRaw sends requests as bytes, well-formed or not, and checks the
// answers and whether the connection stays open.
func TestLeanRaw(t *testing.T) {
	t.Parallel()
	m, err := NewMulti(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, _, _ := setupLean(t, m)
	get := "GET /acme/x HTTP/1.1\r\nHost: a\r\n\r\n"
	withHeader := func(h string) string { return "GET /acme/x HTTP/1.1\r\nHost: a\r\n" + h + "\r\n" }
	var many strings.Builder
	for i := range LeanMaxHeaders + 1 {
		fmt.Fprintf(&many, "X-H%d: v\r\n", i)
	}
	tests := []struct {
		name       string
		raw        string
		want       []int
		wantBody   string // a substring of the first answer's body
		wantClosed bool
	}{
		{"one", get, []int{200}, `"path":"/acme/x"`, false},
		{"pipelined", get + "POST /acme/y?z=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" + get, []int{200, 200, 200}, "", false},
		{"blank lines first", "\r\n\r\n" + get, []int{200}, "", false},
		{"bare line feeds", "GET /acme/x HTTP/1.1\nHost: a\n\n", []int{200}, "", false},
		{"absolute form", "GET http://example.com/acme/x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", []int{200}, `"query":"q=1"`, false},
		{"same length twice", "POST /acme/x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", []int{200}, `"body_bytes":2`, false},
		{
			"chunked with trailer",
			"POST /acme/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n" + get,
			[]int{200, 200}, `"body_bytes":11`, false,
		},
		{"100-continue", withHeader("Content-Length: 2\r\nExpect: 100-continue\r\n") + "ab", []int{100, 200}, "", false},
		{"lone long line", withHeader("X-Long: " + strings.Repeat("a", 8<<10) + "\r\n"), []int{200}, "", false},

		{"HTTP/1.0", "GET /acme/x HTTP/1.0\r\n\r\n", []int{200}, `"path":"/acme/x"`, true},
		{"Connection: close", withHeader("Connection: keep-alive, Close\r\n"), []int{200}, "", true},
		{"bad chunk", "POST /acme/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", []int{200}, `"body_bytes":0`, true},

		{"garbage", "GARBAGE\r\n\r\n", []int{400}, "400 Bad Request", true},
		{"bad method", "G(T /acme/x HTTP/1.1\r\nHost: a\r\n\r\n", []int{400}, "invalid method", true},
		{"control byte in target", "GET /acme/\x01 HTTP/1.1\r\nHost: a\r\n\r\n", []int{400}, "", true},
		{"bad target", "GET acme HTTP/1.1\r\nHost: a\r\n\r\n", []int{400}, "", true},
		{"bad version", "GET /acme/x HTTP/1.x\r\nHost: a\r\n\r\n", []int{400}, "", true},
		{"HTTP/2.0", "GET /acme/x HTTP/2.0\r\nHost: a\r\n\r\n", []int{505}, "", true},
		{"no Host", "GET /acme/x HTTP/1.1\r\n\r\n", []int{400}, "missing required Host", true},
		{"two Hosts", withHeader("Host: b\r\n"), []int{400}, "too many Host", true},
		{"space before colon", withHeader("X-A : 1\r\n"), []int{400}, "", true},
		{"no colon", withHeader("X-A\r\n"), []int{400}, "", true},
		{"line folding", withHeader("X-A: 1\r\n 2\r\n"), []int{400}, "", true},
		{"control byte in value", withHeader("X-A: 1\x002\r\n"), []int{400}, "", true},
		{"header too large", withHeader("X-Long: " + strings.Repeat("a", LeanMaxHeaderBytes) + "\r\n"), []int{431}, "", true},
		{"too many headers", withHeader(many.String()), []int{431}, "", true},
		{"body too large", withHeader("Content-Length: " + strconv.Itoa(LeanMaxBody+1) + "\r\n"), []int{413}, "", true},
		{"huge length", withHeader("Content-Length: 99999999999999999999999\r\n"), []int{413}, "", true},
		{"negative length", withHeader("Content-Length: -1\r\n"), []int{400}, "Content-Length", true},
		{"length not a number", withHeader("Content-Length: 12a\r\n"), []int{400}, "Content-Length", true},
		{"empty length", withHeader("Content-Length: \r\n"), []int{400}, "Content-Length", true},
		{"lengths differ", withHeader("Content-Length: 1\r\nContent-Length: 2\r\n"), []int{400}, "Content-Length", true},
		{"gzip coding", withHeader("Transfer-Encoding: gzip\r\n"), []int{501}, "", true},
		{"chunked and length", withHeader("Transfer-Encoding: chunked\r\nContent-Length: 2\r\n"), []int{400}, "", true},
		{"other expectation", withHeader("Expect: 200-ok\r\n"), []int{417}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, base)
			c.send(t, tt.raw)
			for i, want := range tt.want {
				resp, body := c.read(t, "GET")
				if resp.StatusCode != want {
					t.Fatalf("answer %d: status %d, want %d; body %q", i, resp.StatusCode, want, body)
				}
				if i == 0 && !strings.Contains(body, tt.wantBody) {
					t.Errorf("body %q, want it to contain %q", body, tt.wantBody)
				}
				if want >= 400 && (!resp.Close || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8") {
					t.Errorf("error answer: Close %v, Content-Type %q", resp.Close, resp.Header.Get("Content-Type"))
				}
				if want == 200 && resp.Close != tt.wantClosed {
					t.Errorf("answer %d: Connection: close is %v, want %v", i, resp.Close, tt.wantClosed)
				}
			}
			if tt.wantClosed {
				c.closed(t)
				return
			}
			// Still open: it serves another request.
			c.send(t, get)
			if resp, body := c.read(t, "GET"); resp.StatusCode != 200 {
				t.Errorf("next request: status %d, body %q", resp.StatusCode, body)
			}
		})
	}
}

// TestLeanHTTP10 checks the status line of an answer to HTTP/1.0.
func TestLeanHTTP10(t *testing.T) {
	t.Parallel()
	base, _, _ := setupLean(t, New(Config{}))
	c := dialRaw(t, base)
	c.send(t, "GET /x HTTP/1.0\r\n\r\n")
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.0 200 OK\r\n" {
		t.Errorf("status line %q (%v), want HTTP/1.0 200 OK", line, err)
	}
}

// seenRequest is what a handler saw of its request, copied before it
// returns.
type seenRequest struct {
	Method, Path, RawPath, RawQuery, RequestURI string
	Proto                                       string
	ProtoMinor                                  int
	Host, RemoteAddr                            string
	Header                                      http.Header
	ContentLength                               int64
	TransferEncoding                            []string
	Close                                       bool
	Body                                        string
	BodyErr                                     error
	CtxErr                                      error
}

// TestLeanRequest checks the Request a handler gets, and that nothing of
// one request shows in the next on the same connection.
func TestLeanRequest(t *testing.T) {
	t.Parallel()
	seen := make(chan seenRequest, 1)
	base, _, _ := setupLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		seen <- seenRequest{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery, RequestURI: r.RequestURI,
			Proto: r.Proto, ProtoMinor: r.ProtoMinor, Host: r.Host, RemoteAddr: r.RemoteAddr, Header: r.Header.Clone(),
			ContentLength: r.ContentLength, TransferEncoding: slices.Clone(r.TransferEncoding), Close: r.Close,
			Body: string(body), BodyErr: err, CtxErr: r.Context().Err(),
		}
	}))
	c := dialRaw(t, base)
	remote := c.LocalAddr().String()
	tests := []struct {
		raw  string
		want seenRequest
	}{
		{
			"POST /v1/a%20b?x=1&y HTTP/1.1\r\nhost: example.com:8080\r\nidempotency-key: k-1\r\nx-multi: a\r\nX-Multi: b\r\n" +
				"x-some-thing:  v  \r\ncontent-length: 5\r\nCONTENT-TYPE: text/plain\r\n\r\nhello",
			seenRequest{
				Method: "POST", Path: "/v1/a b", RawQuery: "x=1&y", RequestURI: "/v1/a%20b?x=1&y",
				Proto: "HTTP/1.1", ProtoMinor: 1, Host: "example.com:8080", RemoteAddr: remote,
				Header: http.Header{
					"Idempotency-Key": {"k-1"}, "X-Multi": {"a", "b"}, "X-Some-Thing": {"v"},
					"Content-Length": {"5"}, "Content-Type": {"text/plain"},
				},
				ContentLength: 5, Body: "hello",
			},
		},
		{
			"GET /v1/(x) HTTP/1.1\r\nHost: h\r\nIdempotency-Key: k-2\r\n\r\n",
			seenRequest{
				Method: "GET", Path: "/v1/(x)", RawPath: "/v1/(x)", RequestURI: "/v1/(x)",
				Proto: "HTTP/1.1", ProtoMinor: 1, Host: "h", RemoteAddr: remote,
				Header: http.Header{"Idempotency-Key": {"k-2"}},
			},
		},
		{
			"PUT /v1/c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			seenRequest{
				Method: "PUT", Path: "/v1/c", RequestURI: "/v1/c",
				Proto: "HTTP/1.1", ProtoMinor: 1, Host: "h", RemoteAddr: remote,
				Header: http.Header{"Connection": {"close"}}, ContentLength: -1, TransferEncoding: []string{"chunked"},
				Close: true, Body: "abc",
			},
		},
	}
	for i, tt := range tests {
		c.send(t, tt.raw)
		resp, body := c.read(t, "GET")
		if resp.StatusCode != 200 || body != "" || resp.ContentLength != 0 {
			t.Errorf("request %d: status %d, ContentLength %d, body %q; want 200 and nothing", i, resp.StatusCode, resp.ContentLength, body)
		}
		if got := await(t, seen, "request"); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("request %d: the handler saw\n%+v\nwant\n%+v", i, got, tt.want)
		}
	}
}

// TestLeanResponseWriter checks answers of handlers that use the
// ResponseWriter in various ways, over a Go client.
func TestLeanResponseWriter(t *testing.T) {
	t.Parallel()
	writeErr := make(chan error, 2)
	base, ln, client := setupLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/none":
		case "/204", "/304":
			code, _ := strconv.Atoi(r.URL.Path[1:])
			w.WriteHeader(code)
			_, err := w.Write([]byte("x"))
			writeErr <- err
		case "/103":
			h.Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			h.Del("Link")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("made"))
		case "/twice":
			w.WriteHeader(http.StatusAccepted)
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "a")
			_, _ = w.Write([]byte("b"))
		case "/typed":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Length", "999") // the server counts for itself
			_, _ = io.WriteString(w, "typed")
		case "/untyped":
			_, _ = io.WriteString(w, "<html>")
		case "/split":
			h.Set("X-A", "1\r\nX-Injected: 2")
			h["Bad Name"] = []string{"x"}
		case "/close":
			h.Set("Connection", "close")
		case "/unread":
			// Leaves the body to the server.
		case "/599":
			w.WriteHeader(599)
		}
	}))
	tests := []struct {
		method, path string
		body         string
		want         int
		wantHeader   http.Header // besides Content-Length
		wantLength   string      // "" for none
		wantBody     string
	}{
		{"GET", "/none", "", 200, http.Header{}, "0", ""},
		{"GET", "/204", "", 204, http.Header{}, "", ""},
		{"GET", "/304", "", 304, http.Header{}, "", ""},
		{"GET", "/103", "", 201, http.Header{}, "4", "made"},
		{"GET", "/twice", "", 202, http.Header{}, "2", "ab"},
		{"GET", "/typed", "", 200, http.Header{"Content-Type": {"text/plain"}}, "5", "typed"},
		{"HEAD", "/typed", "", 200, http.Header{"Content-Type": {"text/plain"}}, "5", ""},
		{"HEAD", "/none", "", 200, http.Header{}, "", ""},
		{"GET", "/untyped", "", 200, http.Header{}, "6", "<html>"},
		{"GET", "/split", "", 200, http.Header{"X-A": {"1  X-Injected: 2"}}, "0", ""},
		{"POST", "/unread", strings.Repeat("u", 100<<10), 200, http.Header{}, "0", ""},
		{"GET", "/599", "", 599, http.Header{}, "0", ""},
		{"GET", "/close", "", 200, http.Header{}, "0", ""},
	}
	var early []int
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
			early = append(early, code)
			return nil
		},
	})
	for _, tt := range tests {
		req, _ := http.NewRequestWithContext(ctx, tt.method, base+tt.path, strings.NewReader(tt.body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := resp.Header.Clone()
		length := got.Get("Content-Length")
		delete(got, "Content-Length")
		if resp.StatusCode != tt.want || length != tt.wantLength || string(body) != tt.wantBody || !reflect.DeepEqual(got, tt.wantHeader) {
			t.Errorf("%s %s: status %d, Content-Length %q, header %v, body %q\nwant %d, %q, %v, %q",
				tt.method, tt.path, resp.StatusCode, length, got, body, tt.want, tt.wantLength, tt.wantHeader, tt.wantBody)
		}
		if resp.Close != (tt.path == "/close") {
			t.Errorf("%s %s: Close %v", tt.method, tt.path, resp.Close)
		}
	}
	for _, code := range []int{204, 304} {
		if err := await(t, writeErr, "Write error"); !errors.Is(err, http.ErrBodyNotAllowed) {
			t.Errorf("Write after %d: err %v, want http.ErrBodyNotAllowed", code, err)
		}
	}
	if !slices.Equal(early, []int{103}) {
		t.Errorf("1xx answers %v, want [103]", early)
	}
	// Only the handler's Connection: close ended a connection.
	if n := ln.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestLeanChunkedClient sends bodies of unknown length, which Go's client
// sends chunked.
func TestLeanChunkedClient(t *testing.T) {
	t.Parallel()
	m, err := NewMulti(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, ln, client := setupLean(t, m)
	for _, n := range []int{0, 1, 5000, LeanMaxBody} {
		// A reader of no known length.
		body := io.MultiReader(strings.NewReader(strings.Repeat("c", n)))
		req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/acme/x", body)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf(`"body_bytes":%d`, n); resp.StatusCode != 200 || !strings.Contains(string(data), want) || resp.Close {
			t.Errorf("%d bytes chunked: status %d, Close %v, body %s; want 200 with %s", n, resp.StatusCode, resp.Close, data, want)
		}
	}
	if n := ln.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	// Past the limit: the mock reads its 1 MiB, and the connection closes
	// after the answer.
	req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/acme/x", io.MultiReader(strings.NewReader(strings.Repeat("c", LeanMaxBody+1))))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close || !strings.Contains(string(data), fmt.Sprintf(`"body_bytes":%d`, LeanMaxBody)) {
		t.Errorf("over the limit: status %d, Close %v, body %s", resp.StatusCode, resp.Close, data)
	}
}

// TestLeanExpectContinue: the server answers 100 before the client sends
// its body, as curl waits for with a large body.
func TestLeanExpectContinue(t *testing.T) {
	t.Parallel()
	base, _, _ := setupLean(t, New(Config{}))
	c := dialRaw(t, base)
	c.send(t, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	// Only once the 100 is read does the body go.
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q (%v), want HTTP/1.1 100 Continue", line, err)
	}
	if blank, err := c.br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after the 100: %q (%v)", blank, err)
	}
	c.send(t, "hello")
	if resp, body := c.read(t, "POST"); resp.StatusCode != 200 || !strings.Contains(body, `"body_bytes":5`) {
		t.Errorf("status %d, body %s", resp.StatusCode, body)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveLeanServer serves s on a local port and returns its base URL and a
// channel that receives what Serve returns.
func serveLeanServer(t *testing.T, s *LeanServer) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return "http://" + ln.Addr().String(), served
}

// TestLeanPanic: a handler's panic closes its connection without an
// answer and is logged, but for http.ErrAbortHandler; the server goes on.
func TestLeanPanic(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s := NewLeanServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			panic(http.ErrAbortHandler)
		case "/bad-code":
			w.WriteHeader(42)
		}
	}), slog.New(slog.NewTextHandler(&logs, nil)))
	base, _ := serveLeanServer(t, s)
	for _, path := range []string{"/panic", "/abort", "/bad-code"} {
		c := dialRaw(t, base)
		c.send(t, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		if !c.closed(t) {
			t.Errorf("%s: the connection stays open", path)
		}
	}
	c := dialRaw(t, base)
	c.send(t, "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := c.read(t, "GET"); resp.StatusCode != 200 {
		t.Errorf("after the panics: status %d", resp.StatusCode)
	}
	got := logs.String()
	if !strings.Contains(got, "panic=boom") || !strings.Contains(got, "invalid WriteHeader code 42") || strings.Contains(got, "abort") {
		t.Errorf("logs:\n%s\nwant the panic boom and the bad code, not the abort", got)
	}
}

// TestLeanManyClients: 200 keep-alive clients, 20 requests each, with
// latency; every request is answered, once, over at most 200 connections.
func TestLeanManyClients(t *testing.T) {
	t.Parallel()
	const clients, each = 200, 20
	m, err := NewMulti(Config{LatencyMin: time.Millisecond, LatencyMax: 5 * time.Millisecond, Seed: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, ln, client := setupLean(t, m)
	client.Transport.(*http.Transport).MaxConnsPerHost = clients
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for g := range clients {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("c%d-%d", g, i)
				req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/acme/v1/x", strings.NewReader(`{"i":1}`))
				req.Header.Set(DefaultIdempotencyHeader, key)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				var e echo
				err = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || e.IdempotencyKey != key || e.Calls != 1 || e.BodyBytes != 7 {
					errs <- fmt.Errorf("%s: status %d, echo %+v, %v", key, resp.StatusCode, e, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := m.Stats().Total
	if st.Requests != clients*each || st.ByStatus[200] != clients*each || st.InFlight != 0 ||
		st.PeakInFlight > clients || st.PeakInFlight < 2 || st.Keys != clients*each || st.Duplicates != 0 {
		t.Errorf("stats %+v; want %d requests, all 200, peak in flight in [2, %d], %[1]d keys, no duplicates", st, clients*each, clients)
	}
	if n := ln.accepted.Load(); n > clients {
		t.Errorf("%d connections for %d clients", n, clients)
	}
}

// leanFrames are the functions of the lean server's goroutines.
var leanFrames = []string{"mockapi.(*leanConn)", "mockapi.(*LeanServer)", "mockapi.serveLean"}

// leanGoroutines returns the stacks of goroutines running the lean server,
// waiting a moment for those that are returning.
func leanGoroutines() string {
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(hangTimeout)
	for {
		all := string(buf[:runtime.Stack(buf, true)])
		var found []string
		for g := range strings.SplitSeq(all, "\n\n") {
			for _, f := range leanFrames {
				if strings.Contains(g, f) {
					found = append(found, g)
					break
				}
			}
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return strings.Join(found, "\n\n")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestServeLeanCancel cancels serveLean's context while requests wait out
// an hour's latency: they end at once, unanswered and counted canceled,
// and no goroutine of the server is left. It does not run in parallel: it
// looks at every goroutine.
func TestServeLeanCancel(t *testing.T) {
	const n = 20
	m, err := NewMulti(Config{LatencyMin: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m.Provider("slow")
	arrived := make(chan struct{}, n)
	s.started = func() { arrived <- struct{}{} }

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- serveLean(ctx, ln, m) }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	callErrs := make(chan error, n)
	for range n {
		go func() {
			resp, err := client.Get("http://" + ln.Addr().String() + "/slow/x")
			if err == nil {
				resp.Body.Close()
			}
			callErrs <- err
		}()
	}
	for range n {
		await(t, arrived, "request in flight")
	}
	if got := m.Stats().Total.InFlight; got != n {
		t.Fatalf("%d in flight, want %d", got, n)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serveLean returned %v, want nil", err)
		}
	case <-time.After(hangTimeout):
		t.Fatal("serveLean still running after cancel")
	}
	for range n {
		if err := await(t, callErrs, "end of a cut request"); err == nil {
			t.Error("a cut request got an answer")
		}
	}
	if st := m.Stats().Total; st.Canceled != n || st.InFlight != 0 || st.Requests != n || len(st.ByStatus) != 0 {
		t.Errorf("stats %+v, want %d requests all canceled", st, n)
	}
	if left := leanGoroutines(); left != "" {
		t.Errorf("goroutines left after serveLean returned:\n%s", left)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener still accepts")
	}
}

// TestLeanShutdown: Shutdown closes the listener and idle connections at
// once, lets a request in progress answer, with Connection: close, and
// returns once it has.
func TestLeanShutdown(t *testing.T) {
	t.Parallel()
	m, err := NewMulti(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	held, _ := m.Provider("held")
	arrived, release := make(chan struct{}), make(chan struct{})
	held.started = func() {
		close(arrived)
		<-release
	}
	s := NewLeanServer(m, slog.New(slog.DiscardHandler))
	base, served := serveLeanServer(t, s)

	idle := dialRaw(t, base)
	idle.send(t, "GET /acme/x HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := idle.read(t, "GET"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	busy := dialRaw(t, base)
	busy.send(t, "GET /held/x HTTP/1.1\r\nHost: a\r\n\r\n")
	await(t, arrived, "request in flight")

	shutdown := make(chan error, 1)
	go func() { shutdown <- s.Shutdown(context.Background()) }()
	if err := await(t, served, "end of Serve"); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
	if !idle.closed(t) {
		t.Error("the idle connection stays open")
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with a request in progress", err)
	default:
	}
	close(release)
	resp, body := busy.read(t, "GET")
	if resp.StatusCode != 200 || !resp.Close || !strings.Contains(body, `"path":"/held/x"`) {
		t.Errorf("held request: status %d, Close %v, body %s; want 200 with Connection: close", resp.StatusCode, resp.Close, body)
	}
	if !busy.closed(t) {
		t.Error("the busy connection stays open after its answer")
	}
	select {
	case err := <-shutdown:
		if err != nil {
			t.Errorf("Shutdown returned %v, want nil", err)
		}
	case <-time.After(hangTimeout):
		t.Fatal("Shutdown still running after the last request")
	}
	if err := s.Serve(newNeverListener()); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown returned %v", err)
	}
}

// TestLeanShutdownTimeout: Shutdown gives up when its context is done and
// Close then cuts the request in progress.
func TestLeanShutdownTimeout(t *testing.T) {
	t.Parallel()
	m, err := NewMulti(Config{LatencyMin: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	slow, _ := m.Provider("slow")
	arrived := make(chan struct{})
	slow.started = func() { close(arrived) }
	s := NewLeanServer(m, slog.New(slog.DiscardHandler))
	base, _ := serveLeanServer(t, s)
	c := dialRaw(t, base)
	c.send(t, "GET /slow/x HTTP/1.1\r\nHost: a\r\n\r\n")
	await(t, arrived, "request in flight")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown returned %v, want context.Canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close returned %v", err)
	}
	if !c.closed(t) {
		t.Error("the cut request's connection stays open")
	}
	if st := m.Stats().Total; st.Canceled != 1 || st.InFlight != 0 {
		t.Errorf("stats %+v, want the request canceled", st)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close returned %v", err)
	}
}

// fakeListener returns the errors in errs from Accept, then blocks until
// closed.
type fakeListener struct {
	errs   chan error
	closed chan struct{}
	once   sync.Once
}

func newNeverListener(errs ...error) *fakeListener {
	l := &fakeListener{errs: make(chan error, len(errs)), closed: make(chan struct{})}
	for _, err := range errs {
		l.errs <- err
	}
	return l
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case err := <-l.errs:
		return nil, err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fakeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// temporaryError is an accept error worth retrying, such as EMFILE.
type temporaryError struct{}

func (temporaryError) Error() string   { return "too many open files" }
func (temporaryError) Temporary() bool { return true }
func (temporaryError) Timeout() bool   { return false }

// TestLeanAcceptErrors: a temporary accept error is logged and retried, any
// other is returned, by Serve and by serveLean.
func TestLeanAcceptErrors(t *testing.T) {
	t.Parallel()
	broken := errors.New("listener broken")
	var logs syncBuffer
	s := NewLeanServer(http.NotFoundHandler(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err := s.Serve(newNeverListener(temporaryError{}, temporaryError{}, broken)); !errors.Is(err, broken) {
		t.Errorf("Serve returned %v, want %v", err, broken)
	}
	if got := strings.Count(logs.String(), "too many open files"); got != 2 {
		t.Errorf("logs:\n%s\nwant the two temporary errors", logs.String())
	}
	if err := serveLean(t.Context(), newNeverListener(broken), http.NotFoundHandler()); !errors.Is(err, broken) {
		t.Errorf("serveLean returned %v, want %v", err, broken)
	}
}

// FuzzLeanTarget checks the fast path for plain request targets against
// url.ParseRequestURI, which net/http uses.
func FuzzLeanTarget(f *testing.F) {
	for _, s := range []string{
		"/", "/a/b", "/a?b=c", "/a?", "/a?b?c", "/a%20b", "/a(b)", "/a:b@c;d=e,f+g$h&i", "//x/y", "/x#y",
		"/é", "/a/../b", "/.", "/~u/_x-y.z", "*", "http://h/p", "/a?%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if target == "" || strings.ContainsFunc(target, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return
		}
		c := &leanConn{}
		if !c.parseTarget(target) {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("%q: taken as plain, but url.ParseRequestURI fails: %v", target, err)
		}
		if *u != c.url || u.EscapedPath() != c.url.EscapedPath() || c.req.URL != &c.url {
			t.Fatalf("%q: got %#v, url.ParseRequestURI gives %#v", target, c.url, *u)
		}
	})
}

// BenchmarkServeLeanRoundTrip is BenchmarkServeHTTP over the lean server.
func BenchmarkServeLeanRoundTrip(b *testing.B) {
	base, _, client := setupLean(b, New(Config{}))
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(base+"/v1/x", "application/json", strings.NewReader(`{"a":1}`))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkServerRaw measures the servers with a client that costs next to
// nothing: 32 connections each write a request the Go client would send
// and read the answer by its Content-Length, so allocs/op are the server's
// and cpu-ns/op, the process's CPU time per request where /proc is there
// to read it, is mostly the server's and the kernel's.
func BenchmarkServerRaw(b *testing.B) {
	servers := []struct {
		name  string
		serve func(b *testing.B, h http.Handler) string
	}{
		{"lean", func(b *testing.B, h http.Handler) string {
			base, _, _ := setupLean(b, h)
			return base
		}},
		{"net-http", func(b *testing.B, h http.Handler) string {
			ts := httptest.NewServer(h)
			b.Cleanup(ts.Close)
			return ts.URL
		}},
	}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			addr := strings.TrimPrefix(srv.serve(b, New(Config{})), "http://")
			head := "POST /v1/x HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 7\r\n" +
				"Content-Type: application/json\r\nIdempotency-Key: 0199a1b2-c3d4-7e5f-8a9b-"
			var n atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			cpu := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				req := []byte(head)
				for pb.Next() {
					req = strconv.AppendInt(req[:len(head)], 1e12+n.Add(1), 16)
					req = append(req, "\r\nAccept-Encoding: gzip\r\n\r\n{\"a\":1}"...)
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					if err := readRawAnswer(br); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if used := cpuTime() - cpu; cpu >= 0 && used >= 0 {
				b.ReportMetric(float64(used)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// cpuTime returns the CPU time this process has used, user and system, from
// /proc/self/stat in clock ticks of 10 ms; -1 without /proc.
func cpuTime() time.Duration {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	// The fields after the command, which is in parentheses: utime and
	// stime are the 12th and 13th.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// readRawAnswer reads an answer's head and its Content-Length bytes.
func readRawAnswer(br *bufio.Reader) error {
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return err
			}
		}
	}
	if length < 0 {
		return errors.New("no Content-Length")
	}
	_, err := br.Discard(length)
	return err
}

// serveLean serves h on ln with a LeanServer until ctx is done, then
// closes it (see LeanServer.Close): ln is closed, the requests' contexts
// are cancelled, so that the mock's handlers stop waiting out their
// latency, and serveLean returns nil once every connection is closed and
// its goroutine has ended. An error of ln.Accept that is not temporary is
// returned at once, after the same close.
func serveLean(ctx context.Context, ln net.Listener, h http.Handler) error {
	s := NewLeanServer(h, nil)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	select {
	case err := <-served:
		_ = s.Close()
		return err
	case <-ctx.Done():
	}
	_ = s.Close()
	<-served // http.ErrServerClosed
	return nil
}
