// Command worker runs Switchyard jobs: it pulls from the JOBS stream of an
// external NATS server, calls the configured providers, and publishes
// results. Run as many replicas as you like; they share the work. Each
// also stores the configured periodic schedules and expands their
// firings (package schedule).
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchyard-io/switchyard/internal/httpserve"
	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/schedule"
	"github.com/switchyard-io/switchyard/pkg/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	service.Exit("worker", run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	flags := service.NewFlags(fs)
	flags.NATSURL()
	flags.Key("id", "worker.id", "", "replica `id` in results and logs (default: hostname and a random suffix)")
	flags.Key("http-listen", "worker.http.listen", "", "metrics and health `address` (default 127.0.0.1:8474; - turns it off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, logger, err := flags.Load(os.Stderr, nil)
	if err != nil {
		return err
	}
	providers, err := provider.NewAll(cfg.Providers)
	if err != nil {
		return err
	}
	if len(providers) == 0 {
		return errors.New("no providers configured: add providers.<name>.base_url to the config")
	}
	nc, js, err := service.Connect(ctx, cfg.NATS, logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	w, err := worker.New(js, cfg.Worker, providers, logger)
	if err != nil {
		return err
	}
	reg := httpserve.NewRegistry()
	reg.MustRegister(w.Collector())
	// The server starts first, so a taken port fails the start before
	// anything is fetched; /readyz answers 503 until the worker runs.
	ops := httpserve.NewOps("worker.http.listen", cfg.Worker.HTTP.Listen, reg, w.Ready, logger)
	if err := ops.Start(ctx); err != nil {
		return err
	}
	defer shutdownOps(ops, logger)
	if err := w.Start(ctx); err != nil {
		return err
	}
	// Periodic jobs: store the configured schedules (unchanged ones are
	// left alone), and take a share of turning their firings into jobs. A
	// stop meanwhile is no failure: the worker drains as always.
	exp := schedule.NewExpander(js, logger)
	err = schedule.NewStore(js).Apply(ctx, cfg.Schedules, logger)
	if err == nil {
		err = exp.Start(ctx)
	}
	if err != nil && ctx.Err() == nil {
		w.Stop(context.Background())
		return err
	}
	<-ctx.Done()
	logger.Info("stopping: no new jobs; waiting for calls in flight", "grace", cfg.Worker.ShutdownGrace.String())
	exp.Stop()
	// /readyz answers 503 from here on; /metrics keeps serving during the
	// drain.
	w.Stop(context.Background())
	// Every job is settled or handed back by now; a connection that cannot
	// drain (NATS down at SIGTERM) loses nothing, so it is no failure.
	if err := nc.Drain(); err != nil {
		logger.Warn("drain NATS connection", "err", err)
	}
	return nil
}

// shutdownOps stops the metrics and health server at exit.
func shutdownOps(ops *httpserve.Ops, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := ops.Shutdown(ctx); err != nil {
		logger.Warn("metrics and health server shutdown", "err", err)
	}
}
