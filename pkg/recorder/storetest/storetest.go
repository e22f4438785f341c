// Package storetest is the conformance suite every recorder.Store must pass,
// so that the SQLite store and a PostgreSQL store behave the same.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

// Run runs the suite. newStore must return a fresh, empty store and arrange
// for it to be closed (with t.Cleanup); the suite closes some stores itself
// first, which Store.Close allows.
func Run(t *testing.T, newStore func(t *testing.T) recorder.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, recorder.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Duplicates", testDuplicates},
		{"Ranking", testRanking},
		{"NotFound", testNotFound},
		{"BatchCounts", testBatchCounts},
		{"Latencies", testLatencies},
		{"InvalidResultWritesNothing", testInvalidResult},
		{"CanceledContextWritesNothing", testCanceled},
		{"Concurrent", testConcurrent},
		{"Closed", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

// base is a fixed instant with nanoseconds, so that stores which round
// times (to microseconds, say) fail.
var base = time.Date(2026, 11, 21, 4, 0, 0, 123456789, time.UTC)

// Result returns a plausible result of one attempt of job id in batch
// "nightly", with times fixed to the nanosecond. Tests of other parts of the
// recorder use it too.
func Result(id string, attempt int, status job.Status) job.Result {
	started := base.Add(time.Duration(attempt) * time.Minute)
	r := job.Result{
		V:          job.Version,
		JobID:      id,
		Provider:   "acme",
		Task:       "create_invoice",
		Lane:       job.LaneBulk,
		Batch:      "nightly",
		Attempt:    attempt,
		Status:     status,
		LatencyMS:  250,
		EnqueuedAt: base,
		StartedAt:  started,
		FinishedAt: started.Add(250 * time.Millisecond),
		WorkerID:   fmt.Sprintf("worker-%d", attempt),
	}
	switch status {
	case job.StatusSucceeded:
		r.HTTPStatus = 201
	case job.StatusRetrying:
		r.HTTPStatus, r.Error, r.ErrorClass = 503, "service unavailable", job.ClassHTTP5xx
	case job.StatusFailed:
		r.HTTPStatus, r.Error, r.ErrorClass = 422, "unprocessable", job.ClassHTTP4xx
	case job.StatusDead:
		r.Error, r.ErrorClass = "attempts exhausted", job.ClassExhausted
	case job.StatusExpired:
		r.Error, r.ErrorClass = "expired", job.ClassExpired
	}
	return r
}

func record(t *testing.T, s recorder.Store, results ...job.Result) {
	t.Helper()
	if err := s.Record(context.Background(), results); err != nil {
		t.Fatalf("Record: %v", err)
	}
}

func mustJob(t *testing.T, s recorder.Store, id string) *recorder.JobRow {
	t.Helper()
	row, err := s.Job(context.Background(), id)
	if err != nil {
		t.Fatalf("Job(%q): %v", id, err)
	}
	return row
}

// attemptRow is what a store should keep of one attempt.
func attemptRow(r job.Result) recorder.AttemptRow {
	return recorder.AttemptRow{
		Attempt: r.Attempt, Status: r.Status, HTTPStatus: r.HTTPStatus, Error: r.Error,
		ErrorClass: r.ErrorClass, LatencyMS: r.LatencyMS, StartedAt: r.StartedAt.UTC(),
		FinishedAt: r.FinishedAt.UTC(), WorkerID: r.WorkerID,
	}
}

// wantRow is the row a store should hold after r won, with attempts as given.
// Response and Meta are left to checkRow, which compares them as JSON.
func wantRow(r job.Result, attempts int, rows ...recorder.AttemptRow) recorder.JobRow {
	return recorder.JobRow{
		JobID: r.JobID, Provider: r.Provider, Task: r.Task, Lane: r.Lane, Batch: r.Batch,
		Status: r.Status, Attempt: r.Attempt, Attempts: attempts, HTTPStatus: r.HTTPStatus,
		Error: r.Error, ErrorClass: r.ErrorClass, LatencyMS: r.LatencyMS,
		EnqueuedAt: r.EnqueuedAt.UTC(), StartedAt: r.StartedAt.UTC(), FinishedAt: r.FinishedAt.UTC(),
		WorkerID: r.WorkerID, AttemptRows: rows,
	}
}

// checkRow compares got with want. The response and meta of won are compared
// as JSON values, because a store may keep JSON in a normalised form (as
// PostgreSQL's jsonb does); UpdatedAt only has to be set, in UTC.
func checkRow(t *testing.T, got *recorder.JobRow, want recorder.JobRow, won job.Result) {
	t.Helper()
	g := *got
	if g.UpdatedAt.IsZero() || g.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpdatedAt = %v, want a UTC time", g.UpdatedAt)
	}
	var wantResp json.RawMessage
	if won.Response != nil {
		var err error
		if wantResp, err = json.Marshal(won.Response); err != nil {
			t.Fatal(err)
		}
	}
	if !jsonEqual(t, g.Response, wantResp) {
		t.Errorf("Response = %s, want %s", g.Response, wantResp)
	}
	if !jsonEqual(t, g.Meta, won.Meta) {
		t.Errorf("Meta = %s, want %s", g.Meta, won.Meta)
	}
	g.UpdatedAt, g.Response, g.Meta = time.Time{}, nil, nil
	if len(g.AttemptRows) == 0 && len(want.AttemptRows) == 0 {
		g.AttemptRows, want.AttemptRows = nil, nil
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("job row mismatch:\n%s", diff(g, want))
	}
}

// jsonEqual reports whether a and b hold the same JSON value; nil and empty
// both mean "none".
func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("invalid JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// diff lists the fields of two structs of the same type that differ.
func diff(got, want any) string {
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	var out string
	for i := 0; i < gv.NumField(); i++ {
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if !reflect.DeepEqual(g, w) {
			out += fmt.Sprintf("  %s: got %+v, want %+v\n", gv.Type().Field(i).Name, g, w)
		}
	}
	return out
}

func testRoundTrip(t *testing.T, s recorder.Store) {
	full := Result("full", 3, job.StatusSucceeded)
	full.Error, full.ErrorClass = "not really an error", job.ClassThrottled
	full.LatencyMS = 1234567
	full.Response = &job.Response{
		Headers:    map[string][]string{"Content-Type": {"application/json"}, "Set-Cookie": {"a=1", "b=2"}},
		Body:       json.RawMessage(`{"id":"inv_1","lines":[1,2,3],"nested":{"ok":true}}`),
		BodyBase64: []byte{0, 1, 2, 0xff},
		Truncated:  true,
	}
	full.Meta = json.RawMessage(`{"order": 981, "tags": ["a", "b"], "unicode": "ünïcødé ✓"}`)
	retryAt := base.Add(time.Hour)
	full.RetryAt = &retryAt

	// Times in another zone come back as the same instant in UTC.
	zoned := Result("zoned", 1, job.StatusFailed)
	tz := time.FixedZone("UTC+5:30", 5*3600+1800)
	zoned.EnqueuedAt, zoned.StartedAt, zoned.FinishedAt = base.In(tz), base.Add(time.Second).In(tz), base.Add(2*time.Second).In(tz)
	zoned.Response = &job.Response{BodyText: "plain text\nwith 'quotes' and \"more\""}

	// A result with only what Record requires: zero times, no response or meta.
	bare := job.Result{JobID: "bare", Status: job.StatusDead}

	for _, r := range []job.Result{full, zoned, bare} {
		t.Run(r.JobID, func(t *testing.T) {
			record(t, s, r)
			checkRow(t, mustJob(t, s, r.JobID), wantRow(r, r.Attempt, attemptRow(r)), r)
		})
	}
}

func testDuplicates(t *testing.T, s recorder.Store) {
	r := Result("dup", 1, job.StatusSucceeded)
	record(t, s, r, r)          // twice in one batch
	record(t, s, r)             // and redelivered later
	record(t, s, r, r, r, r, r) // and again
	checkRow(t, mustJob(t, s, "dup"), wantRow(r, 1, attemptRow(r)), r)

	counts, err := s.BatchCounts(context.Background(), r.Batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[job.Status]int{job.StatusSucceeded: 1}; !reflect.DeepEqual(counts, want) {
		t.Errorf("BatchCounts = %v, want %v", counts, want)
	}
}

func testRanking(t *testing.T, s recorder.Store) {
	type step struct {
		attempt int
		status  job.Status
	}
	tests := []struct {
		name string
		// batches are recorded in order, one Record call each.
		batches [][]step
		// winner is the step whose outcome the job row must show.
		winner       step
		wantAttempts int
		// wantAttemptRows lists the stored attempts: the first outcome
		// recorded for each attempt number.
		wantAttemptRows []step
	}{
		{
			name:            "late retrying does not overwrite success",
			batches:         [][]step{{{2, job.StatusSucceeded}}, {{1, job.StatusRetrying}}},
			winner:          step{2, job.StatusSucceeded},
			wantAttempts:    2,
			wantAttemptRows: []step{{1, job.StatusRetrying}, {2, job.StatusSucceeded}},
		},
		{
			name:            "retries then dead",
			batches:         [][]step{{{1, job.StatusRetrying}}, {{2, job.StatusRetrying}}, {{3, job.StatusDead}}},
			winner:          step{3, job.StatusDead},
			wantAttempts:    3,
			wantAttemptRows: []step{{1, job.StatusRetrying}, {2, job.StatusRetrying}, {3, job.StatusDead}},
		},
		{
			name:            "retries then dead, reversed in one batch",
			batches:         [][]step{{{3, job.StatusDead}, {2, job.StatusRetrying}, {1, job.StatusRetrying}}},
			winner:          step{3, job.StatusDead},
			wantAttempts:    3,
			wantAttemptRows: []step{{1, job.StatusRetrying}, {2, job.StatusRetrying}, {3, job.StatusDead}},
		},
		{
			name:            "higher non-final attempt after final raises attempts only",
			batches:         [][]step{{{2, job.StatusSucceeded}}, {{3, job.StatusRetrying}}},
			winner:          step{2, job.StatusSucceeded},
			wantAttempts:    3,
			wantAttemptRows: []step{{2, job.StatusSucceeded}, {3, job.StatusRetrying}},
		},
		{
			name:            "later final attempt replaces earlier final",
			batches:         [][]step{{{1, job.StatusFailed}}, {{2, job.StatusSucceeded}}},
			winner:          step{2, job.StatusSucceeded},
			wantAttempts:    2,
			wantAttemptRows: []step{{1, job.StatusFailed}, {2, job.StatusSucceeded}},
		},
		{
			name:            "earlier final attempt does not replace later final",
			batches:         [][]step{{{2, job.StatusSucceeded}}, {{1, job.StatusFailed}}},
			winner:          step{2, job.StatusSucceeded},
			wantAttempts:    2,
			wantAttemptRows: []step{{1, job.StatusFailed}, {2, job.StatusSucceeded}},
		},
		{
			name:            "equal rank: the later result wins the job row",
			batches:         [][]step{{{1, job.StatusFailed}}, {{1, job.StatusDead}}},
			winner:          step{1, job.StatusDead},
			wantAttempts:    1,
			wantAttemptRows: []step{{1, job.StatusFailed}},
		},
		{
			name:            "final beats retrying of the same attempt",
			batches:         [][]step{{{1, job.StatusDead}, {1, job.StatusRetrying}}},
			winner:          step{1, job.StatusDead},
			wantAttempts:    1,
			wantAttemptRows: []step{{1, job.StatusDead}},
		},
		{
			name:            "older retrying does not replace newer retrying",
			batches:         [][]step{{{2, job.StatusRetrying}}, {{1, job.StatusRetrying}}},
			winner:          step{2, job.StatusRetrying},
			wantAttempts:    2,
			wantAttemptRows: []step{{1, job.StatusRetrying}, {2, job.StatusRetrying}},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("rank-%d", i)
			// Each outcome gets its own worker id, so the test sees which
			// result a row came from.
			mk := func(st step) job.Result {
				r := Result(id, st.attempt, st.status)
				r.WorkerID = fmt.Sprintf("w-%d-%s", st.attempt, st.status)
				return r
			}
			for _, b := range tt.batches {
				var rs []job.Result
				for _, st := range b {
					rs = append(rs, mk(st))
				}
				record(t, s, rs...)
			}
			var rows []recorder.AttemptRow
			for _, st := range tt.wantAttemptRows {
				rows = append(rows, attemptRow(mk(st)))
			}
			winner := mk(tt.winner)
			checkRow(t, mustJob(t, s, id), wantRow(winner, tt.wantAttempts, rows...), winner)
		})
	}
}

func testNotFound(t *testing.T, s recorder.Store) {
	record(t, s, Result("present", 1, job.StatusSucceeded))
	row, err := s.Job(context.Background(), "absent")
	if !errors.Is(err, recorder.ErrNotFound) {
		t.Fatalf("Job(absent) = %+v, %v; want ErrNotFound", row, err)
	}
}

func testBatchCounts(t *testing.T, s recorder.Store) {
	var rs []job.Result
	add := func(batch string, n int, status job.Status) {
		for i := 0; i < n; i++ {
			r := Result(fmt.Sprintf("%s-%s-%d", batch, status, i), 1, status)
			r.Batch = batch
			rs = append(rs, r)
		}
	}
	add("a", 5, job.StatusSucceeded)
	add("a", 3, job.StatusRetrying)
	add("a", 2, job.StatusDead)
	add("b", 4, job.StatusFailed)
	add("", 1, job.StatusExpired)
	record(t, s, rs...)
	// One of a's retrying jobs succeeds on its second attempt.
	later := Result("a-retrying-0", 2, job.StatusSucceeded)
	later.Batch = "a"
	record(t, s, later)

	tests := []struct {
		batch string
		want  map[job.Status]int
	}{
		{"a", map[job.Status]int{job.StatusSucceeded: 6, job.StatusRetrying: 2, job.StatusDead: 2}},
		{"b", map[job.Status]int{job.StatusFailed: 4}},
		{"", map[job.Status]int{job.StatusExpired: 1}},
		{"unknown", map[job.Status]int{}},
	}
	for _, tt := range tests {
		got, err := s.BatchCounts(context.Background(), tt.batch)
		if err != nil {
			t.Fatalf("BatchCounts(%q): %v", tt.batch, err)
		}
		if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("BatchCounts(%q) = %v, want %v", tt.batch, got, tt.want)
		}
	}
}

func testLatencies(t *testing.T, s recorder.Store) {
	mk := func(id, batch string, status job.Status, latency time.Duration) job.Result {
		r := Result(id, 1, status)
		r.Batch = batch
		r.FinishedAt = r.EnqueuedAt.Add(latency)
		return r
	}
	record(t, s,
		mk("l1", "lat", job.StatusSucceeded, 3*time.Second+7),
		mk("l2", "lat", job.StatusFailed, time.Second),
		mk("l3", "lat", job.StatusDead, 2*time.Second),
		mk("l4", "lat", job.StatusRetrying, time.Millisecond), // not final: left out
		mk("l5", "other", job.StatusSucceeded, time.Millisecond),
		mk("l6", "lat", job.StatusExpired, 500*time.Millisecond),
	)
	noEnqueue := mk("l7", "lat", job.StatusSucceeded, time.Hour)
	noEnqueue.EnqueuedAt = time.Time{} // unknown: left out
	record(t, s, noEnqueue)

	got, err := s.Latencies(context.Background(), "lat")
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 3*time.Second + 7}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Latencies = %v, want %v", got, want)
	}

	got, err = s.Latencies(context.Background(), "unknown")
	if err != nil || len(got) != 0 {
		t.Errorf("Latencies(unknown) = %v, %v; want none", got, err)
	}
}

