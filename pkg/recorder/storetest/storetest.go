// Package storetest is the conformance suite every recorder.Store must pass,
// so that the SQLite store and a PostgreSQL store behave the same.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

// Run runs the suite. newStore must return a fresh, empty store and arrange
// for it to be closed (with t.Cleanup); the suite closes some stores itself
// first, which Store.Close allows.
//
// The tests of Jobs and Prune take their Since, cursors and cut-offs from
// the UpdatedAt the store reports, never from the test's clock, so a store
// may stamp rows with a database server's clock; they only need a Record
// call to stamp its rows later than the calls before it did.
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
		{"JobsFilters", testJobsFilters},
		{"JobsPagination", testJobsPagination},
		{"JobsChangeFeed", testJobsChangeFeed},
		{"JobsLimits", testJobsLimits},
		{"Stats", testStats},
		{"StatsNow", testStatsNow},
		{"PruneRows", testPruneRows},
		{"PruneBodies", testPruneBodies},
		{"PruneRollups", testPruneRollups},
		{"PruneNothing", testPruneNothing},
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
			name:            "at most once: the call's outcome replaces the provisional unknown",
			batches:         [][]step{{{0, job.StatusUnknown}}, {{1, job.StatusSucceeded}}},
			winner:          step{1, job.StatusSucceeded},
			wantAttempts:    1,
			wantAttemptRows: []step{{0, job.StatusUnknown}, {1, job.StatusSucceeded}},
		},
		{
			name:            "at most once: a late provisional unknown does not replace the outcome",
			batches:         [][]step{{{1, job.StatusFailed}}, {{0, job.StatusUnknown}}},
			winner:          step{1, job.StatusFailed},
			wantAttempts:    1,
			wantAttemptRows: []step{{0, job.StatusUnknown}, {1, job.StatusFailed}},
		},
		{
			name:            "at most once: unknown stays when no outcome follows",
			batches:         [][]step{{{0, job.StatusUnknown}}},
			winner:          step{0, job.StatusUnknown},
			wantAttempts:    0,
			wantAttemptRows: []step{{0, job.StatusUnknown}},
		},
		{
			name:            "replayed dead job: attempts numbered on from the dead ones win",
			batches:         [][]step{{{1, job.StatusRetrying}}, {{2, job.StatusDead}}, {{3, job.StatusSucceeded}}},
			winner:          step{3, job.StatusSucceeded},
			wantAttempts:    3,
			wantAttemptRows: []step{{1, job.StatusRetrying}, {2, job.StatusDead}, {3, job.StatusSucceeded}},
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

// listAll pages through Store.Jobs from f until Next is nil and returns
// every row, checking the shape of each page on the way: no page holds more
// than the limit, a page followed by another is full, and Next names the
// page's last row.
func listAll(t *testing.T, s recorder.Store, f recorder.JobFilter) []recorder.JobRow {
	t.Helper()
	limit := f.Limit
	if limit == 0 {
		limit = recorder.DefaultPageSize
	}
	var all []recorder.JobRow
	for pages := 1; ; pages++ {
		if pages > 1000 {
			t.Fatalf("Jobs(%s): still a Next after %d pages", describe(f), pages)
		}
		page, err := s.Jobs(context.Background(), f)
		if err != nil {
			t.Fatalf("Jobs(%s): %v", describe(f), err)
		}
		if len(page.Jobs) > limit {
			t.Fatalf("Jobs(%s): page %d has %d rows, more than the limit %d", describe(f), pages, len(page.Jobs), limit)
		}
		for _, r := range page.Jobs {
			if r.Response != nil || r.Meta != nil || r.AttemptRows != nil {
				t.Errorf("Jobs(%s): row %s comes with Response %s, Meta %s or %d attempt rows; want none",
					describe(f), r.JobID, r.Response, r.Meta, len(r.AttemptRows))
			}
		}
		all = append(all, page.Jobs...)
		if page.Next == nil {
			return all
		}
		if len(page.Jobs) != limit {
			t.Fatalf("Jobs(%s): page %d has %d rows and a Next; want %d", describe(f), pages, len(page.Jobs), limit)
		}
		last := page.Jobs[len(page.Jobs)-1]
		if page.Next.JobID != last.JobID || !page.Next.UpdatedAt.Equal(last.UpdatedAt) {
			t.Fatalf("Jobs(%s): page %d ends with (%v, %s) but Next is (%v, %s)", describe(f), pages,
				last.UpdatedAt, last.JobID, page.Next.UpdatedAt, page.Next.JobID)
		}
		f.After = page.Next
	}
}

// describe prints a filter for failure messages.
func describe(f recorder.JobFilter) string {
	s := fmt.Sprintf("provider=%q task=%q status=%q batch=%q limit=%d", f.Provider, f.Task, f.Status, f.Batch, f.Limit)
	if !f.Since.IsZero() {
		s += fmt.Sprintf(" since=%s", f.Since.Format(time.RFC3339Nano))
	}
	if f.After != nil {
		s += fmt.Sprintf(" after=(%s, %s)", f.After.UpdatedAt.Format(time.RFC3339Nano), f.After.JobID)
	}
	return s
}

// rowsOf reads the stored rows of ids with Store.Job, which the listing
// tests take as the truth that Store.Jobs must agree with.
func rowsOf(t *testing.T, s recorder.Store, ids []string) map[string]recorder.JobRow {
	t.Helper()
	rows := make(map[string]recorder.JobRow, len(ids))
	for _, id := range ids {
		rows[id] = *mustJob(t, s, id)
	}
	return rows
}

// listing returns what Store.Jobs should list of rows for f: the matching
// rows in (UpdatedAt, JobID) order, without Response, Meta and AttemptRows.
// It ignores f.After and f.Limit.
func listing(rows map[string]recorder.JobRow, f recorder.JobFilter) []recorder.JobRow {
	var out []recorder.JobRow
	for _, r := range rows {
		if (f.Provider != "" && r.Provider != f.Provider) || (f.Task != "" && r.Task != f.Task) ||
			(f.Status != "" && r.Status != f.Status) || (f.Batch != "" && r.Batch != f.Batch) ||
			(!f.Since.IsZero() && r.UpdatedAt.Before(f.Since)) {
			continue
		}
		r.Response, r.Meta, r.AttemptRows = nil, nil, nil
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return feedLess(out[i], out[j]) })
	return out
}

