package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(i + 1)
	}
	tests := []struct {
		name   string
		values []int64
		p      float64
		want   int64
	}{
		{"empty", nil, 0.5, 0},
		{"one value", []int64{7}, 0.99, 7},
		{"p50 of 1..100", hundred, 0.50, 50},
		{"p99 of 1..100", hundred, 0.99, 99},
		{"max of 1..100", hundred, 1, 100},
		{"p50 of four", []int64{10, 20, 30, 40}, 0.50, 20},
		{"p99 of four", []int64{10, 20, 30, 40}, 0.99, 40},
		{"p1 of 1..100", hundred, 0.01, 1},
	}
	for _, tc := range tests {
		if got := percentile(tc.values, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%v) = %d, want %d", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestPercentilesOfSortsAndConverts(t *testing.T) {
	t.Parallel()
	ns := []int64{}
	for i := 200; i >= 1; i-- { // descending: percentilesOf must sort
		ns = append(ns, int64(i)*int64(time.Millisecond))
	}
	got := percentilesOf(ns)
	want := Percentiles{P50: 100, P99: 198, Max: 200}
	if got != want {
		t.Errorf("percentilesOf = %+v, want %+v", got, want)
	}
}

// resultsDB is a real recorder SQLite file and a read-only handle on it,
// as the runner opens it.
func resultsDB(t *testing.T) (*recorder.SQLite, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "results.db")
	store, err := recorder.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := openResults(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return store, db
}

var epoch = time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC)

func result(batch string, n int, lane job.Lane, attempt int, status job.Status, wait, call time.Duration) job.Result {
	return job.Result{
		V: 1, JobID: batch + "-" + strconv.Itoa(n), Provider: "loadtest", Task: "call", Lane: lane, Batch: batch,
		Attempt: attempt, Status: status, HTTPStatus: 200,
		EnqueuedAt: epoch, StartedAt: epoch.Add(wait), FinishedAt: epoch.Add(wait + call), WorkerID: "w",
	}
}

