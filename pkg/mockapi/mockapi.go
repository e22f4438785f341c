package mockapi

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultIdempotencyHeader is the header counted per key when
// Config.IdempotencyHeader is empty; it matches the provider default.
const DefaultIdempotencyHeader = "Idempotency-Key"

// maxDrain bounds how much of a request body is read (and counted); the rest
// is left to net/http, which closes the connection.
const maxDrain = 1 << 20

// Stats is a snapshot of the counters. Requests to GET /_stats are not
// counted. Once no request is in flight,
// Requests = sum(ByStatus) + Canceled, plus the requests an OutageReset
// outage dropped.
type Stats struct {
	// Requests received, refused by the rate limit or not.
	Requests int64 `json:"requests"`
	// ByStatus counts answers sent, by HTTP status code.
	ByStatus map[int]int64 `json:"by_status"`
	// Canceled counts requests whose client went away before the answer.
	Canceled int64 `json:"canceled"`
	// Throttled counts requests the rate limit refused with 429. They are
	// in ByStatus too, but not in InFlight, Keys or Duplicates: the
	// provider never worked on them.
	Throttled int64 `json:"throttled"`
	// InFlight is how many admitted requests are being handled now.
	InFlight int64 `json:"in_flight"`
	// PeakInFlight is the most admitted requests handled at once.
	PeakInFlight int64 `json:"peak_in_flight"`
	// MaxPerSecond is the most requests received in any one-second
	// sliding window (to 10 ms): what the clients sent at their busiest.
	MaxPerSecond int64 `json:"max_per_second"`
	// MaxAdmittedPerSecond is the same for requests the rate limit let
	// through: what got past the limit at its busiest.
	MaxAdmittedPerSecond int64 `json:"max_admitted_per_second"`
	// Keys counts distinct idempotency keys among admitted requests.
	Keys int `json:"keys"`
	// Duplicates counts idempotency keys admitted more than once.
	Duplicates int `json:"duplicates"`
	// Outage counts requests answered (or, with OutageReset, dropped) by
	// the outage switch (see Outage).
	Outage int64 `json:"outage,omitempty"`
}

// Server is the fake API; it is an http.Handler safe for any number of
// concurrent requests. The hot path takes no lock shared by all requests
// but the per-second window's: counters are atomics, the rate limit is one
// compare-and-swap, idempotency keys live in sharded maps.
type Server struct {
	min, span          time.Duration
	tailMin, tailSpan  time.Duration
	tailRate           float64
	errorRate          float64
	seed               uint64
	idemHeader         string    // canonical, to index the header map directly
	limit              *limiter  // nil without RateLimit
	mode               LimitMode // "" without RateLimit
	retryAfter         []string  // fixed Retry-After of a 429; nil to compute it
	limitValue, policy []string  // X-RateLimit-Limit and RateLimit-Policy
	// now reads the monotonic clock, in nanoseconds since the server (or
	// its Multi) started; tests replace it.
	now func() int64

	// seq numbers requests for the random draws; unlike requests, Reset
	// leaves it alone so a reset does not replay the same draws.
	seq       atomic.Uint64
	requests  atomic.Int64
	canceled  atomic.Int64
	throttled atomic.Int64
	// byStatus is indexed by status code: a fixed array of atomics keeps
	// the hot path free of locks.
	byStatus [600]atomic.Int64
	own      meter
	// shared, in a Multi, measures all providers together; nil otherwise.
	shared *meter
	keys   *keySet
	out    outage

	// started, when set (by tests, before serving), is called once a
	// request is counted in flight, before it waits.
	started func()
}

// New returns a Server for cfg. It panics when cfg is invalid (see
// Config.Validate): a fake with a silently corrected config would make a
// test pass for the wrong reason.
func New(cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		panic("mockapi: " + err.Error())
	}
	return newServer(cfg, monotonic(), nil)
}

// monotonic returns a clock reading nanoseconds since it was made.
func monotonic() func() int64 {
	start := time.Now()
	return func() int64 { return int64(time.Since(start)) }
}

