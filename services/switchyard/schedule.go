package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/schedule"
)

const scheduleUsage = `Usage:
  switchyard schedule add NAME (--cron EXPR [--timezone TZ] | --every D) [--lane L] (--job JSON ... | --jobs FILE)
  switchyard schedule ls [--json]
  switchyard schedule rm NAME

Periodic jobs, held by the NATS server as message schedules on
sched.cron.<NAME>: each tick fires once however many workers run, and a
worker turns the firing into its jobs, with ids <NAME>:<tick> (tick as
20261121T040000Z). Missed ticks after downtime collapse into one firing.

  --cron     six fields with seconds first ("0 0 4 * * *"), five as
             crontab writes them ("0 4 * * 1-5"), or @daily, @hourly, ...
  --timezone IANA zone for --cron (default UTC)
  --every    an interval of whole seconds, at least 1s ("15m")
  --job      a job template: the job envelope without id, not_before or
             expires_at, plus "expires_in" ("2h"). One --job fires one job;
             several fire them as one batch, <NAME>-<tick>, declared with
             its size. Strings may hold {{tick}} (RFC 3339, UTC), {{date}}
             (YYYY-MM-DD in --timezone) and {{name}}
  --jobs     a file of templates, one per line (NDJSON): a batch per firing

Adding a schedule that exists replaces it. Schedules from the workers'
configuration (schedules.<name>) are listed with origin "config".

Flags:
`

func runSchedule(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, scheduleUsage)
		return errors.New("schedule: say add, ls or rm")
	}
	fs := flag.NewFlagSet("switchyard schedule "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, scheduleUsage)
		fs.PrintDefaults()
	}
	flags := natsClientFlags(fs)
	switch args[0] {
	case "add":
		var c schedule.Config
		var jobs templates
		fs.StringVar(&c.Cron, "cron", "", "cron `expression`")
		fs.StringVar(&c.Timezone, "timezone", "", "IANA time `zone` of --cron")
		fs.DurationVar(&c.Every, "every", 0, "fire every `interval`")
		lane := fs.String("lane", "live", "`lane` of the jobs: live or bulk")
		fs.Var(&jobs, "job", "a job `template` as JSON (repeat for a batch)")
		file := fs.String("jobs", "", "NDJSON `file` of job templates: a batch per firing")
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			fs.Usage()
			return fmt.Errorf("schedule add: want one schedule name, got %d arguments", len(pos))
		}
		if *file != "" {
			if err := jobs.load(*file); err != nil {
				return err
			}
		}
		c.Lane = job.Lane(*lane)
		switch {
		case len(jobs) == 1 && *file == "":
			c.Job = &jobs[0]
		case len(jobs) > 0:
			c.Jobs = jobs
		}
		nc, js, err := connectClient(flags, stderr, "switchyard schedule")
		if err != nil {
			return err
		}
		defer nc.Close()
		wrote, err := schedule.NewStore(js).Put(ctx, pos[0], c, schedule.OriginCLI)
		if err != nil {
			return err
		}
		if !wrote {
			fmt.Fprintf(stdout, "schedule %s unchanged\n", pos[0])
			return nil
		}
		fmt.Fprintf(stdout, "schedule %s stored: %s\n", pos[0], describeSchedule(c))
		return nil
	case "ls":
		asJSON := fs.Bool("json", false, "print JSON")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		nc, js, err := connectClient(flags, stderr, "switchyard schedule")
		if err != nil {
			return err
		}
		defer nc.Close()
		all, err := schedule.NewStore(js).List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if all == nil {
				all = []*schedule.Stored{}
			}
			return writeIndented(stdout, all)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSCHEDULE\tJOBS\tORIGIN\tUPDATED")
		for _, s := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, when(s.Config), what(s.Config), s.Origin, s.UpdatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "rm":
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			fs.Usage()
			return fmt.Errorf("schedule rm: want one schedule name, got %d arguments", len(pos))
		}
		nc, js, err := connectClient(flags, stderr, "switchyard schedule")
		if err != nil {
			return err
		}
		defer nc.Close()
		if err := schedule.NewStore(js).Remove(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "schedule %s removed\n", pos[0])
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, scheduleUsage)
		return nil
	default:
		fmt.Fprint(stderr, scheduleUsage)
		return fmt.Errorf("schedule: unknown command %q (want add, ls or rm)", args[0])
	}
}

// templates collects --job flags.
type templates []schedule.Template

func (t *templates) String() string { return fmt.Sprintf("%d templates", len(*t)) }

func (t *templates) Set(s string) error {
	var tpl schedule.Template
	if err := json.Unmarshal([]byte(s), &tpl); err != nil {
		return fmt.Errorf("not a job template: %w", err)
	}
	*t = append(*t, tpl)
	return nil
}

// load appends the templates of an NDJSON file.
func (t *templates) load(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--jobs: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		if err := t.Set(sc.Text()); err != nil {
			return fmt.Errorf("--jobs %s line %d: %w", path, n, err)
		}
	}
	return sc.Err()
}

func when(c schedule.Config) string {
	if c.Timezone != "" {
		return c.Pattern() + " (" + c.Timezone + ")"
	}
	return c.Pattern()
}

func what(c schedule.Config) string {
	lane := c.Lane
	if lane == "" {
		lane = job.LaneLive
	}
	if c.Job != nil {
		return fmt.Sprintf("%s.%s on %s", c.Job.Provider, c.Job.Task, lane)
	}
	return fmt.Sprintf("batch of %d on %s", len(c.Jobs), lane)
}

func describeSchedule(c schedule.Config) string { return when(c) + ", " + what(c) }
