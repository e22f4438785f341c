package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder/api"
)

const batchUsage = `Usage:
  switchyard batch status <id> [flags]   progress of a batch: jobs per status, pending, done

It asks the recorder's query API. A batch declared by its producer (with
its expected size) shows how many jobs are still pending; the recorder
publishes events.batch.<id>.completed once none is.

Flags:
  --wait           refresh until every job of the batch is final, then exit
  --every D        refresh interval with --wait (default 1s)
  --api URL        the query API (default $SWITCHYARD_API, else http://127.0.0.1:8472)
  --token TOKEN    its bearer token (default $SWITCHYARD_API_TOKEN)
  --json           print JSON instead of a progress line
`

func runBatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "status" {
		if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, batchUsage)
			return nil
		}
		fmt.Fprint(stderr, batchUsage)
		return errors.New("batch: say status")
	}
	fs := newJobsFlagSet("batch status", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, batchUsage) }
	var af apiFlags
	af.register(fs)
	wait := fs.Bool("wait", false, "refresh until every job is final")
	every := fs.Duration("every", time.Second, "refresh `interval` with --wait")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("batch status: want one batch id, got %d arguments", len(pos))
	}
	if !job.ValidBatch(pos[0]) {
		return fmt.Errorf("batch status: %q is not a batch id ([A-Za-z0-9_-]{1,128})", pos[0])
	}
	if *every < 100*time.Millisecond {
		return fmt.Errorf("--every %s: must be at least 100ms", *every)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	tty := isTTY(stdout)
	var last time.Time
	for {
		b, err := c.Batch(ctx, pos[0])
		if err != nil {
			return apiError(c, af, err)
		}
		switch {
		case af.json:
			if !*wait || b.Final {
				return writeIndented(stdout, b)
			}
		case tty && *wait:
			fmt.Fprintf(stdout, "\r\033[K%s", batchLine(b))
			if b.Final {
				fmt.Fprintln(stdout)
			}
		case !*wait || b.Final || time.Since(last) >= 10*time.Second:
			// Without a terminal, a line per 10 s is a readable log.
			fmt.Fprintln(stdout, batchLine(b))
			last = time.Now()
		}
		if !*wait || b.Final {
			return nil
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(stdout)
			}
			return ctx.Err()
		case <-time.After(*every):
		}
	}
}

// batchLine is one line of progress: a bar when the size is known, the
// counts by status, and whether it is done.
func batchLine(b *api.Batch) string {
	var s strings.Builder
	final := b.Total - b.Counts[job.StatusRetrying]
	fmt.Fprintf(&s, "batch %s  ", b.Batch)
	if b.Declared {
		done := b.Expected - b.Pending
		s.WriteString(bar(done, b.Expected, 30))
		fmt.Fprintf(&s, " %d/%d final", done, b.Expected)
	} else {
		fmt.Fprintf(&s, "%d/%d final (not declared: size unknown)", final, b.Total)
	}
	var parts []string
	for _, st := range slices.Sorted(maps.Keys(b.Counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", st, b.Counts[st]))
	}
	if len(parts) > 0 {
		fmt.Fprintf(&s, "  (%s)", strings.Join(parts, ", "))
	}
	if b.Final {
		s.WriteString("  done")
	}
	return s.String()
}

// bar draws done of total as [#####-----] of width cells.
func bar(done, total, width int) string {
	n := 0
	if total > 0 {
		n = min(done*width/total, width)
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