// feedLess orders rows as Store.Jobs does. Test job ids use one pattern of
// lowercase letters, digits and dashes, which every collation orders
// bytewise.
func feedLess(a, b recorder.JobRow) bool {
	if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
		return c < 0
	}
	return a.JobID < b.JobID
}

// normalized returns r with its times rebuilt from their instants, so that
// reflect.DeepEqual compares instants rather than how a time was made.
func normalized(r recorder.JobRow) recorder.JobRow {
	norm := func(t *time.Time) {
		if !t.IsZero() {
			*t = time.Unix(0, t.UnixNano()).UTC()
		}
	}
	norm(&r.EnqueuedAt)
	norm(&r.StartedAt)
	norm(&r.FinishedAt)
	norm(&r.UpdatedAt)
	r.AttemptRows = append([]recorder.AttemptRow(nil), r.AttemptRows...)
	for i := range r.AttemptRows {
		norm(&r.AttemptRows[i].StartedAt)
		norm(&r.AttemptRows[i].FinishedAt)
	}
	return r
}

// checkListing compares a listing with the rows it should hold, in order.
func checkListing(t *testing.T, what string, got, want []recorder.JobRow) {
	t.Helper()
	ids := func(rows []recorder.JobRow) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = r.JobID
		}
		return out
	}
	if !reflect.DeepEqual(ids(got), ids(want)) {
		t.Errorf("%s lists\n  %v\nwant\n  %v", what, ids(got), ids(want))
		return
	}
	for i := range got {
		if g, w := normalized(got[i]), normalized(want[i]); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: row %s differs from what Job returns:\n%s", what, got[i].JobID, diff(g, w))
		}
	}
}

