package mockapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the lean server. A request over one is answered with an error
// status and its connection closed.
const (
	// LeanMaxHeaderBytes bounds the request line and header fields
	// together: 431 beyond.
	LeanMaxHeaderBytes = 16 << 10
	// LeanMaxHeaders bounds the number of header fields: 431 beyond.
	LeanMaxHeaders = 100
	// LeanMaxBody bounds a request body: a larger Content-Length is
	// answered 413 at once; a chunked body is cut there (the handler's
	// reads fail) and its connection closed after the answer.
	LeanMaxBody = 1 << 20
)

const (
	// leanReadBuffer is each connection's read buffer: a request of the
	// load tests fits in it whole.
	leanReadBuffer = 4 << 10
	// leanKeepBuffer is the largest answer buffer a connection keeps for
	// its next request; a bigger one (a /stats of many providers) is
	// dropped rather than held by an idle connection.
	leanKeepBuffer = 64 << 10
	// leanCacheSize bounds each connection's caches of header names and
	// values; a cache that outgrows it starts over.
	leanCacheSize = 64
	// lingerTime and lingerBytes bound how long and how much a connection
	// closed after an error reads on, so that the client gets the answer
	// rather than a reset for the bytes it sent after its request.
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

// A connection's state, for Shutdown: only an idle one may be closed.
const (
	stateIdle   int32 = iota // between requests, or before the first
	stateActive              // a request is being read, handled or answered
	stateClosed              // closed by Shutdown while idle
)

// LeanServer serves an http.Handler with a minimal HTTP/1.1 server, for
// the mock's own process: a load test runs it next to the system it
// measures, and net/http's server spends far more CPU on each request (a
// background read and its deadlines, header maps, the Date header, the
// response's bookkeeping) than the mock's handlers do. It is a mock's
// server, not one for the internet:
//
//   - One goroutine per connection reads a request, runs the handler on it
//     and writes the whole answer in one write. Requests on a connection are
//     handled one at a time, pipelined ones too.
//   - No timeouts: a client that never finishes its request keeps its
//     connection until Close.
//   - The connection is not read while the handler runs, so a client that
//     hangs up is not noticed: the handler waits out its latency and its
//     answer goes nowhere. Every request's context is done only when Close
//     is called, so the mock's Stats.Canceled then counts only requests cut
//     by a shutdown.
//   - The answer is buffered whole; it carries the handler's headers, a
//     Content-Length (none for 1xx, 204 and 304), Connection: close when the
//     connection closes after it, and nothing else: no Date, and no
//     Content-Type unless the handler set one. Interim 1xx answers are
//     written before the final one, not at once. The ResponseWriter is not
//     an http.Flusher and cannot be hijacked.
//   - Request bodies may have a Content-Length (at most LeanMaxBody, else
//     413) or be chunked (cut at LeanMaxBody; trailers are read and
//     dropped); other transfer codings get 501. Expect: 100-continue is
//     answered 100 before the body is read; any other expectation gets 417.
//     What the handler leaves of a body is read and dropped after it
//     returns.
//   - HTTP/1.0 requests, and requests with Connection: close, get their
//     answer and then the connection is closed; there is no HTTP/1.0
//     keep-alive. HTTP/1.1 requests need a Host header.
//   - A malformed request gets 400, one with headers over the limits 431,
//     a protocol other than HTTP/1.x 505, and its connection is closed.
//   - A handler that panics has its connection closed without an answer;
//     the panic is logged, unless it is http.ErrAbortHandler.
//
// To save allocations each connection reuses its Request, the Request's
// URL, Header and Body, and the ResponseWriter's header map between
// requests: a handler must not keep any of them after it returns (the
// mock's handlers do not). Strings from the request, header values
// included, are never reused for other contents and may be kept.
type LeanServer struct {
	handler http.Handler
	logger  *slog.Logger
	// ctx is every request's context; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// tmpl is an empty request on ctx; each request starts as a copy.
	tmpl http.Request

	// closing is set by Shutdown and Close; quit is closed then.
	closing atomic.Bool
	quit    chan struct{}

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*leanConn]struct{}
	// wg counts the connections' goroutines. Add is only called under mu
	// before closing is set, so Wait after that waits for all of them.
	wg sync.WaitGroup
}

