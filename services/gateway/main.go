// Command gateway is Switchyard's HTTP ingest: it takes jobs over HTTP, for
// producers that do not speak NATS, and publishes them on the JOBS stream
// of an external NATS server. See package gateway for the API.
package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchyard-io/switchyard/internal/httpserve"
	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/gateway"
)

// shutdownTimeout is how long requests in flight may finish at exit. NDJSON
// streams stop at their next line and answer how far they got; a request
// still waiting for JetStream gets at most its publish timeout.
const shutdownTimeout = 15 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	service.Exit("gateway", run(ctx, os.Args[1:], os.Stderr))
}

// run connects to NATS (applying the streams), serves the gateway until ctx
// ends, then stops in reverse: the HTTP server (which drains its requests
// and releases its producer), then the connection.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := service.NewFlags(fs)
	flags.NATSURL()
	flags.Key("listen", "gateway.listen", "", "HTTP `address` (default 127.0.0.1:8473)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, logger, err := flags.Load(stderr, nil)
	if err != nil {
		return err
	}
	nc, _, err := service.Connect(ctx, cfg.NATS, logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	srv, err := gateway.NewServer(nc, cfg.Gateway, logger, gateway.WithMetrics(httpserve.NewRegistry()))
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	shutdown(srv, logger)
	// Publishes already acknowledged need no flush; Drain lets the
	// connection hand over anything still buffered.
	if err := nc.Drain(); err != nil {
		logger.Warn("nats drain", "err", err)
	}
	return nil
}

func shutdown(srv *gateway.Server, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		logger.Warn("gateway shutdown cut requests short", "err", err)
	}
}
