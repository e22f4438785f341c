package mockapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
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

// Config shapes the fake API. The zero value answers 200 at once.
type Config struct {
	// LatencyMin and LatencyMax bound the uniform random delay before each
	// answer. LatencyMax zero means exactly LatencyMin.
	LatencyMin, LatencyMax time.Duration
	// ErrorRate is the share of requests, from 0 to 1, answered 503 with
	// Retry-After: 1 instead of 200. /status/ paths ignore it.
	ErrorRate float64
	// Seed makes latencies and errors reproducible: the n-th request gets
	// the same draw in every run with the same seed. Zero is a seed too.
	Seed int64
	// IdempotencyHeader names the header whose values are counted per key.
	// Default DefaultIdempotencyHeader.
	IdempotencyHeader string
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.LatencyMin < 0:
		return fmt.Errorf("LatencyMin: %s must not be negative", c.LatencyMin)
	case c.LatencyMax < 0:
		return fmt.Errorf("LatencyMax: %s must not be negative", c.LatencyMax)
	case c.LatencyMax != 0 && c.LatencyMax < c.LatencyMin:
		return fmt.Errorf("LatencyMax: %s is below LatencyMin (%s)", c.LatencyMax, c.LatencyMin)
	case math.IsNaN(c.ErrorRate) || c.ErrorRate < 0 || c.ErrorRate > 1:
		return fmt.Errorf("ErrorRate: %v must be between 0 and 1", c.ErrorRate)
	}
	return nil
}

// Stats is a snapshot of the counters. Requests to GET /_stats are not
// counted. Once no request is in flight,
// Requests = sum(ByStatus) + Canceled.
type Stats struct {
	// Requests received.
	Requests int64 `json:"requests"`
	// ByStatus counts answers sent, by HTTP status code.
	ByStatus map[int]int64 `json:"by_status"`
	// Canceled counts requests whose client went away before the answer.
	Canceled int64 `json:"canceled"`
	// InFlight is how many requests are being handled now.
	InFlight int64 `json:"in_flight"`
	// PeakInFlight is the most requests handled at once.
	PeakInFlight int64 `json:"peak_in_flight"`
	// Keys counts distinct idempotency keys seen.
	Keys int `json:"keys"`
	// Duplicates counts idempotency keys seen more than once.
	Duplicates int `json:"duplicates"`
}

// Server is the fake API; it is an http.Handler safe for any number of
// concurrent requests.
type Server struct {
	min, span  time.Duration
	errorRate  float64
	seed       uint64
	idemHeader string

	// seq numbers requests for the random draws; unlike requests, Reset
	// leaves it alone so a reset does not replay the same draws.
	seq      atomic.Uint64
	requests atomic.Int64
	canceled atomic.Int64
	inFlight atomic.Int64
	peak     atomic.Int64
	// byStatus is indexed by status code: a fixed array of atomics keeps
	// the hot path free of locks.
	byStatus [600]atomic.Int64

	// Per-key counts need a map; one short critical section per request
	// is cheap next to the HTTP work around it.
	mu   sync.Mutex
	keys map[string]int
	dups int

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
	s := &Server{
		min:        cfg.LatencyMin,
		errorRate:  cfg.ErrorRate,
		seed:       uint64(cfg.Seed),
		idemHeader: cfg.IdempotencyHeader,
		keys:       make(map[string]int),
	}
	if cfg.LatencyMax > cfg.LatencyMin {
		s.span = cfg.LatencyMax - cfg.LatencyMin
	}
	if s.idemHeader == "" {
		s.idemHeader = DefaultIdempotencyHeader
	}
	return s
}

