package provider

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
)

// h1Transport is the RoundTripper for plain http:// providers. It makes
// each call on the caller's goroutine: take a kept-alive connection, write
// the request, read the head, and hand back a body that returns the
// connection to the pool once it is read to the end.
//
// net/http's Transport runs a read and a write goroutine per connection and
// passes every request and answer between them and the caller over
// channels. At 10,000 calls in flight that machinery, not the syscalls, was
// a third of the worker's CPU (loadtest/RESULTS.md). https stays on
// net/http, which speaks HTTP/2 where the provider does: there many calls
// share one connection and the per-connection goroutines do not add up.
//
// It keeps net/http's contract where the Provider relies on it: a request
// that failed on a reused connection before any answer came back is sent
// again on a new one if it is replayable (net/http's rule: idempotent
// method or an Idempotency-Key header), response heads are capped, the
// request's context bounds everything including the body, and a body
// closed before its end closes its connection. It does not ask for gzip,
// so the provider's body arrives as sent. Bodies are not safe for Read and
// Close from two goroutines at once; the Provider never does that.
type h1Transport struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	fallback    http.RoundTripper // every scheme but http
	maxIdle     int
	idleTimeout time.Duration
	headerLimit int64
	// checkAfter is how long a connection may sit idle before it is
	// checked for a close from the server before reuse. Shorter idles go
	// straight to the wire and rely on the retry above.
	checkAfter time.Duration

	mu      sync.Mutex
	idle    map[string][]*h1Conn // by host:port, most recently used last
	nidle   int
	pruning bool // a prune is scheduled
}

func newH1Transport(dial func(context.Context, string, string) (net.Conn, error), fallback http.RoundTripper, maxIdle int) *h1Transport {
	return &h1Transport{
		dial:        dial,
		fallback:    fallback,
		maxIdle:     maxIdle,
		idleTimeout: 90 * time.Second,
		headerLimit: 64 << 10,
		checkAfter:  time.Second,
		idle:        map[string][]*h1Conn{},
	}
}

// h1Conn is one kept-alive connection and its buffers.
type h1Conn struct {
	addr   string
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	limit  int64 // bytes reads may still take: the head's cap while a head is read
	read   int64 // bytes read in the current round trip
	reused bool
	idleAt time.Time
}

var errHeadTooLong = errors.New("server response headers exceeded the limit")

// Read feeds br, counting what the server sent and enforcing the head cap.
func (c *h1Conn) Read(p []byte) (int, error) {
	if c.limit <= 0 {
		return 0, errHeadTooLong
	}
	if int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.conn.Read(p)
	c.limit -= int64(n)
	c.read += int64(n)
	return n, err
}

// aLongTimeAgo is a deadline that unblocks a read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// RoundTrip implements http.RoundTripper: the request's context alone
// bounds the call, and its errors say so, as net/http's do.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return t.fallback.RoundTrip(req)
	}
	return t.roundTripUntil(req, time.Time{})
}

// roundTripUntil is RoundTrip for an http:// request, with the call, its
// body included, also bounded by deadline (zero: no bound), which is set on
// the connection: past it, reads and writes fail with
// os.ErrDeadlineExceeded.
func (t *h1Transport) roundTripUntil(req *http.Request, deadline time.Time) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		closeBody(req)
		return nil, fmt.Errorf("h1Transport: %q is not an http:// URL", req.URL)
	}
	if err := validHeader(req.Header); err != nil {
		closeBody(req)
		return nil, err
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	ctx := req.Context()
	for {
		cn, err := t.get(ctx, addr, deadline)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := t.roundTrip(ctx, cn, req)
		if err == nil {
			return resp, nil
		}
		if !cn.reused || cn.read > 0 || ctx.Err() != nil || !replayable(req) {
			return nil, err
		}
		// Most likely the server closed the connection while it sat idle.
		if req, err = rewound(req); err != nil {
			return nil, err
		}
	}
}

