package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/switchyard-io/switchyard/pkg/recorder/api"
)

const jobsUsage = `Usage:
  switchyard jobs show <id> [flags]   one job: status, every attempt, the last response
  switchyard jobs ls [flags]          jobs in the order they last changed, oldest first

Both ask the recorder's query API.

Flags of both:
  --api URL        the query API (default $SWITCHYARD_API, else http://127.0.0.1:8472)
  --token TOKEN    its bearer token (default $SWITCHYARD_API_TOKEN)
  --json           print JSON instead of a table

Flags of ls:
  --provider P, --task T, --status S, --batch B
                   only jobs that match (status: succeeded, retrying, failed, dead, expired, cancelled, unknown)
  --since T        only jobs updated at or after T: RFC 3339 (2026-11-21T04:00:00Z)
                   or a duration back from now (15m, 2h)
  --limit N        page size, 1 to 1000 (default 100)
  --cursor C       continue after the page whose next cursor is C
  --all            follow cursors to the last page; with --json the pages
                   are streamed as one {"jobs": [...]} document
`

// defaultAPI is where the CLI finds the query API without --api or
// SWITCHYARD_API: the recorder's default recorder.api.listen.
const defaultAPI = "http://127.0.0.1:8472"

func runJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, jobsUsage)
		return errors.New("jobs: say show or ls")
	}
	switch args[0] {
	case "show":
		return runJobsShow(ctx, args[1:], stdout, stderr)
	case "ls", "list":
		return runJobsList(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, jobsUsage)
		return nil
	default:
		fmt.Fprint(stderr, jobsUsage)
		return fmt.Errorf("jobs: unknown command %q (want show or ls)", args[0])
	}
}

// apiFlags are the flags every jobs command has.
type apiFlags struct {
	url, token string
	json       bool
}

func (f *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "api", envOr("SWITCHYARD_API", defaultAPI), "query API `URL` (env SWITCHYARD_API)")
	fs.StringVar(&f.token, "token", os.Getenv("SWITCHYARD_API_TOKEN"), "bearer `token` of the query API (env SWITCHYARD_API_TOKEN)")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of a table")
}

func (f *apiFlags) client() (*api.Client, error) {
	c, err := api.NewClient(f.url, f.token, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("--api: %w", err)
	}
	return c, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newJobsFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("switchyard jobs "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, jobsUsage)
	}
	return fs
}

func runJobsShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newJobsFlagSet("show", stderr)
	var af apiFlags
	af.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("jobs show: want one job id, got %d arguments", len(pos))
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	j, err := c.Job(ctx, pos[0])
	if err != nil {
		return apiError(c, af, err)
	}
	if af.json {
		return writeIndented(stdout, j)
	}
	return printJob(stdout, j)
}

func runJobsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newJobsFlagSet("ls", stderr)
	var af apiFlags
	af.register(fs)
	var q api.ListQuery
	var since string
	var all bool
	fs.StringVar(&q.Provider, "provider", "", "only jobs of this `provider`")
	fs.StringVar(&q.Task, "task", "", "only jobs of this `task`")
	fs.StringVar(&q.Status, "status", "", "only jobs in this `status`: succeeded, retrying, failed, dead, expired, cancelled")
	fs.StringVar(&q.Batch, "batch", "", "only jobs of this `batch`")
	fs.StringVar(&since, "since", "", "only jobs updated at or after `T`: RFC 3339, or a duration back from now (15m)")
	fs.IntVar(&q.Limit, "limit", 0, "page `size`, 1 to 1000 (default 100)")
	fs.StringVar(&q.Cursor, "cursor", "", "continue after the page whose next cursor is `C`")
	fs.BoolVar(&all, "all", false, "follow cursors to the last page")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("jobs ls: unexpected argument %q (filters are flags, such as --provider)", pos[0])
	}
	if since != "" {
		if q.Since, err = parseSince(since, time.Now()); err != nil {
			return err
		}
	}
	c, err := af.client()
	if err != nil {
		return err
	}

	out := &listWriter{w: stdout, json: af.json}
	var next string
	fetch := func(page *api.JobList) error {
		next = page.NextCursor
		return out.page(page.Jobs)
	}
	if all {
		err = c.EachPage(ctx, q, fetch)
	} else {
		var page *api.JobList
		if page, err = c.Jobs(ctx, q); err == nil {
			err = fetch(page)
		}
	}
	if err != nil {
		out.abort()
		return apiError(c, af, err)
	}
	if err := out.end(next); err != nil {
		return err
	}
	if next != "" && !af.json {
		fmt.Fprintf(stderr, "More jobs: add --cursor %s for the next page, or --all for every page.\n", next)
	}
	return nil
}

