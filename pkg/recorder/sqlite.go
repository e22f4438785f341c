package recorder

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"net/url"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	// Pure Go, so the recorder builds with CGO_ENABLED=0.
	"modernc.org/sqlite"

	"github.com/switchyard-io/switchyard/pkg/job"
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
	w *sql.DB // exactly one writerConn; every transaction is BEGIN IMMEDIATE
	r *sql.DB // query_only connections for Job, BatchCounts, Latencies

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

	connector, err := sqlite.NewConnector(sqliteDSN(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s.w = sql.OpenDB(writerConnector{connector})
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
		// Each of Record's multi-row statements keeps a statement journal,
		// to undo a statement that fails partway, and SQLite spills one
		// past 64 KiB to a temporary file: in memory it costs no syscalls,
		// which saved about 15% of Record's CPU in BenchmarkSQLiteRecord.
		q.Add("_pragma", "temp_store(MEMORY)")
		// 32 MiB of page cache instead of 2 MiB: with random job ids a
		// batch of 1,000 dirties a page of the jobs and of the attempts
		// keys per result, which a smaller cache writes to the WAL before
		// the commit and reads back. That saved about 15% with random ids
		// (nothing with ordered ones). Only the writer has it.
		q.Add("_pragma", "cache_size(-32768)")
		// Checkpoint every 8,000 pages (32 MiB) of WAL instead of 1,000, so
		// that a page several batches rewrite between checkpoints is copied
		// into the database once: again about 15% with random ids. The WAL
		// file stays that large (it is not truncated), and readers find
		// pages in it through its index, so they do not slow down.
		q.Add("_pragma", "wal_autocheckpoint(8000)")
	}
	u := url.URL{Path: abs}
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// Record implements Store.
//
// It writes a batch with multi-row statements of up to recordChunk results,
// run on the writer's driver connection (see writerConn) rather than
// through database/sql, which would copy their thousands of arguments into
// a fresh slice on every call. SQLite applies the rows in the batch's order,
// each seeing the ones before it, so a job that occurs twice in a batch
// ends where two batches would leave it.
func (s *SQLite) Record(ctx context.Context, results []job.Result) error {
	for i := range results {
		if err := checkResult(i, &results[i]); err != nil {
			return fmt.Errorf("record results: %w", err)
		}
	}
	now := time.Now().UnixNano()

	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("record results: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		return dc.(*writerConn).record(ctx, results, now)
	})
	if err != nil {
		return fmt.Errorf("record results: %w", err)
	}
	return nil
}

// recordChunk is the most results one statement writes. A batch goes in
// chunks of recordChunk and its remainder in the powers of two it adds up
// to, so a connection prepares at most recordChunkBits+1 shapes of each
// statement, whatever the batch sizes. 64 rows bind 1,280 parameters, far
// below SQLite's limit of 32,766; 32 to 512 measured the same per result.
const (
	recordChunkBits = 6
	recordChunk     = 1 << recordChunkBits
)

// jobParams and attemptParams are the parameters of one row of
// upsertJobsSQL and insertAttemptsSQL, bound by writerConn.writeChunk in
// the order of jobColumns and attemptColumns.
const (
	jobParams     = 20
	attemptParams = 10
)

const jobColumns = `job_id, provider, task, lane, batch, status, final, attempt, attempts,
	http_status, error, error_class, latency_ms, enqueued_at, started_at,
	finished_at, response, meta, worker_id, updated_at`

// jobRow is one row of jobColumns. A text column binds an empty string as
// NULL, which coalesce turns back into the empty string: a NULL binds
// without the driver copying a string into C memory, and most results have
// an empty error and error class. response and meta stay NULL when absent.
const jobRow = `(?, coalesce(?, ''), coalesce(?, ''), coalesce(?, ''), coalesce(?, ''), coalesce(?, ''), ?, ?, ?,
	?, coalesce(?, ''), coalesce(?, ''), ?, ?, ?,
	?, ?, ?, coalesce(?, ''), ?)`

// outranks holds when the incoming result (excluded) ranks at least as high
// as the one the job row holds: (final, attempt) compared in that order.
const outranks = `(excluded.final > jobs.final OR (excluded.final = jobs.final AND excluded.attempt >= jobs.attempt))`