// NewLeanServer returns a LeanServer that serves h and logs handler panics
// and accept errors to logger, or to slog.Default() when logger is nil.
func NewLeanServer(h http.Handler, logger *slog.Logger) *LeanServer {
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &LeanServer{
		handler:   h,
		logger:    logger,
		ctx:       ctx,
		cancel:    cancel,
		quit:      make(chan struct{}),
		listeners: make(map[*net.Listener]struct{}),
		conns:     make(map[*leanConn]struct{}),
	}
	s.tmpl = *(&http.Request{}).WithContext(ctx)
	return s
}

// Serve accepts connections on ln and serves each in its own goroutine. It
// returns http.ErrServerClosed once Shutdown or Close was called, or the
// first error of ln.Accept that is not temporary; temporary ones, such as
// too many open files, are logged and retried after a growing pause, as
// net/http does. It closes ln when it returns.
func (s *LeanServer) Serve(ln net.Listener) error {
	defer ln.Close()
	l := &ln
	if !s.trackListener(l, true) {
		return http.ErrServerClosed
	}
	defer s.trackListener(l, false)
	var pause time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var temp interface{ Temporary() bool }
			if !errors.As(err, &temp) || !temp.Temporary() {
				return err
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.logger.Warn("mockapi: accept failed; retrying", "err", err, "pause", pause.String())
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-s.quit:
				t.Stop()
			}
			continue
		}
		pause = 0
		c := s.newConn(rwc)
		if !s.trackConn(c) {
			rwc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// Shutdown stops the server gracefully: it closes the listeners and the
// idle connections, lets each request in progress finish and answer (with
// Connection: close) and closes its connection then. It returns nil once
// every connection is closed, or ctx.Err() if ctx is done first; Close
// then cuts the requests still running. A connection accepted but with no
// request yet counts as idle.
func (s *LeanServer) Shutdown(ctx context.Context) error {
	_ = s.beginClose()
	s.mu.Lock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.rwc.Close()
		}
	}
	s.mu.Unlock()
	// A connection that went idle after the loop sees closing set and
	// closes itself.
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the server at once: it closes the listeners, cancels every
// request's context and closes every connection, then waits for the
// connections' goroutines, which takes as long as the slowest handler
// takes to return once its context is done (the mock's at once). A request
// cut this way gets no answer. It returns the error of closing a listener,
// if any, and may be called more than once, after Shutdown too.
func (s *LeanServer) Close() error {
	err := s.beginClose()
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.rwc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// beginClose sets closing and closes the listeners.
func (s *LeanServer) beginClose() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.CompareAndSwap(false, true) {
		close(s.quit)
	}
	var err error
	for l := range s.listeners {
		if e := (*l).Close(); e != nil && err == nil {
			err = e
		}
		delete(s.listeners, l)
	}
	return err
}