// roundTrip sends req on cn and reads the answer's head. On error cn is
// closed; cn.read tells whether the server had answered anything.
func (t *h1Transport) roundTrip(ctx context.Context, cn *h1Conn, req *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { _ = cn.conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = cn.conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	cn.read = 0
	if err := writeRequest(cn.bw, req); err != nil {
		return fail(fmt.Errorf("write request: %w", err))
	}
	if err := cn.bw.Flush(); err != nil {
		return fail(fmt.Errorf("write request: %w", err))
	}
	var resp *http.Response
	for {
		cn.limit = t.headerLimit
		var err error
		resp, err = http.ReadResponse(cn.br, req)
		if errors.Is(err, errHeadTooLong) {
			return fail(fmt.Errorf("server response headers exceeded %d bytes; aborted", t.headerLimit))
		}
		if err != nil {
			return fail(fmt.Errorf("read response: %w", err))
		}
		// 1xx answers are informational; the real one follows. Upgrades
		// (101) are never asked for.
		if resp.StatusCode >= 200 {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return fail(errors.New("unexpected 101 Switching Protocols"))
		}
	}
	cn.limit = math.MaxInt64
	resp.Body = &h1Body{t: t, cn: cn, ctx: ctx, stop: stop, body: resp.Body, keep: !resp.Close && !req.Close}
	return resp, nil
}

// writeRequest writes req to bw as req.Write does, for the requests the
// Provider makes: a method, an absolute path, an ASCII host, and a body of
// known length or none. req.Write formats the request line and the Host
// header with fmt.Fprintf and sorts the headers, about 5 % of the worker's
// CPU; anything out of the ordinary (Connection: close, a trailer, a
// transfer encoding, a body of unknown length, an IPv6 zone or a non-ASCII
// host) still goes to req.Write. Header fields were checked by
// validHeader. As req.Write does, it closes the body.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	host, ruri, ok := plainRequest(req)
	if !ok {
		return req.Write(bw)
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody {
		defer req.Body.Close()
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(ruri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	ua := "Go-http-client/1.1"
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = textproto.TrimString(v[0])
		}
	}
	if ua != "" {
		bw.WriteString("User-Agent: ")
		bw.WriteString(ua)
		bw.WriteString("\r\n")
	}
	// net/http's rule: a length when there is a body, and a zero length
	// for POST, PUT and PATCH without one.
	if hasBody || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		bw.WriteString("Content-Length: ")
		var buf [20]byte
		bw.Write(strconv.AppendInt(buf[:0], req.ContentLength*btoi(hasBody), 10))
		bw.WriteString("\r\n")
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(textproto.TrimString(v))
			bw.WriteString("\r\n")
		}
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	if !hasBody {
		return nil
	}
	n, err := io.CopyN(bw, req.Body, req.ContentLength)
	if err == nil {
		var one [1]byte
		if m, _ := io.ReadFull(req.Body, one[:]); m > 0 {
			n++
		}
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	if n != req.ContentLength {
		return fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n)
	}
	return nil
}

// plainRequest reports whether writeRequest writes req itself, and the host
// and request URI it would write.
func plainRequest(req *http.Request) (host, ruri string, ok bool) {
	host = req.Host
	if host == "" {
		host = req.URL.Host
	}
	ruri = req.URL.RequestURI()
	hasBody := req.Body != nil && req.Body != http.NoBody
	ok = req.Method != "" && req.Method != http.MethodConnect && req.URL.Opaque == "" && !req.Close &&
		len(req.TransferEncoding) == 0 && req.Trailer == nil && (!hasBody || req.ContentLength > 0) &&
		(req.Body != nil || req.ContentLength == 0) &&
		plainHost(host) && httpguts.ValidHostHeader(host) && !hasCTL(ruri)
	return host, ruri, ok
}

func btoi(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// plainHost reports whether host is ASCII without an IPv6 zone: what
// req.Write would send unchanged.
func plainHost(host string) bool {
	if host == "" || strings.IndexByte(host, '%') >= 0 {
		return false
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hasCTL reports whether s holds an ASCII control character, which
// req.Write refuses in a request URI.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' || b == 0x7f {
			return true
		}
	}
	return false
}

// h1Body returns its connection to the pool at EOF, or closes it.
type h1Body struct {
	t    *h1Transport
	cn   *h1Conn
	ctx  context.Context
	stop func() bool
	body io.ReadCloser
	keep bool // the connection may carry another request after this body
	done bool
	eof  bool
}