// testJobsFilters lists 48 jobs, every combination of two providers, two
// tasks, three statuses and two batches twice over, recorded in four calls
// (so that UpdatedAt differs between them and ties within one), with each
// filter alone and combined, in pages of 5 and in one page.
func testJobsFilters(t *testing.T, s recorder.Store) {
	providers := []string{"acme", "globex"}
	tasks := []string{"create_invoice", "refund"}
	statuses := []job.Status{job.StatusSucceeded, job.StatusFailed, job.StatusRetrying}
	batches := []string{"b1", "b2"}
	var (
		rs  []job.Result
		ids []string
	)
	for i := range 48 {
		// Ids in another order than the results, so that ties on
		// UpdatedAt are broken by id, not by insertion.
		id := fmt.Sprintf("f%02d", (i*29)%48)
		r := Result(id, 1, statuses[(i/4)%3])
		r.Provider, r.Task, r.Batch = providers[i%2], tasks[(i/2)%2], batches[(i/12)%2]
		r.Response = &job.Response{Body: json.RawMessage(`{"ok":true}`)}
		r.Meta = json.RawMessage(`{"i":1}`)
		rs = append(rs, r)
		ids = append(ids, id)
	}
	for i := 0; i < len(rs); i += 12 {
		record(t, s, rs[i:i+12]...)
	}
	// Every other retrying job then succeeds: its row moves to another
	// status and to the end of the feed.
	var later []job.Result
	for i, r := range rs {
		if r.Status == job.StatusRetrying && i%8 < 4 && i%2 == 0 {
			r2 := Result(r.JobID, 2, job.StatusSucceeded)
			r2.Provider, r2.Task, r2.Batch = r.Provider, r.Task, r.Batch
			later = append(later, r2)
		}
	}
	if len(later) == 0 {
		t.Fatal("test data: no job succeeds later")
	}
	record(t, s, later...)

	rows := rowsOf(t, s, ids)
	// since is the UpdatedAt of the third call's rows.
	since := rows[rs[24].JobID].UpdatedAt
	if rs[24].Status == job.StatusRetrying {
		t.Fatal("test data: the row that gives since was updated later")
	}
	filters := []struct {
		f        recorder.JobFilter
		wantNone bool
	}{
		{f: recorder.JobFilter{}},
		{f: recorder.JobFilter{Provider: "acme"}},
		{f: recorder.JobFilter{Task: "refund"}},
		{f: recorder.JobFilter{Status: job.StatusSucceeded}},
		{f: recorder.JobFilter{Status: job.StatusFailed}},
		{f: recorder.JobFilter{Status: job.StatusRetrying}},
		{f: recorder.JobFilter{Batch: "b2"}},
		{f: recorder.JobFilter{Since: since}},
		{f: recorder.JobFilter{Provider: "globex", Status: job.StatusSucceeded}},
		{f: recorder.JobFilter{Provider: "acme", Task: "create_invoice"}},
		{f: recorder.JobFilter{Batch: "b1", Status: job.StatusFailed}},
		{f: recorder.JobFilter{Batch: "b2", Provider: "globex"}},
		{f: recorder.JobFilter{Task: "refund", Status: job.StatusRetrying}},
		{f: recorder.JobFilter{Provider: "acme", Task: "refund", Status: job.StatusRetrying, Batch: "b2"}},
		{f: recorder.JobFilter{Since: since, Provider: "acme"}},
		{f: recorder.JobFilter{Since: since, Status: job.StatusSucceeded, Batch: "b2"}},
		{f: recorder.JobFilter{Provider: "nobody"}, wantNone: true},
		{f: recorder.JobFilter{Batch: "b1", Task: "nothing"}, wantNone: true},
		{f: recorder.JobFilter{Since: since.Add(time.Hour)}, wantNone: true},
	}
	for _, tt := range filters {
		want := listing(rows, tt.f)
		if (len(want) == 0) != tt.wantNone {
			t.Fatalf("test data: %d rows match %s", len(want), describe(tt.f))
		}
		for _, limit := range []int{5, 0} {
			f := tt.f
			f.Limit = limit
			checkListing(t, fmt.Sprintf("Jobs(%s)", describe(f)), listAll(t, s, f), want)
		}
	}
}

// testJobsPagination pages through 250 jobs, recorded in five calls.
func testJobsPagination(t *testing.T, s recorder.Store) {
	const n = 250
	var (
		rs  []job.Result
		ids []string
	)
	for i := range n {
		id := fmt.Sprintf("p%03d", (i*97)%n)
		r := Result(id, 1, job.StatusSucceeded)
		if i%5 == 0 { // exactly 50 in batch "fifth"
			r.Batch = "fifth"
		}
		rs = append(rs, r)
		ids = append(ids, id)
	}
	for i := 0; i < n; i += 50 {
		record(t, s, rs[i:i+50]...)
	}
	rows := rowsOf(t, s, ids)
	want := listing(rows, recorder.JobFilter{})
	if len(want) != n {
		t.Fatalf("listing = %d rows, want %d", len(want), n)
	}

	// Pages of 100: 100, 100 and 50, the last without a Next.
	ctx := context.Background()
	var got []recorder.JobRow
	f := recorder.JobFilter{Limit: 100}
	for i, size := range []int{100, 100, 50} {
		page, err := s.Jobs(ctx, f)
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		if len(page.Jobs) != size || (page.Next == nil) != (i == 2) {
			t.Fatalf("page %d: %d rows, Next %v; want %d rows and a Next unless last", i, len(page.Jobs), page.Next, size)
		}
		got = append(got, page.Jobs...)
		f.After = page.Next
	}
	checkListing(t, "pages of 100", got, want)

	// Full pages all the way: the last one still has no Next.
	checkListing(t, "pages of 50", listAll(t, s, recorder.JobFilter{Limit: 50}), want)
	checkListing(t, "pages of 1", listAll(t, s, recorder.JobFilter{Limit: 1}), want)
	checkListing(t, "pages of MaxPageSize", listAll(t, s, recorder.JobFilter{Limit: recorder.MaxPageSize}), want)
	fifth := listing(rows, recorder.JobFilter{Batch: "fifth"})
	page, err := s.Jobs(ctx, recorder.JobFilter{Batch: "fifth", Limit: len(fifth)})
	if err != nil {
		t.Fatal(err)
	}
	if page.Next != nil {
		t.Errorf("a page that holds exactly every match has Next %+v, want nil", page.Next)
	}
	checkListing(t, "batch fifth in one full page", page.Jobs, fifth)

	// Limit 0 is the default page size.
	page, err = s.Jobs(ctx, recorder.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Jobs) != recorder.DefaultPageSize || page.Next == nil {
		t.Errorf("Jobs with Limit 0: %d rows, Next %v; want %d and a Next", len(page.Jobs), page.Next, recorder.DefaultPageSize)
	}
	checkListing(t, "a page of the default size", page.Jobs, want[:recorder.DefaultPageSize])

	// Starting after a cursor in the middle, and with Since on top.
	mid := want[n/2]
	after := &recorder.Cursor{UpdatedAt: mid.UpdatedAt, JobID: mid.JobID}
	checkListing(t, "after the middle row", listAll(t, s, recorder.JobFilter{After: after, Limit: 30}), want[n/2+1:])
	since := recorder.JobFilter{Since: want[n-1].UpdatedAt}
	checkListing(t, "after the middle row since the last call", listAll(t, s, recorder.JobFilter{After: after, Since: since.Since, Limit: 7}),
		listing(rows, since))
}