// trackListener adds or removes l; adding fails once the server closes.
func (s *LeanServer) trackListener(l *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, l)
		return true
	}
	if s.closing.Load() {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

// trackConn adds c and counts its goroutine; it fails once the server
// closes.
func (s *LeanServer) trackConn(c *leanConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *LeanServer) untrackConn(c *leanConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// leanConn is one connection and what it reuses from request to request.
// Only its goroutine touches it, but for rwc.Close and state.
type leanConn struct {
	srv   *LeanServer
	rwc   net.Conn
	br    *bufio.Reader
	state atomic.Int32

	remoteAddr string
	// head holds the request line and header fields being parsed.
	head []byte
	// out holds the answer being written.
	out []byte

	req    http.Request
	url    url.URL
	header http.Header
	// values backs header's one-value slices.
	values []string
	body   leanBody
	w      leanResponse

	// target is the last request target; the next request to the same
	// one reuses the string.
	target string
	// names maps header names as sent, when not among commonNames, to
	// their canonical form; last maps a canonical name to the value it
	// had last, to reuse the string when it comes again.
	names map[string]string
	last  map[string]string
}

func (s *LeanServer) newConn(rwc net.Conn) *leanConn {
	c := &leanConn{
		srv:        s,
		rwc:        rwc,
		br:         bufio.NewReaderSize(rwc, leanReadBuffer),
		remoteAddr: rwc.RemoteAddr().String(),
		header:     make(http.Header, 8),
		names:      make(map[string]string),
		last:       make(map[string]string),
	}
	c.body.br = c.br
	c.w.header = make(http.Header, 8)
	return c
}

// serve handles the connection's requests until it closes.
func (c *leanConn) serve() {
	defer c.srv.untrackConn(c)
	defer c.rwc.Close()
	for {
		// Wait idle for the next request's first byte.
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // Shutdown closed it meanwhile
		}
		if !c.serveRequest() {
			return
		}
		c.state.Store(stateIdle)
		// After the store: Shutdown either sees this connection idle or
		// has set closing before this load.
		if c.srv.closing.Load() {
			return
		}
	}
}

// leanError is a request refused before the handler: status and why. A
// status of 0 means the connection failed and there is no one to answer.
type leanError struct {
	status int
	reason string
}

var (
	errConnGone       = &leanError{}
	errHeaderTooLarge = &leanError{http.StatusRequestHeaderFieldsTooLarge, ""}
)

func badRequest(reason string) *leanError { return &leanError{http.StatusBadRequest, reason} }

// serveRequest reads one request, runs the handler and answers. It reports
// whether the connection may serve another request.
func (c *leanConn) serveRequest() bool {
	if e := c.readHead(); e != nil {
		c.fail(e)
		return false
	}
	var h reqHead
	if e := c.parseHead(&h); e != nil {
		c.fail(e)
		return false
	}
	if h.expectContinue && (h.contentLength > 0 || h.chunked) {
		if _, err := io.WriteString(c.rwc, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			return false
		}
	}

	w := &c.w
	w.reset(c.req.Method == http.MethodHead)
	if !c.runHandler() {
		return false
	}
	bodyRead := c.body.finish()
	if !w.written() && c.srv.ctx.Err() != nil {
		// Close cut the handler short: it has nothing to say and the
		// connection is closed.
		return false
	}
	closeAfter := h.close || !bodyRead || w.closeAfter() || c.srv.closing.Load()
	if err := c.writeResponse(closeAfter); err != nil {
		return false
	}
	if closeAfter {
		if !bodyRead || c.br.Buffered() > 0 {
			c.linger()
		}
		return false
	}
	c.recycle()
	return true
}

// runHandler runs the handler on the request, reporting false if it
// panicked.
func (c *leanConn) runHandler() (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v != http.ErrAbortHandler {
				c.srv.logger.Error("mockapi: handler panicked", "remote", c.remoteAddr,
					"method", c.req.Method, "target", c.req.RequestURI, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
		}
	}()
	c.srv.handler.ServeHTTP(&c.w, &c.req)
	return true
}

// recycle drops what the request left that the next must not see, and
// buffers grown too large to keep.
func (c *leanConn) recycle() {
	clear(c.header)
	clear(c.values)
	c.values = c.values[:0]
	clear(c.w.header)
	if cap(c.w.body) > leanKeepBuffer {
		c.w.body = nil
	}
	if cap(c.out) > leanKeepBuffer {
		c.out = nil
	}
	c.req = http.Request{}
}

// readHead reads the request line and header fields into c.head, without
// the blank line that ends them. Blank lines before the request line are
// skipped, as RFC 9112 allows.
func (c *leanConn) readHead() *leanError {
	c.head = c.head[:0]
	total := 0 // bytes read, skipped blank lines included
	start := 0 // where the current line starts in c.head
	for {
		line, err := c.br.ReadSlice('\n')
		total += len(line)
		if total > LeanMaxHeaderBytes {
			return errHeaderTooLarge
		}
		c.head = append(c.head, line...)
		if err == bufio.ErrBufferFull {
			continue // a line longer than the buffer
		}
		if err != nil {
			// EOF or a closed connection: nothing to answer; a request
			// cut short goes unanswered, as with net/http.
			return errConnGone
		}
		if l := c.head[start:]; len(l) == 1 || len(l) == 2 && l[0] == '\r' {
			if start == 0 {
				c.head = c.head[:0]
				continue
			}
			c.head = c.head[:start]
			return nil
		}
		start = len(c.head)
	}
}

// reqHead is what parseHead learns about a request beyond c.req.
type reqHead struct {
	contentLength  int64 // -1 when absent
	chunked        bool
	close          bool
	expectContinue bool
}

// parseHead parses c.head into c.req, checking it as net/http would.
func (c *leanConn) parseHead(h *reqHead) *leanError {
	head := c.head
	line, head := cutLine(head)
	method, rest, ok1 := cutByte(line, ' ')
	target, proto, ok2 := cutByte(rest, ' ')
	if !ok1 || !ok2 {
		return badRequest("malformed request line")
	}
	if len(method) == 0 || !isToken(method) {
		return badRequest("invalid method")
	}
	var major, minor int
	switch string(proto) {
	case "HTTP/1.1":
		major, minor = 1, 1
	case "HTTP/1.0":
		major, minor = 1, 0
	default:
		if len(proto) == 8 && string(proto[:5]) == "HTTP/" && isDigit(proto[5]) && proto[6] == '.' && isDigit(proto[7]) {
			return &leanError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
		}
		return badRequest("malformed HTTP version")
	}
	if len(target) == 0 {
		return badRequest("empty request target")
	}
	for _, b := range target {
		if b <= ' ' || b == 0x7f {
			return badRequest("invalid request target")
		}
	}

	c.req = c.srv.tmpl
	r := &c.req
	r.Method = internMethod(method)
	if c.target != string(target) {
		c.target = string(target)
	}
	r.RequestURI = c.target
	if !c.parseTarget(c.target) {
		u, err := url.ParseRequestURI(c.target)
		if err != nil {
			return badRequest("invalid request target")
		}
		r.URL = u
	}
	r.ProtoMajor, r.ProtoMinor = major, minor
	if minor == 1 {
		r.Proto = "HTTP/1.1"
	} else {
		r.Proto = "HTTP/1.0"
	}
	r.Header = c.header
	r.RemoteAddr = c.remoteAddr

	h.contentLength = -1
	h.close = minor == 0
	var host, contentLength string
	hosts, lengths, expects, codings, n := 0, 0, 0, 0, 0
	for len(head) > 0 {
		if n++; n > LeanMaxHeaders {
			return errHeaderTooLarge
		}
		line, head = cutLine(head)
		if line[0] == ' ' || line[0] == '\t' {
			return badRequest("obsolete line folding")
		}
		rawName, rawValue, ok := cutByte(line, ':')
		if !ok || len(rawName) == 0 || !isToken(rawName) {
			return badRequest("malformed header field")
		}
		rawValue = trimSpace(rawValue)
		if !validValue(rawValue) {
			return badRequest("invalid header value")
		}
		name := c.headerName(rawName)
		switch name {
		case "Host":
			hosts++
			host = c.headerValue(name, rawValue)
			continue // net/http keeps it in r.Host only
		case "Transfer-Encoding":
			codings++
			if !equalFold(rawValue, "chunked") || codings > 1 {
				return &leanError{http.StatusNotImplemented, "unsupported transfer encoding"}
			}
			h.chunked = true
			continue // in r.TransferEncoding, as with net/http
		case "Expect":
			expects++
			if !equalFold(rawValue, "100-continue") || expects > 1 {
				return &leanError{http.StatusExpectationFailed, "unsupported expectation"}
			}
			h.expectContinue = minor == 1
			continue // handled here, as net/http does
		case "Content-Length":
			lengths++
			if lengths > 1 && string(rawValue) != contentLength {
				return badRequest("conflicting Content-Length")
			}
			length, ok := parseLength(rawValue)
			if !ok {
				return badRequest("invalid Content-Length")
			}
			h.contentLength = length
		case "Connection":
			if hasToken(rawValue, "close") {
				h.close = true
			}
		}
		value := c.headerValue(name, rawValue)
		if name == "Content-Length" {
			contentLength = value
		}
		c.values = append(c.values, value)
		if old, ok := c.header[name]; ok {
			c.header[name] = append(old, value)
		} else {
			i := len(c.values) - 1
			c.header[name] = c.values[i : i+1 : i+1]
		}
	}
	if hosts > 1 {
		return badRequest("too many Host headers")
	}
	if hosts == 0 && minor == 1 {
		return badRequest("missing required Host header")
	}
	r.Host = host
	if r.URL.Host != "" {
		r.Host = r.URL.Host
	}
	if h.chunked && (lengths > 0 || minor == 0) {
		return badRequest("Transfer-Encoding with Content-Length or in HTTP/1.0")
	}
	if h.contentLength > LeanMaxBody {
		return &leanError{http.StatusRequestEntityTooLarge, ""}
	}
	r.Close = h.close

	b := &c.body
	b.reset()
	switch {
	case h.chunked:
		b.chunked = httputil.NewChunkedReader(c.br)
		r.Body, r.ContentLength, r.TransferEncoding = b, -1, chunkedCoding
	case h.contentLength > 0:
		b.remaining = h.contentLength
		r.Body, r.ContentLength = b, h.contentLength
	default:
		r.Body = http.NoBody
	}
	return nil
}

// chunkedCoding is Request.TransferEncoding of a chunked request; shared,
// like the other header values the mock hands out.
var chunkedCoding = []string{"chunked"}

// parseTarget sets c.req.URL to c.url for target when it is a plain
// origin-form path, and reports whether it did; other targets are left to
// url.ParseRequestURI. A plain path holds only the characters that
// url.URL.EscapedPath keeps as they are, so Path is the target's path,
// RawPath is empty and EscapedPath() returns the path as sent: exactly
// what url.ParseRequestURI makes of it, without its allocations.
func (c *leanConn) parseTarget(target string) bool {
	if target[0] != '/' {
		return false
	}
	path, query, hasQuery := target, "", false
	for i := 0; i < len(target); i++ {
		if target[i] == '?' {
			path, query, hasQuery = target[:i], target[i+1:], true
			break
		}
	}
	for i := 0; i < len(path); i++ {
		if !plainPath[path[i]] {
			return false
		}
	}
	c.url = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	c.req.URL = &c.url
	return true
}

// plainPath holds the bytes url.URL.EscapedPath never escapes.
var plainPath = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

// tokenChars holds the bytes of an RFC 9110 token (methods and header
// names).
var tokenChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

func isTokenString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return len(s) > 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validValue reports whether b may be a header field value: no control
// bytes but tab.
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// cutLine returns b's first line without its line ending, and the rest.
func cutLine(b []byte) (line, rest []byte) {
	line, rest, _ = cutByte(b, '\n')
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// cutByte is bytes.Cut for one byte.
func cutByte(b []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b is s, ignoring ASCII case; s is lower case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds token, in
// lower case, ignoring case.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var item []byte
		item, v, _ = cutByte(v, ',')
		if equalFold(trimSpace(item), token) {
			return true
		}
	}
	return false
}

// parseLength parses a Content-Length: digits only. A value past
// LeanMaxBody is returned as LeanMaxBody+1.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		if n <= LeanMaxBody {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, LeanMaxBody+1), true
}

