package recorder_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/storetest"
)

func openSQLite(t testing.TB, path string) *recorder.SQLite {
	t.Helper()
	s, err := recorder.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) recorder.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "recorder.db"))
	})
}

// inspect opens the file beside the store, as an operator's shell would.
func inspect(t *testing.T, path string) *sql.DB {
	t.Helper()
	// A file: URI, because the driver cuts a plain name at its first "?".
	u := url.URL{Path: path}
	db, err := sql.Open("sqlite", "file:"+u.EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type migrationRow struct {
	Version   int
	Name      string
	AppliedAt int64
}

func migrationRows(t *testing.T, db *sql.DB) []migrationRow {
	t.Helper()
	rows, err := db.Query(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var m migrationRow
		if err := rows.Scan(&m.Version, &m.Name, &m.AppliedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSQLiteReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "recorder.db")

	s, err := recorder.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	r := job.Result{
		V: 1, JobID: "j1", Provider: "acme", Task: "t", Batch: "b", Attempt: 2,
		Status: job.StatusSucceeded, HTTPStatus: 200, LatencyMS: 12,
		EnqueuedAt: time.Unix(1, 5).UTC(), FinishedAt: time.Unix(3, 7).UTC(),
	}
	if err := s.Record(ctx, []job.Result{r}); err != nil {
		t.Fatal(err)
	}
	before, err := s.Job(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	applied := migrationRows(t, inspect(t, path))
	if len(applied) == 0 || applied[0].Version != 1 {
		t.Fatalf("schema_migrations after first open = %+v, want version 1 first", applied)
	}

	for i := 0; i < 2; i++ {
		s := openSQLite(t, path)
		after, err := s.Job(ctx, "j1")
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		if !reflect.DeepEqual(after, before) {
			t.Errorf("reopen %d: job row = %+v, want %+v", i, after, before)
		}
		lat, err := s.Latencies(ctx, "b")
		if err != nil || !reflect.DeepEqual(lat, []time.Duration{2*time.Second + 2}) {
			t.Errorf("reopen %d: Latencies = %v, %v", i, lat, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := migrationRows(t, inspect(t, path)); !reflect.DeepEqual(got, applied) {
			t.Errorf("reopen %d: schema_migrations = %+v, want unchanged %+v", i, got, applied)
		}
	}
}

func TestSQLitePragmas(t *testing.T) {
	// A name with characters that mean something in a URI.
	path := filepath.Join(t.TempDir(), "odd name?x=1#frag%20.db")
	s := openSQLite(t, path)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	db := inspect(t, path)
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(mode, "wal") {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('jobs', 'attempts', 'latency_rollup',
		'jobs_batch_status_updated', 'jobs_provider_status_updated', 'jobs_updated', 'jobs_body_updated')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Errorf("found %d of the 7 tables and indexes", n)
	}
}

func TestOpenSQLiteRejectsNonFiles(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:?cache=shared"} {
		if s, err := recorder.OpenSQLite(context.Background(), path); err == nil {
			s.Close()
			t.Errorf("OpenSQLite(%q) succeeded", path)
		}
	}
}

func TestSQLiteRecordEmpty(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "recorder.db"))
	if err := s.Record(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Job(context.Background(), "x"); !errors.Is(err, recorder.ErrNotFound) {
		t.Fatalf("Job = %v, want ErrNotFound", err)
	}
}

// TestSQLiteRecordSameJobInOneBatch records two results of one job in one
// batch, in either order, next to each other (one statement) and apart
// (different statements of one transaction): Record must leave what two
// batches would.
func TestSQLiteRecordSameJobInOneBatch(t *testing.T) {
	retrying := storetest.Result("twice", 1, job.StatusRetrying)
	succeeded := storetest.Result("twice", 2, job.StatusSucceeded)
	dup := storetest.Result("twice", 2, job.StatusSucceeded)
	dup.WorkerID = "redelivered" // an attempt row keeps the first outcome
	tests := []struct {
		name          string
		first, second job.Result
		// apart puts this many results of other jobs between the two.
		apart int
	}{
		{"retrying then succeeded", retrying, succeeded, 0},
		{"succeeded then retrying", succeeded, retrying, 0},
		{"retrying then succeeded, in different statements", retrying, succeeded, 100},
		{"succeeded then retrying, in different statements", succeeded, retrying, 100},
		{"succeeded twice", succeeded, dup, 0},
		{"succeeded twice, in different statements", succeeded, dup, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openSQLite(t, filepath.Join(t.TempDir(), "recorder.db"))
			batch := []job.Result{tt.first}
			for i := range tt.apart {
				batch = append(batch, storetest.Result(fmt.Sprintf("other-%d", i), 1, job.StatusSucceeded))
			}
			batch = append(batch, tt.second)
			if err := s.Record(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			row, err := s.Job(context.Background(), "twice")
			if err != nil {
				t.Fatal(err)
			}
			// Between equal ranks the later result wins the job row, while
			// an attempt row keeps the first outcome recorded.
			want := outcome{job.StatusSucceeded, 2, 2, succeeded.WorkerID,
				[]string{"1 retrying by worker-1", "2 succeeded by worker-2"}}
			if tt.first.Attempt == tt.second.Attempt {
				want.WorkerID = tt.second.WorkerID
				want.AttemptRows = want.AttemptRows[1:]
			}
			if got := outcomeOf(row); !reflect.DeepEqual(got, want) {
				t.Errorf("job row:\n got %+v\nwant %+v", got, want)
			}
			counts, err := s.BatchCounts(context.Background(), retrying.Batch)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[job.Status]int{job.StatusSucceeded: 1 + tt.apart}; !reflect.DeepEqual(counts, want) {
				t.Errorf("BatchCounts = %v, want %v", counts, want)
			}
		})
	}
}

// outcome is what TestSQLiteRecordSameJobInOneBatch checks of a job row.
type outcome struct {
	Status            job.Status
	Attempt, Attempts int
	WorkerID          string
	AttemptRows       []string
}

func outcomeOf(row *recorder.JobRow) outcome {
	o := outcome{Status: row.Status, Attempt: row.Attempt, Attempts: row.Attempts, WorkerID: row.WorkerID}
	for _, a := range row.AttemptRows {
		o.AttemptRows = append(o.AttemptRows, fmt.Sprintf("%d %s by %s", a.Attempt, a.Status, a.WorkerID))
	}
	return o
}

// TestSQLiteRecordBatchSizes records batches of sizes that take each
// statement shape Record prepares, alone and in every combination a
// remainder needs.
func TestSQLiteRecordBatchSizes(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "recorder.db"))
	ctx := context.Background()
	for _, n := range []int{1, 2, 3, 7, 63, 64, 65, 127, 128, 129, 1000, 1023} {
		batch := fmt.Sprintf("size-%d", n)
		rs := make([]job.Result, n)
		for i := range rs {
			rs[i] = storetest.Result(fmt.Sprintf("%s-%d", batch, i), 1, job.StatusSucceeded)
			rs[i].Batch = batch
			rs[i].LatencyMS = int64(i)
		}
		if err := s.Record(ctx, rs); err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
		counts, err := s.BatchCounts(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if counts[job.StatusSucceeded] != n || len(counts) != 1 {
			t.Errorf("batch of %d: BatchCounts = %v", n, counts)
		}
		// Each result's values went to its own row.
		for _, i := range []int{0, n / 2, n - 1} {
			row, err := s.Job(ctx, rs[i].JobID)
			if err != nil {
				t.Fatalf("batch of %d: %v", n, err)
			}
			if row.LatencyMS != int64(i) || len(row.AttemptRows) != 1 || row.AttemptRows[0].LatencyMS != int64(i) {
				t.Errorf("batch of %d: job %s has latency %d and attempt rows %+v, want latency %d",
					n, row.JobID, row.LatencyMS, row.AttemptRows, i)
			}
		}
	}
}

// cancelOnDone is a context that cancels itself on the nth call of Done,
// so that a test can end a Record at each point where it looks at its
// context: before it starts, between statements, in one, before the commit.
type cancelOnDone struct {
	context.Context
	cancel context.CancelFunc
	left   atomic.Int64
}

func newCancelOnDone(n int) *cancelOnDone {
	ctx, cancel := context.WithCancel(context.Background())
	c := &cancelOnDone{Context: ctx, cancel: cancel}
	c.left.Store(int64(n))
	return c
}

func (c *cancelOnDone) Done() <-chan struct{} {
	if c.left.Add(-1) == 0 {
		c.cancel()
	}
	return c.Context.Done()
}

// TestSQLiteRecordCanceledMidBatch ends a batch's context at every point
// Record looks at it: a Record that fails has written nothing, and the store
// works on. A context that ends inside a statement interrupts it, after
// which database/sql replaces the writer's connection.
func TestSQLiteRecordCanceledMidBatch(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "recorder.db"))
	const size = 300 // four statements of 64 rows each, then 32, 8 and 4
	failed := 0
	for n := 1; ; n++ {
		if n > 1000 {
			t.Fatal("Record keeps looking at its context")
		}
		batch := fmt.Sprintf("cancel-%d", n)
		rs := make([]job.Result, size)
		for i := range rs {
			rs[i] = storetest.Result(fmt.Sprintf("%s-%d", batch, i), 1, job.StatusSucceeded)
			rs[i].Batch = batch
		}
		ctx := newCancelOnDone(n)
		err := s.Record(ctx, rs)
		ctx.cancel()
		counts, cerr := s.BatchCounts(context.Background(), batch)
		if cerr != nil {
			t.Fatal(cerr)
		}
		if err == nil {
			if counts[job.StatusSucceeded] != size {
				t.Fatalf("cancel at Done call %d: Record succeeded but BatchCounts = %v", n, counts)
			}
			if n > 1 && ctx.left.Load() > 0 {
				// The context was never canceled: every point is covered.
				break
			}
			continue
		}
		failed++
		if len(counts) != 0 {
			t.Fatalf("cancel at Done call %d: Record = %v, but BatchCounts = %v", n, err, counts)
		}
		if err := s.Record(context.Background(), rs); err != nil {
			t.Fatalf("cancel at Done call %d: Record again: %v", n, err)
		}
		counts, err = s.BatchCounts(context.Background(), batch)
		if err != nil || counts[job.StatusSucceeded] != size {
			t.Fatalf("cancel at Done call %d: after recording again, BatchCounts = %v, %v", n, counts, err)
		}
	}
	if failed == 0 {
		t.Error("no canceled Record failed")
	}
}

// BenchmarkSQLiteRecord records batches of 1,000 results, the recorder's
// default batch size, shaped like a bulk run: a small JSON response and
// meta on every result, and one job in 20 retried once, its retrying result
// in one batch and its success in the next (an upsert over a stored row).
// ids=uuid spreads job ids over the whole key space, as random ids from a
// producer would; ids=sequential clusters them as the load test's do.
//
// ns/result is wall time; cpu-us/result is the process's CPU time (the
// writer plus GC on other cores), where /proc provides it.
func BenchmarkSQLiteRecord(b *testing.B) {
	for _, ids := range []string{"sequential", "uuid"} {
		b.Run("ids="+ids, func(b *testing.B) { benchmarkRecord(b, ids == "uuid") })
	}
}

func benchmarkRecord(b *testing.B, randomIDs bool) {
	const batch, retryEvery = 1000, 20
	s := openSQLite(b, filepath.Join(b.TempDir(), "bench.db"))
	ctx := context.Background()
	now := time.Now().UTC()
	// Results share one response: Record only reads it, and building one
	// per result would measure the benchmark rather than the store.
	resp := &job.Response{
		Headers: map[string][]string{"Content-Type": {"application/json"}, "X-Request-Id": {"req_7f3a9c2e41d8"}},
		Body:    []byte(`{"id":"inv_0000000001","status":"open","amount":1200,"currency":"EUR"}`),
	}
	result := func(id string, attempt int, status job.Status) job.Result {
		r := job.Result{
			V: 1, JobID: id, Provider: "acme", Task: "create_invoice", Lane: job.LaneBulk, Batch: "bench",
			Attempt: attempt, Status: status, HTTPStatus: 201, LatencyMS: 640,
			EnqueuedAt: now, StartedAt: now, FinishedAt: now.Add(640 * time.Millisecond),
			Response: resp,
			Meta:     []byte(`{"order":981,"customer":"cus_4821"}`),
			WorkerID: "worker-1",
		}
		if status == job.StatusRetrying {
			r.HTTPStatus, r.Error, r.ErrorClass = 503, "service unavailable", job.ClassHTTP5xx
		}
		return r
	}
	rng := rand.New(rand.NewPCG(1, 2))
	newID := func(n int) string {
		if randomIDs {
			return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.Uint32()>>16, rng.Uint32()>>16, rng.Uint32()>>16, rng.Uint64()>>16)
		}
		return "bench-" + strconv.Itoa(n)
	}
	rs := make([]job.Result, 0, batch)
	var retried []string // jobs whose retrying result went in the last batch
	var next int
	cpu0, cpuOK := processCPU()
	for b.Loop() {
		rs = rs[:0]
		for _, id := range retried {
			rs = append(rs, result(id, 2, job.StatusSucceeded))
		}
		retried = retried[:0]
		for len(rs) < batch {
			id := newID(next)
			next++
			if next%retryEvery == 0 {
				rs = append(rs, result(id, 1, job.StatusRetrying))
				retried = append(retried, id)
			} else {
				rs = append(rs, result(id, 1, job.StatusSucceeded))
			}
		}
		if err := s.Record(ctx, rs); err != nil {
			b.Fatal(err)
		}
	}
	cpu1, _ := processCPU()
	n := float64(b.N * batch)
	b.ReportMetric(n/b.Elapsed().Seconds(), "results/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/result")
	if cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/n, "cpu-us/result")
	}
}

