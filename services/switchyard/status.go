package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/limit"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/recorder/api"
	"github.com/switchyard-io/switchyard/streams"
)

const statusUsage = `Usage:
  switchyard status [flags]

One row per provider and lane, from what the fleet already publishes:

  BACKLOG     jobs not yet delivered to a worker (the work consumer's pending)
  IN FLIGHT   jobs delivered and not yet acknowledged (ack pending)
  CALLS/S     calls the fleet started over about the last second
  RATE LIMIT  the rate the fleet may call at now (the members' shares summed;
              "*" when 429s hold it below its ceiling); "-" for none
  MEMBERS     live worker replicas serving the provider ("none": no worker)
  SLOTS       the members' concurrency slots for the provider, summed
  ETA         when the backlog is done at the current rate (calls/s, or the
              rate limit while nothing runs): live goes first, so a bulk
              lane's ETA counts the live backlog too; "-" when unknown
  WORKERS     useful workers: ceil(rate limit × latency ÷ slots per replica),
              the most replicas the provider's rate limit lets do work. Cap
              an autoscaler (KEDA maxReplicaCount) at it: more replicas only
              wait for tokens. Latency is the recorder's p50 over 1m when its
              query API answers, else in flight ÷ calls/s (Little's law).
  ERRORS      share of calls over the last minute that did not succeed, from
              the recorder's query API; left out when it does not answer
  BREAKER     the provider's circuit breaker: closed; open (its lanes fetch
              nothing) until it may be probed, and why; half-open while one
              replica probes; "-" when no worker runs one
  PAUSED      "consumer …": the work consumer is paused (switchyard provider
              pause); else the provider's own pause (Retry-After...)
  QUOTA       daily quota used/limit, or when a spent quota resumes

Flags:
`

// statusReport is what `switchyard status --json` prints: one document,
// or with --watch one line per refresh.
type statusReport struct {
	At   time.Time   `json:"at"`
	Rows []statusRow `json:"rows"`
	// ErrorRates says whether the error_rate fields come from the
	// recorder's query API, and why not when they do not.
	ErrorRates string `json:"error_rates"`
	// Notes are what could not be read (the JOBS stream, the LIMITS
	// bucket); the rows show the rest.
	Notes []string `json:"notes,omitempty"`
}

// statusRow is one provider and lane. The fields from Members on are the
// provider's, repeated on each of its lanes.
type statusRow struct {
	Provider string `json:"provider"`
	Lane     string `json:"lane"`
	// Consumer is the work consumer's name; empty when the provider has
	// members but no consumer for the lane yet.
	Consumer string `json:"consumer,omitempty"`
	Backlog  uint64 `json:"backlog"`
	InFlight int    `json:"in_flight"`
	// ConsumerPausedUntil is set while the work consumer is paused.
	ConsumerPausedUntil time.Time `json:"consumer_paused_until,omitzero"`

	Members int `json:"members"`
	// RateLimit is the fleet's effective rate limit in calls/s, 0 for
	// none; Adaptive is set while 429s hold it below its ceiling.
	RateLimit      float64   `json:"rate_limit"`
	Adaptive       bool      `json:"adaptive,omitempty"`
	CallsPerSecond float64   `json:"calls_per_second"`
	Slots          int       `json:"slots"`
	PausedUntil    time.Time `json:"paused_until,omitzero"`
	PauseReason    string    `json:"pause_reason,omitempty"`
	QuotaLimit     int64     `json:"quota_limit,omitempty"`
	QuotaUsed      int64     `json:"quota_used,omitempty"`
	QuotaResumesAt time.Time `json:"quota_resumes_at,omitzero"`
	// Breaker is the circuit breaker's state (closed, open, half_open),
	// empty when no worker runs one; BreakerUntil, BreakerReason and
	// BreakerBy as in limit.FleetStatus.
	Breaker       string    `json:"breaker,omitempty"`
	BreakerUntil  time.Time `json:"breaker_until,omitzero"`
	BreakerReason string    `json:"breaker_reason,omitempty"`
	BreakerBy     string    `json:"breaker_by,omitempty"`

	// ETASeconds is when the backlog is done at the current rate; null
	// when unknown.
	ETASeconds *float64 `json:"eta_seconds"`
	// LatencyMS is the call latency the useful workers are computed from;
	// LatencySource is "recorder_p50_1m" or "littles_law".
	LatencyMS     *float64 `json:"latency_ms"`
	LatencySource string   `json:"latency_source,omitempty"`
	// UsefulWorkers is ceil(RateLimit × latency ÷ slots per replica):
	// the replica count to cap an autoscaler at. Null without a rate
	// limit or a latency.
	UsefulWorkers *int `json:"useful_workers"`
	// ErrorRate is the share of failed calls over the last minute; absent
	// when the recorder's query API did not answer.
	ErrorRate *float64 `json:"error_rate,omitempty"`
}