// internMethod returns the method's string without allocating for the
// common ones.
func internMethod(b []byte) string {
	switch string(b) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodHead:
		return http.MethodHead
	case http.MethodOptions:
		return http.MethodOptions
	}
	return string(b)
}

// commonNames maps header names that clients send, as they send them, to
// their canonical form.
var commonNames = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Length", "Content-Type", "Cookie", "Expect", "Host",
		"Idempotency-Key", "Origin", "Referer", "Traceparent", "Tracestate",
		"Transfer-Encoding", "User-Agent", "X-Request-Id", "X-Forwarded-For",
	} {
		m[k] = k
		lower := []byte(k)
		for i, c := range lower {
			if 'A' <= c && c <= 'Z' {
				lower[i] = c + 'a' - 'A'
			}
		}
		m[string(lower)] = k
	}
	return m
}()

// headerName returns the canonical form of the header name b.
func (c *leanConn) headerName(b []byte) string {
	if k, ok := commonNames[string(b)]; ok {
		return k
	}
	if k, ok := c.names[string(b)]; ok {
		return k
	}
	if len(c.names) >= leanCacheSize {
		clear(c.names)
	}
	sent := string(b)
	k := textproto.CanonicalMIMEHeaderKey(sent)
	c.names[sent] = k
	return k
}

