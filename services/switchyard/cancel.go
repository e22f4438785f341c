package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/switchyard-io/switchyard/pkg/cancel"
)

const cancelUsage = `Usage:
  switchyard cancel --job ID [flags]     take one job back before its call
  switchyard cancel --batch ID [flags]   take back every job of a batch not yet called

Writes a tombstone in the KV bucket "cancels" (kept 7 days) that every
worker checks before each call: a job it covers is recorded cancelled and
never called. Calls already started finish normally. Delayed jobs still
held as schedules are deleted at once, so they never fire.

Flags:
`

func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("switchyard cancel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, cancelUsage)
		fs.PrintDefaults()
	}
	flags := natsClientFlags(fs)
	id := fs.String("job", "", "the job `id` to cancel")
	batch := fs.String("batch", "", "the batch `id` whose jobs to cancel")
	reason := fs.String("reason", "", "why, kept with the tombstone")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || (*id == "") == (*batch == "") {
		fs.Usage()
		return fmt.Errorf("cancel: give exactly one of --job and --batch")
	}
	nc, js, err := connectClient(flags, stderr, "switchyard cancel")
	if err != nil {
		return err
	}
	defer nc.Close()
	reg, err := cancel.Open(ctx, js)
	if err != nil {
		return err
	}
	what := "job " + *id
	var purged int
	if *id != "" {
		purged, err = reg.Job(ctx, *id, *reason)
	} else {
		what = "batch " + *batch
		purged, err = reg.Batch(ctx, *batch, *reason)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cancelled %s: workers record it cancelled instead of calling it; %d delayed job schedule(s) deleted\n", what, purged)
	return nil
}