type statusOptions struct {
	api   apiFlags
	watch bool
	every time.Duration
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("switchyard status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, statusUsage)
		fs.PrintDefaults()
	}
	flags := service.NewFlags(fs)
	flags.Key("server", "nats.url", "", "NATS server `URL`s, comma separated (default $NATS_URL, else nats://127.0.0.1:4222; env SWITCHYARD_NATS__URL)")
	flags.Key("creds", "nats.creds_file", "", "NATS credentials `file`")
	flags.Key("user", "nats.user", "", "NATS `user`")
	flags.Key("password", "nats.password", "", "NATS `password`")
	flags.Key("nats-token", "nats.token", "", "NATS `token`")
	var o statusOptions
	o.api.register(fs)
	fs.BoolVar(&o.watch, "watch", false, "redraw until Ctrl-C (on a terminal; else print a timestamped block each time)")
	fs.DurationVar(&o.every, "every", 2*time.Second, "with --watch, refresh this `often`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("status: unexpected argument %q", fs.Arg(0))
	}
	if o.every <= 0 {
		return fmt.Errorf("status: --every %s must be positive", o.every)
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
	natsCfg.Name = "switchyard status"
	nc, err := natsx.Connect(natsCfg, logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// The API is optional: a short timeout, so a missing one costs little.
	stats, err := api.NewClient(o.api.url, o.api.token, &http.Client{Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("--api: %w", err)
	}

	if !o.watch {
		r, err := gatherStatus(ctx, js, stats)
		if err != nil {
			return err
		}
		return writeStatus(stdout, r, o.api.json, false)
	}
	tty := isTTY(stdout)
	t := time.NewTicker(o.every)
	defer t.Stop()
	for {
		r, err := gatherStatus(ctx, js, stats)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			// Keep watching: the server may come back.
			fmt.Fprintf(stdout, "%s  status: %v\n", time.Now().UTC().Format(time.RFC3339), err)
		default:
			if tty && !o.api.json {
				fmt.Fprint(stdout, "\x1b[H\x1b[2J")
			}
			if err := writeStatus(stdout, r, o.api.json, true); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// gatherStatus reads the work consumers, the LIMITS bucket and, when it
// answers, the recorder's stats, and joins them into rows.
func gatherStatus(ctx context.Context, js jetstream.JetStream, stats *api.Client) (*statusReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r := &statusReport{At: time.Now().UTC()}

	consumers, err := workConsumers(ctx, js)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			r.Notes = append(r.Notes, "no JOBS stream: no worker or producer has run against this server")
		} else {
			return nil, fmt.Errorf("status: list work consumers: %w", err)
		}
	}
	fleet, err := limit.ReadStatus(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}

	byProvider := map[string]limit.FleetStatus{}
	for _, f := range fleet {
		byProvider[f.Provider] = f
	}
	rows := consumers
	// Providers with members but no work consumer yet still get a row.
	for _, f := range fleet {
		if !slices.ContainsFunc(rows, func(c statusRow) bool { return c.Provider == f.Provider }) {
			rows = append(rows, statusRow{Provider: f.Provider, Lane: "-"})
		}
	}
	slices.SortFunc(rows, func(a, b statusRow) int {
		if c := strings.Compare(a.Provider, b.Provider); c != 0 {
			return c
		}
		return laneOrder(a.Lane) - laneOrder(b.Lane)
	})

	p50, errRate, note := recorderStats(ctx, stats)
	r.ErrorRates = note
	inFlight := map[string]int{}
	liveBacklog := map[string]uint64{}
	for _, c := range rows {
		inFlight[c.Provider] += c.InFlight
		if c.Lane == "live" {
			liveBacklog[c.Provider] += c.Backlog
		}
	}
	for i := range rows {
		row := &rows[i]
		f := byProvider[row.Provider]
		row.Members, row.RateLimit, row.Adaptive = f.Members, f.Rate, f.Adaptive
		row.CallsPerSecond, row.Slots = f.Started, f.Concurrency
		row.PausedUntil, row.PauseReason = f.PausedUntil, f.PauseReason
		row.QuotaLimit, row.QuotaUsed, row.QuotaResumesAt = f.QuotaLimit, f.QuotaUsed, f.QuotaResumesAt
		row.Breaker, row.BreakerUntil, row.BreakerReason, row.BreakerBy = f.Breaker, f.BreakerUntil, f.BreakerReason, f.BreakerBy

		ahead := row.Backlog
		if row.Lane == "bulk" {
			ahead += liveBacklog[row.Provider] // live goes first
		}
		row.ETASeconds = eta(ahead, row.CallsPerSecond, row.RateLimit)

		if ms, ok := p50[row.Provider]; ok {
			row.LatencyMS, row.LatencySource = &ms, "recorder_p50_1m"
		} else if row.CallsPerSecond > 0 {
			// Little's law on one sample of the in flight (ack pending,
			// which also holds jobs awaiting their token or a retry): 0
			// says calls take less than one call's interval.
			ms := float64(inFlight[row.Provider]) / row.CallsPerSecond * 1000
			row.LatencyMS, row.LatencySource = &ms, "littles_law"
		}
		row.UsefulWorkers = usefulWorkers(row.RateLimit, row.LatencyMS, row.Slots, row.Members)
		if er, ok := errRate[row.Provider]; ok {
			row.ErrorRate = &er
		} else if errRate != nil {
			zero := 0.0
			row.ErrorRate = &zero
		}
	}
	r.Rows = rows
	if r.Rows == nil {
		r.Rows = []statusRow{}
	}
	return r, nil
}

// workConsumers reads the JOBS stream's work consumers: one row each,
// with its backlog, in flight and pause.
func workConsumers(ctx context.Context, js jetstream.JetStream) ([]statusRow, error) {
	s, err := js.Stream(ctx, streams.Jobs)
	if err != nil {
		return nil, err
	}
	l := s.ListConsumers(ctx)
	var rows []statusRow
	for ci := range l.Info() {
		prov, lane, ok := workTarget(ci)
		if !ok {
			continue
		}
		row := statusRow{Provider: prov, Lane: lane, Consumer: ci.Name, Backlog: ci.NumPending, InFlight: ci.NumAckPending}
		if ci.Paused {
			row.ConsumerPausedUntil = time.Now().Add(ci.PauseRemaining).UTC()
			if u := ci.Config.PauseUntil; u != nil && !u.IsZero() {
				row.ConsumerPausedUntil = u.UTC()
			}
		}
		rows = append(rows, row)
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	return rows, nil
}

// workTarget reads a work consumer's provider and lane from its filter,
// jobs.<provider>.<lane>.>, which names them unambiguously where the
// consumer's name (work_<provider>_<lane>) may not.
func workTarget(ci *jetstream.ConsumerInfo) (string, string, bool) {
	if !strings.HasPrefix(ci.Name, "work_") {
		return "", "", false
	}
	filter := ci.Config.FilterSubject
	if filter == "" && len(ci.Config.FilterSubjects) == 1 {
		filter = ci.Config.FilterSubjects[0]
	}
	tok := strings.Split(filter, ".")
	if len(tok) < 3 || tok[0] != "jobs" {
		return "", "", false
	}
	return tok[1], tok[2], true
}

func laneOrder(lane string) int {
	switch lane {
	case "live":
		return 0
	case "bulk":
		return 1
	}
	return 2
}

// recorderStats asks the recorder's query API for each provider's p50
// latency (in ms, where it saw calls) and error rate over the last
// minute. It never fails: when the API does not answer it returns nil
// maps and says why.
func recorderStats(ctx context.Context, c *api.Client) (p50, errRate map[string]float64, note string) {
	s, err := c.Stats(ctx, time.Minute)
	if err != nil {
		why := err.Error()
		if errors.Is(err, api.ErrUnreachable) {
			why = "not reachable"
		}
		return nil, nil, fmt.Sprintf("left out: the recorder's query API at %s: %s (--api, --token)", c.URL(), why)
	}
	p50, errRate = map[string]float64{}, map[string]float64{}
	for _, p := range s.Providers {
		if len(p.Windows) == 0 {
			continue
		}
		w := p.Windows[0]
		errRate[p.Provider] = w.ErrorRate
		if w.Calls > 0 && w.P50MS > 0 {
			p50[p.Provider] = w.P50MS
		}
	}
	return p50, errRate, "from the recorder's query API at " + c.URL() + ", last minute"
}

// eta is how long a backlog of n takes at calls/s, or at the rate limit
// while nothing is measured; nil when neither is known.
func eta(n uint64, callsPerSecond, rateLimit float64) *float64 {
	rate := callsPerSecond
	if rate <= 0 && n > 0 {
		rate = rateLimit
	}
	if rate <= 0 {
		if n == 0 {
			zero := 0.0
			return &zero
		}
		return nil
	}
	s := float64(n) / rate
	return &s
}

// usefulWorkers is ceil(rate × latency ÷ slots per replica): the replicas
// whose slots the rate limit keeps busy. Past it, more replicas only wait
// for tokens. Nil without a rate limit, a latency or slots.
func usefulWorkers(rate float64, latencyMS *float64, slots, members int) *int {
	if latencyMS == nil || members <= 0 {
		return nil
	}
	latency := time.Duration(*latencyMS * float64(time.Millisecond))
	n, ok := limit.UsefulWorkers(rate, latency, float64(slots)/float64(members))
	if !ok {
		return nil
	}
	return &n
}

func writeStatus(w io.Writer, r *statusReport, asJSON, watching bool) error {
	if asJSON {
		if watching {
			return json.NewEncoder(w).Encode(r)
		}
		return writeIndented(w, r)
	}
	if watching {
		fmt.Fprintf(w, "── %s\n", r.At.Format(time.RFC3339))
	}
	withErrors := slices.ContainsFunc(r.Rows, func(row statusRow) bool { return row.ErrorRate != nil })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "PROVIDER\tLANE\tBACKLOG\tIN FLIGHT\tCALLS/S\tRATE LIMIT\tMEMBERS\tSLOTS\tETA\tWORKERS"
	if withErrors {
		head += "\tERRORS"
	}
	fmt.Fprintln(tw, head+"\tBREAKER\tPAUSED\tQUOTA")
	for _, row := range r.Rows {
		line := fmt.Sprintf("%s\t%s\t%s\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s",
			clean(row.Provider), clean(row.Lane), commas(int(row.Backlog)), row.InFlight, row.CallsPerSecond,
			rateText(row), membersText(row.Members), slotsText(row), etaText(row.ETASeconds), workersText(row.UsefulWorkers))
		if withErrors {
			line += "\t" + percentText(row.ErrorRate)
		}
		fmt.Fprintln(tw, line+"\t"+breakerText(row, r.At)+"\t"+pausedText(row, r.At)+"\t"+quotaText(row))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Rows) == 0 {
		fmt.Fprintln(w, "no work consumers and no workers yet")
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	if !withErrors {
		fmt.Fprintln(w, "error rates: "+r.ErrorRates)
	}
	if watching {
		fmt.Fprintln(w)
	}
	return nil
}

func rateText(r statusRow) string {
	switch {
	case r.Members == 0:
		return "-"
	case r.RateLimit <= 0:
		return "none"
	case r.Adaptive:
		return fmt.Sprintf("%.4g/s*", r.RateLimit)
	}
	return fmt.Sprintf("%.4g/s", r.RateLimit)
}

func membersText(n int) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprint(n)
}

func slotsText(r statusRow) string {
	if r.Members == 0 {
		return "-"
	}
	return fmt.Sprint(r.Slots)
}

func etaText(s *float64) string {
	if s == nil {
		return "—"
	}
	d := time.Duration(*s * float64(time.Second))
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return "<1s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func workersText(n *int) string {
	if n == nil {
		return "—"
	}
	return fmt.Sprint(*n)
}

func percentText(f *float64) string {
	if f == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", *f*100)
}

func pausedText(r statusRow, now time.Time) string {
	var parts []string
	if !r.ConsumerPausedUntil.IsZero() {
		parts = append(parts, "consumer "+untilText(r.ConsumerPausedUntil, now))
	}
	if !r.PausedUntil.IsZero() {
		s := untilText(r.PausedUntil, now)
		if r.PauseReason != "" {
			s += " (" + clean(truncate(r.PauseReason, 40)) + ")"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

func breakerText(r statusRow, now time.Time) string {
	switch r.Breaker {
	case "":
		return "-"
	case limit.BreakerOpen:
		s := "open"
		if r.BreakerUntil.After(now) {
			s += ", probe in " + r.BreakerUntil.Sub(now).Round(100*time.Millisecond).String()
		}
		if r.BreakerReason != "" {
			s += " (" + clean(truncate(r.BreakerReason, 40)) + ")"
		}
		return s
	case limit.BreakerHalfOpen:
		return "half-open, " + clean(r.BreakerBy) + " probing"
	}
	return clean(r.Breaker)
}

func untilText(t, now time.Time) string {
	return fmt.Sprintf("%s more, to %s", t.Sub(now).Round(time.Second), t.UTC().Format("15:04:05Z"))
}

func quotaText(r statusRow) string {
	switch {
	case r.QuotaLimit == 0:
		return "-"
	case !r.QuotaResumesAt.IsZero():
		return "spent, resumes " + r.QuotaResumesAt.UTC().Format("2006-01-02 15:04Z")
	}
	return commas(int(r.QuotaUsed)) + "/" + commas(int(r.QuotaLimit))
}