// headerValue returns b as a string, reusing the one the header name had
// last on this connection when it is the same: a client sends the same
// User-Agent, Content-Type and Accept-Encoding on every request.
func (c *leanConn) headerValue(name string, b []byte) string {
	if v, ok := c.last[name]; ok && v == string(b) {
		return v
	}
	if len(c.last) >= leanCacheSize {
		clear(c.last)
	}
	v := string(b)
	c.last[name] = v
	return v
}

// fail answers a request refused before the handler and lingers, as
// net/http does, so that the client reads the answer; with errConnGone it
// only returns.
func (c *leanConn) fail(e *leanError) {
	if e.status == 0 {
		return
	}
	text := strconv.Itoa(e.status) + " " + http.StatusText(e.status)
	if e.reason != "" {
		text += ": " + e.reason
	}
	msg := "HTTP/1.1 " + strconv.Itoa(e.status) + " " + http.StatusText(e.status) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(text)) +
		"\r\nConnection: close\r\n\r\n" + text
	if _, err := io.WriteString(c.rwc, msg); err != nil {
		return
	}
	c.linger()
}

// linger half-closes the connection and reads on for a while, until the
// client closes its end: closing with unread bytes would send a reset that
// can destroy the answer before the client reads it.
func (c *leanConn) linger() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.rwc.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c.br, lingerBytes)
}