// echo is the body of every answer: enough for a test to see what arrived.
type echo struct {
	// N is the request's number, counting from 1 (since New or Reset).
	N      int64  `json:"n"`
	Status int    `json:"status"`
	Method string `json:"method"`
	// Path and Query are as sent, still percent-encoded.
	Path           string `json:"path"`
	Query          string `json:"query,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Calls is how many requests carried this idempotency key, this one
	// included.
	Calls     int    `json:"calls,omitempty"`
	BodyBytes int64  `json:"body_bytes"`
	Error     string `json:"error,omitempty"`
}

// ServeHTTP answers one request; see the package documentation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_stats" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, s.Stats())
		return
	}

	e := echo{
		N:      s.requests.Add(1),
		Method: r.Method,
		Path:   r.URL.EscapedPath(),
		Query:  r.URL.RawQuery,
	}
	if key := r.Header.Get(s.idemHeader); key != "" {
		e.IdempotencyKey = key
		e.Calls = s.countKey(key)
	}
	s.enter()
	defer s.inFlight.Add(-1)
	if s.started != nil {
		s.started()
	}

	// Read the request as a real API would before answering.
	e.BodyBytes, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxDrain))

	latency, fail := s.draw(s.seq.Add(1))
	if !sleep(r.Context(), latency) {
		s.canceled.Add(1)
		return
	}

	e.Status = http.StatusOK
	if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
		n, err := strconv.Atoi(code)
		if err != nil || n < 200 || n > 599 {
			e.Status, e.Error = http.StatusBadRequest, fmt.Sprintf("/status/%s: want a code from 200 to 599", code)
		} else {
			e.Status = n
		}
	} else if fail {
		e.Status, e.Error = http.StatusServiceUnavailable, "simulated outage"
	}
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	s.byStatus[e.Status].Add(1)
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusNoContent || status == http.StatusNotModified {
		return // these may not carry a body
	}
	// The client may be gone; there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// sleep waits d and reports whether it did, or returns false as soon as ctx
// is done: a handler must not keep a goroutine and timer for a client that
// left.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) enter() {
	n := s.inFlight.Add(1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (s *Server) countKey(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.keys[key] + 1
	s.keys[key] = n
	if n == 2 {
		s.dups++
	}
	return n
}

// draw returns request seq's latency and whether it fails. Deriving both
// from (seed, seq) with a stateless mixer keeps them reproducible and needs
// no lock on a shared random source.
func (s *Server) draw(seq uint64) (time.Duration, bool) {
	latency := s.min
	if s.span > 0 {
		latency += time.Duration(splitmix64(s.seed, 2*seq) % uint64(s.span+1))
	}
	// The top 53 bits as a float in [0, 1): ErrorRate 1 always fails, 0 never.
	u := float64(splitmix64(s.seed, 2*seq+1)>>11) / (1 << 53)
	return latency, u < s.errorRate
}

// splitmix64 returns the i-th output of the SplitMix64 generator seeded
// with seed.
func splitmix64(seed, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Calls reports how many requests carried the idempotency key key.
func (s *Server) Calls(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

// Duplicates reports how many idempotency keys were seen more than once:
// with an idempotent caller and no failures it stays 0.
func (s *Server) Duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dups
}

// Stats returns a snapshot of the counters. Each counter is read
// atomically, but not all of them at one instant.
func (s *Server) Stats() Stats {
	st := Stats{
		Requests:     s.requests.Load(),
		ByStatus:     make(map[int]int64),
		Canceled:     s.canceled.Load(),
		InFlight:     s.inFlight.Load(),
		PeakInFlight: s.peak.Load(),
	}
	for code := range s.byStatus {
		if n := s.byStatus[code].Load(); n > 0 {
			st.ByStatus[code] = n
		}
	}
	s.mu.Lock()
	st.Keys, st.Duplicates = len(s.keys), s.dups
	s.mu.Unlock()
	return st
}

// Reset zeroes the counters and forgets the keys, for example between the
// phases of a load test. Requests in flight stay counted in InFlight, and
// PeakInFlight restarts from them; for exact numbers, reset while idle.
func (s *Server) Reset() {
	s.mu.Lock()
	s.keys = make(map[string]int)
	s.dups = 0
	s.mu.Unlock()
	s.requests.Store(0)
	s.canceled.Store(0)
	for code := range s.byStatus {
		s.byStatus[code].Store(0)
	}
	s.peak.Store(s.inFlight.Load())
}