// parseSince reads --since: an RFC 3339 time, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-11-21T04:00:00Z) or a duration back from now (15m, 2h)", s)
}

// apiError adds what the operator can do about an error of the API.
func apiError(c *api.Client, af apiFlags, err error) error {
	var p *api.Problem
	switch {
	case errors.Is(err, api.ErrUnreachable):
		return fmt.Errorf("%w (is the recorder running with its query API on? point --api or SWITCHYARD_API at it)", err)
	case errors.As(err, &p) && p.Status == http.StatusUnauthorized && af.token == "":
		return fmt.Errorf("recorder API at %s: %w (pass its token with --token or SWITCHYARD_API_TOKEN)", c.URL(), err)
	case errors.As(err, &p) && p.Status == http.StatusUnauthorized:
		return fmt.Errorf("recorder API at %s: %w (check --token or SWITCHYARD_API_TOKEN against the recorder's recorder.api.token)", c.URL(), err)
	case errors.As(err, &p):
		return fmt.Errorf("recorder API: %w", err)
	}
	return err
}

// parseInterspersed parses flags wherever they are among the arguments,
// so `jobs show ID --json` works as well as `jobs show --json ID`. After
// "--" everything is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func writeIndented(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// listWriter prints pages of jobs as they come: a table, flushed per page,
// or one JSON document {"jobs": [...], "next_cursor": ...} written row by
// row, so --all holds one page in memory, not the whole listing.
type listWriter struct {
	w       io.Writer
	json    bool
	started bool
	rows    int
	tw      *tabwriter.Writer
}

