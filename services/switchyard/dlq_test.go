package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/dlq"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

// brokenAPI answers /fail400 with 400 and /fail500 with 500 until fixed,
// then 200 everywhere, and counts the calls of each job.
type brokenAPI struct {
	fixed atomic.Bool
	mu    sync.Mutex
	calls map[string]int
}

func (a *brokenAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.calls[r.Header.Get("Idempotency-Key")]++
	a.mu.Unlock()
	switch {
	case a.fixed.Load():
		w.WriteHeader(http.StatusOK)
	case r.URL.Path == "/fail400":
		w.WriteHeader(http.StatusBadRequest)
	case r.URL.Path == "/fail500":
		w.WriteHeader(http.StatusInternalServerError)
	}
}

func (a *brokenAPI) callsOf(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[id]
}

type dlqBundle struct {
	url   string
	js    jetstream.JetStream
	store *recorder.SQLite
	api   *brokenAPI
}

func setupDLQ(t *testing.T) *dlqBundle {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	b := &dlqBundle{url: srv.URL(), js: js, api: &brokenAPI{calls: map[string]int{}}}
	hs := httptest.NewServer(b.api)
	t.Cleanup(hs.Close)

	ctx := context.Background()
	store, err := recorder.OpenSQLite(ctx, filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b.store = store
	rec, err := recorder.New(js, store, recorder.Config{FetchMaxWait: 50 * time.Millisecond}, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Stop)

	ps, err := provider.NewAll(map[string]provider.Config{"acme": {BaseURL: hs.URL, AllowPrivateNetwork: true, MaxAttempts: 2,
		BackoffBase: 10 * time.Millisecond, BackoffCap: 20 * time.Millisecond, Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(js, worker.Config{ID: "dlq-test", FetchMaxWait: 200 * time.Millisecond}, ps, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	return b
}

func (b *dlqBundle) publish(t *testing.T, id, path string) {
	t.Helper()
	j := job.Job{V: 1, ID: id, Provider: "acme", Task: "charge", Batch: "nightly",
		Request: job.Request{Method: "POST", Path: path, Body: json.RawMessage(`{"n":1}`)}}
	data, _ := json.Marshal(j)
	m := &nats.Msg{Subject: job.Subject("acme", job.LaneBulk, "charge"), Data: data, Header: nats.Header{jetstream.MsgIDHeader: {id}}}
	if _, err := b.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// waitStatus waits until every id's row has status s and returns the rows.
func (b *dlqBundle) waitStatus(t *testing.T, s job.Status, ids ...string) map[string]*recorder.JobRow {
	t.Helper()
	rows := map[string]*recorder.JobRow{}
	deadline := time.Now().Add(15 * time.Second)
	for _, id := range ids {
		for {
			row, err := b.store.Job(context.Background(), id)
			if err != nil && !errors.Is(err, recorder.ErrNotFound) {
				t.Fatal(err)
			}
			if err == nil && row.Status == s {
				rows[id] = row
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s: row %+v, want status %s", id, row, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return rows
}

type streamState struct{ msgs, last uint64 }

func (b *dlqBundle) state(t *testing.T, name string) streamState {
	t.Helper()
	s, err := b.js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return streamState{s.CachedInfo().State.Msgs, s.CachedInfo().State.LastSeq}
}

func TestDLQReplayRoundTrip(t *testing.T) {
	b := setupDLQ(t)

	// An old dead job, then the window the replay picks: two dead after
	// 500s and one refused with a 400.
	b.publish(t, "old-500", "/fail500")
	b.waitStatus(t, job.StatusDead, "old-500")
	// The DLQ entry is stored before the result the recorder reads.
	since := time.Now()
	b.publish(t, "new-500-a", "/fail500")
	b.publish(t, "new-500-b", "/fail500")
	b.publish(t, "new-400", "/fail400")
	b.waitStatus(t, job.StatusDead, "new-500-a", "new-500-b")
	b.waitStatus(t, job.StatusFailed, "new-400")
	if got := b.state(t, streams.DLQ).msgs; got != 4 {
		t.Fatalf("DLQ holds %d entries, want 4", got)
	}

	out, _, err := runCLI(t, "dlq", "ls", "--server", b.url, "--class", "http_5xx", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var listed []dlq.Entry
	for line := range strings.Lines(out) {
		var e dlq.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("ls --json line %q: %v", line, err)
		}
		listed = append(listed, e)
	}
	if len(listed) != 3 || listed[0].JobID != "old-500" || len(listed[2].History) != 1 || listed[2].Attempts != 2 {
		t.Fatalf("ls --class http_5xx = %+v, want old-500, new-500-a, new-500-b with their first attempt in history", listed)
	}

	replay := []string{"dlq", "replay", "--server", b.url, "--class", "http_5xx", "--since", since.Format(time.RFC3339Nano), "--rate", "50"}
	dlqBefore, jobsBefore := b.state(t, streams.DLQ), b.state(t, streams.Jobs)
	out, _, err = runCLI(t, append(replay, "--dry-run")...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "would replay") != 2 || !strings.Contains(out, "new-500-a") || strings.Contains(out, "old-500") {
		t.Fatalf("dry run printed:\n%s\nwant new-500-a and new-500-b as would replay", out)
	}
	if d, j := b.state(t, streams.DLQ), b.state(t, streams.Jobs); d != dlqBefore || j != jobsBefore {
		t.Fatalf("dry run changed the streams: DLQ %+v -> %+v, JOBS %+v -> %+v", dlqBefore, d, jobsBefore, j)
	}

	b.api.fixed.Store(true)
	out, _, err = runCLI(t, replay...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "replayed") != 2 {
		t.Fatalf("replay printed:\n%s\nwant two replayed", out)
	}
	rows := b.waitStatus(t, job.StatusSucceeded, "new-500-a", "new-500-b")
	for id, row := range rows {
		// One row per job: the replay's attempt 3 follows the two dead ones.
		if row.Attempt != 3 || len(row.AttemptRows) != 3 || row.AttemptRows[2].Status != job.StatusSucceeded {
			t.Errorf("%s: row at attempt %d with %d attempt rows, want succeeded at 3 of 3", id, row.Attempt, len(row.AttemptRows))
		}
		if n := b.api.callsOf(id); n != 3 {
			t.Errorf("%s: called %d times, want 3 (2 dead + 1 replay)", id, n)
		}
	}
	page, err := b.store.Jobs(context.Background(), recorder.JobFilter{Provider: "acme", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Jobs) != 4 {
		t.Errorf("recorder holds %d rows, want 4 (one per job)", len(page.Jobs))
	}
	// Replayed entries are gone; the others stay.
	out, _, err = runCLI(t, "dlq", "ls", "--server", b.url)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "old-500") || !strings.Contains(out, "new-400") || strings.Contains(out, "new-500") {
		t.Fatalf("after replay ls printed:\n%s\nwant old-500 and new-400 only", out)
	}
	if old := b.waitStatus(t, job.StatusDead, "old-500")["old-500"]; b.api.callsOf("old-500") != 2 || old.Attempts != 2 {
		t.Errorf("old-500 outside the window was touched: %d calls, %d attempts", b.api.callsOf("old-500"), old.Attempts)
	}
}

func TestDLQArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"replay without a filter", []string{"dlq", "replay"}, "--all"},
		{"bad class", []string{"dlq", "ls", "--class", "http_6xx"}, "class"},
		{"until before since", []string{"dlq", "ls", "--since", "1h", "--until", "2h"}, "before since"},
		{"show needs a sequence", []string{"dlq", "show"}, "one entry sequence"},
		{"unknown command", []string{"dlq", "purge"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
