package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/limit"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

// statusBundle is an embedded NATS server with the Switchyard streams.
type statusBundle struct {
	nats *natstest.Server
	js   jetstream.JetStream
	url  string
}

func setupStatus(t *testing.T) *statusBundle {
	t.Helper()
	b := &statusBundle{nats: natstest.Start(t)}
	_, b.js = b.nats.Connect(t)
	b.nats.ApplyStreams(t, b.js)
	b.url = b.nats.URL()
	return b
}

// backlog publishes n jobs of prov on lane.
func (b *statusBundle) backlog(t *testing.T, prov string, lane job.Lane, n int) {
	t.Helper()
	for i := range n {
		j := &job.Job{V: 1, ID: fmt.Sprintf("%s-%s-%05d", prov, lane, i), Provider: prov, Task: "charge",
			Request: job.Request{Method: "POST", Path: "/charge", Body: json.RawMessage(`{"n":1}`)}}
		data, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		m := &nats.Msg{Subject: job.Subject(prov, lane, j.Task), Data: data, Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, j.ID)
		if _, err := b.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// startWorker runs one worker replica serving acme at 5 calls/s against
// an in-process mock API.
func (b *statusBundle) startWorker(t *testing.T) {
	t.Helper()
	b.startWorkerAt(t, mockapi.New(mockapi.Config{LatencyMin: 20 * time.Millisecond}), nil)
}

// startWorkerAt runs one worker replica serving acme at 5 calls/s against
// api, its config changed by mod when not nil.
func (b *statusBundle) startWorkerAt(t *testing.T, api http.Handler, mod func(*provider.Config)) {
	t.Helper()
	hs := httptest.NewServer(api)
	t.Cleanup(hs.Close)
	pc := provider.Config{
		BaseURL: hs.URL, AllowPrivateNetwork: true, Concurrency: 4, Timeout: 5 * time.Second, MaxAttempts: 3,
		RateLimit: provider.RateLimit{Rate: 5, Per: time.Second, Burst: 1},
	}
	if mod != nil {
		mod(&pc)
	}
	ps, err := provider.NewAll(map[string]provider.Config{"acme": pc})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(b.js, worker.Config{ID: "status-test", FetchMaxWait: 200 * time.Millisecond}, ps, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
}

// status runs `switchyard status` with args, against a query API that
// does not answer.
func (b *statusBundle) status(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"status", "--server", b.url, "--api", "http://127.0.0.1:1", "--log-level", "error"}, args...)
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("status: %v\nstderr: %s", err, errOut.String())
	}
	return out.String()
}

