package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/dlq"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx"
)

const dlqUsage = `Usage:
  switchyard dlq ls [flags]          dead letters, oldest first
  switchyard dlq show <seq> [flags]  one dead letter: its reason, every attempt's error, the job
  switchyard dlq replay [flags]      publish the matching jobs to JOBS again, then delete their entries

Dead letters are in the DLQ stream; <seq> is an entry's stream sequence
(the SEQ column of ls). A replay keeps the job id (the recorder keeps one
row per job) under a new message id, with fresh attempts whose numbers go
on from the dead ones; each entry is deleted only after JOBS stored its
replay. docs/dlq.md has the same operations as nats CLI recipes.

Filters (ls and replay):
  --provider P, --task T, --batch B, --job ID
  --class C        reasons, comma separated: http_4xx, http_5xx, throttled,
                   timeout, network, invalid, unrouted, exhausted, expired
  --since T, --until T
                   when the entry was stored: RFC 3339 or a duration back
                   from now (15m, 2h)
  --limit N        at most N entries (ls default 100; replay default all)

Flags of replay:
  --rate N         at most N jobs per second (default 100; 0 = no limit)
  --dry-run        list what would be replayed and change nothing
  --keep           leave replayed entries in the DLQ
  --all            replay with no filter at all (required then)

Flags of all:
  --server URLS    NATS servers (default $NATS_URL, else nats://127.0.0.1:4222)
  --creds FILE, --user U, --password P, --nats-token T
  --json           print JSON lines instead of a table
`

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return errors.New("dlq: say ls, show or replay")
	}
	switch args[0] {
	case "ls", "list", "show", "replay":
		return runDLQCommand(ctx, args[0], args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, dlqUsage)
		return nil
	default:
		fmt.Fprint(stderr, dlqUsage)
		return fmt.Errorf("dlq: unknown command %q (want ls, show or replay)", args[0])
	}
}

type dlqOptions struct {
	filter       dlq.Filter
	class        string
	since, until string
	json         bool
	rate         float64
	dryRun, keep bool
	all          bool
	limitSet     bool
}

