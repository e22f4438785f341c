// Command mockapi serves fake third-party providers for load tests and the
// fleet-wide rate-limit and circuit-breaker tests: a pkg/mockapi Multi in
// its own process, so that a test can start it, point Switchyard's
// providers at it and read its counters.
//
//	go run ./loadtest/cmd/mockapi --rate-limit 50 --burst 5 --limit-mode headers
//	go run ./loadtest/cmd/mockapi --config mockapi.yaml
//
// The flags (see -h) set the default section of the config file; each
// provider in its providers section starts from that section and overrides
// some keys, and any other provider name is served with the default:
//
//	default:
//	  latency_min: 500ms
//	  latency_max: 800ms
//	  error_rate: 0.01
//	providers:
//	  acme:
//	    rate_limit: 50
//	    burst: 5
//	    limit_mode: headers   # retry-after (default), headers or silent
//	  slowpoke:
//	    tail_rate: 0.01
//	    tail_latency: 10s
//
// It serves with mockapi.LeanServer, a minimal HTTP/1.1 server that spends
// a fraction of net/http's CPU per request, so that the mock takes less from
// the system a load test measures on the same machine; --server net/http
// serves with net/http's server instead.
//
// Once it listens it prints one line to stdout, the base URL (for example
// http://127.0.0.1:41234), so a parent process can read the port; provider
// acme's base_url is that URL + "/acme". Logs go to stderr. GET /stats
// returns the counters, POST /stats/reset zeroes them, GET /healthz answers
// 200 (see mockapi.Multi). SIGINT or SIGTERM shut it down gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard-io/switchyard/pkg/mockapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return
	}
	// Errors from pkg/mockapi already say where they come from.
	msg := err.Error()
	if !strings.HasPrefix(msg, "mockapi: ") {
		msg = "mockapi: " + msg
	}
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}

// run serves until ctx is done, then shuts down and returns nil.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	m, err := mockapi.NewMulti(opts.def, opts.per)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	raiseOpenFiles(logger)

	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	var srv server
	if opts.server == serverNetHTTP {
		srv = newHTTPServer(m, logger)
	} else {
		srv = mockapi.NewLeanServer(m, logger)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	url := "http://" + ln.Addr().String()
	if err := announce(stdout, url); err != nil {
		_ = srv.Close()
		return fmt.Errorf("print the URL: %w", err)
	}
	logger.Info("serving", "url", url, "server", opts.server, "default", fmt.Sprintf("%+v", opts.def), "providers", slices.Sorted(maps.Keys(opts.per)))

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "grace", opts.shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), opts.shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still waiting out their latency: a mock owes them
		// nothing, and a test waiting for the process must not wait a tail.
		logger.Warn("cutting requests still in flight", "in_flight", m.Stats().Total.InFlight)
		_ = srv.Close()
	}
	<-served // http.ErrServerClosed
	st := m.Stats().Total
	logger.Info("stopped", "requests", st.Requests, "throttled", st.Throttled, "canceled", st.Canceled,
		"peak_in_flight", st.PeakInFlight, "max_per_second", st.MaxPerSecond, "duplicates", st.Duplicates)
	return nil
}

// server is what run needs of an HTTP server; *http.Server and
// *mockapi.LeanServer both are one. Shutdown lets requests in flight finish
// until its context is done; Close cuts them.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// newHTTPServer is tuned for 10,000 and more keep-alive connections whose
// answers may take a 10 s tail: no read or write timeout that would cut
// one, a header timeout only for clients that never finish their headers,
// idle connections kept two minutes so that a load test's pool stays warm,
// and small headers.
func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    8 << 10,
		// Accept errors such as "too many open files" must be seen.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// announce writes the one line a parent process waits for, and flushes it.
func announce(stdout io.Writer, url string) error {
	if _, err := fmt.Fprintln(stdout, url); err != nil {
		return err
	}
	if f, ok := stdout.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil // an *os.File is not buffered
}
