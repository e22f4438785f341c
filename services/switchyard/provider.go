package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/streams"
)

const providerUsage = `Usage:
  switchyard provider pause <provider> --for 30m [--lane live|bulk]
  switchyard provider resume <provider> [--lane live|bulk]

Pause stops the whole fleet from taking a provider's jobs, or one lane's,
with the server's consumer pause: the work consumers (work_<provider>_<lane>)
deliver nothing until the pause ends or resume is run. Jobs wait in the
JOBS stream, spending no attempts; producers keep enqueueing. The pause is
kept by the NATS server: it holds across worker restarts and ends by itself
at the time printed. Without --lane, both lanes.

Workers send no pulls to a paused consumer and start draining it at once
on resume. 'switchyard status' shows the pause in its PAUSED column.

Flags:
`

// maxPause bounds --for: a pause meant for good is a deployment change.
const maxPause = 30 * 24 * time.Hour

func runProvider(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "pause" && args[0] != "resume") {
		fmt.Fprint(stderr, providerUsage)
		if len(args) == 0 {
			return errors.New("provider: want pause or resume")
		}
		if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			return nil
		}
		return fmt.Errorf("provider: unknown command %q (want pause or resume)", args[0])
	}
	verb := args[0]
	fs := flag.NewFlagSet("switchyard provider "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, providerUsage)
		fs.PrintDefaults()
	}
	flags := service.NewFlags(fs)
	flags.Key("server", "nats.url", "", "NATS server `URL`s, comma separated (default $NATS_URL, else nats://127.0.0.1:4222; env SWITCHYARD_NATS__URL)")
	flags.Key("creds", "nats.creds_file", "", "NATS credentials `file`")
	flags.Key("user", "nats.user", "", "NATS `user`")
	flags.Key("password", "nats.password", "", "NATS `password`")
	flags.Key("nats-token", "nats.token", "", "NATS `token`")
	lane := fs.String("lane", "", "only this `lane` (live or bulk); default both")
	var d time.Duration
	if verb == "pause" {
		fs.DurationVar(&d, "for", 0, "how `long` to pause, e.g. 30m (required; at most 720h)")
	}
	// The provider may come before or after the flags.
	var name string
	rest := args[1:]
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		// Flags may follow the name too: parse those after it.
		name = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("provider %s: unexpected argument %q", verb, fs.Arg(0))
	}
	if !job.ValidToken(name) {
		fs.Usage()
		return fmt.Errorf("provider %s: want a provider name ([a-z0-9_-]{1,64}), got %q", verb, name)
	}
	lanes := job.Lanes
	if *lane != "" {
		l := job.Lane(*lane)
		if l != job.LaneLive && l != job.LaneBulk {
			return fmt.Errorf("provider %s: --lane %q: want live or bulk", verb, *lane)
		}
		lanes = []job.Lane{l}
	}
	if verb == "pause" && (d <= 0 || d > maxPause) {
		return fmt.Errorf("provider pause: --for %s: want a duration between 1s and %s, e.g. --for 30m", d, maxPause)
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
	natsCfg.Name = "switchyard provider " + verb
	nc, err := natsx.Connect(natsCfg, logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if verb == "pause" {
		return pauseProvider(ctx, js, stdout, name, lanes, time.Now().Add(d))
	}
	return resumeProvider(ctx, js, stdout, name, lanes)
}

// pauseProvider pauses the work consumers of name's lanes until until. A
// lane without a consumer (no worker served it yet) is an error when it
// was asked for by --lane, and skipped otherwise, unless neither exists.
func pauseProvider(ctx context.Context, js jetstream.JetStream, w io.Writer, name string, lanes []job.Lane, until time.Time) error {
	done := 0
	for _, l := range lanes {
		consumer := job.WorkConsumer(name, l)
		resp, err := js.PauseConsumer(ctx, streams.Jobs, consumer, until)
		if missing(err) && len(lanes) > 1 {
			fmt.Fprintf(w, "%s: no consumer (no worker has served %s's %s lane yet); skipped\n", consumer, name, l)
			continue
		}
		if err != nil {
			return fmt.Errorf("pause %s: %w", consumer, notServed(err, name, l))
		}
		done++
		fmt.Fprintf(w, "%s: paused until %s (%s from now)\n", consumer, resp.PauseUntil.UTC().Format(time.RFC3339), time.Until(resp.PauseUntil).Round(time.Second))
	}
	if done == 0 {
		return fmt.Errorf("pause %s: no work consumer exists: no worker has served it yet", name)
	}
	return nil
}

// resumeProvider resumes the work consumers of name's lanes.
func resumeProvider(ctx context.Context, js jetstream.JetStream, w io.Writer, name string, lanes []job.Lane) error {
	done := 0
	for _, l := range lanes {
		consumer := job.WorkConsumer(name, l)
		_, err := js.ResumeConsumer(ctx, streams.Jobs, consumer)
		if missing(err) && len(lanes) > 1 {
			continue
		}
		if err != nil {
			return fmt.Errorf("resume %s: %w", consumer, notServed(err, name, l))
		}
		done++
		fmt.Fprintf(w, "%s: resumed\n", consumer)
	}
	if done == 0 {
		return fmt.Errorf("resume %s: no work consumer exists: no worker has served it yet", name)
	}
	return nil
}

func missing(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
}

func notServed(err error, name string, l job.Lane) error {
	if missing(err) {
		return fmt.Errorf("no such consumer: no worker has served %s's %s lane yet (%w)", name, l, err)
	}
	return err
}
