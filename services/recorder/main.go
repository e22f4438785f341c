// Command recorder writes the RESULTS stream of an external NATS server to
// the results store (SQLite).
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	service.Exit("recorder", run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("recorder", flag.ContinueOnError)
	flags := service.NewFlags(fs)
	flags.NATSURL()
	flags.Key("database", "recorder.database", "", "SQLite database `file` (default switchyard.db)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, logger, err := flags.Load(os.Stderr, nil)
	if err != nil {
		return err
	}
	store, err := recorder.OpenSQLite(ctx, cfg.Recorder.Database)
	if err != nil {
		return err
	}
	defer store.Close()
	nc, js, err := service.Connect(ctx, cfg.NATS, logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	rec, err := recorder.New(js, store, cfg.Recorder, logger)
	if err != nil {
		return err
	}
	if err := rec.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	rec.Stop()
	return nil
}