// testJobsChangeFeed updates rows while a client pages: a row updated
// after it was listed shows up again behind the cursor, and a row updated
// before it was reached shows up once, at its new place.
func testJobsChangeFeed(t *testing.T, s recorder.Store) {
	const n = 30
	var (
		rs  []job.Result
		ids []string
	)
	for i := range n {
		id := fmt.Sprintf("c%02d", (i*7)%n)
		rs = append(rs, Result(id, 1, job.StatusRetrying))
		ids = append(ids, id)
	}
	for i := 0; i < n; i += 10 {
		record(t, s, rs[i:i+10]...)
	}
	before := listing(rowsOf(t, s, ids), recorder.JobFilter{})

	ctx := context.Background()
	first, err := s.Jobs(ctx, recorder.JobFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	checkListing(t, "first page", first.Jobs, before[:10])
	if first.Next == nil {
		t.Fatal("first page has no Next")
	}

	seen, ahead := before[3].JobID, before[20].JobID
	record(t, s, Result(seen, 2, job.StatusSucceeded), Result(ahead, 2, job.StatusSucceeded))
	after := rowsOf(t, s, ids)
	moved := []recorder.JobRow{after[seen], after[ahead]}
	for _, r := range moved {
		if !r.UpdatedAt.After(before[n-1].UpdatedAt) {
			t.Fatalf("row %s updated at %v, not after the last listed row (%v): the store's clock went back",
				r.JobID, r.UpdatedAt, before[n-1].UpdatedAt)
		}
	}
	var want []recorder.JobRow
	for _, r := range before[10:] {
		if r.JobID != ahead {
			want = append(want, r)
		}
	}
	want = append(want, listing(map[string]recorder.JobRow{seen: moved[0], ahead: moved[1]}, recorder.JobFilter{})...)
	checkListing(t, "pages after the first", listAll(t, s, recorder.JobFilter{After: first.Next, Limit: 10}), want)
}

func testJobsLimits(t *testing.T, s recorder.Store) {
	ctx := context.Background()
	page, err := s.Jobs(ctx, recorder.JobFilter{})
	if err != nil || len(page.Jobs) != 0 || page.Next != nil {
		t.Errorf("Jobs on an empty store = %+v, %v; want no rows, no Next", page, err)
	}
	record(t, s, Result("l1", 1, job.StatusSucceeded), Result("l2", 1, job.StatusFailed))
	for _, limit := range []int{-1, recorder.MaxPageSize + 1} {
		if page, err := s.Jobs(ctx, recorder.JobFilter{Limit: limit}); err == nil {
			t.Errorf("Jobs with Limit %d = %d rows; want an error", limit, len(page.Jobs))
		}
	}
	for _, limit := range []int{1, recorder.MaxPageSize} {
		page, err := s.Jobs(ctx, recorder.JobFilter{Limit: limit})
		if err != nil || len(page.Jobs) != min(limit, 2) {
			t.Errorf("Jobs with Limit %d = %d rows, %v; want %d", limit, len(page.Jobs), err, min(limit, 2))
		}
	}
}

// call is a result of an attempt that called the provider: it finished at
// finished after latencyMS.
func call(provider, id string, attempt int, status job.Status, finished time.Time, latencyMS int64) job.Result {
	r := Result(id, attempt, status)
	r.Provider, r.LatencyMS = provider, latencyMS
	r.FinishedAt = finished
	r.StartedAt = finished.Add(-time.Duration(latencyMS) * time.Millisecond)
	return r
}

// notCalled is a result of a job that never called its provider (it
// expired first), given up at finished: it has no StartedAt.
func notCalled(provider, id string, finished time.Time) job.Result {
	r := Result(id, 1, job.StatusExpired)
	r.Provider = provider
	r.StartedAt, r.FinishedAt, r.LatencyMS = time.Time{}, finished, 0
	return r
}

// wantStats computes what Store.Stats should say of results for q, from
// first principles: jobs by the status of their last result in rs (each
// later result of a job ranks higher here), calls by the minute of their
// FinishedAt, percentiles exact (they are compared within Histogram's
// resolution).
func wantStats(rs []job.Result, q recorder.StatsQuery) []recorder.ProviderStats {
	minute := func(t time.Time) int64 {
		s := t.Unix()
		if s < 0 && s%60 != 0 {
			return s/60 - 1
		}
		return s / 60
	}
	now := minute(q.Now)
	statusOf := make(map[string]job.Result)
	var order []string
	for _, r := range rs {
		if _, ok := statusOf[r.JobID]; !ok {
			order = append(order, r.JobID)
		}
		statusOf[r.JobID] = r
	}
	byName := make(map[string]*recorder.ProviderStats)
	get := func(p string) *recorder.ProviderStats {
		if byName[p] == nil {
			byName[p] = &recorder.ProviderStats{Provider: p, Jobs: map[job.Status]int{}}
		}
		return byName[p]
	}
	for _, id := range order {
		r := statusOf[id]
		get(r.Provider).Jobs[r.Status]++
	}
	for p, ps := range byName {
		for _, w := range q.Windows {
			ws := recorder.WindowStats{Window: w}
			var lat []int64
			for _, r := range rs {
				m := minute(r.FinishedAt)
				if r.Provider != p || r.StartedAt.IsZero() || m > now || m <= now-int64(w/time.Minute) {
					continue
				}
				ws.Calls++
				if r.Status != job.StatusSucceeded {
					ws.Errors++
				}
				lat = append(lat, r.LatencyMS)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			at := func(p float64) time.Duration {
				if len(lat) == 0 {
					return 0
				}
				return time.Duration(lat[int(math.Ceil(p*float64(len(lat))))-1]) * time.Millisecond
			}
			ws.P50, ws.P95, ws.P99 = at(0.50), at(0.95), at(0.99)
			ps.Windows = append(ps.Windows, ws)
		}
	}
	out := make([]recorder.ProviderStats, 0, len(byName))
	for _, ps := range byName {
		out = append(out, *ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Provider < out[j].Provider })
	return out
}

// checkStats compares Stats with wantStats: counts exactly, percentiles
// within Histogram's resolution (2.5%).
func checkStats(t *testing.T, what string, got, want []recorder.ProviderStats) {
	t.Helper()
	names := func(ps []recorder.ProviderStats) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Provider)
		}
		return out
	}
	if !reflect.DeepEqual(names(got), names(want)) {
		t.Fatalf("%s: providers %q, want %q", what, names(got), names(want))
	}
	for i, w := range want {
		g := got[i]
		if !reflect.DeepEqual(g.Jobs, w.Jobs) {
			t.Errorf("%s: %s jobs %v, want %v", what, w.Provider, g.Jobs, w.Jobs)
		}
		if len(g.Windows) != len(w.Windows) {
			t.Errorf("%s: %s has %d windows, want %d", what, w.Provider, len(g.Windows), len(w.Windows))
			continue
		}
		for j, ww := range w.Windows {
			gw := g.Windows[j]
			if gw.Window != ww.Window || gw.Calls != ww.Calls || gw.Errors != ww.Errors {
				t.Errorf("%s: %s window %v: %d calls, %d errors; want window %v, %d calls, %d errors",
					what, w.Provider, gw.Window, gw.Calls, gw.Errors, ww.Window, ww.Calls, ww.Errors)
			}
			for _, p := range []struct {
				name      string
				got, want time.Duration
			}{{"p50", gw.P50, ww.P50}, {"p95", gw.P95, ww.P95}, {"p99", gw.P99, ww.P99}} {
				if off := math.Abs(float64(p.got-p.want)) / float64(p.want); p.want == 0 && p.got != 0 || p.want != 0 && off > 0.025 {
					t.Errorf("%s: %s window %v: %s = %v, exact %v", what, w.Provider, ww.Window, p.name, p.got, p.want)
				}
			}
		}
	}
}

