package mockapi

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// MaxProviders bounds how many providers a Multi creates, so that a client
// sending made-up names cannot grow it without end.
const MaxProviders = 1000

// Reserved names are the control endpoints, never providers.
var reserved = map[string]bool{"stats": true, "healthz": true}

// ErrProviderName reports a name that is not [a-z0-9_-]{1,64}, or is
// reserved.
var ErrProviderName = errors.New("provider name must match [a-z0-9_-]{1,64} and not be stats or healthz")

// ErrTooManyProviders reports that a Multi already has MaxProviders.
var ErrTooManyProviders = fmt.Errorf("more than %d providers", MaxProviders)

// Multi serves several fake providers from one process, one Server each,
// told apart by the first path segment: a provider's base URL is
// http://host:port/{provider}. Each provider has its own latency, errors,
// rate-limit bucket and counters.
//
// Control endpoints, not counted:
//
//	GET  /stats        MultiStats as JSON
//	POST /stats/reset  Reset; answers 204
//	GET  /healthz      200
type Multi struct {
	def Config
	now func() int64
	// total measures in flight and per second over every provider.
	total meter

	// servers is replaced, never changed, when a provider is added, so
	// that finding one costs a load and a map lookup, with no lock.
	servers atomic.Pointer[map[string]*Server]
	mu      sync.Mutex // serializes adding a provider
}

// MultiStats is GET /stats: every provider's Stats and their total.
type MultiStats struct {
	// Total sums the providers' counters, except InFlight, PeakInFlight,
	// MaxPerSecond and MaxAdmittedPerSecond, which are measured over all
	// requests: peaks at different times do not add up.
	Total Stats `json:"total"`
	// Providers holds each provider that exists: those configured and
	// those that were called.
	Providers map[string]Stats `json:"providers"`
}

// NewMulti returns a Multi whose providers use per[name], or def for a name
// not in per. The providers in per exist from the start (and show in stats
// with zero counts); others are created on their first request.
func NewMulti(def Config, per map[string]Config) (*Multi, error) {
	return newMulti(def, per, monotonic())
}

// newMulti is NewMulti on the clock now.
func newMulti(def Config, per map[string]Config, now func() int64) (*Multi, error) {
	if err := def.Validate(); err != nil {
		return nil, fmt.Errorf("mockapi: default: %w", err)
	}
	if len(per) > MaxProviders {
		return nil, fmt.Errorf("mockapi: %w", ErrTooManyProviders)
	}
	m := &Multi{def: def, now: now}
	servers := make(map[string]*Server, len(per))
	for name, cfg := range per {
		if !validName(name) {
			return nil, fmt.Errorf("mockapi: provider %q: %w", name, ErrProviderName)
		}
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("mockapi: provider %s: %w", name, err)
		}
		servers[name] = newServer(cfg, m.now, &m.total)
	}
	m.servers.Store(&servers)
	return m, nil
}

// validName reports whether name may be a provider: [a-z0-9_-]{1,64}, the
// provider names Switchyard accepts.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 64 || reserved[name] {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Provider returns the provider name, creating it if it does not exist yet.
func (m *Multi) Provider(name string) (*Server, error) {
	if s := (*m.servers.Load())[name]; s != nil {
		return s, nil
	}
	if !validName(name) {
		return nil, fmt.Errorf("provider %q: %w", name, ErrProviderName)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.servers.Load()
	if s := old[name]; s != nil {
		return s, nil // added while this one waited
	}
	if len(old) >= MaxProviders {
		return nil, fmt.Errorf("provider %q: %w", name, ErrTooManyProviders)
	}
	// NewMulti created every provider in per, so a new one takes the
	// default.
	s := newServer(m.def, m.now, &m.total)
	servers := maps.Clone(old)
	servers[name] = s
	m.servers.Store(&servers)
	return s, nil
}

// ServeHTTP routes a request to its provider or a control endpoint.
func (m *Multi) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch path {
	case "/stats":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, m.Stats())
		}
		return
	case "/stats/reset":
		if allow(w, r, http.MethodPost) {
			m.Reset()
			w.WriteHeader(http.StatusNoContent)
		}
		return
	case "/healthz":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, message{Status: "ok"})
		}
		return
	}
	// "/acme/v1/x" is provider acme's "/v1/x"; slicing, not joining,
	// keeps the route free of allocations.
	name, rest := firstSegment(path)
	if r.URL.RawPath != "" {
		// The path was sent with unusual escapes. A name is plain
		// [a-z0-9_-], so its segment must read the same escaped, which
		// /a%2Fb/x, decoded as /a/b/x, does not.
		if raw, _ := firstSegment(r.URL.RawPath); raw != name {
			name = raw
		}
	}
	s, err := m.Provider(name)
	if err != nil {
		writeJSON(w, http.StatusNotFound, message{Error: err.Error()})
		return
	}
	s.serve(w, r, rest)
}

// firstSegment splits "/acme/v1/x" into "acme" and "/v1/x".
func firstSegment(path string) (first, rest string) {
	first = strings.TrimPrefix(path, "/")
	if i := strings.IndexByte(first, '/'); i >= 0 {
		return first[:i], first[i:]
	}
	return first, ""
}

// message is the answer of the control endpoints and of a bad provider.
type message struct {
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// allow reports whether r uses method, answering 405 when not. GET allows
// HEAD too, as net/http's mux does.
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || method == http.MethodGet && r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", method)
	writeJSON(w, http.StatusMethodNotAllowed, message{Error: r.Method + " " + r.URL.Path + ": use " + method})
	return false
}

// Stats returns every provider's counters and their total. Like
// Server.Stats, it is cheap enough to poll every second.
func (m *Multi) Stats() MultiStats {
	servers := *m.servers.Load()
	ms := MultiStats{
		Total: Stats{
			ByStatus:     make(map[int]int64),
			InFlight:     m.total.inFlight.Load(),
			PeakInFlight: m.total.peak.Load(),
		},
		Providers: make(map[string]Stats, len(servers)),
	}
	ms.Total.MaxPerSecond, ms.Total.MaxAdmittedPerSecond = m.total.win.maxima()
	for name, s := range servers {
		st := s.Stats()
		ms.Providers[name] = st
		t := &ms.Total
		t.Requests += st.Requests
		t.Canceled += st.Canceled
		t.Throttled += st.Throttled
		t.Keys += st.Keys
		t.Duplicates += st.Duplicates
		for code, n := range st.ByStatus {
			t.ByStatus[code] += n
		}
	}
	return ms
}

// Reset resets every provider (see Server.Reset) and the totals. The
// providers stay, with zero counts.
func (m *Multi) Reset() {
	for _, s := range *m.servers.Load() {
		s.Reset()
	}
	m.total.reset()
}
