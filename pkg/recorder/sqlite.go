package recorder

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/switchyard-io/switchyard/pkg/job"

	// Pure Go, so the recorder builds with CGO_ENABLED=0.
	_ "modernc.org/sqlite"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// busyTimeout is how long a statement waits for another process's lock
// before failing with SQLITE_BUSY. Within one process the single writer
// connection already serialises writes, so this only covers a second
// process (or an operator's sqlite3 shell) on the same file.
const busyTimeout = 10 * time.Second

// SQLite is a Store in one SQLite file, for a single recorder replica.
//
// Writes go through one connection: SQLite allows one writer at a time
// anyway, and queuing in database/sql is cheaper than spinning on
// SQLITE_BUSY. Reads use a separate pool, which WAL mode lets run beside the
// writer without blocking it.
type SQLite struct {
	w *sql.DB // exactly one connection; every transaction is BEGIN IMMEDIATE
	r *sql.DB // query_only connections for Job, BatchCounts, Latencies

	upsertJob, bumpAttempts, insertAttempt *sql.Stmt

	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the SQLite database at path and
// brings its schema up to date. path must name a file: ":memory:" would give
// the writer and the readers separate databases.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open sqlite: %q is not a file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s := &SQLite{}

	s.w, err = sql.Open("sqlite", sqliteDSN(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	// Ping opens the writer connection, which switches the file to WAL
	// before any reader connects.
	if err := s.w.PingContext(ctx); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := migrate(ctx, s.w); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}

	s.r, err = sql.Open("sqlite", sqliteDSN(abs, true))
	if err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(readers)
	s.r.SetMaxIdleConns(readers)

	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}

// sqliteDSN builds a modernc.org/sqlite DSN. The path goes in a file: URI,
// escaped, so that a "?" or "#" in a file name cannot be read as parameters.
func sqliteDSN(abs string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	// In WAL mode NORMAL survives a crash of the process but not of the OS:
	// power loss can undo the last commits after they were acked. RESULTS
	// keeps them (limits retention), so they can be replayed; FULL would
	// instead fsync every commit.
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// WAL is a property of the file; setting it on the writer is enough.
		q.Add("_pragma", "journal_mode(WAL)")
		// Take the write lock at BEGIN, so a transaction never fails midway
		// upgrading a read lock that another writer made stale.
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Path: abs}
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

func (s *SQLite) prepare(ctx context.Context) error {
	for _, p := range []struct {
		stmt **sql.Stmt
		name string
		sql  string
	}{
		{&s.upsertJob, "upsert job", upsertJobSQL},
		{&s.bumpAttempts, "bump attempts", bumpAttemptsSQL},
		{&s.insertAttempt, "insert attempt", insertAttemptSQL},
	} {
		st, err := s.w.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare %s: %w", p.name, err)
		}
		*p.stmt = st
	}
	return nil
}

// upsertJobSQL inserts a job row, or replaces it when the incoming result
// ranks at least as high: (final, attempt) compared in that order. When the
// WHERE rejects the update no row changes, and Record then only raises
// attempts with bumpAttemptsSQL.
const upsertJobSQL = `
INSERT INTO jobs (
	job_id, provider, task, lane, batch, status, final, attempt, attempts,
	http_status, error, error_class, latency_ms, enqueued_at, started_at,
	finished_at, response, meta, worker_id, updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id) DO UPDATE SET
	provider    = excluded.provider,
	task        = excluded.task,
	lane        = excluded.lane,
	batch       = excluded.batch,
	status      = excluded.status,
	final       = excluded.final,
	attempt     = excluded.attempt,
	attempts    = max(jobs.attempts, excluded.attempt),
	http_status = excluded.http_status,
	error       = excluded.error,
	error_class = excluded.error_class,
	latency_ms  = excluded.latency_ms,
	enqueued_at = excluded.enqueued_at,
	started_at  = excluded.started_at,
	finished_at = excluded.finished_at,
	response    = excluded.response,
	meta        = excluded.meta,
	worker_id   = excluded.worker_id,
	updated_at  = excluded.updated_at
WHERE excluded.final > jobs.final
   OR (excluded.final = jobs.final AND excluded.attempt >= jobs.attempt)`

