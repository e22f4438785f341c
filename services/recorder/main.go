// Command recorder writes the RESULTS stream of an external NATS server to
// the results store (a SQLite file or PostgreSQL) and serves the query API
// over it.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchyard-io/switchyard/internal/httpserve"
	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/api"
	"github.com/switchyard-io/switchyard/streams"
)

// apiShutdownTimeout is how long queries in flight may finish at exit.
const apiShutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	service.Exit("recorder", run(ctx, os.Args[1:], os.Stderr))
}

// run starts the store, the query API and the recorder's service (the
// recorder, batch tracking, retention), and at the end of ctx stops them
// in reverse: the API (it reads the store), the service (the recorder
// commits the batch in hand), the connection, the store.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("recorder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := service.NewFlags(fs)
	flags.NATSURL()
	flags.Key("database", "recorder.database", "", "SQLite database `file` or postgres:// URL (default switchyard.db)")
	flags.Key("api-listen", "recorder.api.listen", "", "query API `address` (default 127.0.0.1:8472; - turns it off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, logger, err := flags.Load(stderr, nil)
	if err != nil {
		return err
	}
	store, err := recorder.Open(ctx, cfg.Recorder.Database)
	if err != nil {
		return err
	}
	defer store.Close()
	nc, js, err := service.Connect(ctx, cfg.NATS, logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	// The API starts first, so a taken port fails the start before
	// anything is consumed. It is ready (beside its store's ping) once
	// the recorder runs, while it is connected to NATS and the RESULTS
	// stream answers, and while its last write succeeded.
	var svc atomic.Pointer[recorder.Service]
	resultsStream := httpserve.CacheOK(5*time.Second, func(ctx context.Context) error {
		_, err := js.Stream(ctx, streams.Results)
		return err
	})
	ready := func() error {
		switch s := svc.Load(); {
		case s == nil:
			return errors.New("starting")
		case !nc.IsConnected():
			return errors.New("not connected to NATS")
		case !s.Recorder.Healthy():
			return errors.New("the last write to the results store failed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := resultsStream(ctx); err != nil {
			return errors.New("the RESULTS stream does not answer")
		}
		return nil
	}
	reg, err := batch.Open(ctx, js)
	if err != nil {
		return err
	}
	metrics := httpserve.NewRegistry()
	srv := api.NewServer(cfg.Recorder.API, store, ready, logger, api.WithDeclarations(reg), api.WithMetrics(metrics))
	if err := srv.Start(ctx); err != nil {
		return err
	}
	defer shutdown(srv, logger)
	s, err := recorder.StartService(ctx, js, store, cfg.Recorder, logger)
	if err != nil {
		return err
	}
	metrics.MustRegister(s.Recorder.Collector())
	svc.Store(s)
	<-ctx.Done()
	shutdown(srv, logger)
	s.Stop()
	return nil
}

func shutdown(srv *api.Server, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), apiShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		logger.Warn("query API shutdown cut requests short", "err", err)
	}
}