// testStats records calls of two providers spread over minutes around a
// fixed now, with latencies that differ from one span of minutes to the
// next, and a third provider that never made a call. Each window then has
// its own counts and percentiles, and each boundary minute is tested.
func testStats(t *testing.T, s recorder.Store) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 12, 30, 40, 0, time.UTC)
	nowMin := now.Truncate(time.Minute)
	at := func(minutes int, offset time.Duration) time.Time {
		return nowMin.Add(time.Duration(minutes)*time.Minute + offset)
	}
	var rs []job.Result
	add := func(r job.Result) { rs = append(rs, r) }
	id := 0
	next := func() string { id++; return fmt.Sprintf("s%04d", id) }

	// A provider with jobs but no calls, first so that sorting matters.
	for range 3 {
		add(notCalled("initech", next(), at(0, 0)))
	}
	// acme, in the minute of now: 20 calls of about a second, two failed;
	// one at the start of the minute, one after now but within its minute.
	for i := range 20 {
		status := job.StatusSucceeded
		if i%10 == 3 {
			status = job.StatusFailed
		}
		add(call("acme", next(), 1, status, at(0, time.Duration(i)*time.Second), 1000+int64(7*i)))
	}
	add(call("acme", next(), 1, job.StatusSucceeded, at(0, 59*time.Second+999*time.Millisecond), 1200))
	add(notCalled("acme", next(), at(-1, 0))) // expired: a job, not a call
	// The four minutes before: about 100ms, one retrying each.
	for m := -4; m <= -1; m++ {
		for i := range 10 {
			status := job.StatusSucceeded
			if i == 0 {
				status = job.StatusRetrying
			}
			add(call("acme", next(), 1, status, at(m, time.Duration(i)*time.Second), 100+int64(3*i-m)))
		}
	}
	// A job retried across minutes: two calls, one error, one succeeded job.
	retried := next()
	add(call("acme", retried, 1, job.StatusRetrying, at(-2, 30*time.Second), 300))
	add(call("acme", retried, 2, job.StatusSucceeded, at(0, 30*time.Second), 400))
	// Within the hour but not the last five minutes: about 10ms, one dead
	// each; minute -5 starts exactly five minutes before nowMin.
	for _, m := range []int{-5, -30, -59} {
		for i := range 10 {
			status := job.StatusSucceeded
			if i == 9 {
				status = job.StatusDead
			}
			add(call("acme", next(), 1, status, at(m, time.Duration(i)*time.Second), 10+int64(i)))
		}
	}
	// Just outside the hour, and after the minute of now: left out.
	for i := range 10 {
		add(call("acme", next(), 1, job.StatusSucceeded, at(-60, 59*time.Second), 5000+int64(i)))
		add(call("acme", next(), 1, job.StatusSucceeded, at(1, 0), 7000+int64(i)))
	}
	// globex: calls ten minutes ago only, half failed.
	for i := range 8 {
		status := job.StatusSucceeded
		if i%2 == 1 {
			status = job.StatusFailed
		}
		add(call("globex", next(), 1, status, at(-10, time.Duration(i)*time.Second), 50+int64(i)))
	}
	// Two calls, in two batches, to make sure the store adds to what it has.
	record(t, s, rs[:len(rs)/2]...)
	record(t, s, rs[len(rs)/2:]...)

	windows := []time.Duration{time.Minute, 5 * time.Minute, time.Hour}
	for _, q := range []recorder.StatsQuery{
		{Now: now, Windows: windows},
		{Now: nowMin, Windows: windows},                                      // the first instant of the minute
		{Now: at(0, time.Minute-time.Nanosecond), Windows: windows},          // the last
		{Now: now.Add(5 * time.Minute), Windows: windows},                    // windows of other minutes
		{Now: now, Windows: []time.Duration{2 * time.Hour, 3 * time.Minute}}, // order as asked
		{Now: now.Add(-24 * time.Hour), Windows: windows},                    // no calls at all
		{Now: now}, // counts only
	} {
		got, err := s.Stats(ctx, q)
		if err != nil {
			t.Fatalf("Stats(%v, %v): %v", q.Now, q.Windows, err)
		}
		checkStats(t, fmt.Sprintf("Stats(%s, %v)", q.Now.Format(time.RFC3339Nano), q.Windows), got, wantStats(rs, q))
	}

	// The figures checkStats compares, spelled out once for the main
	// query, in case wantStats and the store share a mistake.
	got, err := s.Stats(ctx, recorder.StatsQuery{Now: now, Windows: windows})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Stats = %d providers, want 3", len(got))
	}
	acme := got[0].Windows
	wantCalls := [][2]int{{20 + 1 + 1, 2}, {22 + 40 + 1, 2 + 4 + 1}, {63 + 30, 7 + 3}}
	for i, w := range wantCalls {
		if acme[i].Calls != w[0] || acme[i].Errors != w[1] {
			t.Errorf("acme window %v: %d calls, %d errors; want %d, %d", windows[i], acme[i].Calls, acme[i].Errors, w[0], w[1])
		}
	}
	if want := (map[job.Status]int{job.StatusSucceeded: 20 - 2 + 1 + 36 + 1 + 27 + 20, job.StatusFailed: 2,
		job.StatusRetrying: 4, job.StatusDead: 3, job.StatusExpired: 1}); !reflect.DeepEqual(got[0].Jobs, want) {
		t.Errorf("acme jobs %v, want %v", got[0].Jobs, want)
	}
	if g := got[1].Windows; g[0] != (recorder.WindowStats{Window: time.Minute}) || g[2].Calls != 8 || g[2].Errors != 4 {
		t.Errorf("globex windows %+v, want none in the last minute and 8 calls, 4 errors in the hour", g)
	}
	for i, w := range got[2].Windows {
		if w != (recorder.WindowStats{Window: windows[i]}) {
			t.Errorf("initech window %+v, want zero counts", w)
		}
	}
}