const bumpAttemptsSQL = `UPDATE jobs SET attempts = max(attempts, ?) WHERE job_id = ?`

const insertAttemptSQL = `
INSERT INTO attempts (
	job_id, attempt, status, http_status, error, error_class, latency_ms,
	started_at, finished_at, worker_id
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id, attempt) DO NOTHING`

// Record implements Store.
func (s *SQLite) Record(ctx context.Context, results []job.Result) error {
	for i := range results {
		if err := checkResult(i, &results[i]); err != nil {
			return fmt.Errorf("record results: %w", err)
		}
	}
	now := time.Now().UnixNano()

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record results: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit

	// The statements were prepared on the writer's only connection, so
	// Stmt reuses them rather than preparing again.
	upsert := tx.StmtContext(ctx, s.upsertJob)
	bump := tx.StmtContext(ctx, s.bumpAttempts)
	attempt := tx.StmtContext(ctx, s.insertAttempt)

	for i := range results {
		r := &results[i]
		var resp any
		if r.Response != nil {
			b, err := gojson.Marshal(r.Response)
			if err != nil {
				return fmt.Errorf("record job %s attempt %d: encode response: %w", r.JobID, r.Attempt, err)
			}
			resp = string(b)
		}
		res, err := upsert.ExecContext(ctx,
			r.JobID, r.Provider, r.Task, string(r.Lane), r.Batch, string(r.Status),
			boolInt(r.Status.Final()), r.Attempt, r.Attempt, r.HTTPStatus, r.Error, string(r.ErrorClass),
			r.LatencyMS, nanos(r.EnqueuedAt), nanos(r.StartedAt), nanos(r.FinishedAt),
			resp, jsonText(r.Meta), r.WorkerID, now)
		if err != nil {
			return fmt.Errorf("record job %s attempt %d: upsert job: %w", r.JobID, r.Attempt, err)
		}
		changed, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("record job %s attempt %d: upsert job: %w", r.JobID, r.Attempt, err)
		}
		if changed == 0 {
			// The row kept a higher-ranking outcome; still count the attempt.
			if _, err := bump.ExecContext(ctx, r.Attempt, r.JobID); err != nil {
				return fmt.Errorf("record job %s attempt %d: raise attempts: %w", r.JobID, r.Attempt, err)
			}
		}
		if _, err := attempt.ExecContext(ctx,
			r.JobID, r.Attempt, string(r.Status), r.HTTPStatus, r.Error, string(r.ErrorClass),
			r.LatencyMS, nanos(r.StartedAt), nanos(r.FinishedAt), r.WorkerID); err != nil {
			return fmt.Errorf("record job %s attempt %d: insert attempt: %w", r.JobID, r.Attempt, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record results: commit %d results: %w", len(results), err)
	}
	return nil
}

// Job implements Store.
func (s *SQLite) Job(ctx context.Context, id string) (*JobRow, error) {
	// One read transaction, so the job row and its attempts come from the
	// same snapshot.
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("get job %s: begin: %w", id, err)
	}
	defer tx.Rollback()

	var (
		row                         JobRow
		lane, status, class         string
		enqueued, started, finished sql.NullInt64
		updated                     int64
		response, meta              []byte
	)
	err = tx.QueryRowContext(ctx, `
		SELECT job_id, provider, task, lane, batch, status, attempt, attempts,
			http_status, error, error_class, latency_ms, enqueued_at, started_at,
			finished_at, response, meta, worker_id, updated_at
		FROM jobs WHERE job_id = ?`, id).Scan(
		&row.JobID, &row.Provider, &row.Task, &lane, &row.Batch, &status, &row.Attempt, &row.Attempts,
		&row.HTTPStatus, &row.Error, &class, &row.LatencyMS, &enqueued, &started,
		&finished, &response, &meta, &row.WorkerID, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	row.Lane, row.Status, row.ErrorClass = job.Lane(lane), job.Status(status), job.Class(class)
	row.EnqueuedAt, row.StartedAt, row.FinishedAt = fromNanos(enqueued), fromNanos(started), fromNanos(finished)
	row.UpdatedAt = time.Unix(0, updated).UTC()
	row.Response, row.Meta = response, meta

	rows, err := tx.QueryContext(ctx, `
		SELECT attempt, status, http_status, error, error_class, latency_ms,
			started_at, finished_at, worker_id
		FROM attempts WHERE job_id = ? ORDER BY attempt`, id)
	if err != nil {
		return nil, fmt.Errorf("get job %s: attempts: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a AttemptRow
		if err := rows.Scan(&a.Attempt, &status, &a.HTTPStatus, &a.Error, &class, &a.LatencyMS,
			&started, &finished, &a.WorkerID); err != nil {
			return nil, fmt.Errorf("get job %s: attempts: %w", id, err)
		}
		a.Status, a.ErrorClass = job.Status(status), job.Class(class)
		a.StartedAt, a.FinishedAt = fromNanos(started), fromNanos(finished)
		row.AttemptRows = append(row.AttemptRows, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get job %s: attempts: %w", id, err)
	}
	return &row, nil
}

// BatchCounts implements Store.
func (s *SQLite) BatchCounts(ctx context.Context, batch string) (map[job.Status]int, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT status, count(*) FROM jobs WHERE batch = ? GROUP BY status`, batch)
	if err != nil {
		return nil, fmt.Errorf("count batch %s: %w", batch, err)
	}
	defer rows.Close()
	counts := make(map[job.Status]int)
	for rows.Next() {
		var (
			status string
			n      int
		)
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("count batch %s: %w", batch, err)
		}
		counts[job.Status(status)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count batch %s: %w", batch, err)
	}
	return counts, nil
}

// Latencies implements Store.
func (s *SQLite) Latencies(ctx context.Context, batch string) ([]time.Duration, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT finished_at - enqueued_at FROM jobs
		WHERE batch = ? AND final = 1
			AND enqueued_at IS NOT NULL AND finished_at IS NOT NULL
		ORDER BY 1`, batch)
	if err != nil {
		return nil, fmt.Errorf("latencies of batch %s: %w", batch, err)
	}
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var ns int64
		if err := rows.Scan(&ns); err != nil {
			return nil, fmt.Errorf("latencies of batch %s: %w", batch, err)
		}
		out = append(out, time.Duration(ns))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("latencies of batch %s: %w", batch, err)
	}
	return out, nil
}

// Ping implements Store.
func (s *SQLite) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite writer: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite readers: %w", err)
	}
	return nil
}

// Close implements Store. It waits for a Record in progress to finish.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, st := range []*sql.Stmt{s.upsertJob, s.bumpAttempts, s.insertAttempt} {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close sqlite: %w", err)
		}
	})
	return s.closeErr
}

// nanos stores a time as unix nanoseconds, and the zero time as NULL (its
// UnixNano would overflow).
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// jsonText binds raw JSON as TEXT (a []byte would bind as a BLOB) and empty
// JSON as NULL.
func jsonText(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

// migration is one embedded schema change, named NNNN_what.sql.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	files, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	ms := make([]migration, 0, len(files))
	seen := make(map[int]string)
	for _, f := range files {
		name := filepath.Base(f)
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version number and _", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		body, err := migrationFS.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies, in version order, every embedded migration that
// schema_migrations does not list, each in its own transaction together with
// its schema_migrations row. A second process opening the same file waits on
// BEGIN IMMEDIATE and then sees the row, so nothing is applied twice.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range ms {
		if err := applyMigration(ctx, db, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx,
		`SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}
