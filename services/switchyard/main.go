// Command switchyard is the operator's tool: dev runs the whole system in
// one process on an embedded NATS server, a SQLite file and a demo
// provider; jobs asks the recorder's query API about jobs.
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
  switchyard dev [flags]          run everything in one process (embedded NATS, SQLite, demo provider)
  switchyard jobs show <id>       one job's status, attempts and last response, from the recorder's query API
  switchyard jobs ls [flags]      list jobs: --provider --task --status --batch --since --limit --all
  switchyard enqueue [flags] FILE enqueue jobs from NDJSON or CSV (+ --template); - reads stdin
  switchyard batch status <id>    a batch's progress; --wait until every job is final
  switchyard dlq ls|show|replay   dead letters by provider, task, batch, class and time; replay them
  switchyard status [flags]       backlog, rate, ETA and useful workers per provider and lane; --watch
  switchyard provider pause <p>   pause a provider (or --lane) for the whole fleet --for 30m; resume ends it
  switchyard cancel --job ID      take a job back before its call (--batch ID: every job of a batch)
  switchyard schedule add|ls|rm   periodic jobs (cron or interval), fired once per tick by the NATS server
  switchyard help                 show this help

Run 'switchyard dev -h' for the flags of dev, 'switchyard jobs help' for those of jobs.
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
	case "jobs":
		return runJobs(ctx, args[1:], stdout, stderr)
	case "batch":
		return runBatch(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "provider":
		return runProvider(ctx, args[1:], stdout, stderr)
	case "dlq":
		return runDLQ(ctx, args[1:], stdout, stderr)
	case "cancel":
		return runCancel(ctx, args[1:], stdout, stderr)
	case "schedule":
		return runSchedule(ctx, args[1:], stdout, stderr)
	case "enqueue":
		return runEnqueue(ctx, args[1:], os.Stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