// testStatsNow asks for the windows ending at the current time.
func testStatsNow(t *testing.T, s recorder.Store) {
	ctx := context.Background()
	got, err := s.Stats(ctx, recorder.StatsQuery{Windows: []time.Duration{time.Hour}})
	if err != nil || len(got) != 0 {
		t.Fatalf("Stats on an empty store = %+v, %v; want no providers", got, err)
	}
	record(t, s, call("acme", "now", 1, job.StatusSucceeded, time.Now(), 123))
	got, err = s.Stats(ctx, recorder.StatsQuery{Windows: []time.Duration{time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Windows) != 1 || got[0].Windows[0].Calls != 1 {
		t.Fatalf("Stats with a zero Now = %+v; want acme with the call just made", got)
	}
}

// generation records results and returns the stored rows of their jobs
// and the earliest and latest UpdatedAt among them. Retention tests take
// their cut-offs from the store's own UpdatedAt.
func generation(t *testing.T, s recorder.Store, rs ...job.Result) (rows map[string]recorder.JobRow, first, last time.Time) {
	t.Helper()
	record(t, s, rs...)
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.JobID)
	}
	rows = rowsOf(t, s, ids)
	for _, r := range rows {
		if first.IsZero() || r.UpdatedAt.Before(first) {
			first = r.UpdatedAt
		}
		if r.UpdatedAt.After(last) {
			last = r.UpdatedAt
		}
	}
	return rows, first, last
}