// newServer returns a Server for a valid cfg, reading now and measuring
// into shared too when it is not nil.
func newServer(cfg Config, now func() int64, shared *meter) *Server {
	s := &Server{
		min:        cfg.LatencyMin,
		tailMin:    cfg.latencyTop(),
		tailRate:   cfg.TailRate,
		errorRate:  cfg.ErrorRate,
		seed:       uint64(cfg.Seed),
		idemHeader: textproto.CanonicalMIMEHeaderKey(cmp.Or(cfg.IdempotencyHeader, DefaultIdempotencyHeader)),
		now:        now,
		shared:     shared,
		keys:       newKeySet(),
	}
	if cfg.LatencyMax > cfg.LatencyMin {
		s.span = cfg.LatencyMax - cfg.LatencyMin
	}
	if cfg.TailLatency > s.tailMin {
		s.tailSpan = cfg.TailLatency - s.tailMin
	}
	if cfg.RateLimit > 0 {
		burst := cfg.burst()
		s.limit = newLimiter(cfg.RateLimit, burst)
		s.mode = cmp.Or(cfg.LimitMode, LimitRetryAfter)
		if cfg.RetryAfter > 0 {
			s.retryAfter = []string{strconv.FormatInt(ceilSeconds(cfg.RetryAfter), 10)}
		}
		rate := strconv.FormatFloat(cfg.RateLimit, 'f', -1, 64)
		s.limitValue = []string{rate}
		s.policy = []string{`"default";q=` + rate + `;w=1`}
	}
	return s
}

// Header values the server sends on many answers. They are shared by every
// answer and never modified.
var (
	contentTypeJSON = []string{"application/json"}
	retryAfterOne   = []string{"1"}
)

// ServeHTTP answers one request; see the package documentation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_stats" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, s.Stats())
		return
	}
	s.serve(w, r, r.URL.Path)
}

// serve answers a request for path, which is r.URL.Path without the
// provider prefix in a Multi.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, path string) {
	now := s.now()
	e := echo{
		N:              s.requests.Add(1),
		Method:         r.Method,
		Path:           r.URL.EscapedPath(),
		Query:          r.URL.RawQuery,
		IdempotencyKey: firstValue(r.Header, s.idemHeader),
	}
	if s.answerOutage(w, &e) {
		return
	}
	admitted, wait := true, time.Duration(0)
	if s.limit != nil {
		admitted, wait = s.limit.take(now)
	}
	s.own.win.add(now, admitted)
	if s.shared != nil {
		s.shared.win.add(now, admitted)
	}
	if !admitted {
		s.throttle(w, &e, now, wait)
		return
	}

	if e.IdempotencyKey != "" {
		e.Calls = s.keys.add(e.IdempotencyKey)
	}
	s.own.enter()
	defer s.own.leave()
	if s.shared != nil {
		s.shared.enter()
		defer s.shared.leave()
	}
	if s.started != nil {
		s.started()
	}

	// Read the request as a real API would before answering.
	if r.Body != nil && r.Body != http.NoBody {
		e.BodyBytes = drain(r.Body)
	}

	latency, fail := s.draw(s.seq.Add(1))
	if !sleep(r.Context(), latency) {
		s.canceled.Add(1)
		return
	}

	e.Status = http.StatusOK
	if code, ok := strings.CutPrefix(path, "/status/"); ok {
		n, err := strconv.Atoi(code)
		if err != nil || n < 200 || n > 599 {
			e.Status, e.Error = http.StatusBadRequest, fmt.Sprintf("/status/%s: want a code from 200 to 599", code)
		} else {
			e.Status = n
		}
	} else if fail {
		e.Status, e.Error = http.StatusServiceUnavailable, "simulated outage"
	}
	h := w.Header()
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		h["Retry-After"] = retryAfterOne
	}
	if s.mode == LimitHeaders {
		s.setLimitHeaders(h, s.now())
	}
	s.byStatus[e.Status].Add(1)
	writeEcho(w, &e)
}