func testInvalidResult(t *testing.T, s recorder.Store) {
	good := Result("good", 1, job.StatusSucceeded)
	tests := []struct {
		name string
		bad  job.Result
	}{
		{"no job id", Result("", 1, job.StatusSucceeded)},
		{"unknown status", Result("bad", 1, "exploded")},
		{"negative attempt", Result("bad", -1, job.StatusSucceeded)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Record(context.Background(), []job.Result{good, tt.bad})
			if !errors.Is(err, recorder.ErrInvalidResult) {
				t.Fatalf("Record = %v, want ErrInvalidResult", err)
			}
			if _, err := s.Job(context.Background(), "good"); !errors.Is(err, recorder.ErrNotFound) {
				t.Errorf("Job(good) after a failed batch: %v, want ErrNotFound", err)
			}
		})
	}
}

func testCanceled(t *testing.T, s recorder.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Record(ctx, []job.Result{Result("c", 1, job.StatusSucceeded)}); err == nil {
		t.Fatal("Record with a canceled context succeeded")
	}
	if _, err := s.Job(context.Background(), "c"); !errors.Is(err, recorder.ErrNotFound) {
		t.Errorf("Job(c) = %v, want ErrNotFound", err)
	}
}

// testConcurrent records and reads from many goroutines at once, as several
// consumer goroutines and the query API would.
func testConcurrent(t *testing.T, s recorder.Store) {
	const writers, batches, per = 4, 10, 25
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for w := 0; w < writers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				rs := make([]job.Result, per)
				for i := range rs {
					rs[i] = Result(fmt.Sprintf("c-%d-%d-%d", w, b, i), 1, job.StatusSucceeded)
					rs[i].Batch = "conc"
				}
				if err := s.Record(ctx, rs); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				if _, err := s.BatchCounts(ctx, "conc"); err != nil {
					errs <- err
					return
				}
				if _, err := s.Job(ctx, fmt.Sprintf("c-%d-0-0", w)); err != nil && !errors.Is(err, recorder.ErrNotFound) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	counts, err := s.BatchCounts(ctx, "conc")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := counts[job.StatusSucceeded], writers*batches*per; got != want {
		t.Errorf("succeeded = %d, want %d", got, want)
	}
}

func testClosed(t *testing.T, s recorder.Store) {
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Record(ctx, []job.Result{Result("x", 1, job.StatusSucceeded)}); err == nil {
		t.Error("Record after Close succeeded")
	}
	if _, err := s.Job(ctx, "x"); err == nil {
		t.Error("Job after Close succeeded")
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping after Close succeeded")
	}
	_ = s.Close() // a second Close must not panic; its error is the store's business
}
