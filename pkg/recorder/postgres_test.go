package recorder_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard-io/switchyard/internal/pgtest"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/storetest"
)

// TestMain lets pgtest stop the PostgreSQL server the package's tests share.
func TestMain(m *testing.M) { pgtest.Main(m) }

// openPostgres opens a store on the database at url, closed by t.Cleanup.
func openPostgres(t testing.TB, url string) *recorder.Postgres {
	t.Helper()
	s, err := recorder.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestPostgresConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) recorder.Store {
		return openPostgres(t, pgtest.URL(t))
	})
}

// psql opens a plain connection to the database at url, to look at what
// the store did, as an operator would.
func psql(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

type pgMigration struct {
	Version   int32
	Name      string
	AppliedAt int64
}

func pgMigrations(t *testing.T, conn *pgx.Conn) []pgMigration {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := pgx.CollectRows(rows, pgx.RowToStructByPos[pgMigration])
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestPostgresReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	s, err := recorder.OpenPostgres(ctx, url)
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
	conn := psql(t, url)
	applied := pgMigrations(t, conn)
	if len(applied) == 0 || applied[0].Version != 1 {
		t.Fatalf("schema_migrations after first open = %+v, want version 1 first", applied)
	}

	for i := range 2 {
		s := openPostgres(t, url)
		after, err := s.Job(ctx, "j1")
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		if !reflect.DeepEqual(after, before) {
			t.Errorf("reopen %d: job row = %+v, want %+v", i, after, before)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := pgMigrations(t, conn); !reflect.DeepEqual(got, applied) {
			t.Errorf("reopen %d: schema_migrations = %+v, want unchanged %+v", i, got, applied)
		}
	}
}

// TestPostgresMigratesTo0002 opens a database that only migration 0001
// made, with jobs whose attempts were keyed by job_id: 0002 rekeys them by
// the job row's id, and the old jobs keep their attempts, in order, take no
// second row for an attempt recorded again, take new attempts, and go with
// their attempts when pruned.
func TestPostgresMigratesTo0002(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	init, err := os.ReadFile(filepath.Join("migrations", "postgres", "0001_init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	conn := psql(t, url)
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (version integer NOT NULL PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`,
		string(init),
		`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 1)`,
		`INSERT INTO jobs (job_id, provider, task, lane, batch, status, final, attempt, attempts,
			http_status, error, error_class, latency_ms, worker_id, updated_at) VALUES
			('zz', 'acme', 't', '', 'b', 'retrying', false, 2, 2, 503, '', '', 0, '', 1000),
			('aa', 'acme', 't', '', 'b', 'failed', true, 1, 1, 400, '', '', 0, '', 1001)`,
		`INSERT INTO attempts (job_id, attempt, status, http_status, error, error_class, latency_ms, worker_id) VALUES
			('zz', 2, 'retrying', 503, '', '', 0, ''), ('aa', 1, 'failed', 400, '', '', 0, ''),
			('zz', 1, 'retrying', 502, '', '', 0, '')`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}

	s := openPostgres(t, url)
	if got := pgMigrations(t, conn); len(got) < 2 || got[1].Version != 2 {
		t.Fatalf("schema_migrations = %+v, want 0002 applied", got)
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
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM attempts`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 4 {
		t.Errorf("%d attempt rows after pruning aa, want 4: zz's 3 and new's 1", left)
	}
}

// TestPostgresOpenTogether opens one fresh database from several stores at
// once, as recorder replicas starting together do: the migration lock lets
// one apply the schema and the others find it.
func TestPostgresOpenTogether(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	const replicas = 4
	stores := make([]*recorder.Postgres, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = recorder.OpenPostgres(context.Background(), url) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Errorf("replica %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { s.Close() })
	}
	ms := pgMigrations(t, psql(t, url))
	seen := make(map[int32]bool)
	for _, m := range ms {
		if seen[m.Version] {
			t.Errorf("migration %d applied twice: %+v", m.Version, ms)
		}
		seen[m.Version] = true
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := recorder.Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatalf("Open(postgres URL): %v", err)
	}
	defer pg.Close()
	if _, ok := pg.(*recorder.Postgres); !ok {
		t.Errorf("Open(postgres URL) = %T, want *recorder.Postgres", pg)
	}
	lite, err := recorder.Open(ctx, filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatalf("Open(file): %v", err)
	}
	defer lite.Close()
	if _, ok := lite.(*recorder.SQLite); !ok {
		t.Errorf("Open(file) = %T, want *recorder.SQLite", lite)
	}
	// A URL that names no server fails, and keeps its password to itself.
	_, err = recorder.Open(ctx, "postgres://user:s3cret@127.0.0.1:1/db?connect_timeout=5")
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestIsPostgresURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		database string
		want     bool
	}{
		{"postgres://u@host/db", true},
		{"postgresql://u@host:5432/db?sslmode=disable", true},
		{"POSTGRES://host/db", true},
		{"switchyard.db", false},
		{"/var/lib/switchyard/results.db", false},
		{"./postgres://odd-but-a-file", false},
		{"mysql://host/db", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := recorder.IsPostgresURL(tt.database); got != tt.want {
			t.Errorf("IsPostgresURL(%q) = %v, want %v", tt.database, got, tt.want)
		}
	}
}

func TestPostgresRecordEmpty(t *testing.T) {
	t.Parallel()
	s := openPostgres(t, pgtest.URL(t))
	if err := s.Record(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Job(context.Background(), "x"); !errors.Is(err, recorder.ErrNotFound) {
		t.Fatalf("Job = %v, want ErrNotFound", err)
	}
}

// TestPostgresRecordSameJobInOneBatch records two results of one job in one
// batch, in either order, next to each other and apart: the merge Record
// does before writing must leave what two batches would.
func TestPostgresRecordSameJobInOneBatch(t *testing.T) {
	t.Parallel()
	retrying := storetest.Result("twice", 1, job.StatusRetrying)
	succeeded := storetest.Result("twice", 2, job.StatusSucceeded)
	dup := storetest.Result("twice", 2, job.StatusSucceeded)
	dup.WorkerID = "redelivered" // an attempt row keeps the first outcome
	failed := storetest.Result("twice", 2, job.StatusFailed)
	tests := []struct {
		name          string
		first, second job.Result
		// apart puts this many results of other jobs between the two.
		apart int
		// winner is the result the job row must show.
		winner job.Result
	}{
		{"retrying then succeeded", retrying, succeeded, 0, succeeded},
		{"succeeded then retrying", succeeded, retrying, 0, succeeded},
		{"retrying then succeeded, apart", retrying, succeeded, 100, succeeded},
		{"succeeded then retrying, apart", succeeded, retrying, 100, succeeded},
		{"succeeded twice", succeeded, dup, 0, dup},
		{"succeeded twice, apart", succeeded, dup, 100, dup},
		{"equal rank: the later wins", succeeded, failed, 3, failed},
		{"equal rank: the later wins, reversed", failed, succeeded, 3, succeeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openPostgres(t, pgtest.URL(t))
			batch := []job.Result{tt.first}
			for i := range tt.apart {
				// Ids on both sides of the job's, so that it sorts inside.
				batch = append(batch, storetest.Result(fmt.Sprintf("other-%d", i), 1, job.StatusSucceeded),
					storetest.Result(fmt.Sprintf("zz-%d", i), 1, job.StatusSucceeded))
			}
			batch = append(batch, tt.second)
			if err := s.Record(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			row, err := s.Job(context.Background(), "twice")
			if err != nil {
				t.Fatal(err)
			}
			// An attempt row keeps the first outcome recorded for it.
			var attempts []string
			firsts := map[int]job.Result{}
			for _, r := range []job.Result{tt.first, tt.second} {
				if _, ok := firsts[r.Attempt]; !ok {
					firsts[r.Attempt] = r
				}
			}
			for a := 1; a <= 2; a++ {
				if r, ok := firsts[a]; ok {
					attempts = append(attempts, fmt.Sprintf("%d %s by %s", a, r.Status, r.WorkerID))
				}
			}
			want := outcome{tt.winner.Status, tt.winner.Attempt, 2, tt.winner.WorkerID, attempts}
			if got := outcomeOf(row); !reflect.DeepEqual(got, want) {
				t.Errorf("job row:\n got %+v\nwant %+v", got, want)
			}
			counts, err := s.BatchCounts(context.Background(), retrying.Batch)
			if err != nil {
				t.Fatal(err)
			}
			if n := counts[job.StatusSucceeded] + counts[job.StatusFailed]; n != 1+2*tt.apart || len(counts) > 2 {
				t.Errorf("BatchCounts = %v, want %d jobs", counts, 1+2*tt.apart)
			}
		})
	}
}

// TestPostgresRecordBatchSizes records batches from 1 result to the
// recorder's largest, in shuffled id order: each result's values must land
// in its own row, whatever the merge's sort did.
func TestPostgresRecordBatchSizes(t *testing.T) {
	t.Parallel()
	s := openPostgres(t, pgtest.URL(t))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 3, 7, 64, 65, 1000, 1023, 10000} {
		batch := fmt.Sprintf("size-%d", n)
		rs := make([]job.Result, n)
		for i := range rs {
			rs[i] = storetest.Result(fmt.Sprintf("%s-%d", batch, i), 1+i%3, job.StatusSucceeded)
			rs[i].Batch = batch
			rs[i].LatencyMS = int64(i)
		}
		rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
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
		for _, r := range []job.Result{rs[0], rs[n/2], rs[n-1]} {
			row, err := s.Job(ctx, r.JobID)
			if err != nil {
				t.Fatalf("batch of %d: %v", n, err)
			}
			if row.LatencyMS != r.LatencyMS || row.Attempt != r.Attempt || len(row.AttemptRows) != 1 ||
				row.AttemptRows[0].LatencyMS != r.LatencyMS || row.AttemptRows[0].Attempt != r.Attempt {
				t.Errorf("batch of %d: job %s has latency %d, attempt %d and attempt rows %+v; want latency %d, attempt %d",
					n, row.JobID, row.LatencyMS, row.Attempt, row.AttemptRows, r.LatencyMS, r.Attempt)
			}
		}
	}
}

// TestPostgresRecordCanceledMidBatch ends a batch's context at every point
// Record looks at it: a Record that fails has written nothing, and the store
// works on.
func TestPostgresRecordCanceledMidBatch(t *testing.T) {
	t.Parallel()
	s := openPostgres(t, pgtest.URL(t))
	const size = 300
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
				break // never canceled: every point is covered
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

// TestPostgresRecordUnstorableText records text that PostgreSQL refuses
// (NUL bytes, invalid UTF-8, which SQLite takes): the batch must still go
// in, with U+FFFD in their place, rather than fail forever.
func TestPostgresRecordUnstorableText(t *testing.T) {
	t.Parallel()
	s := openPostgres(t, pgtest.URL(t))
	r := storetest.Result("text", 1, job.StatusFailed)
	r.Error = "bad\x00byte and \xff"
	r.Meta = json.RawMessage(`{"note":"\u0000 stays escaped"}`)
	r.Response = &job.Response{BodyText: "nul\x00inside"}
	// Two ids that are stored alike, in one batch: one job.
	nul, ff := storetest.Result("same\x00", 1, job.StatusRetrying), storetest.Result("same\xff", 2, job.StatusSucceeded)
	if err := s.Record(context.Background(), []job.Result{r, nul, ff}); err != nil {
		t.Fatalf("Record: %v", err)
	}
	if row, err := s.Job(context.Background(), "same\uFFFD"); err != nil || row.Attempts != 2 || len(row.AttemptRows) != 2 {
		t.Errorf("Job(same\uFFFD) = %+v, %v; want one job of two attempts", row, err)
	}
	row, err := s.Job(context.Background(), "text")
	if err != nil {
		t.Fatal(err)
	}
	if want := "bad\uFFFDbyte and \uFFFD"; row.Error != want || row.AttemptRows[0].Error != want {
		t.Errorf("Error = %q, attempt error %q; want %q", row.Error, row.AttemptRows[0].Error, want)
	}
	if string(row.Meta) != string(r.Meta) {
		t.Errorf("Meta = %s, want %s", row.Meta, r.Meta)
	}
	var resp job.Response
	if err := json.Unmarshal(row.Response, &resp); err != nil || resp.BodyText != "nul\x00inside" {
		t.Errorf("Response = %s (%v), want the body text back", row.Response, err)
	}
}

// TestPostgresReplicasRecordTogether has two stores, as two recorder
// replicas would, record overlapping batches at once: the same jobs, in
// opposite orders, with outcomes that rank differently. Record's lock order
// must keep them from deadlocking, and the rows must end as if the results
// had come one by one.
func TestPostgresReplicasRecordTogether(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	a, b := openPostgres(t, url), openPostgres(t, url)
	const jobs, rounds = 400, 20
	// Each round, replica a records attempt 1 retrying and replica b
	// attempt 2 succeeded of every job, one in id order and the other in
	// reverse, with a different subset of jobs each round.
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for _, rep := range []struct {
		s       *recorder.Postgres
		attempt int
		status  job.Status
		reverse bool
	}{{a, 1, job.StatusRetrying, false}, {b, 2, job.StatusSucceeded, true}} {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(rep.attempt), 9))
			for round := range rounds {
				var rs []job.Result
				for i := range jobs {
					if (i+round)%3 == 0 {
						continue
					}
					r := storetest.Result(fmt.Sprintf("rep-%03d", i), rep.attempt, rep.status)
					r.Batch = "replicas"
					rs = append(rs, r)
				}
				if rep.reverse {
					slices.Reverse(rs)
				} else {
					rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
				}
				if err := rep.s.Record(ctx, rs); err != nil {
					errs <- fmt.Errorf("replica of attempt %d, round %d: %w", rep.attempt, round, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	counts, err := a.BatchCounts(ctx, "replicas")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[job.Status]int{job.StatusSucceeded: jobs}; !reflect.DeepEqual(counts, want) {
		t.Errorf("BatchCounts = %v, want %v", counts, want)
	}
	for _, i := range []int{0, 1, jobs / 2, jobs - 1} {
		row, err := b.Job(ctx, fmt.Sprintf("rep-%03d", i))
		if err != nil {
			t.Fatal(err)
		}
		want := outcome{job.StatusSucceeded, 2, 2, "worker-2", []string{"1 retrying by worker-1", "2 succeeded by worker-2"}}
		if got := outcomeOf(row); !reflect.DeepEqual(got, want) {
			t.Errorf("job %s:\n got %+v\nwant %+v", row.JobID, got, want)
		}
	}
}

// TestPostgresPruneBesideRecord prunes old jobs while late results of the
// same jobs are recorded: the two lock job rows in one order, so neither
// deadlocks nor fails, and a job is either pruned or holds what came last.
func TestPostgresPruneBesideRecord(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	s := openPostgres(t, url)
	ctx := context.Background()
	const n = 2000
	old := make([]job.Result, n)
	for i := range old {
		old[i] = storetest.Result(fmt.Sprintf("old-%04d", i), 1, job.StatusRetrying)
		old[i].Batch = "prune"
	}
	if err := s.Record(ctx, old); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now()

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() {
		// Late results, from the highest ids down.
		for from := n; from > 0; from -= 100 {
			var rs []job.Result
			for i := from - 1; i >= from-100; i-- {
				rs = append(rs, storetest.Result(old[i].JobID, 2, job.StatusSucceeded))
				rs[len(rs)-1].Batch = "prune"
			}
			if err := s.Record(ctx, rs); err != nil {
				errs <- fmt.Errorf("record: %w", err)
				return
			}
		}
	})
	wg.Go(func() {
		for {
			p, err := s.Prune(ctx, recorder.PruneOptions{RowsBefore: cutoff, Limit: 50})
			if err != nil {
				errs <- fmt.Errorf("prune: %w", err)
				return
			}
			if p.Jobs < 50 {
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Whatever is left was updated after the cutoff: it is succeeded, with
	// its attempts; a pruned job left no attempts behind.
	var orphans int
	if err := psql(t, url).QueryRow(ctx, `SELECT count(*) FROM attempts a
		WHERE NOT EXISTS (SELECT FROM jobs j WHERE j.id = a.job)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d attempt rows of pruned jobs are left", orphans)
	}
	counts, err := s.BatchCounts(ctx, "prune")
	if err != nil {
		t.Fatal(err)
	}
	if counts[job.StatusRetrying] != 0 {
		t.Errorf("BatchCounts = %v: retrying jobs older than the cutoff survived", counts)
	}
	for i := range n {
		row, err := s.Job(ctx, old[i].JobID)
		if errors.Is(err, recorder.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if row.Status != job.StatusSucceeded || len(row.AttemptRows) == 0 {
			t.Fatalf("job %s: %+v", row.JobID, outcomeOf(row))
		}
	}
}

// TestPostgresStatsExactOnRedelivery records results again, alone, twice
// in one batch, beside new ones, and a second outcome of an attempt
// already stored: the histograms count each attempt once, as the attempt
// rows do.
func TestPostgresStatsExactOnRedelivery(t *testing.T) {
	t.Parallel()
	s := openPostgres(t, pgtest.URL(t))
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
	var mixed []job.Result
	for i := range 70 {
		mixed = append(mixed, result(fmt.Sprintf("m-%02d", i), 1, job.StatusSucceeded))
	}
	mixed = append(mixed, first...)
	dead := result("r-00", 1, job.StatusDead) // another outcome of a stored attempt
	for i, b := range [][]job.Result{
		first,
		first,
		{first[0], first[0], first[1]},
		mixed,
		{dead, result("r-01", 2, job.StatusSucceeded), first[2]},
	} {
		if err := s.Record(ctx, b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	// Distinct attempts: r-00..r-09 attempt 1 (retrying), m-00..m-69, and
	// r-01 attempt 2.
	wantCalls, wantErrors := 10+70+1, 10
	got, err := s.Stats(ctx, recorder.StatsQuery{Now: finished, Windows: []time.Duration{time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Windows[0].Calls != wantCalls || got[0].Windows[0].Errors != wantErrors {
		t.Fatalf("Stats = %+v; want %d calls, %d errors", got, wantCalls, wantErrors)
	}
}

// TestPostgresStatsWindows checks what the interface leaves to the store,
// as SQLite does it: a window that is not whole minutes is rounded up to
// them, and one that is not positive is an error.
func TestPostgresStatsWindows(t *testing.T) {
	t.Parallel()
	s := openPostgres(t, pgtest.URL(t))
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

// TestPostgresPruneDeletesAttempts looks into the database: the attempt
// rows of pruned jobs are gone (no foreign key removes them here: Prune
// does), and so are the histograms of old minutes.
func TestPostgresPruneDeletesAttempts(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	s := openPostgres(t, url)
	ctx := context.Background()
	var rs []job.Result
	for i := range 30 {
		id := fmt.Sprintf("p-%02d", i)
		rs = append(rs, storetest.Result(id, 1, job.StatusRetrying), storetest.Result(id, 2, job.StatusSucceeded))
	}
	if err := s.Record(ctx, rs); err != nil {
		t.Fatal(err)
	}
	conn := psql(t, url)
	count := func(table string) int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
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

// countingStore counts the Record calls that fail, around a real store.
type countingStore struct {
	recorder.Store
	failures atomic.Int64
}

func (s *countingStore) Record(ctx context.Context, results []job.Result) error {
	err := s.Store.Record(ctx, results)
	if err != nil {
		s.failures.Add(1)
	}
	return err
}

// TestRecorderPostgresDown takes PostgreSQL away while results keep coming,
// and brings it back: the recorder must say it is unhealthy, hold its batch
// and keep retrying meanwhile, and then record every job exactly once,
// without an ack lost or a result redelivered.
func TestRecorderPostgresDown(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	store := &countingStore{Store: openPostgres(t, pg.CreateDatabase(t))}
	nats := natstest.Start(t)
	_, pub := nats.Connect(t)
	nats.ApplyStreams(t, pub)
	_, js := nats.Connect(t)
	rec := startRecorder(t, js, store, recorder.Config{BatchSize: 100})

	// Every tenth job is retried once: its job row must end at attempt 2.
	const n = 3000
	var results []job.Result
	for i := range n {
		id := jobID("down", i)
		if i%10 == 0 {
			results = append(results, newResult(id, "down", 1, job.StatusRetrying))
			results = append(results, newResult(id, "down", 2, job.StatusSucceeded))
		} else {
			results = append(results, newResult(id, "down", 1, job.StatusSucceeded))
		}
	}
	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() {
		for _, r := range results {
			data, err := json.Marshal(r)
			if err == nil {
				err = publishRaw(pub, job.ResultSubject(r.Provider, r.Task), fmt.Sprintf("%s:%d", r.JobID, r.Attempt), data)
			}
			if err != nil {
				pubDone <- err
				return
			}
			published.Add(1)
		}
		pubDone <- nil
	}()

	// Down once some results are in, while the rest keep coming.
	waitFor(t, waitTimeout, func() (bool, string) {
		return countJobs(t, store, "down") > 0, "no rows yet"
	})
	pg.Stop()
	before := published.Load()
	t.Logf("PostgreSQL stopped after %d of %d results were published", before, len(results))

	failures := store.failures.Load()
	waitFor(t, waitTimeout, func() (bool, string) {
		return !rec.Healthy(), "Healthy() = true while PostgreSQL is down"
	})
	// It keeps retrying: failures go on while results still arrive.
	waitFor(t, waitTimeout, func() (bool, string) {
		f := store.failures.Load()
		return f >= failures+2 && published.Load() > before,
			fmt.Sprintf("%d failed Record calls and %d more results published since the stop", f-failures, published.Load()-before)
	})
	if err := store.Ping(context.Background()); err == nil {
		t.Error("Ping succeeded while PostgreSQL is down")
	}
	if rec.Healthy() {
		t.Error("Healthy() = true while PostgreSQL is down")
	}

	pg.Start()
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	waitJobs(t, store, "down", n)
	waitFor(t, waitTimeout, func() (bool, string) {
		return rec.Healthy(), "Healthy() = false after PostgreSQL came back"
	})
	// Every result delivered once, acked, none redelivered: the batch held
	// through the outage was kept in progress, and no ack was lost.
	checkDelivered(t, waitSettled(t, pub), uint64(len(results)))

	ctx := context.Background()
	for i := range n {
		id := jobID("down", i)
		row, err := store.Job(ctx, id)
		if err != nil {
			t.Fatalf("Job(%s): %v", id, err)
		}
		want := outcome{job.StatusSucceeded, 1, 1, "worker-1", []string{"1 succeeded by worker-1"}}
		if i%10 == 0 {
			want = outcome{job.StatusSucceeded, 2, 2, "worker-2", []string{"1 retrying by worker-1", "2 succeeded by worker-2"}}
		}
		if got := outcomeOf(row); !reflect.DeepEqual(got, want) {
			t.Fatalf("job %s:\n got %+v\nwant %+v", id, got, want)
		}
	}
	counts, err := store.BatchCounts(ctx, "down")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[job.Status]int{job.StatusSucceeded: n}; !reflect.DeepEqual(counts, want) {
		t.Errorf("BatchCounts = %v, want %v", counts, want)
	}
	t.Logf("%d Record calls failed during the outage", store.failures.Load())
}

// BenchmarkPostgresRecord is BenchmarkSQLiteRecord on PostgreSQL: batches
// of 1,000 results with a small response and meta each, one job in 20
// retried once across two batches, ids sequential or random. The server is
// pgtest's (fsync off) unless TEST_POSTGRES_URL names another.
func BenchmarkPostgresRecord(b *testing.B) {
	for _, ids := range []string{"sequential", "uuid"} {
		b.Run("ids="+ids, func(b *testing.B) {
			benchmarkStoreRecord(b, openPostgres(b, pgtest.URL(b)), ids == "uuid")
		})
	}
}

// benchmarkStoreRecord is the workload of BenchmarkSQLiteRecord, on any
// store.
func benchmarkStoreRecord(b *testing.B, s recorder.Store, randomIDs bool) {
	const batch, retryEvery = 1000, 20
	ctx := context.Background()
	now := time.Now().UTC()
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
	var retried []string
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

// BenchmarkPostgresJobs is BenchmarkSQLiteJobs on PostgreSQL: a page of 100
// from 200,000 jobs of four providers in 10 batches, 1% failed and 2%
// retrying, the first page and one from the middle of the feed, for each
// kind of filter. Statistics are fresh (ANALYZE), as autovacuum keeps them
// on a table that grows.
func BenchmarkPostgresJobs(b *testing.B) {
	const total, batch = 200_000, 1000
	url := pgtest.URL(b)
	s := openPostgres(b, url)
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
	if _, err := psql(b, url).Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		f    recorder.JobFilter
	}{
		{"provider", recorder.JobFilter{Provider: "globex"}},
		// Failed jobs are k ≡ 7 (mod 100), so all of them umbrella's (k ≡ 3
		// mod 4).
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