// processCPU returns the user plus system CPU time of this process so far,
// read from /proc (Linux only; false elsewhere). Its resolution is a clock
// tick, 10ms, which a benchmark of a second or more can afford.
func processCPU() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const tick = 10 * time.Millisecond // USER_HZ, 100 on Linux
	return time.Duration(utime+stime) * tick, true
}

// TestSQLiteStatsExactOnRedelivery records results again, alone, twice in
// one batch, beside new ones in one statement and in another, and a second
// outcome of an attempt already stored: the histograms count each attempt
// once, as the attempt rows do.
func TestSQLiteStatsExactOnRedelivery(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "recorder.db"))
	ctx := context.Background()
	finished := time.Date(2026, 11, 21, 9, 15, 30, 0, time.UTC)
	result := func(id string, attempt int, status job.Status) job.Result {
		r := storetest.Result(id, attempt, status)
		r.FinishedAt = finished
		r.StartedAt = finished.Add(-time.Duration(r.LatencyMS) * time.Millisecond)
		return r
	}
	var first []job.Result
	for i := range 10 {
		first = append(first, result(fmt.Sprintf("r-%02d", i), 1, job.StatusRetrying))
	}
	// 70 new results, then the first ten again: the first statement of
	// 64 rows inserts all of them, the next of 16 only six.
	var mixed []job.Result
	for i := range 70 {
		mixed = append(mixed, result(fmt.Sprintf("m-%02d", i), 1, job.StatusSucceeded))
	}
	mixed = append(mixed, first...)
	dead := result("r-00", 1, job.StatusDead)    // another outcome of a stored attempt
	twice := result("t-00", 1, job.StatusFailed) // new, and twice in one statement
	batches := [][]job.Result{
		first,
		first,
		{first[0], first[0], first[1]},
		mixed,
		{twice, twice, dead, result("r-01", 2, job.StatusSucceeded), first[2]},
	}
	for i, b := range batches {
		if err := s.Record(ctx, b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	// Distinct attempts: r-00..r-09 attempt 1 (retrying), m-00..m-69,
	// r-01 attempt 2 and t-00.
	wantCalls, wantErrors := 10+70+1+1, 10+1
	got, err := s.Stats(ctx, recorder.StatsQuery{Now: finished, Windows: []time.Duration{time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Windows[0].Calls != wantCalls || got[0].Windows[0].Errors != wantErrors {
		t.Fatalf("Stats = %+v; want %d calls, %d errors", got, wantCalls, wantErrors)
	}
}

// TestSQLiteStatsWindows checks what the interface leaves to the store:
// a window that is not whole minutes is rounded up to them, and one that
// is not positive is an error.
func TestSQLiteStatsWindows(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "recorder.db"))
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 9, 15, 30, 0, time.UTC)
	r := storetest.Result("w", 1, job.StatusSucceeded)
	r.FinishedAt = now.Add(-time.Minute) // the minute before now's
	r.StartedAt = r.FinishedAt.Add(-250 * time.Millisecond)
	if err := s.Record(ctx, []job.Result{r}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Stats(ctx, recorder.StatsQuery{Now: now, Windows: []time.Duration{30 * time.Second, 90 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if c := []int{got[0].Windows[0].Calls, got[0].Windows[1].Calls}; !reflect.DeepEqual(c, []int{0, 1}) {
		t.Errorf("calls in windows of 30s and 90s = %v, want [0 1] (one minute and two)", c)
	}
	for _, w := range []time.Duration{0, -time.Minute} {
		if _, err := s.Stats(ctx, recorder.StatsQuery{Now: now, Windows: []time.Duration{w}}); err == nil {
			t.Errorf("Stats with a window of %v succeeded", w)
		}
	}
}

// TestSQLitePruneDeletesAttempts looks into the file: the attempt rows of
// pruned jobs are gone (the conformance suite can only see that they do
// not come back), and so are the histograms of old minutes.
func TestSQLitePruneDeletesAttempts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "recorder.db")
	s := openSQLite(t, path)
	ctx := context.Background()
	var rs []job.Result
	for i := range 30 {
		id := fmt.Sprintf("p-%02d", i)
		rs = append(rs, storetest.Result(id, 1, job.StatusRetrying), storetest.Result(id, 2, job.StatusSucceeded))
	}
	if err := s.Record(ctx, rs); err != nil {
		t.Fatal(err)
	}
	db := inspect(t, path)
	count := func(table string) int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if a, r := count("attempts"), count("latency_rollup"); a != 60 || r == 0 {
		t.Fatalf("before pruning: %d attempt rows and %d rollup rows, want 60 and some", a, r)
	}
	total := 0
	for {
		n, err := s.Prune(ctx, recorder.PruneOptions{RowsBefore: time.Now().Add(time.Hour), Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		total += n.Jobs
		if n.Jobs < 7 {
			break
		}
	}
	if total != 30 {
		t.Errorf("pruned %d jobs, want 30", total)
	}
	if j, a, r := count("jobs"), count("attempts"), count("latency_rollup"); j != 0 || a != 0 || r != 0 {
		t.Errorf("after pruning: %d job rows, %d attempt rows, %d rollup rows; want none", j, a, r)
	}
	if _, err := s.Prune(ctx, recorder.PruneOptions{RowsBefore: time.Now(), Limit: -1}); err == nil {
		t.Error("Prune with a negative limit succeeded")
	}
}

// TestSQLiteMigratesFrom0001 opens a file that only migration 0001 made, as
// a recorder of the previous release left it, with a job in it: 0002
// applies and the job is listed, counted and pruned like a new one.
func TestSQLiteMigratesFrom0001(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "recorder.db")
	init, err := os.ReadFile(filepath.Join("migrations", "0001_init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db := inspect(t, path)
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		string(init),
		`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 1)`,
		`INSERT INTO jobs (job_id, provider, task, batch, status, final, attempt, attempts, response, updated_at)
			VALUES ('old', 'acme', 't', 'b', 'failed', 1, 1, 1, '{"body":{"x":1}}', 1000)`,
		`INSERT INTO attempts (job_id, attempt, status) VALUES ('old', 1, 'failed')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openSQLite(t, path)
	if got := migrationRows(t, inspect(t, path)); len(got) < 2 || got[1].Version != 2 {
		t.Fatalf("schema_migrations = %+v, want 0002 applied", got)
	}
	page, err := s.Jobs(ctx, recorder.JobFilter{Provider: "acme"})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].JobID != "old" || page.Jobs[0].Status != job.StatusFailed {
		t.Fatalf("Jobs = %+v, %v; want the old job", page, err)
	}
	stats, err := s.Stats(ctx, recorder.StatsQuery{Windows: []time.Duration{time.Minute}})
	if err != nil || len(stats) != 1 || stats[0].Jobs[job.StatusFailed] != 1 {
		t.Fatalf("Stats = %+v, %v; want acme with one failed job", stats, err)
	}
	n, err := s.Prune(ctx, recorder.PruneOptions{RowsBefore: time.Unix(0, 2000), BodiesBefore: time.Unix(0, 2000)})
	if err != nil || n != (recorder.Pruned{Jobs: 1}) {
		t.Fatalf("Prune = %+v, %v; want the old job deleted", n, err)
	}
}

// TestSQLiteMigratesTo0003 opens a file that migrations 0001 and 0002 made,
// with jobs whose attempts were keyed by job_id: 0003 rekeys them by the
// job row's key, and the old jobs keep their attempts, in order, take no
// second row for an attempt recorded again, take new attempts, and go
// with their attempts when pruned.
func TestSQLiteMigratesTo0003(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "recorder.db")
	db := inspect(t, path)
	stmts := []string{`CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`}
	for _, name := range []string{"0001_init.sql", "0002_queries.sql"} {
		m, err := os.ReadFile(filepath.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, string(m))
	}
	stmts = append(stmts,
		`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 1), (2, '0002_queries.sql', 2)`,
		// Ids out of insertion order, so that rowid and job_id order differ.
		`INSERT INTO jobs (job_id, provider, task, batch, status, final, attempt, attempts, updated_at) VALUES
			('zz', 'acme', 't', 'b', 'retrying', 0, 2, 2, 1000),
			('aa', 'acme', 't', 'b', 'failed', 1, 1, 1, 1001)`,
		`INSERT INTO attempts (job_id, attempt, status, http_status) VALUES
			('zz', 2, 'retrying', 503), ('aa', 1, 'failed', 400), ('zz', 1, 'retrying', 502)`,
	)
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openSQLite(t, path)
	if got := migrationRows(t, inspect(t, path)); len(got) < 3 || got[2].Version != 3 {
		t.Fatalf("schema_migrations = %+v, want 0003 applied", got)
	}
	attempts := func(id string) []int {
		t.Helper()
		row, err := s.Job(ctx, id)
		if err != nil {
			t.Fatalf("Job(%s): %v", id, err)
		}
		var got []int
		for _, a := range row.AttemptRows {
			got = append(got, a.Attempt*1000+a.HTTPStatus)
		}
		return got
	}
	if got, want := attempts("zz"), []int{1502, 2503}; !reflect.DeepEqual(got, want) {
		t.Errorf("attempts of zz after migrating = %v, want %v", got, want)
	}
	if got, want := attempts("aa"), []int{1400}; !reflect.DeepEqual(got, want) {
		t.Errorf("attempts of aa after migrating = %v, want %v", got, want)
	}

	// Attempt 2 again (a second outcome: the first stays), then 3, and a new job.
	again := storetest.Result("zz", 2, job.StatusRetrying)
	again.HTTPStatus = 504
	third := storetest.Result("zz", 3, job.StatusSucceeded)
	third.HTTPStatus = 200
	if err := s.Record(ctx, []job.Result{again, third, storetest.Result("new", 1, job.StatusSucceeded)}); err != nil {
		t.Fatal(err)
	}
	if got, want := attempts("zz"), []int{1502, 2503, 3200}; !reflect.DeepEqual(got, want) {
		t.Errorf("attempts of zz after recording = %v, want %v", got, want)
	}
	if row, err := s.Job(ctx, "zz"); err != nil || row.Status != job.StatusSucceeded || row.Attempts != 3 {
		t.Errorf("Job(zz) = %+v, %v; want succeeded after 3 attempts", row, err)
	}

	n, err := s.Prune(ctx, recorder.PruneOptions{RowsBefore: time.Unix(0, 2000)})
	if err != nil || n.Jobs != 1 {
		t.Fatalf("Prune = %+v, %v; want aa, the one job not recorded since, deleted", n, err)
	}
	var left int
	if err := inspect(t, path).QueryRow(`SELECT count(*) FROM attempts`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 4 {
		t.Errorf("%d attempt rows after pruning aa, want 4: zz's 3 and new's 1", left)
	}
}

// BenchmarkSQLiteJobs lists a page of 100 from 200,000 jobs of four
// providers in 10 batches, 1% failed and 2% retrying, recorded 1,000 at
// a time: the first page and one from the middle of the feed, for each
// kind of filter. A walk costs about the same wherever it starts and
// however many rows the table holds; a sort of the matches would grow
// with them.
func BenchmarkSQLiteJobs(b *testing.B) {
	const total, batch = 200_000, 1000
	s := openSQLite(b, filepath.Join(b.TempDir(), "bench.db"))
	ctx := context.Background()
	providers := []string{"acme", "globex", "initech", "umbrella"}
	now := time.Now().UTC()
	rs := make([]job.Result, batch)
	var middle *recorder.Cursor
	for n := 0; n < total; n += batch {
		for i := range rs {
			k := n + i
			status := job.StatusSucceeded
			switch {
			case k%100 == 7:
				status = job.StatusFailed
			case k%50 == 3:
				status = job.StatusRetrying
			}
			rs[i] = job.Result{
				V: 1, JobID: fmt.Sprintf("%08x-bench", uint32(k)*2654435761), Provider: providers[k%len(providers)],
				Task: "create_invoice", Batch: fmt.Sprintf("batch-%d", k%10), Attempt: 1, Status: status,
				HTTPStatus: 201, LatencyMS: 640, EnqueuedAt: now, StartedAt: now, FinishedAt: now.Add(640 * time.Millisecond),
				WorkerID: "worker-1",
			}
		}
		before := time.Now()
		if err := s.Record(ctx, rs); err != nil {
			b.Fatal(err)
		}
		if n == total/2 {
			page, err := s.Jobs(ctx, recorder.JobFilter{Since: before, Limit: 1})
			if err != nil || len(page.Jobs) != 1 {
				b.Fatalf("Jobs = %+v, %v", page, err)
			}
			middle = &recorder.Cursor{UpdatedAt: page.Jobs[0].UpdatedAt, JobID: page.Jobs[0].JobID}
		}
	}
	for _, bc := range []struct {
		name string
		f    recorder.JobFilter
	}{
		{"provider", recorder.JobFilter{Provider: "globex"}},
		{"provider+status", recorder.JobFilter{Provider: "umbrella", Status: job.StatusFailed}},
		{"status", recorder.JobFilter{Status: job.StatusFailed}},
		{"batch", recorder.JobFilter{Batch: "batch-3"}},
		{"none", recorder.JobFilter{}},
	} {
		for _, at := range []string{"first", "middle"} {
			f := bc.f
			if at == "middle" {
				f.After = middle
			}
			b.Run(bc.name+"/"+at, func(b *testing.B) {
				for b.Loop() {
					page, err := s.Jobs(ctx, f)
					if err != nil {
						b.Fatal(err)
					}
					if len(page.Jobs) != recorder.DefaultPageSize {
						b.Fatalf("page of %d rows", len(page.Jobs))
					}
				}
			})
		}
	}
}

// TestSQLiteJobsFeedMissesNothing follows the feed while four writers
// record at once, as a client of the query API polling for changes would:
// it pages until Next is nil, then polls again from the last row it saw.
// Once the writers are done and the follower has caught up, it has seen
// every job. Stamps taken before the write lock would let a batch commit
// behind the follower's cursor and be missed.
func TestSQLiteJobsFeedMissesNothing(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "recorder.db"))
	ctx := context.Background()
	const writers, batches, per = 4, 40, 10
	var (
		wg   sync.WaitGroup
		done atomic.Bool
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				rs := make([]job.Result, per)
				for i := range rs {
					rs[i] = storetest.Result(fmt.Sprintf("w%d-%03d-%02d", w, b, i), 1, job.StatusSucceeded)
				}
				if err := s.Record(ctx, rs); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); done.Store(true) }()

	seen := make(map[string]bool)
	var after *recorder.Cursor
	for caughtUp := false; !caughtUp; {
		// Checked before the page, so the page after the writers end is
		// read in full.
		caughtUp = done.Load()
		for {
			page, err := s.Jobs(ctx, recorder.JobFilter{After: after, Limit: 7})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Jobs {
				seen[r.JobID] = true
				after = &recorder.Cursor{UpdatedAt: r.UpdatedAt, JobID: r.JobID}
			}
			if page.Next == nil {
				break
			}
		}
	}
	if len(seen) != writers*batches*per {
		t.Errorf("the follower saw %d jobs, want %d", len(seen), writers*batches*per)
	}
}