func (b *statusBundle) statusJSON(t *testing.T) statusReport {
	t.Helper()
	var r statusReport
	dec := json.NewDecoder(strings.NewReader(b.status(t, "--json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decode --json: %v", err)
	}
	return r
}

func findRow(r statusReport, prov, lane string) *statusRow {
	for i := range r.Rows {
		if r.Rows[i].Provider == prov && r.Rows[i].Lane == lane {
			return &r.Rows[i]
		}
	}
	return nil
}

// waitFor polls cond until it holds, failing with its last explanation at
// the deadline.
func waitStatus(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStatusShowsARateLimitedBacklog(t *testing.T) {
	b := setupStatus(t)
	b.startWorker(t)
	b.backlog(t, "acme", job.LaneBulk, 300) // a minute's work at 5/s

	var row *statusRow
	waitStatus(t, 10*time.Second, func() (bool, string) {
		r := b.statusJSON(t)
		row = findRow(r, "acme", "bulk")
		switch {
		case row == nil:
			return false, fmt.Sprintf("no acme/bulk row in %+v", r.Rows)
		case row.Members != 1 || row.Backlog == 0 || row.ETASeconds == nil || row.CallsPerSecond == 0:
			return false, fmt.Sprintf("acme/bulk: %+v", *row)
		}
		return true, ""
	})
	if row.RateLimit != 5 {
		t.Errorf("rate_limit = %v, want 5", row.RateLimit)
	}
	if row.Slots != 4 {
		t.Errorf("slots = %d, want 4", row.Slots)
	}
	if row.Consumer != job.WorkConsumer("acme", job.LaneBulk) {
		t.Errorf("consumer = %q", row.Consumer)
	}
	if *row.ETASeconds <= 0 {
		t.Errorf("eta_seconds = %v, want > 0", *row.ETASeconds)
	}
	// 5/s × ~20-40 ms ÷ 4 slots is well under one replica's worth.
	if row.UsefulWorkers == nil || *row.UsefulWorkers != 1 {
		t.Errorf("useful_workers = %v, want 1 (latency %v ms from %s)", row.UsefulWorkers, row.LatencyMS, row.LatencySource)
	}
	if row.ErrorRate != nil {
		t.Errorf("error_rate = %v without a query API, want it left out", *row.ErrorRate)
	}
	if row.Breaker != limit.BreakerClosed {
		t.Errorf("breaker = %q, want closed", row.Breaker)
	}

	t.Logf("--json:\n%s", b.status(t, "--json"))
	text := b.status(t)
	t.Logf("\n%s", text)
	var line string
	for l := range strings.Lines(text) {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "acme" && f[1] == "bulk" {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no acme bulk row in:\n%s", text)
	}
	f := strings.Fields(line)
	// PROVIDER LANE BACKLOG IN-FLIGHT CALLS/S RATE MEMBERS SLOTS ETA WORKERS
	if f[2] == "0" {
		t.Errorf("backlog %s, want > 0: %s", f[2], line)
	}
	if f[5] != "5/s" || f[6] != "1" || f[7] != "4" {
		t.Errorf("rate %s members %s slots %s, want 5/s 1 4: %s", f[5], f[6], f[7], line)
	}
	if _, err := time.ParseDuration(f[8]); err != nil {
		t.Errorf("ETA %q is not a duration: %s", f[8], line)
	}
	if !strings.Contains(text, "error rates: left out") || strings.Contains(text, "ERRORS") {
		t.Errorf("want the error-rate column left out, and said so:\n%s", text)
	}
}

func TestStatusShowsAnOpenBreaker(t *testing.T) {
	b := setupStatus(t)
	api := mockapi.New(mockapi.Config{})
	api.Outage(503)
	b.startWorkerAt(t, api, func(c *provider.Config) {
		c.RateLimit = provider.RateLimit{}
		c.Breaker = provider.BreakerConfig{Consecutive: 3, OpenFor: time.Minute}
	})
	b.backlog(t, "acme", job.LaneLive, 5)
	waitStatus(t, 10*time.Second, func() (bool, string) {
		row := findRow(b.statusJSON(t), "acme", "live")
		if row == nil || row.Breaker != limit.BreakerOpen {
			return false, fmt.Sprintf("acme/live: %+v", row)
		}
		return true, ""
	})
	text := b.status(t)
	t.Logf("\n%s", text)
	if !strings.Contains(text, "BREAKER") || !strings.Contains(text, "open, probe in") || !strings.Contains(text, "failures in a row") {
		t.Errorf("want an open breaker, when it is probed and why:\n%s", text)
	}
}

func TestStatusWithoutWorkersShowsTheConsumersBacklog(t *testing.T) {
	b := setupStatus(t)
	var cfg jetstream.ConsumerConfig
	if err := json.Unmarshal(streams.WorkConsumer("globex", "live"), &cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := b.js.CreateOrUpdateConsumer(context.Background(), streams.Jobs, cfg); err != nil {
		t.Fatal(err)
	}
	b.backlog(t, "globex", job.LaneLive, 7)

	r := b.statusJSON(t)
	row := findRow(r, "globex", "live")
	if row == nil {
		t.Fatalf("no globex/live row: %+v", r.Rows)
	}
	if row.Backlog != 7 || row.Members != 0 || row.RateLimit != 0 || row.ETASeconds != nil || row.UsefulWorkers != nil {
		t.Errorf("row = %+v, want backlog 7, no members, no rate, no ETA, no useful workers", *row)
	}

	text := b.status(t)
	t.Logf("\n%s", text)
	var ok bool
	for l := range strings.Lines(text) {
		f := strings.Fields(l)
		ok = ok || len(f) > 9 && f[0] == "globex" && f[1] == "live" && f[2] == "7" && f[6] == "none" && f[8] == "—"
	}
	if !ok {
		t.Errorf("want a globex live row with backlog 7, members none and ETA —:\n%s", text)
	}
}

func TestStatusWatchPrintsTimestampedBlocks(t *testing.T) {
	b := setupStatus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &blockCounter{want: 2, done: cancel}
	err := run(ctx, []string{"status", "--server", b.url, "--api", "http://127.0.0.1:1", "--watch", "--every", "50ms"}, w, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(w.buf.String(), "── "); n < 2 {
		t.Errorf("want at least 2 timestamped blocks, got %d:\n%s", n, w.buf.String())
	}
}

// blockCounter cancels once it has seen want timestamped blocks.
type blockCounter struct {
	buf  bytes.Buffer
	want int
	done func()
}

func (w *blockCounter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if strings.Count(w.buf.String(), "── ") >= w.want {
		w.done()
	}
	return len(p), nil
}

func TestUsefulWorkers(t *testing.T) {
	ms := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name           string
		rate           float64
		latency        *float64
		slots, members int
		want           int // 0: nil
	}{
		{name: "limit times latency over slots", rate: 100, latency: ms(200), slots: 8, members: 2, want: 5},
		{name: "rounds up", rate: 100, latency: ms(250), slots: 10, members: 1, want: 3},
		{name: "at least one", rate: 1, latency: ms(10), slots: 10, members: 1, want: 1},
		{name: "no rate limit", rate: 0, latency: ms(200), slots: 8, members: 2},
		{name: "no latency", rate: 100, slots: 8, members: 2},
		{name: "no members", rate: 100, latency: ms(200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := usefulWorkers(tc.rate, tc.latency, tc.slots, tc.members)
			switch {
			case tc.want == 0 && got != nil:
				t.Errorf("got %d, want none", *got)
			case tc.want != 0 && (got == nil || *got != tc.want):
				t.Errorf("got %v, want %d", got, tc.want)
			}
		})
	}
}

func TestStatusAddsErrorRatesWhenTheQueryAPIAnswers(t *testing.T) {
	b := setupStatus(t)
	var cfg jetstream.ConsumerConfig
	if err := json.Unmarshal(streams.WorkConsumer("globex", "bulk"), &cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := b.js.CreateOrUpdateConsumer(context.Background(), streams.Jobs, cfg); err != nil {
		t.Fatal(err)
	}
	// A stand-in for the recorder's /v1/stats (pkg/recorder/api tests the
	// real one); it checks the window asked for.
	apiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/stats" || r.URL.Query().Get("window") != "1m" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"now":"2026-01-01T00:00:00Z","providers":[{"provider":"globex","jobs":{},
			"windows":[{"window":"1m","calls":40,"errors":10,"error_rate":0.25,"p50_ms":120,"p95_ms":300,"p99_ms":400}]}]}`)
	}))
	t.Cleanup(apiSrv.Close)

	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"status", "--server", b.url, "--api", apiSrv.URL}, &out, &errOut); err != nil {
		t.Fatalf("status: %v\n%s", err, errOut.String())
	}
	t.Logf("\n%s", out.String())
	if !strings.Contains(out.String(), "ERRORS") || !strings.Contains(out.String(), "25.0%") {
		t.Errorf("want an ERRORS column with 25.0%%:\n%s", out.String())
	}
}