// upsertJobsSQL inserts rows job rows, or updates an existing one: every
// outcome column takes the incoming value when it outranks the stored one,
// and attempts becomes the highest attempt seen either way, which spares a
// second statement for that. A row neither outranked nor raised is left
// alone. Each SET expression sees the row as it was before the update.
func upsertJobsSQL(rows int) string {
	var set strings.Builder
	for _, c := range []string{
		"provider", "task", "lane", "batch", "status", "final", "attempt",
		"http_status", "error", "error_class", "latency_ms", "enqueued_at", "started_at",
		"finished_at", "response", "meta", "worker_id", "updated_at",
	} {
		fmt.Fprintf(&set, "\t%s = iif(%s, excluded.%s, jobs.%s),\n", c, outranks, c, c)
	}
	return `INSERT INTO jobs (` + jobColumns + `)
VALUES ` + repeatRow(jobRow, rows) + `
ON CONFLICT (job_id) DO UPDATE SET
` + set.String() + `	attempts = max(jobs.attempts, excluded.attempts)
WHERE ` + outranks + ` OR excluded.attempts > jobs.attempts`
}

const attemptColumns = `job_id, attempt, status, http_status, error, error_class, latency_ms,
	started_at, finished_at, worker_id`

const attemptRow = `(?, ?, coalesce(?, ''), ?, coalesce(?, ''), coalesce(?, ''), ?,
	?, ?, coalesce(?, ''))`

// insertAttemptsSQL inserts rows attempt rows; the first one recorded for
// an attempt stays.
func insertAttemptsSQL(rows int) string {
	return `INSERT INTO attempts (` + attemptColumns + `)
VALUES ` + repeatRow(attemptRow, rows) + `
ON CONFLICT (job_id, attempt) DO NOTHING`
}

func repeatRow(row string, n int) string {
	return strings.Repeat(row+",\n", n-1) + row
}

// writerConn is the writer's driver connection together with the
// statements Record runs on it, which are prepared on first use and live
// and die with the connection: database/sql closes a connection it
// discards (after an interrupted statement, say) through Close, which
// finalizes them first.
//
// database/sql hands the connection to one caller at a time, so nothing
// here needs a lock.
type writerConn struct {
	driverConn

	// chunks holds the statements for 1<<k rows at index k.
	chunks [recordChunkBits + 1]struct{ jobs, attempts execStmt }
	// jobArgs and attemptArgs are reused from chunk to chunk, their
	// ordinals set once.
	jobArgs, attemptArgs []driver.NamedValue
}

// driverConn is what database/sql uses of a driver connection, all of
// which writerConn passes through.
type driverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type execStmt interface {
	driver.Stmt
	driver.StmtExecContext
}

// writerConnector makes the writer's connections writerConns.
type writerConnector struct{ driver.Connector }

func (c writerConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	dc, ok := conn.(driverConn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("sqlite driver connection %T lacks a method database/sql uses", conn)
	}
	return &writerConn{driverConn: dc}, nil
}

// Close finalizes the connection's statements and closes it.
func (c *writerConn) Close() error {
	var errs []error
	for k := range c.chunks {
		for _, st := range []execStmt{c.chunks[k].jobs, c.chunks[k].attempts} {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
		c.chunks[k].jobs, c.chunks[k].attempts = nil, nil
	}
	errs = append(errs, c.driverConn.Close())
	return errors.Join(errs...)
}

// record writes results in one transaction.
func (c *writerConn) record(ctx context.Context, results []job.Result, now int64) (err error) {
	tx, err := c.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that got us here says more
		}
	}()
	if c.jobArgs == nil {
		c.jobArgs = namedValues(recordChunk * jobParams)
		c.attemptArgs = namedValues(recordChunk * attemptParams)
	}
	defer func() {
		// Let go of the batch's strings.
		unset(c.jobArgs)
		unset(c.attemptArgs)
	}()

	var texts recordTexts
	for done := 0; done < len(results); {
		// The largest power of two that fits, up to recordChunk.
		n := 1 << (bits.Len(uint(min(len(results)-done, recordChunk))) - 1)
		if err := c.writeChunk(ctx, results[done:done+n], done, now, &texts); err != nil {
			return err
		}
		done += n
	}
	// As database/sql would: a transaction whose context ended is not
	// committed.
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %d results: %w", len(results), err)
	}
	return nil
}