// writeResponse writes the handler's answer in one write.
func (c *leanConn) writeResponse(closeAfter bool) error {
	w := &c.w
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	b := append(c.out[:0], w.interim...)
	b = appendStatusLine(b, c.req.ProtoMinor == 1, status)
	b = appendHeader(b, w.header)
	if leanBodyAllowed(status) && (!w.head || w.n > 0) {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, w.n, 10)
		b = append(b, "\r\n"...)
	}
	if closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, w.body...)
	c.out = b
	_, err := c.rwc.Write(b)
	return err
}

func appendStatusLine(b []byte, http11 bool, status int) []byte {
	if http11 {
		b = append(b, "HTTP/1.1 "...)
	} else {
		b = append(b, "HTTP/1.0 "...)
	}
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if text := http.StatusText(status); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(status), 10)
	}
	return append(b, "\r\n"...)
}

// appendHeader appends the handler's header fields but those the server
// writes itself. Names that are no token are dropped and line breaks in
// values become spaces, as net/http does, so that a handler cannot split
// the answer.
func appendHeader(b []byte, h http.Header) []byte {
	for k, vs := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Trailer":
			continue
		}
		if !isTokenString(k) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			start := len(b)
			b = append(b, v...)
			for i := start; i < len(b); i++ {
				if b[i] == '\r' || b[i] == '\n' {
					b[i] = ' '
				}
			}
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// leanBodyAllowed reports whether an answer with status has a body (and a
// Content-Length).
func leanBodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// leanResponse is the connection's http.ResponseWriter: it buffers the
// answer, which the connection writes when the handler returns.
type leanResponse struct {
	header http.Header
	// status is 0 until WriteHeader or Write.
	status int
	// interim holds 1xx answers, written before the final one.
	interim []byte
	body    []byte
	// n counts the body's bytes, also for HEAD, whose body is not kept.
	n    int64
	head bool
}

func (w *leanResponse) reset(head bool) {
	w.status, w.n, w.head = 0, 0, head
	w.interim, w.body = w.interim[:0], w.body[:0]
}

