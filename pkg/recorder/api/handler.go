package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

// Options configure a handler. The zero value serves without auth, always
// ready as long as the store answers, logging nowhere.
type Options struct {
	// Token, when set, is the bearer token every /v1 request must carry.
	Token string
	// Ready, when set, is asked by GET /readyz after the store's ping: a
	// non-nil error makes the answer 503, with the error's text as the
	// reason, so it should be short and free of secrets.
	Ready func() error
	// Logger receives store failures. Default: discard.
	Logger *slog.Logger
	// Now is the clock for the stats windows. Default time.Now.
	Now func() time.Time
	// QueryTimeout bounds each store call. Default 30s.
	QueryTimeout time.Duration
	// Declarations, when set, looks up a batch's declaration for GET
	// /v1/batches/{id}; an error matching batch.ErrNotDeclared means
	// there is none.
	Declarations func(ctx context.Context, id string) (*batch.Declaration, error)
	// Metrics, when set, serves GET /metrics (Prometheus). Like the probes
	// it needs no token: it holds counts, never results.
	Metrics http.Handler
}

// ReadyWhen adapts a health check such as Recorder.Healthy to
// Options.Ready: while healthy reports false, GET /readyz answers 503 with
// reason.
func ReadyWhen(healthy func() bool, reason string) func() error {
	return func() error {
		if !healthy() {
			return errors.New(reason)
		}
		return nil
	}
}

// pingTimeout bounds the store ping of GET /readyz: a probe that waits
// longer than a kubelet's default one-second timeout tells nobody anything.
const pingTimeout = time.Second

// NewHandler returns the query API over store; see the package doc.
func NewHandler(store recorder.Store, o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 30 * time.Second
	}
	h := &handler{store: store, o: o, mux: http.NewServeMux()}
	if o.Token != "" {
		sum := sha256.Sum256([]byte(o.Token))
		h.tokenSum = sum[:]
	}
	h.mux.HandleFunc("GET /v1/jobs/{id}", h.job)
	h.mux.HandleFunc("GET /v1/jobs", h.jobs)
	h.mux.HandleFunc("GET /v1/batches/{id}", h.batch)
	h.mux.HandleFunc("GET /v1/stats", h.stats)
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	if o.Metrics != nil {
		h.mux.Handle("GET /metrics", o.Metrics)
	}
	h.mux.HandleFunc("/", h.notFound)
	return h
}