func record(t *testing.T, store *recorder.SQLite, rs ...job.Result) {
	t.Helper()
	if err := store.Record(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func TestProgressCountsIncrementally(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, db := resultsDB(t)
	p := newProgress(db, "run1")
	poll := func() {
		t.Helper()
		if err := p.poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, bulk, live, pending int) {
		t.Helper()
		if p.Final("bulk") != bulk || p.Final("live") != live || p.Pending() != pending || p.TotalFinal() != bulk+live {
			t.Errorf("%s: bulk %d live %d pending %d total %d; want %d %d %d", step,
				p.Final("bulk"), p.Final("live"), p.Pending(), p.TotalFinal(), bulk, live, pending)
		}
	}

	poll()
	check("empty", 0, 0, 0)

	// Rows from before the run are skipped without being read.
	record(t, store, result("run1", 999, job.LaneBulk, 1, job.StatusSucceeded, 0, 0))
	if err := p.skipExisting(ctx); err != nil {
		t.Fatal(err)
	}
	poll()
	check("after skipping", 0, 0, 0)

	// Another batch's rows are never counted.
	record(t, store, result("other", 1, job.LaneBulk, 1, job.StatusSucceeded, 0, 0))
	var rs []job.Result
	for i := range 100 {
		rs = append(rs, result("run1", i, job.LaneBulk, 1, job.StatusSucceeded, 0, 0))
	}
	rs = append(rs, result("run1", 100, job.LaneBulk, 1, job.StatusRetrying, 0, 0),
		result("run1", 101, job.LaneLive, 1, job.StatusRetrying, 0, 0),
		result("run1", 102, job.LaneLive, 1, job.StatusSucceeded, 0, 0))
	record(t, store, rs...)
	poll()
	check("first batch", 100, 1, 2)

	poll()
	check("nothing new", 100, 1, 2)

	// A retried job becomes final in place (same rowid); a late duplicate
	// of a final job changes nothing.
	record(t, store,
		result("run1", 100, job.LaneBulk, 2, job.StatusSucceeded, 0, 0),
		result("run1", 5, job.LaneBulk, 2, job.StatusSucceeded, 0, 0),
		result("run1", 103, job.LaneBulk, 1, job.StatusDead, 0, 0))
	poll()
	check("retry finished", 102, 1, 1)

	record(t, store, result("run1", 101, job.LaneLive, 2, job.StatusFailed, 0, 0))
	poll()
	check("all final", 102, 2, 0)
}

func TestSummarizeBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, db := resultsDB(t)
	var rs []job.Result
	// 100 bulk jobs waiting 1..100 ms, each call 500 ms.
	for i := range 100 {
		rs = append(rs, result("run1", i, job.LaneBulk, 1, job.StatusSucceeded, time.Duration(i+1)*time.Millisecond, 500*time.Millisecond))
	}
	// Two live jobs, one retried once.
	rs = append(rs,
		result("run1", 100, job.LaneLive, 1, job.StatusRetrying, 2*time.Millisecond, 0),
		result("run1", 100, job.LaneLive, 2, job.StatusSucceeded, 4*time.Millisecond, 0),
		result("run1", 101, job.LaneLive, 1, job.StatusDead, 6*time.Millisecond, 0),
		// Not final: counted as such, and not in the latencies.
		result("run1", 102, job.LaneBulk, 1, job.StatusRetrying, time.Hour, 0),
		result("other", 1, job.LaneBulk, 1, job.StatusSucceeded, time.Hour, 0),
	)
	record(t, store, rs...)
	s, err := summarizeBatch(ctx, db, "run1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Final["bulk"] != 100 || s.Final["live"] != 2 || s.NotFinal != 1 {
		t.Errorf("final %v, not final %d; want bulk 100, live 2, not final 1", s.Final, s.NotFinal)
	}
	if s.Statuses["succeeded"] != 101 || s.Statuses["dead"] != 1 || s.Statuses["retrying"] != 1 {
		t.Errorf("statuses %v", s.Statuses)
	}
	if s.Retried != 1 || s.Attempts != 104 {
		t.Errorf("retried %d attempts %d; want 1 and 104", s.Retried, s.Attempts)
	}
	if len(s.Latency) != 2 || s.Latency[0].Lane != "bulk" || s.Latency[1].Lane != "live" {
		t.Fatalf("latency lanes %+v", s.Latency)
	}
	bulk := s.Latency[0]
	if bulk.Jobs != 100 || bulk.QueueWait != (Percentiles{P50: 50, P99: 99, Max: 100}) {
		t.Errorf("bulk queue wait %+v (jobs %d), want p50 50 p99 99 max 100", bulk.QueueWait, bulk.Jobs)
	}
	// End to end is updated_at (the recorder's commit time) - enqueued_at:
	// the fixed epoch is in the past, so only the ordering can be checked.
	if bulk.EndToEnd.P50 <= 0 || bulk.EndToEnd.P50 > bulk.EndToEnd.P99 || bulk.EndToEnd.P99 > bulk.EndToEnd.Max {
		t.Errorf("bulk end to end %+v", bulk.EndToEnd)
	}
	live := s.Latency[1]
	if live.Jobs != 2 || live.QueueWait != (Percentiles{P50: 4, P99: 6, Max: 6}) {
		t.Errorf("live queue wait %+v (jobs %d), want p50 4 p99 6 max 6", live.QueueWait, live.Jobs)
	}
	if s.LastRecorded["bulk"].IsZero() || s.LastRecorded["live"].IsZero() {
		t.Errorf("last recorded %v", s.LastRecorded)
	}

	missing, err := missingJobs(ctx, db, "run1", "run1-", 105, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(missing); got != 3 || missing[0] != "run1-102" || missing[2] != "run1-104" {
		t.Errorf("missing %v, want run1-102, run1-103, run1-104", missing)
	}
}
