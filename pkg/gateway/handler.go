package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/producer"
	"github.com/switchyard-io/switchyard/streams"
)

// Handler serves the gateway's HTTP API (see the package doc) by
// publishing on a NATS connection it does not own. Create it with
// NewHandler; Drain and Close end it.
type Handler struct {
	cfg       Config
	nc        *nats.Conn
	js        jetstream.JetStream
	p         *producer.Producer
	logger    *slog.Logger
	mux       *http.ServeMux
	tokenSums [][sha256.Size]byte // of Config.Tokens; none without auth

	// streamLimit caches the JOBS stream's max_msg_size (0: not known,
	// -1: none), read at most every limitTTL.
	streamLimit   atomic.Int64
	limitReadAt   atomic.Int64 // unix nanoseconds
	limitReadLock sync.Mutex

	// streamsMu guards the NDJSON requests being read; drained is set
	// under it, and read without it by streams between lines.
	streamsMu sync.Mutex
	streams   map[*http.ResponseController]struct{}
	drained   atomic.Bool
}

// Timeouts of the checks the handler makes itself.
const (
	// readyTimeout bounds the JOBS stream lookup of GET /readyz: a probe
	// that waits longer than a kubelet's default one second tells nobody
	// anything.
	readyTimeout = time.Second
	limitTTL     = time.Minute
)

// NewHandler returns the gateway's API, publishing on nc. cfg gets its
// defaults applied and is validated. Close releases what it holds.
func NewHandler(nc *nats.Conn, cfg Config, logger *slog.Logger) (*Handler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	// A request waits for JetStream at most PublishTimeout. A publish not
	// acknowledged within a fraction of it is sent again (safe with
	// Nats-Msg-Id), and failures that last half of it end the job with
	// their cause, before the deadline ends it as unconfirmed.
	pt := cfg.PublishTimeout
	p, err := producer.New(nc,
		producer.WithAckTimeout(min(max(pt/4, 5*time.Millisecond), 2*time.Second)),
		producer.WithBackoff(min(pt/10, 50*time.Millisecond), min(pt/4, time.Second)),
		producer.WithRetryFor(max(pt/2, time.Millisecond)),
		producer.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	h := &Handler{cfg: cfg, nc: nc, js: js, p: p, logger: logger, mux: http.NewServeMux(),
		streams: make(map[*http.ResponseController]struct{})}
	for _, t := range cfg.Tokens {
		h.tokenSums = append(h.tokenSums, sha256.Sum256([]byte(t)))
	}
	h.mux.HandleFunc("POST /v1/jobs", h.postJobs)
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.HandleFunc("/", h.notFound)
	return h, nil
}

// Drain makes every NDJSON request stop reading at its next line and
// answer 503 with how far it got, so that a shutdown does not wait for
// long streams to end; application/json requests finish as usual. New
// NDJSON requests are answered 503 at once. It is idempotent.
func (h *Handler) Drain() {
	h.streamsMu.Lock()
	defer h.streamsMu.Unlock()
	h.drained.Store(true)
	for rc := range h.streams {
		// Unblocks a read waiting on a slow client.
		_ = rc.SetReadDeadline(time.Now())
	}
}

// Close releases the handler's producer: jobs still awaiting their
// acknowledgement are reported unavailable. Call it once no request is
// being served. It is idempotent.
func (h *Handler) Close() error { return h.p.Close() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(h.tokenSums) > 0 && (r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/")) && !h.authorized(w, r) {
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized checks the bearer token and answers 401 when it is wrong.
// The offered token is hashed, then compared with every accepted one in
// constant time, so the time taken says nothing about any of them.
func (h *Handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
		writeProblem(w, newProblem(r, http.StatusUnauthorized, "this API needs a bearer token (Authorization: Bearer <token>)"))
		return false
	}
	sum := sha256.Sum256([]byte(token))
	ok := 0
	for i := range h.tokenSums {
		ok |= subtle.ConstantTimeCompare(sum[:], h.tokenSums[i][:])
	}
	if ok != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard", error="invalid_token"`)
		writeProblem(w, newProblem(r, http.StatusUnauthorized, "the bearer token is not valid"))
		return false
	}
	return true
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeBody(w, http.StatusOK, "application/json", map[string]string{"status": "ok"})
}

// readyz answers 200 while the connection is up and the JOBS stream
// answers.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	if !h.nc.IsConnected() {
		writeProblem(w, newProblem(r, http.StatusServiceUnavailable, "not ready: not connected to NATS"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := h.readLimit(ctx); err != nil {
		if r.Context().Err() == nil {
			h.logger.Warn("gateway: not ready: the JOBS stream does not answer", "err", err)
		}
		writeProblem(w, newProblem(r, http.StatusServiceUnavailable, "not ready: the JOBS stream does not answer"))
		return
	}
	writeBody(w, http.StatusOK, "application/json", map[string]string{"status": "ready"})
}

// readLimit looks the JOBS stream up and caches its max_msg_size.
func (h *Handler) readLimit(ctx context.Context) error {
	s, err := h.js.Stream(ctx, streams.Jobs)
	if err != nil {
		return err
	}
	limit := int64(s.CachedInfo().Config.MaxMsgSize)
	if limit <= 0 {
		limit = -1
	}
	h.streamLimit.Store(limit)
	h.limitReadAt.Store(time.Now().UnixNano())
	return nil
}

// msgLimit is the most bytes a job's message may have: the server's
// max_payload, or the JOBS stream's max_msg_size if smaller. The stream's
// is read at most once a minute; while it cannot be read, the server's
// holds, and the stream still refuses what is too large when it is sent.
func (h *Handler) msgLimit(ctx context.Context) int64 {
	limit := h.nc.MaxPayload()
	if time.Since(time.Unix(0, h.limitReadAt.Load())) > limitTTL && h.limitReadLock.TryLock() {
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		if err := h.readLimit(ctx); err != nil {
			h.logger.Debug("gateway: cannot read the JOBS stream's max_msg_size", "err", err)
		}
		cancel()
		h.limitReadLock.Unlock()
	}
	if s := h.streamLimit.Load(); s > 0 && (limit <= 0 || s < limit) {
		limit = s
	}
	return limit
}

// notFound answers what no route serves: 405 for a path that exists with
// another method, 404 otherwise.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	for _, m := range []string{http.MethodPost, http.MethodGet} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow := m
			if m == http.MethodGet {
				allow = "GET, HEAD"
			}
			w.Header().Set("Allow", allow)
			writeProblem(w, newProblem(r, http.StatusMethodNotAllowed, fmt.Sprintf("%s takes %s", r.URL.Path, allow)))
			return
		}
	}
	writeProblem(w, newProblem(r, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s (see POST /v1/jobs)", r.URL.Path)))
}

// errDraining ends an NDJSON request when the gateway shuts down.
var errDraining = errors.New("the gateway is shutting down")

// startStream registers an NDJSON request for Drain; it fails once the
// gateway drains.
func (h *Handler) startStream(rc *http.ResponseController) error {
	h.streamsMu.Lock()
	defer h.streamsMu.Unlock()
	if h.drained.Load() {
		return errDraining
	}
	h.streams[rc] = struct{}{}
	return nil
}

func (h *Handler) endStream(rc *http.ResponseController) {
	h.streamsMu.Lock()
	defer h.streamsMu.Unlock()
	delete(h.streams, rc)
}