// withBody gives r a response and meta.
func withBody(r job.Result) job.Result {
	r.Response = &job.Response{Headers: map[string][]string{"X-Id": {r.JobID}}, Body: json.RawMessage(`{"id":"` + r.JobID + `"}`)}
	r.Meta = json.RawMessage(`{"order":7}`)
	return r
}

// checkUnchanged compares the stored rows of jobs with what they were.
func checkUnchanged(t *testing.T, what string, s recorder.Store, rows map[string]recorder.JobRow) {
	t.Helper()
	for id, want := range rows {
		got := mustJob(t, s, id)
		if g, w := normalized(*got), normalized(want); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: job %s changed:\n%s", what, id, diff(g, w))
		}
	}
}

// prune calls Store.Prune and checks what it reports.
func prune(t *testing.T, s recorder.Store, o recorder.PruneOptions, want recorder.Pruned) {
	t.Helper()
	got, err := s.Prune(context.Background(), o)
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if got != want {
		t.Errorf("Prune(limit %d) = %+v, want %+v", o.Limit, got, want)
	}
}

// testPruneRows deletes 25 old jobs with two attempts each, ten at a time,
// and keeps the jobs updated since.
func testPruneRows(t *testing.T, s recorder.Store) {
	var old []job.Result
	for i := range 25 {
		id := fmt.Sprintf("old-%02d", i)
		old = append(old, Result(id, 1, job.StatusRetrying), withBody(Result(id, 2, job.StatusSucceeded)))
	}
	oldRows, _, oldLast := generation(t, s, old...)
	newRows, cut, _ := generation(t, s,
		withBody(Result("new-00", 1, job.StatusSucceeded)), Result("new-01", 1, job.StatusFailed), Result("new-02", 1, job.StatusRetrying))
	if !cut.After(oldLast) {
		t.Fatalf("new rows stamped %v, not after the old ones (%v): the store's clock went back", cut, oldLast)
	}

	o := recorder.PruneOptions{RowsBefore: cut, Limit: 10}
	// Every result's FinishedAt is in one of two minutes of 2026, long
	// before cut, all at one latency: two rollup rows.
	prune(t, s, o, recorder.Pruned{Jobs: 10, Rollups: 2})
	prune(t, s, o, recorder.Pruned{Jobs: 10})
	prune(t, s, o, recorder.Pruned{Jobs: 5})
	prune(t, s, o, recorder.Pruned{})
	for id := range oldRows {
		if row, err := s.Job(context.Background(), id); !errors.Is(err, recorder.ErrNotFound) {
			t.Errorf("Job(%s) after pruning = %+v, %v; want ErrNotFound", id, row, err)
		}
	}
	checkUnchanged(t, "after pruning old rows", s, newRows)
	counts, err := s.BatchCounts(context.Background(), "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if want := (map[job.Status]int{job.StatusSucceeded: 1, job.StatusFailed: 1, job.StatusRetrying: 1}); !reflect.DeepEqual(counts, want) {
		t.Errorf("BatchCounts after pruning = %v, want %v", counts, want)
	}

	// The attempts went with their job: recorded again, a pruned job
	// shows only the attempt recorded since.
	again := Result("old-00", 3, job.StatusSucceeded)
	record(t, s, again)
	checkRow(t, mustJob(t, s, "old-00"), wantRow(again, 3, attemptRow(again)), again)
}