// throttle answers a request the rate limit refused, at once and as
// Config.LimitMode says; wait is how long until a token is free.
func (s *Server) throttle(w http.ResponseWriter, e *echo, now int64, wait time.Duration) {
	s.throttled.Add(1)
	s.byStatus[http.StatusTooManyRequests].Add(1)
	if s.mode == LimitSilent {
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	h := w.Header()
	if s.retryAfter != nil {
		h["Retry-After"] = s.retryAfter
	} else {
		h["Retry-After"] = []string{strconv.FormatInt(ceilSeconds(wait), 10)}
	}
	if s.mode == LimitHeaders {
		s.setLimitHeaders(h, now)
	}
	e.Status, e.Error = http.StatusTooManyRequests, "rate limited"
	writeEcho(w, e)
}

// setLimitHeaders tells the client where it stands, in the common
// X-RateLimit-* form and in the IETF draft's structured fields
// (draft-ietf-httpapi-ratelimit-headers). Reset and t are the seconds until
// the bucket is full again, rounded up.
func (s *Server) setLimitHeaders(h http.Header, now int64) {
	remaining, full := s.limit.state(now)
	r := strconv.FormatInt(remaining, 10)
	t := strconv.FormatInt(int64((full+time.Second-1)/time.Second), 10)
	h["X-Ratelimit-Limit"] = s.limitValue
	h["X-Ratelimit-Remaining"] = []string{r}
	h["X-Ratelimit-Reset"] = []string{t}
	h["Ratelimit-Policy"] = s.policy
	h["Ratelimit"] = []string{`"default";r=` + r + `;t=` + t}
}

// firstValue is h.Get for a key already in canonical form, which saves
// canonicalizing it on every request.
func firstValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// drain reads and counts up to maxDrain bytes of body.
func drain(body io.Reader) int64 {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := (*bp)[:cap(*bp)]
	var n int64
	for n < maxDrain {
		m, err := body.Read(buf[:min(int64(len(buf)), maxDrain-n)])
		n += int64(m)
		if err != nil {
			break
		}
	}
	return n
}

// writeEcho sends e as the answer.
func writeEcho(w http.ResponseWriter, e *echo) {
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(e.Status)
	if !bodyAllowed(e.Status) {
		return
	}
	bp := bufPool.Get().(*[]byte)
	b := e.appendJSON((*bp)[:0])
	// The client may be gone; there is no one to tell.
	_, _ = w.Write(b)
	// A long path may have grown the buffer; keep it unless it is huge.
	if cap(b) <= 64<<10 {
		*bp = b[:0]
	}
	bufPool.Put(bp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(status)
	if !bodyAllowed(status) {
		return
	}
	// The client may be gone; there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// bodyAllowed reports whether an answer with status may carry a body.
func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}

// timerPool recycles the latency timers: at thousands of requests a second
// each would otherwise be garbage. Since Go 1.23 a stopped timer's channel
// holds no stale tick, so a pooled timer is safe to Reset.
var timerPool sync.Pool

// sleep waits d and reports whether it did, or returns false as soon as ctx
// is done: a handler must not keep a goroutine and timer for a client that
// left.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t, _ := timerPool.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(d)
	} else {
		t.Reset(d)
	}
	defer timerPool.Put(t)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// tailSalt sets the tail's draws apart from the latency and error draws,
// which keep the sequence they had before tails existed.
const tailSalt = 0x5851f42d4c957f2d

// draw returns request seq's latency and whether it fails. Deriving them
// from (seed, seq) with a stateless mixer keeps them reproducible and needs
// no lock on a shared random source.
func (s *Server) draw(seq uint64) (time.Duration, bool) {
	latency := s.min
	if s.span > 0 {
		latency += time.Duration(splitmix64(s.seed, 2*seq) % uint64(s.span+1))
	}
	fail := unit(splitmix64(s.seed, 2*seq+1)) < s.errorRate
	if s.tailRate > 0 {
		// Below tailRate, u/tailRate is itself uniform in [0, 1): one draw
		// both picks the tail and places the request in it.
		if u := unit(splitmix64(s.seed^tailSalt, seq)); u < s.tailRate {
			latency = s.tailMin + time.Duration(u/s.tailRate*float64(s.tailSpan))
		}
	}
	return latency, fail
}

// unit maps x to a float in [0, 1) by its top 53 bits: a share of 1 always
// hits, 0 never.
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// splitmix64 returns the i-th output of the SplitMix64 generator seeded
// with seed.
func splitmix64(seed, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Calls reports how many admitted requests carried the idempotency key key.
func (s *Server) Calls(key string) int { return s.keys.calls(key) }

// Duplicates reports how many idempotency keys were admitted more than
// once: with an idempotent caller and no failures it stays 0.
func (s *Server) Duplicates() int {
	_, dups := s.keys.counts()
	return dups
}

// Stats returns a snapshot of the counters. Each counter is read
// atomically, but not all of them at one instant. It is cheap enough to
// poll every second during a long run: it copies no keys.
func (s *Server) Stats() Stats {
	st := Stats{
		Requests:     s.requests.Load(),
		ByStatus:     make(map[int]int64),
		Canceled:     s.canceled.Load(),
		Throttled:    s.throttled.Load(),
		InFlight:     s.own.inFlight.Load(),
		PeakInFlight: s.own.peak.Load(),
		Outage:       s.out.count.Load(),
	}
	for code := range s.byStatus {
		if n := s.byStatus[code].Load(); n > 0 {
			st.ByStatus[code] = n
		}
	}
	st.MaxPerSecond, st.MaxAdmittedPerSecond = s.own.win.maxima()
	st.Keys, st.Duplicates = s.keys.counts()
	return st
}

// Reset zeroes the counters, forgets the keys and fills the rate-limit
// bucket, for example between the phases of a load test. Requests in
// flight stay counted in InFlight, and PeakInFlight restarts from them; for
// exact numbers, reset while idle.
func (s *Server) Reset() {
	s.keys.reset()
	s.requests.Store(0)
	s.canceled.Store(0)
	s.throttled.Store(0)
	s.out.count.Store(0)
	for code := range s.byStatus {
		s.byStatus[code].Store(0)
	}
	s.own.reset()
	if s.limit != nil {
		s.limit.reset()
	}
}
