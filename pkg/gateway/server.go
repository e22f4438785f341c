package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/internal/httpserve"
)

// Server timeouts for application/json requests; an NDJSON request
// extends its own deadlines (see Config.StreamTimeout).
const (
	readHeaderTimeout = 5 * time.Second
	// readTimeout covers a body of up to MaxBody (1 MiB by default) on a
	// slow link.
	readTimeout    = 30 * time.Second
	idleTimeout    = 2 * time.Minute
	maxHeaderBytes = 64 << 10
)

// Server runs the gateway on its own listener. Create it with NewServer,
// run it with Start, end it with Shutdown.
type Server struct {
	cfg     Config
	handler *Handler
	logger  *slog.Logger
	metrics *prometheus.Registry // nil: no /metrics (see WithMetrics)

	mu       sync.Mutex
	hs       *http.Server
	addr     net.Addr
	done     <-chan struct{}
	shutdown bool
}

// NewServer returns a server of the gateway publishing on nc, an open
// connection it does not own (give it nats.MaxReconnects(-1), as
// natsx.Connect does). cfg gets its defaults applied and is validated.
func NewServer(nc *nats.Conn, cfg Config, logger *slog.Logger, opts ...Option) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "gateway")
	h, err := NewHandler(nc, cfg, logger)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: h.cfg, handler: h, logger: logger}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Start listens on cfg.Listen and serves in the background. A listen
// error, such as the port being taken, is returned at once and names the
// config key.
//
// ctx only bounds starting; the server runs until Shutdown.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return errors.New("gateway: already shut down")
	}
	if s.hs != nil {
		return errors.New("gateway: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway.listen: %w", err)
	}
	var handler http.Handler = s.handler
	if s.metrics != nil {
		handler = metricsHandler(s.metrics, instrument(s.metrics, s.handler))
	}
	s.hs = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		// Reading the body, then waiting for JetStream, then writing.
		WriteTimeout:   readTimeout + s.cfg.PublishTimeout + answerTimeout,
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.addr = ln.Addr()
	s.done = httpserve.Serve(s.hs, ln, s.logger, "gateway")
	s.logger.Info("gateway listening", "addr", s.addr.String(), "url", s.urlLocked(), "auth", len(s.cfg.Tokens) > 0)
	if len(s.cfg.Tokens) == 0 && !httpserve.IsLoopback(s.addr) {
		s.logger.Warn("gateway listens beyond loopback without tokens (gateway.allow_unauthenticated): whoever reaches it makes calls with the providers' credentials",
			"addr", s.addr.String())
	}
	return nil
}

// Addr returns the address the server listens on, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == nil {
		return ""
	}
	return s.addr.String()
}

// URL returns the base URL a client on this machine uses, such as
// http://127.0.0.1:8473, or "" before Start. A server on all interfaces is
// reached through loopback.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.urlLocked()
}

func (s *Server) urlLocked() string { return httpserve.URL(s.addr) }

// Shutdown stops accepting requests, has NDJSON streams stop at their next
// line and answer how far they got, and waits for the requests in flight
// until ctx ends, then cuts what is left and releases the producer. A job
// whose request was cut may or may not be stored; its caller sends it
// again. Shutdown is idempotent and safe before Start; it returns ctx's
// error when requests had to be cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.shutdown
	s.shutdown = true
	hs, done := s.hs, s.done
	s.mu.Unlock()
	if !first {
		if done != nil {
			<-done
		}
		return nil
	}
	if hs == nil {
		return s.handler.Close()
	}
	s.logger.Info("gateway shutting down")
	s.handler.Drain()
	err := httpserve.Shutdown(ctx, hs, done)
	if cerr := s.handler.Close(); err == nil {
		err = cerr
	}
	return err
}