// writeChunk upserts the job rows of chunk, a power of two of results that
// starts at results[offset] of the batch, then inserts their attempt rows.
func (c *writerConn) writeChunk(ctx context.Context, chunk []job.Result, offset int, now int64, t *recordTexts) error {
	st := &c.chunks[bits.TrailingZeros(uint(len(chunk)))]
	if st.jobs == nil {
		jobs, err := c.prepare(ctx, upsertJobsSQL(len(chunk)))
		if err != nil {
			return fmt.Errorf("prepare upsert of %d jobs: %w", len(chunk), err)
		}
		attempts, err := c.prepare(ctx, insertAttemptsSQL(len(chunk)))
		if err != nil {
			jobs.Close()
			return fmt.Errorf("prepare insert of %d attempts: %w", len(chunk), err)
		}
		st.jobs, st.attempts = jobs, attempts
	}

	jobArgs := c.jobArgs[:len(chunk)*jobParams]
	attemptArgs := c.attemptArgs[:len(chunk)*attemptParams]
	updatedAt := any(now)
	for i := range chunk {
		r := &chunk[i]
		var response any
		if r.Response != nil {
			b, err := gojson.Marshal(r.Response)
			if err != nil {
				return fmt.Errorf("job %s attempt %d: encode response: %w", r.JobID, r.Attempt, err)
			}
			response = string(b)
		}
		// What both rows bind, boxed once.
		id, attempt, httpStatus, latency := any(r.JobID), any(int64(r.Attempt)), any(int64(r.HTTPStatus)), any(r.LatencyMS)
		status, errText, class, workerID := t.status.of(string(r.Status)), t.err.of(r.Error), t.class.of(string(r.ErrorClass)), t.workerID.of(r.WorkerID)
		started, finished := nanos(r.StartedAt), nanos(r.FinishedAt)
		set(jobArgs[i*jobParams:(i+1)*jobParams],
			id, t.provider.of(r.Provider), t.task.of(r.Task), t.lane.of(string(r.Lane)), t.batch.of(r.Batch), status,
			boolInt(r.Status.Final()), attempt, attempt, httpStatus, errText, class,
			latency, nanos(r.EnqueuedAt), started, finished,
			response, jsonText(r.Meta), workerID, updatedAt)
		set(attemptArgs[i*attemptParams:(i+1)*attemptParams],
			id, attempt, status, httpStatus, errText, class, latency, started, finished, workerID)
	}
	if _, err := st.jobs.ExecContext(ctx, jobArgs); err != nil {
		return fmt.Errorf("upsert jobs of results %d-%d: %w", offset, offset+len(chunk)-1, err)
	}
	if _, err := st.attempts.ExecContext(ctx, attemptArgs); err != nil {
		return fmt.Errorf("insert attempts of results %d-%d: %w", offset, offset+len(chunk)-1, err)
	}
	return nil
}

func (c *writerConn) prepare(ctx context.Context, query string) (execStmt, error) {
	ds, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	st, ok := ds.(execStmt)
	if !ok {
		ds.Close()
		return nil, fmt.Errorf("sqlite driver statement %T cannot ExecContext", ds)
	}
	return st, nil
}

// namedValues returns n positional arguments, numbered from 1.
func namedValues(n int) []driver.NamedValue {
	args := make([]driver.NamedValue, n)
	for i := range args {
		args[i].Ordinal = i + 1
	}
	return args
}

// set assigns values to args in order.
func set(args []driver.NamedValue, values ...any) {
	for i, v := range values {
		args[i].Value = v
	}
}

// unset clears the values of args, keeping their ordinals.
func unset(args []driver.NamedValue) {
	for i := range args {
		args[i].Value = nil
	}
}

// recordTexts keeps the interface value of each text column's last string:
// provider, task, batch and the like repeat from one result to the next, and
// boxing a string allocates.
type recordTexts struct {
	provider, task, lane, batch, status, err, class, workerID text
}

type text struct {
	s string
	v any
}

// of returns s as the value to bind: nil for "" (see jobRow), else s,
// boxed again only when it differs from the last one.
func (t *text) of(s string) any {
	if s == "" {
		return nil
	}
	if t.v == nil || t.s != s {
		t.s, t.v = s, s
	}
	return t.v
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

func boolInt(b bool) int64 {
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
