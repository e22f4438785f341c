package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/internal/httpserve"
	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

// Server timeouts. Answers are small (a page is at most 1,000 rows without
// bodies), so a client that needs longer than WriteTimeout to read one is
// stuck, not slow.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// queryTimeout is below writeTimeout, so a slow store is answered
	// with a problem rather than a cut connection.
	queryTimeout = 30 * time.Second
)

// Server runs the query API on its own listener. Create it with NewServer,
// run it with Start, end it with Shutdown.
type Server struct {
	cfg     recorder.APIConfig
	handler http.Handler
	logger  *slog.Logger

	mu       sync.Mutex
	hs       *http.Server
	addr     net.Addr
	done     <-chan struct{}
	shutdown bool
}

// NewServer returns a server of the query API over store, configured by cfg
// (cfg.Token turns on bearer auth). ready, when not nil, decides GET
// /readyz beside the store's ping; see Options.Ready.
func NewServer(cfg recorder.APIConfig, store recorder.Store, ready func() error, logger *slog.Logger, opts ...func(*Options)) *Server {
	logger = logger.With("component", "query-api")
	o := Options{Token: cfg.Token, Ready: ready, Logger: logger, QueryTimeout: queryTimeout}
	for _, f := range opts {
		f(&o)
	}
	h := NewHandler(store, o)
	return &Server{cfg: cfg, handler: h, logger: logger}
}

// WithDeclarations has GET /v1/batches/{id} include batch declarations
// read from reg.
func WithDeclarations(reg *batch.Registry) func(*Options) {
	return func(o *Options) {
		o.Declarations = func(ctx context.Context, id string) (*batch.Declaration, error) {
			d, _, err := reg.Get(ctx, id)
			return d, err
		}
	}
}

// WithMetrics has the API serve GET /metrics from g.
func WithMetrics(g prometheus.Gatherer) func(*Options) {
	return func(o *Options) { o.Metrics = httpserve.MetricsHandler(g) }
}

// Enabled reports whether cfg turns the API on: Listen is not "-".
func Enabled(cfg recorder.APIConfig) bool { return cfg.Listen != "-" }

// Start listens on cfg.Listen and serves in the background. It does nothing
// when the API is turned off (see Enabled). A listen error, such as the port
// being taken, is returned at once and names the config key.
//
// ctx only bounds starting; the server runs until Shutdown.
func (s *Server) Start(ctx context.Context) error {
	if !Enabled(s.cfg) {
		s.logger.Info("query API turned off (recorder.api.listen is -)")
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return errors.New("query API: already shut down")
	}
	if s.hs != nil {
		return errors.New("query API: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("recorder.api.listen: %w", err)
	}
	s.hs = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.addr = ln.Addr()
	s.done = httpserve.Serve(s.hs, ln, s.logger, "query API")
	s.logger.Info("query API listening", "addr", s.addr.String(), "url", s.urlLocked(), "auth", s.cfg.Token != "")
	if s.cfg.Token == "" && !httpserve.IsLoopback(s.addr) {
		s.logger.Warn("query API listens beyond loopback without a token: anyone who reaches it reads every result; set recorder.api.token",
			"addr", s.addr.String())
	}
	return nil
}

// Addr returns the address the server listens on, or "" before Start or
// when the API is turned off.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == nil {
		return ""
	}
	return s.addr.String()
}

// URL returns the base URL a client on this machine uses, such as
// http://127.0.0.1:8472, or "" before Start or when the API is turned off.
// A server on all interfaces is reached through loopback.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.urlLocked()
}

func (s *Server) urlLocked() string { return httpserve.URL(s.addr) }

// Shutdown stops accepting requests and waits for those in flight until
// ctx ends, then closes what is left. It is idempotent and safe before
// Start; it returns ctx's error when requests had to be cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.shutdown
	s.shutdown = true
	hs, done := s.hs, s.done
	s.mu.Unlock()
	if hs == nil {
		return nil
	}
	if !first {
		<-done
		return nil
	}
	s.logger.Info("query API shutting down")
	return httpserve.Shutdown(ctx, hs, done)
}
