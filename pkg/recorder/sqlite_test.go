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
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('jobs', 'attempts', 'jobs_batch_status', 'jobs_provider_task_status')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("found %d of the 4 tables and indexes", n)
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