type handler struct {
	store    recorder.Store
	o        Options
	mux      *http.ServeMux
	tokenSum []byte // sha256 of Options.Token; nil without auth
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.tokenSum != nil && (r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/")) && !h.authorized(w, r) {
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized checks the bearer token and answers 401 when it is wrong.
// Both sides are hashed first, so the comparison takes the same time
// whatever the length of the token offered.
func (h *handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
		writeProblem(w, r, http.StatusUnauthorized, "this API needs a bearer token (Authorization: Bearer <token>)")
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(sum[:], h.tokenSum) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard", error="invalid_token"`)
		writeProblem(w, r, http.StatusUnauthorized, "the bearer token is not valid")
		return false
	}
	return true
}

func (h *handler) job(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		writeProblem(w, r, http.StatusBadRequest, "id: not a job id", InvalidParam{Name: "id", Reason: "not a job id"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.QueryTimeout)
	defer cancel()
	row, err := h.store.Job(ctx, id)
	if errors.Is(err, recorder.ErrNotFound) {
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no result of job %q has been recorded", id))
		return
	}
	if err != nil {
		h.storeFailed(w, r, "job", err)
		return
	}
	j, err := jobFromRow(row)
	if err != nil {
		h.storeFailed(w, r, "job", err)
		return
	}
	writeJSON(w, &j)
}

func (h *handler) jobs(w http.ResponseWriter, r *http.Request) {
	f, perr := parseJobFilter(r.URL.Query())
	if perr != nil {
		h.badParam(w, r, perr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.QueryTimeout)
	defer cancel()
	page, err := h.store.Jobs(ctx, f)
	if err != nil {
		h.storeFailed(w, r, "jobs", err)
		return
	}
	list := JobList{Jobs: make([]Job, len(page.Jobs))}
	for i := range page.Jobs {
		if list.Jobs[i], err = jobFromRow(&page.Jobs[i]); err != nil {
			h.storeFailed(w, r, "jobs", err)
			return
		}
	}
	if page.Next != nil {
		list.NextCursor = encodeCursor(*page.Next)
	}
	writeJSON(w, &list)
}

func (h *handler) batch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !job.ValidBatch(id) {
		writeProblem(w, r, http.StatusBadRequest, "id: not a batch id ([A-Za-z0-9_-]{1,128})",
			InvalidParam{Name: "id", Reason: "not a batch id ([A-Za-z0-9_-]{1,128})"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.QueryTimeout)
	defer cancel()
	counts, err := h.store.BatchCounts(ctx, id)
	if err != nil {
		h.storeFailed(w, r, "batch counts", err)
		return
	}
	b := Batch{Batch: id, Counts: counts, Final: true}
	final := 0
	for status, n := range counts {
		b.Total += n
		if status.Final() {
			final += n
		} else if n > 0 {
			b.Final = false
		}
	}
	if h.o.Declarations != nil {
		d, err := h.o.Declarations(ctx, id)
		switch {
		case errors.Is(err, batch.ErrNotDeclared):
		case err != nil:
			h.storeFailed(w, r, "batch declaration", err)
			return
		default:
			b.Declared, b.Expected, b.DeclaredAt, b.CompletedAt = true, d.Expected, &d.DeclaredAt, d.CompletedAt
			b.Pending = max(d.Expected-final, 0)
			b.Final = b.Pending == 0
		}
	}
	if b.Total == 0 && !b.Declared {
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no job of batch %q has been recorded, and it was not declared", id))
		return
	}
	writeJSON(w, &b)
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	windows, perr := parseWindows(r.URL.Query())
	if perr != nil {
		h.badParam(w, r, perr)
		return
	}
	now := h.o.Now().UTC()
	ctx, cancel := context.WithTimeout(r.Context(), h.o.QueryTimeout)
	defer cancel()
	ps, err := h.store.Stats(ctx, recorder.StatsQuery{Now: now, Windows: windows})
	if err != nil {
		h.storeFailed(w, r, "stats", err)
		return
	}
	s := statsFromStore(now, ps)
	writeJSON(w, &s)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]string{"status": "ok"})
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pingTimeout)
	defer cancel()
	if err := h.store.Ping(ctx); err != nil {
		if r.Context().Err() == nil {
			h.o.Logger.Warn("query API: not ready: store ping failed", "err", err)
		}
		writeProblem(w, r, http.StatusServiceUnavailable, "not ready: the results store does not answer")
		return
	}
	if h.o.Ready != nil {
		if err := h.o.Ready(); err != nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	writeJSON(w, map[string]string{"status": "ready"})
}

// notFound answers what no route serves: 405 for a path that exists with
// another method, 404 otherwise.
func (h *handler) notFound(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		probe := r.Clone(r.Context())
		probe.Method = http.MethodGet
		if _, pattern := h.mux.Handler(probe); pattern != "/" && pattern != "" {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("%s is read-only: use GET", r.URL.Path))
			return
		}
	}
	writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s (see /v1/jobs, /v1/batches/{id}, /v1/stats)", r.URL.Path))
}

func (h *handler) badParam(w http.ResponseWriter, r *http.Request, e *paramError) {
	writeProblem(w, r, http.StatusBadRequest, e.Error(), InvalidParam{Name: e.name, Reason: e.reason})
}

// storeFailed answers 500 with a short detail and logs the cause, unless
// the client went away, which is nobody's failure.
func (h *handler) storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	if r.Context().Err() != nil {
		h.o.Logger.Debug("query API: client went away", "path", r.URL.Path, "err", err)
		writeProblem(w, r, http.StatusServiceUnavailable, "request canceled")
		return
	}
	h.o.Logger.Error("query API: store failed", "query", what, "path", r.URL.Path, "err", err)
	detail := "the results store failed; the recorder's log has the cause"
	if errors.Is(err, context.DeadlineExceeded) {
		detail = "the results store did not answer in time"
	}
	writeProblem(w, r, http.StatusInternalServerError, detail)
}
