// Command switchyard is the operator's tool. Today it has one subcommand,
// dev, which runs the whole system in one process on an embedded NATS
// server, a SQLite file and a demo provider.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchyard-io/switchyard/internal/service"
)

const usage = `switchyard — outbound third-party API calls through NATS JetStream

Usage:
  switchyard dev [flags]   run everything in one process (embedded NATS, SQLite, demo provider)
  switchyard help          show this help

Run 'switchyard dev -h' for the flags of dev.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	service.Exit("switchyard", run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "dev":
		return runDev(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