// testPruneBodies clears the responses of old jobs, five at a time,
// counting only jobs that had one, and leaves everything else as it was.
func testPruneBodies(t *testing.T, s recorder.Store) {
	var old []job.Result
	for i := range 12 {
		old = append(old, withBody(Result(fmt.Sprintf("body-%02d", i), 1, job.StatusSucceeded)))
	}
	for i := range 3 {
		old = append(old, Result(fmt.Sprintf("bare-%02d", i), 1, job.StatusFailed))
	}
	oldRows, _, oldLast := generation(t, s, old...)
	newRows, cut, _ := generation(t, s, withBody(Result("new-00", 1, job.StatusSucceeded)), withBody(Result("new-01", 2, job.StatusDead)))
	if !cut.After(oldLast) {
		t.Fatalf("new rows stamped %v, not after the old ones (%v): the store's clock went back", cut, oldLast)
	}

	o := recorder.PruneOptions{BodiesBefore: cut, Limit: 5}
	prune(t, s, o, recorder.Pruned{Bodies: 5})
	prune(t, s, o, recorder.Pruned{Bodies: 5})
	prune(t, s, o, recorder.Pruned{Bodies: 2})
	prune(t, s, o, recorder.Pruned{})
	// Only Response goes: meta, attempts and UpdatedAt stay, so the rows
	// neither reappear in the change feed nor look younger to retention.
	for id, r := range oldRows {
		r.Response = nil
		oldRows[id] = r
	}
	checkUnchanged(t, "after clearing old bodies", s, oldRows)
	checkUnchanged(t, "after clearing old bodies", s, newRows)

	// Rows and bodies in one call: the oldest rows go, the middle ones
	// lose their bodies.
	midRows, midFirst, midLast := generation(t, s, withBody(Result("mid-00", 1, job.StatusSucceeded)), withBody(Result("mid-01", 1, job.StatusSucceeded)))
	lastRows, lastFirst, _ := generation(t, s, withBody(Result("last-00", 1, job.StatusSucceeded)))
	if !midFirst.After(cut) || !lastFirst.After(midLast) {
		t.Fatal("rows not stamped in the order they were recorded: the store's clock went back")
	}
	got, err := s.Prune(context.Background(), recorder.PruneOptions{RowsBefore: midFirst, BodiesBefore: lastFirst})
	if err != nil {
		t.Fatal(err)
	}
	if got.Jobs != len(oldRows)+len(newRows) {
		t.Errorf("Prune = %+v, want %d jobs", got, len(oldRows)+len(newRows))
	}
	for id := range newRows {
		if _, err := s.Job(context.Background(), id); !errors.Is(err, recorder.ErrNotFound) {
			t.Errorf("Job(%s) = %v, want ErrNotFound", id, err)
		}
	}
	for id, r := range midRows {
		r.Response = nil
		midRows[id] = r
	}
	checkUnchanged(t, "the middle generation", s, midRows)
	checkUnchanged(t, "the last generation", s, lastRows)
}

// testPruneRollups drops the latency histograms of minutes before
// RowsBefore and keeps the later ones.
func testPruneRollups(t *testing.T, s recorder.Store) {
	ctx := context.Background()
	// Hours from the cut-off, so that a store whose clock differs from the
	// test's by seconds still agrees.
	cut := time.Now()
	past, future := cut.Add(-2*time.Hour), cut.Add(2*time.Hour)
	record(t, s,
		call("acme", "past-0", 1, job.StatusSucceeded, past, 100), call("acme", "past-1", 1, job.StatusFailed, past, 200),
		call("acme", "future-0", 1, job.StatusSucceeded, future, 300))
	calls := func(now time.Time) int {
		t.Helper()
		got, err := s.Stats(ctx, recorder.StatsQuery{Now: now, Windows: []time.Duration{time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range got {
			n += p.Windows[0].Calls
		}
		return n
	}
	if p, f := calls(past), calls(future); p != 2 || f != 1 {
		t.Fatalf("before pruning: %d calls in the past minute and %d in the future one, want 2 and 1", p, f)
	}
	// The past minute holds two buckets (100 and 200 ms): a limit of one
	// takes two calls, each counting what it deleted.
	for i, want := range []int{1, 1, 0} {
		n, err := s.Prune(ctx, recorder.PruneOptions{RowsBefore: cut, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if n.Rollups != want {
			t.Errorf("prune %d deleted %d rollup rows, want %d", i, n.Rollups, want)
		}
	}
	if p, f := calls(past), calls(future); p != 0 || f != 1 {
		t.Errorf("after pruning: %d calls in the past minute and %d in the future one, want 0 and 1", p, f)
	}
}

// testPruneNothing prunes with zero times: nothing changes.
func testPruneNothing(t *testing.T, s recorder.Store) {
	rows, _, _ := generation(t, s, withBody(Result("keep-0", 1, job.StatusSucceeded)), withBody(Result("keep-1", 2, job.StatusRetrying)))
	prune(t, s, recorder.PruneOptions{}, recorder.Pruned{})
	prune(t, s, recorder.PruneOptions{Limit: 1}, recorder.Pruned{})
	// And with times before everything.
	longAgo := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	prune(t, s, recorder.PruneOptions{RowsBefore: longAgo, BodiesBefore: longAgo}, recorder.Pruned{})
	checkUnchanged(t, "after pruning nothing", s, rows)
}