// Header returns the answer's header map.
func (w *leanResponse) Header() http.Header { return w.header }

// WriteHeader sets the status, once; a 1xx status but 101 is an interim
// answer with the header as it is now, and may come before the final one.
// Like net/http's, it panics on a code outside 100-999.
func (w *leanResponse) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.interim = appendStatusLine(w.interim, true, code)
		w.interim = appendHeader(w.interim, w.header)
		w.interim = append(w.interim, "\r\n"...)
		return
	}
	w.status = code
}

// Write buffers p as part of the body, setting status 200 if none is set.
// It returns http.ErrBodyNotAllowed for a status without a body.
func (w *leanResponse) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !leanBodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.n += int64(len(p))
	if !w.head {
		w.body = append(w.body, p...)
	}
	return len(p), nil
}

// WriteString is Write for a string, without converting it.
func (w *leanResponse) WriteString(s string) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !leanBodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.n += int64(len(s))
	if !w.head {
		w.body = append(w.body, s...)
	}
	return len(s), nil
}

// written reports whether the handler set a status or wrote.
func (w *leanResponse) written() bool { return w.status != 0 || len(w.interim) > 0 }

// closeAfter reports whether the answer ends the connection: the handler
// asked for it, or switched protocols, which this server cannot.
func (w *leanResponse) closeAfter() bool {
	if w.status == http.StatusSwitchingProtocols {
		return true
	}
	for _, v := range w.header["Connection"] {
		if hasToken([]byte(v), "close") {
			return true
		}
	}
	return false
}

// errBodyTooLarge is what reading a chunked body past LeanMaxBody returns.
var errBodyTooLarge = &http.MaxBytesError{Limit: LeanMaxBody}

// leanBody is the request's body: Content-Length bytes, or a chunked body,
// read from the connection as the handler reads it.
type leanBody struct {
	br *bufio.Reader
	// remaining counts the bytes of a Content-Length body not yet read.
	remaining int64
	// chunked decodes a chunked body; nil otherwise.
	chunked io.Reader
	// decoded counts the bytes chunked returned.
	decoded int64
	// err is returned by every Read once set: io.EOF at the end.
	err error
}

func (b *leanBody) reset() {
	b.remaining, b.chunked, b.decoded, b.err = 0, nil, 0, nil
}

// Read reads the body. At the end of a chunked body it reads the trailer
// section too, so that the connection is at the next request.
func (b *leanBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.chunked != nil {
		return b.readChunked(p)
	}
	if b.remaining == 0 {
		b.err = io.EOF
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.br.Read(p)
	b.remaining -= int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return n, err
	}
	if b.remaining == 0 {
		b.err = io.EOF
		return n, io.EOF
	}
	return n, nil
}

func (b *leanBody) readChunked(p []byte) (int, error) {
	n, err := b.chunked.Read(p)
	b.decoded += int64(n)
	if b.decoded > LeanMaxBody {
		n -= int(b.decoded - LeanMaxBody)
		b.decoded = LeanMaxBody
		b.err = errBodyTooLarge
		return n, b.err
	}
	if err == io.EOF {
		err = b.readTrailer()
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// readTrailer reads the trailer section after a chunked body's last chunk,
// up to the blank line, and drops it. It returns io.EOF when it read it.
func (b *leanBody) readTrailer() error {
	total := 0
	for {
		line, err := b.br.ReadSlice('\n')
		total += len(line)
		if err != nil || total > LeanMaxHeaderBytes {
			return errors.New("malformed chunked trailer")
		}
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			return io.EOF
		}
	}
}

// Close does nothing: the connection reads what the handler left.
func (b *leanBody) Close() error { return nil }

// finish reads what the handler left of the body and reports whether the
// connection is at the next request.
func (b *leanBody) finish() bool {
	if b.chunked == nil && b.remaining > 0 && b.err == nil {
		n, err := b.br.Discard(int(b.remaining))
		b.remaining -= int64(n)
		return err == nil
	}
	if b.chunked != nil && b.err == nil {
		_, _ = io.Copy(io.Discard, b)
	}
	return b.err == nil || b.err == io.EOF
}
