package httpserve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a process's own Prometheus registry (never the
// global default one, so tests can run many services in one process),
// with the Go runtime and process collectors registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves g in the Prometheus exposition formats. A
// collector that fails leaves its metrics out instead of failing the
// scrape.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Timeout: 10 * time.Second})
}

// ReadyFunc says why a service is not ready, or nil. Its error's text is
// shown to the prober, so it should be short and free of secrets.
type ReadyFunc func(ctx context.Context) error

// readyTimeout bounds a readiness check: a probe that waits longer than a
// kubelet's default one-second timeout tells nobody anything.
const readyTimeout = time.Second

// Ops is a small HTTP server for operators, for a service that has no
// HTTP API of its own (the worker): GET /metrics, /healthz (the process
// answers) and /readyz (ready returns nil). Create it with NewOps, run it
// with Start, end it with Shutdown.
type Ops struct {
	key     string // the config key of the address, for errors
	listen  string
	handler http.Handler
	logger  *slog.Logger

	mu       sync.Mutex
	hs       *http.Server
	addr     net.Addr
	done     <-chan struct{}
	shutdown bool
}

// NewOps returns a server on listen ("-" turns it off) serving g and
// ready. key names the config key of listen in errors.
func NewOps(key, listen string, g prometheus.Gatherer, ready ReadyFunc, logger *slog.Logger) *Ops {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", MetricsHandler(g))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			writeStatus(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeStatus(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return &Ops{key: key, listen: listen, handler: mux, logger: logger.With("component", "ops-http")}
}

func writeStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Start listens and serves in the background; it does nothing when the
// address is "-". A listen error, such as the port being taken, is
// returned at once and names the config key. ctx only bounds starting.
func (o *Ops) Start(ctx context.Context) error {
	if o.listen == "-" {
		o.logger.Info("metrics and health server turned off (" + o.key + " is -)")
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.shutdown || o.hs != nil {
		return errors.New("ops server: already started or shut down")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.listen)
	if err != nil {
		return fmt.Errorf("%s: %w", o.key, err)
	}
	o.hs = &http.Server{
		Handler:           o.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(o.logger.Handler(), slog.LevelWarn),
	}
	o.addr = ln.Addr()
	o.done = Serve(o.hs, ln, o.logger, "metrics and health server")
	o.logger.Info("serving metrics and health", "url", URL(o.addr))
	return nil
}

// URL returns the base URL a client on this machine uses, or "" before
// Start or when turned off.
func (o *Ops) URL() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return URL(o.addr)
}

// Shutdown stops the server, waiting for requests in flight until ctx
// ends. It is idempotent and safe before Start.
func (o *Ops) Shutdown(ctx context.Context) error {
	o.mu.Lock()
	first := !o.shutdown
	o.shutdown = true
	hs, done := o.hs, o.done
	o.mu.Unlock()
	if hs == nil {
		return nil
	}
	if !first {
		<-done
		return nil
	}
	return Shutdown(ctx, hs, done)
}

// CacheOK returns check with its successes cached for d: readiness probes
// from a kubelet and a load balancer every few seconds then cost one
// round trip per d at most. A failure is not cached: the next call checks
// again. It is safe for concurrent use.
func CacheOK(d time.Duration, check ReadyFunc) ReadyFunc {
	var mu sync.Mutex
	var okAt time.Time
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !okAt.IsZero() && time.Since(okAt) < d {
			return nil
		}
		if err := check(ctx); err != nil {
			okAt = time.Time{}
			return err
		}
		okAt = time.Now()
		return nil
	}
}