func (l *listWriter) page(jobs []api.Job) error {
	if l.json {
		return l.jsonRows(jobs)
	}
	if len(jobs) == 0 {
		return nil
	}
	if !l.started {
		l.started = true
		l.tw = tabwriter.NewWriter(l.w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(l.tw, "JOB ID\tPROVIDER\tTASK\tSTATUS\tATTEMPT\tHTTP\tLATENCY\tUPDATED\tERROR")
	}
	for _, j := range jobs {
		l.rows++
		fmt.Fprintf(l.tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n",
			clean(j.JobID), clean(j.Provider), clean(j.Task), j.Status, j.Attempt, httpStatus(j.HTTPStatus),
			latency(j.LatencyMS), shortTime(j.UpdatedAt), truncate(clean(j.Error), 60))
	}
	return l.tw.Flush()
}

func (l *listWriter) jsonRows(jobs []api.Job) error {
	var b bytes.Buffer
	if !l.started {
		l.started = true
		b.WriteString(`{"jobs": [`)
	}
	for _, j := range jobs {
		row, err := json.Marshal(j)
		if err != nil {
			return err
		}
		if l.rows > 0 {
			b.WriteByte(',')
		}
		l.rows++
		b.WriteString("\n  ")
		b.Write(row)
	}
	_, err := l.w.Write(b.Bytes())
	return err
}

// end finishes the output: the JSON document's close, or a note when the
// table is empty.
func (l *listWriter) end(next string) error {
	if !l.json {
		if l.rows == 0 {
			_, err := fmt.Fprintln(l.w, "No jobs match.")
			return err
		}
		return nil
	}
	if !l.started {
		if err := l.jsonRows(nil); err != nil {
			return err
		}
	}
	var b bytes.Buffer
	if l.rows > 0 {
		b.WriteByte('\n')
	}
	b.WriteByte(']')
	if next != "" {
		cursor, _ := json.Marshal(next)
		fmt.Fprintf(&b, `, "next_cursor": %s`, cursor)
	}
	b.WriteString("}\n")
	_, err := l.w.Write(b.Bytes())
	return err
}

// abort ends output cut short by an error; half a JSON document stays
// half, so that nothing mistakes it for a whole listing.
func (l *listWriter) abort() {
	if l.json && l.started {
		fmt.Fprintln(l.w)
	}
}

func printJob(w io.Writer, j *api.Job) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s\t%s\n", name, value)
		}
	}
	field("Job", clean(j.JobID))
	field("Provider", clean(j.Provider))
	field("Task", clean(j.Task))
	field("Lane", clean(string(j.Lane)))
	field("Batch", clean(j.Batch))
	status := fmt.Sprintf("%s (attempt %d", j.Status, j.Attempt)
	if j.LastAttempt != j.Attempt {
		status += fmt.Sprintf("; attempt %d came later", j.LastAttempt)
	}
	field("Status", status+")")
	if j.HTTPStatus != 0 {
		field("HTTP", fmt.Sprint(j.HTTPStatus))
	}
	if j.Error != "" {
		e := clean(j.Error)
		if j.ErrorClass != "" {
			e += " [" + string(j.ErrorClass) + "]"
		}
		field("Error", e)
	}
	field("Latency", latency(j.LatencyMS))
	field("Enqueued", longTime(j.EnqueuedAt))
	field("Started", longTime(j.StartedAt))
	field("Finished", longTime(j.FinishedAt))
	field("Updated", longTime(j.UpdatedAt))
	field("Worker", clean(j.WorkerID))
	if len(j.Meta) > 0 {
		field("Meta", clean(string(j.Meta)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(j.Attempts) > 0 {
		fmt.Fprintln(w, "\nAttempts")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tSTATUS\tHTTP\tLATENCY\tSTARTED\tWORKER\tERROR")
		for _, a := range j.Attempts {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, a.Status, httpStatus(a.HTTPStatus),
				latency(a.LatencyMS), orDash(shortTime(a.StartedAt)), orDash(clean(a.WorkerID)), clean(a.Error))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	r := j.Response
	if r == nil {
		return nil
	}
	title := "\nResponse"
	if r.Truncated {
		title += " (body truncated)"
	}
	fmt.Fprintln(w, title)
	names := make([]string, 0, len(r.Headers))
	for name := range r.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range r.Headers[name] {
			fmt.Fprintf(w, "  %s: %s\n", clean(name), clean(v))
		}
	}
	var body string
	switch {
	case len(r.Body) > 0:
		var b bytes.Buffer
		if json.Indent(&b, r.Body, "", "  ") == nil {
			body = b.String()
		} else {
			body = string(r.Body)
		}
	case r.BodyText != "":
		body = r.BodyText
	case len(r.BodyBase64) > 0:
		body = fmt.Sprintf("(%d bytes that are not text; base64) %s", len(r.BodyBase64), base64.StdEncoding.EncodeToString(r.BodyBase64))
	}
	if body != "" {
		if len(names) > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "  %s\n", cleanMultiline(body))
	}
	return nil
}

func httpStatus(code int) string {
	if code == 0 {
		return "-"
	}
	return fmt.Sprint(code)
}

func latency(ms int64) string { return fmt.Sprintf("%d ms", ms) }

// shortTime is a table's time: UTC to the millisecond.
func shortTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000")
}

// longTime is the exact time as stored.
func longTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// clean makes text from a third party safe for a terminal: control
// characters (escape sequences, newlines, tabs that would break the
// table) become visible escapes.
func clean(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// cleanMultiline is clean for a body: newlines and tabs stay, the lines
// after the first are indented.
func cleanMultiline(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, line := range lines {
		line = strings.ReplaceAll(strings.TrimSuffix(line, "\r"), "\t", "    ")
		lines[i] = clean(line)
	}
	return strings.Join(lines, "\n  ")
}