var errBodyClosed = errors.New("http: read on closed response body")

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		if b.eof {
			return 0, io.EOF
		}
		return 0, errBodyClosed
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		b.finish(true)
	case err != nil:
		b.finish(false)
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr
		}
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *h1Body) finish(clean bool) {
	b.done = true
	// stop reports false once the context's callback has run or started:
	// the connection's deadline is then spoiled.
	if b.stop() && clean && b.keep {
		b.t.put(b.cn)
		return
	}
	_ = b.cn.conn.Close()
}

// get takes the most recently used idle connection to addr, or dials one,
// and sets its deadline. A connection keeps the deadline of its last call
// while it sits idle, so the new one is set before the idle check, which
// reads.
func (t *h1Transport) get(ctx context.Context, addr string, deadline time.Time) (*h1Conn, error) {
	for {
		cn := t.pop(addr)
		if cn == nil {
			break
		}
		idle := time.Since(cn.idleAt)
		if idle > t.idleTimeout || cn.conn.SetDeadline(deadline) != nil || (idle > t.checkAfter && !cn.alive()) {
			_ = cn.conn.Close()
			continue
		}
		cn.reused = true
		return cn, nil
	}
	dctx := ctx
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		dctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	c, err := t.dial(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(deadline); err != nil {
		_ = c.Close()
		return nil, err
	}
	cn := &h1Conn{addr: addr, conn: c, bw: bufio.NewWriterSize(c, 4<<10)}
	cn.br = bufio.NewReaderSize(cn, 4<<10)
	return cn, nil
}

func (t *h1Transport) pop(addr string) *h1Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	stack := t.idle[addr]
	if len(stack) == 0 {
		return nil
	}
	cn := stack[len(stack)-1]
	stack[len(stack)-1] = nil
	t.idle[addr] = stack[:len(stack)-1]
	t.nidle--
	return cn
}

// put keeps cn for the next request, unless the pool is full or the server
// sent more than the answer.
func (t *h1Transport) put(cn *h1Conn) {
	if cn.br.Buffered() > 0 {
		_ = cn.conn.Close()
		return
	}
	cn.idleAt = time.Now()
	t.mu.Lock()
	if t.nidle >= t.maxIdle {
		t.mu.Unlock()
		_ = cn.conn.Close()
		return
	}
	t.idle[cn.addr] = append(t.idle[cn.addr], cn)
	t.nidle++
	if !t.pruning {
		t.pruning = true
		time.AfterFunc(t.idleTimeout, t.prune)
	}
	t.mu.Unlock()
}

// prune closes connections idle past idleTimeout, so that a quiet worker
// does not hold thousands of sockets the provider has long closed, and
// schedules itself again while any remain.
func (t *h1Transport) prune() {
	now := time.Now()
	var expired []*h1Conn
	t.mu.Lock()
	next := time.Duration(-1)
	for addr, stack := range t.idle {
		k := 0
		for k < len(stack) && now.Sub(stack[k].idleAt) >= t.idleTimeout {
			k++
		}
		expired = append(expired, stack[:k]...)
		n := copy(stack, stack[k:])
		clear(stack[n:])
		t.idle[addr] = stack[:n]
		if n == 0 {
			delete(t.idle, addr)
			continue
		}
		if d := t.idleTimeout - now.Sub(stack[0].idleAt); next < 0 || d < next {
			next = d
		}
	}
	t.nidle -= len(expired)
	t.pruning = next >= 0
	if t.pruning {
		time.AfterFunc(next, t.prune)
	}
	t.mu.Unlock()
	for _, cn := range expired {
		_ = cn.conn.Close()
	}
}

// CloseIdleConnections closes every idle connection, here and in the
// fallback; http.Client.CloseIdleConnections calls it.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.nidle = map[string][]*h1Conn{}, 0
	t.mu.Unlock()
	for _, stack := range idle {
		for _, cn := range stack {
			_ = cn.conn.Close()
		}
	}
	if c, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// replayable is net/http's rule for sending a request again after a
// failure on a reused connection.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

// rewound returns req with a fresh body to send again.
func rewound(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("rewind request body: %w", err)
	}
	r := *req
	r.Body = body
	return &r, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// validHeader refuses what net/http's Transport refuses, with its own
// checks: a header that would split the request. Jobs are checked long
// before; this is the last line.
func validHeader(h http.Header) error {
	for k, vs := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("invalid header field name %q", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("invalid header field value for %q", k)
			}
		}
	}
	return nil
}
