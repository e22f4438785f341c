package recorder_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
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

// BenchmarkSQLiteRecord records batches of 1,000 fresh results, the
// recorder's default batch size.
func BenchmarkSQLiteRecord(b *testing.B) {
	const batch = 1000
	s := openSQLite(b, filepath.Join(b.TempDir(), "bench.db"))
	ctx := context.Background()
	now := time.Now().UTC()
	rs := make([]job.Result, batch)
	for i := range rs {
		rs[i] = job.Result{
			V: 1, Provider: "acme", Task: "create_invoice", Lane: job.LaneBulk, Batch: "bench",
			Attempt: 1, Status: job.StatusSucceeded, HTTPStatus: 201, LatencyMS: 640,
			EnqueuedAt: now, StartedAt: now, FinishedAt: now.Add(640 * time.Millisecond),
			Response: &job.Response{
				Headers: map[string][]string{"Content-Type": {"application/json"}},
				Body:    []byte(`{"id":"inv_0000000001","status":"open","amount":1200}`),
			},
			Meta:     []byte(`{"order":981}`),
			WorkerID: "worker-1",
		}
	}
	for n := 0; b.Loop(); n++ {
		for i := range rs {
			rs[i].JobID = fmt.Sprintf("job-%d-%d", n, i)
		}
		if err := s.Record(ctx, rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "results/s")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/batch")
}
