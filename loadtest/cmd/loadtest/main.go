// Command loadtest runs one load-test scenario through Switchyard and
// reports on it: it starts a stack (nats-server, the mock API, the
// recorder, the workers) or connects to one, enqueues the scenario's jobs,
// waits until every one is recorded, runs the plain-Go ceiling against the
// same mock, and writes report.md, report.json and chart.png.
//
//	go run ./loadtest/cmd/loadtest --scenario loadtest/scenarios/ci-0ms.yaml
//
// It shares the machine with what it measures, so it stays cheap: one
// publishing goroutine with PubAcks checked in callbacks, and progress read
// incrementally from the results database four times a second.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
		}
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	scenario    string
	jobs        int
	binDir      string
	reportsDir  string
	noBuild     bool
	keepData    bool
	ceilingOnly bool
	// Connect mode: an existing stack.
	natsURL, mockURL, dbPath string
	// postgresURL is the database of a scenario of kind recorder with
	// database postgres.
	postgresURL string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenario, "scenario", "", "scenario YAML `file` (required), e.g. loadtest/scenarios/ci-0ms.yaml")
	fs.IntVar(&o.jobs, "jobs", 0, "override the scenario's number of jobs")
	fs.StringVar(&o.binDir, "bin", "", "`dir` the binaries are built into (default loadtest/bin)")
	fs.StringVar(&o.reportsDir, "reports", "", "`dir` the report directory is created in (default loadtest/reports)")
	fs.BoolVar(&o.noBuild, "no-build", false, "use the binaries already in --bin")
	fs.BoolVar(&o.keepData, "keep-data", false, "keep the NATS storage and the SQLite file (their path is logged)")
	fs.BoolVar(&o.ceilingOnly, "ceiling-only", false, "run only the plain-Go ceiling against the mock API")
	fs.StringVar(&o.postgresURL, "postgres", "", "PostgreSQL `URL` for scenarios with database: postgres (default $TEST_POSTGRES_URL)")
	fs.StringVar(&o.natsURL, "nats", "", "connect mode: NATS `URL` of a running stack")
	fs.StringVar(&o.mockURL, "mock", "", "connect mode: base `URL` of a running mock API")
	fs.StringVar(&o.dbPath, "db", "", "connect mode: the running recorder's SQLite `file`")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./loadtest/cmd/loadtest --scenario FILE [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.scenario == "" {
		fs.Usage()
		return o, errors.New("--scenario is required")
	}
	if o.jobs < 0 {
		return o, fmt.Errorf("--jobs: %d must be positive", o.jobs)
	}
	connect := o.natsURL != "" || o.dbPath != ""
	switch {
	case o.ceilingOnly && connect:
		return o, errors.New("--ceiling-only uses only the mock API: give --mock, not --nats or --db")
	case connect && (o.natsURL == "" || o.mockURL == "" || o.dbPath == ""):
		return o, errors.New("connect mode needs all of --nats, --mock and --db")
	case !o.ceilingOnly && o.mockURL != "" && !connect:
		return o, errors.New("--mock without --nats and --db: connect mode needs all three (or add --ceiling-only)")
	}
	return o, nil
}

// mode names how the stack is obtained.
func (o options) mode() string {
	switch {
	case o.ceilingOnly:
		return "ceiling-only"
	case o.natsURL != "":
		return "connect"
	}
	return "managed"
}

// startsProcesses reports whether the runner starts (and so measures) the
// processes it needs.
func (o options) startsProcesses() bool { return o.natsURL == "" && o.mockURL == "" }