func runDLQCommand(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("switchyard dlq "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, dlqUsage) }
	flags := service.NewFlags(fs)
	flags.Key("server", "nats.url", "", "NATS server `URL`s")
	flags.Key("creds", "nats.creds_file", "", "NATS credentials `file`")
	flags.Key("user", "nats.user", "", "NATS `user`")
	flags.Key("password", "nats.password", "", "NATS `password`")
	flags.Key("nats-token", "nats.token", "", "NATS `token`")
	var o dlqOptions
	f := &o.filter
	fs.StringVar(&f.Provider, "provider", "", "only this `provider`")
	fs.StringVar(&f.Task, "task", "", "only this `task`")
	fs.StringVar(&f.Batch, "batch", "", "only this `batch`")
	fs.StringVar(&f.JobID, "job", "", "only this job `id`")
	fs.StringVar(&o.class, "class", "", "only these `reasons`, comma separated")
	fs.StringVar(&o.since, "since", "", "stored at or after `T`")
	fs.StringVar(&o.until, "until", "", "stored at or before `T`")
	fs.IntVar(&f.Limit, "limit", 0, "at most `N` entries")
	fs.BoolVar(&o.json, "json", false, "print JSON lines")
	fs.Float64Var(&o.rate, "rate", 100, "replays per `second` (0: no limit)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "change nothing")
	fs.BoolVar(&o.keep, "keep", false, "keep replayed entries")
	fs.BoolVar(&o.all, "all", false, "replay with no filter")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	fs.Visit(func(fl *flag.Flag) { o.limitSet = o.limitSet || fl.Name == "limit" })
	if err := o.parse(cmd, pos, time.Now()); err != nil {
		fs.Usage()
		return err
	}

	var defaults map[string]any
	if u := envOr("NATS_URL", ""); u != "" {
		defaults = map[string]any{"nats.url": u}
	}
	cfg, logger, err := flags.Load(stderr, defaults)
	if err != nil {
		return err
	}
	natsCfg := cfg.NATS
	natsCfg.Name = "switchyard dlq"
	nc, err := natsx.Connect(natsCfg, logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	q, err := dlq.Open(ctx, js)
	if err != nil {
		return err
	}
	switch cmd {
	case "show":
		return dlqShow(ctx, q, pos[0], o, stdout)
	case "replay":
		return dlqReplay(ctx, q, o, stdout, stderr)
	default:
		return dlqList(ctx, q, o, stdout, stderr)
	}
}

// parse checks the arguments of cmd and fills in the filter.
func (o *dlqOptions) parse(cmd string, pos []string, now time.Time) error {
	switch {
	case cmd == "show" && len(pos) != 1:
		return fmt.Errorf("dlq show: want one entry sequence, got %d arguments", len(pos))
	case cmd != "show" && len(pos) > 0:
		return fmt.Errorf("dlq %s: unexpected argument %q", cmd, pos[0])
	case o.rate < 0:
		return fmt.Errorf("--rate %v: must not be negative", o.rate)
	}
	for c := range strings.SplitSeq(o.class, ",") {
		if c = strings.TrimSpace(c); c != "" {
			o.filter.Classes = append(o.filter.Classes, job.Class(c))
		}
	}
	var err error
	if o.since != "" {
		if o.filter.Since, err = parseSince(o.since, now); err != nil {
			return err
		}
	}
	if o.until != "" {
		if o.filter.Until, err = parseSince(o.until, now); err != nil {
			return fmt.Errorf("--until: %w", err)
		}
	}
	if (cmd == "ls" || cmd == "list") && !o.limitSet {
		o.filter.Limit = 100
	}
	f := o.filter
	unfiltered := f.Provider == "" && f.Task == "" && f.Batch == "" && f.JobID == "" && len(f.Classes) == 0 && f.Since.IsZero() && f.Until.IsZero()
	if cmd == "replay" && !o.all && unfiltered {
		return errors.New("dlq replay: no filter given; pass --all to replay every dead letter")
	}
	if err := o.filter.Validate(); err != nil {
		return fmt.Errorf("--%w", err)
	}
	return nil
}

func dlqList(ctx context.Context, q *dlq.DLQ, o dlqOptions, stdout, stderr io.Writer) error {
	t := newDLQTable(stdout, o.json)
	err := q.List(ctx, o.filter, func(e dlq.Entry) error { return t.entry(e, "") })
	if ferr := t.flush(); err == nil {
		err = ferr
	}
	if err == nil && !o.json {
		if t.rows == 0 {
			fmt.Fprintln(stderr, "No dead letters match.")
		} else if o.filter.Limit > 0 && t.rows == o.filter.Limit {
			fmt.Fprintf(stderr, "Showing the first %d; raise --limit (or narrow --since) for more.\n", t.rows)
		}
	}
	return err
}

func dlqShow(ctx context.Context, q *dlq.DLQ, arg string, o dlqOptions, stdout io.Writer) error {
	seq, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || seq == 0 {
		return fmt.Errorf("dlq show: %q is not an entry sequence (the SEQ column of dlq ls)", arg)
	}
	e, err := q.Get(ctx, seq)
	if err != nil {
		return err
	}
	if o.json {
		return writeIndented(stdout, e)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Entry\t%d (stored %s)\n", e.Seq, e.StoredAt.Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "Job\t%s\n", clean(e.JobID))
	fmt.Fprintf(tw, "Provider\t%s\n", clean(e.Provider))
	fmt.Fprintf(tw, "Task\t%s\n", clean(e.Task))
	if e.Lane != "" {
		fmt.Fprintf(tw, "Lane\t%s\n", e.Lane)
	}
	if e.Batch != "" {
		fmt.Fprintf(tw, "Batch\t%s\n", clean(e.Batch))
	}
	fmt.Fprintf(tw, "Reason\t%s\n", e.Reason)
	fmt.Fprintf(tw, "Attempts\t%d\n", e.Attempts)
	fmt.Fprintf(tw, "Dead at\t%s by %s\n", e.DeadAt.Format(time.RFC3339Nano), clean(e.WorkerID))
	fmt.Fprintf(tw, "Subject\t%s\n", clean(e.Subject))
	tw.Flush()
	fmt.Fprintln(stdout, "\nAttempts")
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, a := range e.History {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, a.Status, a.Class, httpStatus(a.HTTPStatus), shortTime(a.FinishedAt), clean(a.Error))
	}
	if e.HistoryIncomplete {
		fmt.Fprintln(tw, "  …\t(earlier attempts not found in RESULTS; `switchyard jobs show` has them all)")
	}
	fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", e.Attempts, "last", e.Reason, httpStatus(e.HTTPStatus), shortTime(e.DeadAt), clean(e.Error))
	tw.Flush()
	fmt.Fprintln(stdout, "\nJob")
	switch {
	case len(e.Job) > 0:
		var v any
		if json.Unmarshal(e.Job, &v) == nil {
			b, _ := json.MarshalIndent(v, "  ", "  ")
			fmt.Fprintf(stdout, "  %s\n", b)
		}
	case len(e.JobBase64) > 0:
		fmt.Fprintf(stdout, "  (not JSON: %d bytes; --json shows them as base64)\n", len(e.JobBase64))
	default:
		fmt.Fprintln(stdout, "  (dropped: too large to store; it cannot be replayed)")
	}
	return nil
}

func dlqReplay(ctx context.Context, q *dlq.DLQ, o dlqOptions, stdout, stderr io.Writer) error {
	t := newDLQTable(stdout, o.json)
	t.replay = true
	var replayed, skipped, dup int
	err := q.Replay(ctx, o.filter, dlq.ReplayOptions{Rate: o.rate, DryRun: o.dryRun, Keep: o.keep}, func(r dlq.Replayed) {
		switch {
		case r.Err != "":
			skipped++
		case r.Duplicate:
			dup++
		default:
			replayed++
		}
		if o.json {
			_ = t.json(r)
			return
		}
		what := "replayed"
		switch {
		case r.Err != "":
			what = "skipped: " + r.Err
		case o.dryRun:
			what = "would replay"
		case r.Duplicate:
			what = "already replayed"
		}
		_ = t.entry(r.Entry, what)
	})
	if ferr := t.flush(); err == nil {
		err = ferr
	}
	if !o.json {
		verb := "Replayed"
		if o.dryRun {
			verb = "Would replay"
		}
		fmt.Fprintf(stderr, "%s %d job(s); %d skipped, %d already in JOBS.\n", verb, replayed, skipped, dup)
	}
	return err
}

// dlqTable prints entries as a table or as JSON lines.
type dlqTable struct {
	w      io.Writer
	asJSON bool
	replay bool
	rows   int
	tw     *tabwriter.Writer
}

func newDLQTable(w io.Writer, asJSON bool) *dlqTable {
	return &dlqTable{w: w, asJSON: asJSON}
}

func (t *dlqTable) entry(e dlq.Entry, what string) error {
	if t.asJSON {
		return t.json(e)
	}
	if t.tw == nil {
		t.tw = tabwriter.NewWriter(t.w, 0, 0, 2, ' ', 0)
		head := "SEQ\tSTORED\tPROVIDER\tTASK\tCLASS\tATTEMPTS\tJOB ID\tBATCH\tERROR"
		if t.replay {
			head += "\tREPLAY"
		}
		fmt.Fprintln(t.tw, head)
	}
	t.rows++
	fmt.Fprintf(t.tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s", e.Seq, shortTime(e.StoredAt), clean(e.Provider), clean(e.Task),
		e.Reason, e.Attempts, clean(e.JobID), clean(e.Batch), truncate(clean(e.Error), 50))
	if t.replay {
		fmt.Fprintf(t.tw, "\t%s", what)
	}
	_, err := fmt.Fprintln(t.tw)
	return err
}

func (t *dlqTable) json(v any) error {
	t.rows++
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(t.w, "%s\n", b)
	return err
}

func (t *dlqTable) flush() error {
	if t.tw == nil {
		return nil
	}
	return t.tw.Flush()
}
