package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/api"
	"github.com/switchyard-io/switchyard/pkg/recorder/storetest"
)

// jobsAPI serves the query API on a real listener over a SQLite store
// filled through Store.Record: 20 succeeded acme jobs, 3 failed bolt jobs
// (one with an error that tries to color the terminal), and "j-detail"
// with two attempts, a response and meta. It returns the API's URL.
func jobsAPI(t *testing.T, token string) string {
	t.Helper()
	ctx := context.Background()
	store, err := recorder.OpenSQLite(ctx, filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var rs []job.Result
	for i := range 20 {
		rs = append(rs, storetest.Result(fmt.Sprintf("ok-%02d", i), 1, job.StatusSucceeded))
	}
	for i := range 3 {
		r := storetest.Result(fmt.Sprintf("bad-%d", i), 1, job.StatusFailed)
		r.Provider, r.Batch = "bolt", "adhoc"
		if i == 0 {
			r.Error = "evil \x1b[31mred\x1b[0m\nsecond line"
		}
		rs = append(rs, r)
	}
	first := storetest.Result("j-detail", 1, job.StatusRetrying)
	second := storetest.Result("j-detail", 2, job.StatusSucceeded)
	second.Response = &job.Response{
		Headers:   map[string][]string{"Content-Type": {"application/json"}},
		Body:      json.RawMessage(`{"id":"inv_1","lines":[1,2]}`),
		Truncated: true,
	}
	second.Meta = json.RawMessage(`{"order":981}`)
	rs = append(rs, first, second)
	if err := store.Record(ctx, rs); err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(recorder.APIConfig{Listen: "127.0.0.1:0", Token: token}, store, nil, slog.New(slog.DiscardHandler))
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv.URL()
}

const jobsTotal = 20 + 3 + 1

// runCLI runs the switchyard command and returns its stdout and stderr.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestJobsShow(t *testing.T) {
	t.Parallel()
	url := jobsAPI(t, "")
	out, _, err := runCLI(t, "jobs", "show", "--api", url, "j-detail")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Job       j-detail",
		"Provider  acme",
		"Status    succeeded (attempt 2)",
		"HTTP      201",
		"Enqueued  2026-11-21T04:00:00.123456789Z",
		`Meta      {"order":981}`,
		"Attempts",
		"retrying   503",
		"service unavailable",
		"succeeded  201",
		"Response (body truncated)",
		"Content-Type: application/json",
		`"id": "inv_1"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestJobsShowJSON(t *testing.T) {
	t.Parallel()
	url := jobsAPI(t, "")
	// Flags after the id work too.
	out, _, err := runCLI(t, "jobs", "show", "j-detail", "--json", "--api", url)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := api.NewClient(url, "", nil)
	want, err := c.Job(context.Background(), "j-detail")
	if err != nil {
		t.Fatal(err)
	}
	// The same JSON as the API's, indented.
	var got, wantJSON bytes.Buffer
	if err := json.Compact(&got, []byte(out)); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	b, _ := json.Marshal(want)
	_ = json.Compact(&wantJSON, b)
	if got.String() != wantJSON.String() {
		t.Errorf("--json:\n got %s\nwant %s", got.String(), wantJSON.String())
	}
	if !strings.Contains(out, "\n  \"job_id\": \"j-detail\"") {
		t.Errorf("not indented:\n%s", out)
	}
}

func TestJobsShowNotFound(t *testing.T) {
	t.Parallel()
	url := jobsAPI(t, "")
	_, _, err := runCLI(t, "jobs", "show", "--api", url, "nope")
	if err == nil || !strings.Contains(err.Error(), "404 Not Found") || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("err = %v, want the API's 404", err)
	}
}

// TestJobsShowIsTerminalSafe: what a third party wrote cannot reach the
// terminal as escape sequences.
func TestJobsShowIsTerminalSafe(t *testing.T) {
	t.Parallel()
	url := jobsAPI(t, "")
	for _, args := range [][]string{{"jobs", "show", "--api", url, "bad-0"}, {"jobs", "ls", "--api", url, "--provider", "bolt"}} {
		out, _, err := runCLI(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "\x1b") || !strings.Contains(out, `evil \x1b[31mred`) {
			t.Errorf("%v: control characters not escaped:\n%q", args, out)
		}
	}
}

func TestJobsList(t *testing.T) {
	t.Parallel()
	url := jobsAPI(t, "")

	t.Run("filter", func(t *testing.T) {
		t.Parallel()
		out, stderr, err := runCLI(t, "jobs", "ls", "--api", url, "--provider", "bolt", "--status", "failed", "--batch", "adhoc",
			"--task", "create_invoice", "--since", "2000-01-01T00:00:00Z")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "JOB ID") {
			t.Fatalf("want a header and 3 rows:\n%s", out)
		}
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "bad-") || !strings.Contains(l, "failed") || !strings.Contains(l, "422") {
				t.Errorf("row %q", l)
			}
		}
		if stderr != "" {
			t.Errorf("stderr on the last page: %q", stderr)
		}
	})
	t.Run("since as a duration", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCLI(t, "jobs", "ls", "--api", url, "--since", "1h")
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out, "\n"); n != jobsTotal+1 {
			t.Errorf("%d lines, want %d rows and a header:\n%s", n, jobsTotal, out)
		}
	})
	t.Run("one page", func(t *testing.T) {
		t.Parallel()
		out, stderr, err := runCLI(t, "jobs", "ls", "--api", url, "--limit", "5")
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out, "\n"); n != 6 {
			t.Errorf("%d lines, want 5 rows and a header:\n%s", n, out)
		}
		if !strings.Contains(stderr, "--cursor ") || !strings.Contains(stderr, "--all") {
			t.Errorf("no hint about the next page: %q", stderr)
		}
		cursor := strings.Fields(stderr[strings.Index(stderr, "--cursor ")+len("--cursor "):])[0]
		next, _, err := runCLI(t, "jobs", "ls", "--api", url, "--limit", "5", "--cursor", cursor)
		if err != nil {
			t.Fatal(err)
		}
		if next == out {
			t.Error("--cursor gave the same page")
		}
	})
	t.Run("all as a table", func(t *testing.T) {
		t.Parallel()
		out, stderr, err := runCLI(t, "jobs", "ls", "--api", url, "--all", "--limit", "7")
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out, "JOB ID"); n != 1 {
			t.Errorf("%d headers, want 1", n)
		}
		if n := strings.Count(out, "\n"); n != jobsTotal+1 {
			t.Errorf("%d lines, want %d rows and a header:\n%s", n, jobsTotal, out)
		}
		if stderr != "" {
			t.Errorf("stderr with --all: %q", stderr)
		}
	})
	t.Run("all as JSON", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCLI(t, "jobs", "ls", "--api", url, "--all", "--limit", "3", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var l api.JobList
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("not one JSON document: %v\n%s", err, out)
		}
		seen := map[string]int{}
		for _, j := range l.Jobs {
			seen[j.JobID]++
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("job %s listed %d times", id, n)
			}
		}
		if len(seen) != jobsTotal || l.NextCursor != "" {
			t.Errorf("%d distinct jobs, next %q; want %d and none", len(seen), l.NextCursor, jobsTotal)
		}
	})
	t.Run("one page as JSON", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCLI(t, "jobs", "ls", "--api", url, "--limit", "2", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var l api.JobList
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(l.Jobs) != 2 || l.NextCursor == "" {
			t.Errorf("%d jobs, next %q; want 2 and a cursor", len(l.Jobs), l.NextCursor)
		}
	})
	t.Run("nothing matches", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCLI(t, "jobs", "ls", "--api", url, "--provider", "nobody")
		if err != nil || strings.TrimSpace(out) != "No jobs match." {
			t.Errorf("table: %q, %v", out, err)
		}
		out, _, err = runCLI(t, "jobs", "ls", "--api", url, "--provider", "nobody", "--json")
		if err != nil || strings.TrimSpace(out) != `{"jobs": []}` {
			t.Errorf("JSON: %q, %v", out, err)
		}
	})
}

func TestJobsErrors(t *testing.T) {
	t.Parallel()
	url := jobsAPI(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nothing := "http://" + ln.Addr().String()
	ln.Close()

	cases := []struct {
		name    string
		args    []string
		wantErr []string
	}{
		{"no subcommand", []string{"jobs"}, []string{"show or ls"}},
		{"unknown subcommand", []string{"jobs", "rm"}, []string{`unknown command "rm"`}},
		{"show without id", []string{"jobs", "show", "--api", url}, []string{"one job id"}},
		{"show with two ids", []string{"jobs", "show", "--api", url, "a", "b"}, []string{"one job id"}},
		{"ls with an argument", []string{"jobs", "ls", "--api", url, "acme"}, []string{`unexpected argument "acme"`, "--provider"}},
		{"bad status", []string{"jobs", "ls", "--api", url, "--status", "done"}, []string{"400 Bad Request", "status:"}},
		{"bad limit", []string{"jobs", "ls", "--api", url, "--limit", "5000"}, []string{"400 Bad Request", "limit:"}},
		{"bad since", []string{"jobs", "ls", "--api", url, "--since", "yesterday"}, []string{"--since", "RFC 3339"}},
		{"bad cursor", []string{"jobs", "ls", "--api", url, "--cursor", "xyz"}, []string{"cursor:"}},
		{"bad URL", []string{"jobs", "ls", "--api", "127.0.0.1:8472"}, []string{"--api", "http://host:port"}},
		{"unreachable", []string{"jobs", "ls", "--api", nothing}, []string{"unreachable", nothing, "SWITCHYARD_API"}},
		{"unreachable show", []string{"jobs", "show", "--api", nothing, "x"}, []string{"unreachable", "recorder running"}},
		{"unknown flag", []string{"jobs", "ls", "--api", url, "--providr", "x"}, []string{"providr"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := runCLI(t, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestJobsToken(t *testing.T) {
	t.Parallel()
	url := jobsAPI(t, "s3cret")
	_, _, err := runCLI(t, "jobs", "show", "--api", url, "j-detail")
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "--token") {
		t.Fatalf("without a token: %v, want a 401 that mentions --token", err)
	}
	_, _, err = runCLI(t, "jobs", "show", "--api", url, "--token", "wrong", "j-detail")
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "recorder.api.token") {
		t.Fatalf("with a wrong token: %v", err)
	}
	if _, _, err := runCLI(t, "jobs", "show", "--api", url, "--token", "s3cret", "j-detail"); err != nil {
		t.Fatalf("with the token: %v", err)
	}
}

// TestJobsEnvironment: SWITCHYARD_API and SWITCHYARD_API_TOKEN stand in
// for --api and --token. Not parallel: it sets the environment.
func TestJobsEnvironment(t *testing.T) {
	url := jobsAPI(t, "s3cret")
	t.Setenv("SWITCHYARD_API", url)
	t.Setenv("SWITCHYARD_API_TOKEN", "s3cret")
	out, _, err := runCLI(t, "jobs", "show", "j-detail")
	if err != nil || !strings.Contains(out, "j-detail") {
		t.Fatalf("show from the environment: %v\n%s", err, out)
	}
	// Flags win over the environment.
	if _, _, err := runCLI(t, "jobs", "show", "--token", "wrong", "j-detail"); err == nil {
		t.Fatal("--token did not override SWITCHYARD_API_TOKEN")
	}
}

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"2026-11-21T04:00:00Z", time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC), false},
		{"2026-11-21T04:00:00.5+01:00", time.Date(2026, 11, 21, 3, 0, 0, 5e8, time.UTC), false},
		{"15m", now.Add(-15 * time.Minute), false},
		{"2h30m", now.Add(-150 * time.Minute), false},
		{"-5m", time.Time{}, true},
		{"0s", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	}
	for _, tc := range cases {
		got, err := parseSince(tc.in, now)
		if (err != nil) != tc.wantErr || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
