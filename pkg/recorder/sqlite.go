package recorder

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"net/url"
	"path"
	"path/filepath"
	"runtime"
	"slices"
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
	w *sql.DB // exactly one writerConn, for Record and Prune; every transaction is BEGIN IMMEDIATE
	r *sql.DB // query_only connections for the other methods

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
		// batch of 1,000 dirties a page of the job_id index per result
		// (and, before migration 0003 keyed attempts by jobs.id, one of
		// the attempts key too), which a smaller cache writes to the WAL
		// before the commit and reads back. That saved about 15% with
		// random ids (nothing with ordered ones). Only the writer has it.
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
//
// In the same transaction it adds the batch's calls to latency_rollup, the
// per-minute histograms of Stats: one call (and one error unless the
// status is succeeded) per new attempt row whose result has a StartedAt,
// in the minute of its FinishedAt. Counting only attempt rows it inserted
// keeps the histograms exact when a batch is redelivered after a crash
// between commit and ack; a second, different result of an attempt
// already stored is not counted either, as its call was.
func (s *SQLite) Record(ctx context.Context, results []job.Result) error {
	for i := range results {
		if err := checkResult(i, &results[i]); err != nil {
			return fmt.Errorf("record results: %w", err)
		}
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("record results: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		return dc.(*writerConn).record(ctx, results)
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

const attemptColumns = `job, attempt, status, http_status, error, error_class, latency_ms,
	started_at, finished_at, worker_id`

// attemptRow binds the job's text id, and the row takes the job row's key,
// jobs.id: attempts are keyed by (job, attempt), so that the attempts of a
// new job, whose id is the highest yet, go at the end of the attempts
// B-tree however random job ids are (see migration 0003). The chunk's
// upsert of the job rows just walked the pages of the job_id index this
// looks up.
const attemptRow = `((SELECT id FROM jobs WHERE job_id = ?), ?, coalesce(?, ''), ?, coalesce(?, ''), coalesce(?, ''), ?,
	?, ?, coalesce(?, ''))`

// insertAttemptsSQL inserts rows attempt rows; the first one recorded for
// an attempt stays. With returning, it returns the job id and attempt of
// each row it inserted (see writerConn.insertAttempts).
func insertAttemptsSQL(rows int, returning bool) string {
	q := `INSERT INTO attempts (` + attemptColumns + `)
VALUES ` + repeatRow(attemptRow, rows) + `
ON CONFLICT (job, attempt) DO NOTHING`
	if returning {
		q += "\nRETURNING (SELECT job_id FROM jobs WHERE id = attempts.job), attempt"
	}
	return q
}

// rollupParams is the number of parameters of one row of upsertRollupSQL.
const rollupParams = 5

// upsertRollupSQL adds rows rows of (provider, minute, bucket, calls,
// errors) to the per-minute latency histograms.
func upsertRollupSQL(rows int) string {
	return `INSERT INTO latency_rollup (provider, minute, bucket, calls, errors)
VALUES ` + repeatRow("(?, ?, ?, ?, ?)", rows) + `
ON CONFLICT (provider, minute, bucket) DO UPDATE SET
	calls = calls + excluded.calls,
	errors = errors + excluded.errors`
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
	chunks [recordChunkBits + 1]struct {
		jobs, attempts, attemptsReturning, rollup driverStmt
	}
	// savepoint, release and rollbackTo mark the attempts insert of a
	// chunk, so that it can be undone (see insertAttempts).
	savepoint, release, rollbackTo driverStmt
	// jobArgs, attemptArgs and rollupArgs are reused from chunk to chunk,
	// their ordinals set once.
	jobArgs, attemptArgs, rollupArgs []driver.NamedValue

	// calls sums the batch's new calls per histogram cell, so that a batch
	// of 1,000 results, which usually falls into a handful of cells, adds
	// to latency_rollup with one short statement.
	calls map[rollupKey]rollupCount
	// inserted holds the attempt keys that a chunk's insert returned, and
	// dest the values of one returned row; both are reused.
	inserted []attemptKey
	dest     []driver.Value
}

// rollupKey is one cell of latency_rollup.
type rollupKey struct {
	provider string
	minute   int64
	bucket   int
}

type rollupCount struct{ calls, errors int64 }

type attemptKey struct {
	jobID   string
	attempt int64
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

type driverStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
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
	stmts := []*driverStmt{&c.savepoint, &c.release, &c.rollbackTo}
	for k := range c.chunks {
		ch := &c.chunks[k]
		stmts = append(stmts, &ch.jobs, &ch.attempts, &ch.attemptsReturning, &ch.rollup)
	}
	for _, st := range stmts {
		if *st != nil {
			errs = append(errs, (*st).Close())
			*st = nil
		}
	}
	errs = append(errs, c.driverConn.Close())
	return errors.Join(errs...)
}

// record writes results in one transaction.
func (c *writerConn) record(ctx context.Context, results []job.Result) (err error) {
	tx, err := c.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that got us here says more
		}
	}()
	now, err := c.stamp(ctx)
	if err != nil {
		return err
	}
	if c.jobArgs == nil {
		c.jobArgs = namedValues(recordChunk * jobParams)
		c.attemptArgs = namedValues(recordChunk * attemptParams)
		c.rollupArgs = namedValues(recordChunk * rollupParams)
		c.calls = make(map[rollupKey]rollupCount)
		c.dest = make([]driver.Value, 2)
	}
	defer func() {
		// Let go of the batch's strings.
		unset(c.jobArgs)
		unset(c.attemptArgs)
		unset(c.rollupArgs)
		clear(c.calls)
		clear(c.inserted)
		c.inserted = c.inserted[:0]
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
	if err := c.writeRollup(ctx); err != nil {
		return err
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

// stamp returns the updated_at of the batch's first result; the result at
// offset i of the batch gets stamp+i. It reads the clock after BEGIN
// IMMEDIATE took the write lock and never goes below the stamps already
// stored, so stamps rise in commit order, even across a restart with the
// clock set back. A reader that sees a row has then seen every row
// stamped before it, which is what makes Store.Jobs a change feed: with
// stamps taken before the lock, a client paging while two batches commit
// could pass the cursor over the one that commits second. One nanosecond
// apart, the rows of a batch never tie on updated_at either, so a page of
// Jobs never sorts a batch's rows by job_id.
func (c *writerConn) stamp(ctx context.Context) (int64, error) {
	rows, err := c.QueryContext(ctx, `SELECT max(updated_at) FROM jobs`, nil)
	if err != nil {
		return 0, fmt.Errorf("latest stamp: %w", err)
	}
	dest := []driver.Value{nil}
	err = rows.Next(dest)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("latest stamp: %w", err)
	}
	now := time.Now().UnixNano()
	if last, ok := dest[0].(int64); ok && now <= last {
		now = last + 1
	}
	return now, nil
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
		attempts, err := c.prepare(ctx, insertAttemptsSQL(len(chunk), false))
		if err != nil {
			jobs.Close()
			return fmt.Errorf("prepare insert of %d attempts: %w", len(chunk), err)
		}
		st.jobs, st.attempts = jobs, attempts
	}

	jobArgs := c.jobArgs[:len(chunk)*jobParams]
	attemptArgs := c.attemptArgs[:len(chunk)*attemptParams]
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
			response, jsonText(r.Meta), workerID, now+int64(offset+i))
		set(attemptArgs[i*attemptParams:(i+1)*attemptParams],
			id, attempt, status, httpStatus, errText, class, latency, started, finished, workerID)
	}
	if _, err := st.jobs.ExecContext(ctx, jobArgs); err != nil {
		return fmt.Errorf("upsert jobs of results %d-%d: %w", offset, offset+len(chunk)-1, err)
	}
	if err := c.insertAttempts(ctx, attemptArgs, chunk); err != nil {
		return fmt.Errorf("insert attempts of results %d-%d: %w", offset, offset+len(chunk)-1, err)
	}
	return nil
}

// insertAttempts runs the attempts insert of chunk and counts the calls
// of the attempt rows it inserted, so that a result redelivered after a
// crash between commit and ack is not counted twice in latency_rollup.
//
// The insert tells how many rows it added; when that is every result of
// the chunk, as it nearly always is, they all count. Otherwise some
// attempts were stored before (or occur twice in the chunk), and the
// insert is undone and run again returning the keys of the rows it adds.
// Returning them every time cost Record a tenth more CPU.
func (c *writerConn) insertAttempts(ctx context.Context, args []driver.NamedValue, chunk []job.Result) error {
	st := &c.chunks[bits.TrailingZeros(uint(len(chunk)))]
	if err := c.execOnce(ctx, &c.savepoint, "SAVEPOINT record_attempts"); err != nil {
		return err
	}
	res, err := st.attempts.ExecContext(ctx, args)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == int64(len(chunk)) {
		for i := range chunk {
			c.addCall(&chunk[i])
		}
		return c.execOnce(ctx, &c.release, "RELEASE record_attempts")
	}

	if err := c.execOnce(ctx, &c.rollbackTo, "ROLLBACK TO record_attempts"); err != nil {
		return err
	}
	if st.attemptsReturning == nil {
		if st.attemptsReturning, err = c.prepare(ctx, insertAttemptsSQL(len(chunk), true)); err != nil {
			return err
		}
	}
	if err := c.insertReturning(ctx, st.attemptsReturning, args); err != nil {
		return err
	}
	fresh := make(map[attemptKey]bool, len(c.inserted))
	for _, k := range c.inserted {
		fresh[k] = true
	}
	// Of an attempt twice in the chunk, the first was inserted.
	for i := range chunk {
		k := attemptKey{chunk[i].JobID, int64(chunk[i].Attempt)}
		if fresh[k] {
			delete(fresh, k)
			c.addCall(&chunk[i])
		}
	}
	return c.execOnce(ctx, &c.release, "RELEASE record_attempts")
}

// insertReturning runs an attempts insert that returns the keys of the
// rows it adds, and keeps them in c.inserted.
func (c *writerConn) insertReturning(ctx context.Context, st driverStmt, args []driver.NamedValue) (err error) {
	rows, err := st.QueryContext(ctx, args)
	if err != nil {
		return err
	}
	defer func() {
		// Close resets the statement for its next use.
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	c.inserted = c.inserted[:0]
	for {
		if err := rows.Next(c.dest); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		id, ok1 := c.dest[0].(string)
		attempt, ok2 := c.dest[1].(int64)
		if !ok1 || !ok2 {
			return fmt.Errorf("inserted attempt returned as %T, %T", c.dest[0], c.dest[1])
		}
		c.inserted = append(c.inserted, attemptKey{id, attempt})
	}
}

// execOnce runs query, preparing it into *st on first use.
func (c *writerConn) execOnce(ctx context.Context, st *driverStmt, query string) error {
	if *st == nil {
		var err error
		if *st, err = c.prepare(ctx, query); err != nil {
			return fmt.Errorf("prepare %s: %w", query, err)
		}
	}
	if _, err := (*st).ExecContext(ctx, nil); err != nil {
		return fmt.Errorf("%s: %w", query, err)
	}
	return nil
}

// addCall counts r in latency_rollup if it stands for a call: it has a
// StartedAt. It also needs a FinishedAt, which places it in a minute;
// workers always set both.
func (c *writerConn) addCall(r *job.Result) {
	if r.StartedAt.IsZero() || r.FinishedAt.IsZero() {
		return
	}
	k := rollupKey{provider: r.Provider, minute: unixMinute(r.FinishedAt), bucket: LatencyBucket(r.LatencyMS)}
	n := c.calls[k]
	n.calls++
	if r.Status != job.StatusSucceeded {
		n.errors++
	}
	c.calls[k] = n
}

// writeRollup adds the batch's calls to latency_rollup in statements
// shaped as Record's, one cell a row, in key order.
func (c *writerConn) writeRollup(ctx context.Context) error {
	if len(c.calls) == 0 {
		return nil
	}
	keys := make([]rollupKey, 0, len(c.calls))
	for k := range c.calls {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rollupKey) int {
		return cmp.Or(strings.Compare(a.provider, b.provider), cmp.Compare(a.minute, b.minute), cmp.Compare(a.bucket, b.bucket))
	})
	for done := 0; done < len(keys); {
		n := 1 << (bits.Len(uint(min(len(keys)-done, recordChunk))) - 1)
		st := &c.chunks[bits.TrailingZeros(uint(n))]
		if st.rollup == nil {
			var err error
			if st.rollup, err = c.prepare(ctx, upsertRollupSQL(n)); err != nil {
				return fmt.Errorf("prepare upsert of %d latency rollups: %w", n, err)
			}
		}
		args := c.rollupArgs[:n*rollupParams]
		for i, k := range keys[done : done+n] {
			cnt := c.calls[k]
			set(args[i*rollupParams:(i+1)*rollupParams], k.provider, k.minute, int64(k.bucket), cnt.calls, cnt.errors)
		}
		if _, err := st.rollup.ExecContext(ctx, args); err != nil {
			return fmt.Errorf("upsert %d latency rollups: %w", n, err)
		}
		done += n
	}
	return nil
}

// unixMinute is the number of whole minutes from the Unix epoch to t,
// rounded down.
func unixMinute(t time.Time) int64 {
	s := t.Unix()
	m := s / 60
	if s%60 < 0 {
		m--
	}
	return m
}

func (c *writerConn) prepare(ctx context.Context, query string) (driverStmt, error) {
	ds, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	st, ok := ds.(driverStmt)
	if !ok {
		ds.Close()
		return nil, fmt.Errorf("sqlite driver statement %T cannot ExecContext and QueryContext", ds)
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
		key                         int64
		lane, status, class         string
		enqueued, started, finished sql.NullInt64
		updated                     int64
		response, meta              []byte
	)
	err = tx.QueryRowContext(ctx, `
		SELECT id, job_id, provider, task, lane, batch, status, attempt, attempts,
			http_status, error, error_class, latency_ms, enqueued_at, started_at,
			finished_at, response, meta, worker_id, updated_at
		FROM jobs WHERE job_id = ?`, id).Scan(
		&key, &row.JobID, &row.Provider, &row.Task, &lane, &row.Batch, &status, &row.Attempt, &row.Attempts,
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
		FROM attempts WHERE job = ? ORDER BY attempt`, key)
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

// loadMigrations reads the migrations matching pattern in fsys, named
// NNNN_what.sql, in version order. Both stores embed theirs.
func loadMigrations(fsys fs.FS, pattern string) ([]migration, error) {
	files, err := fs.Glob(fsys, pattern)
	if err != nil {
		return nil, err
	}
	ms := make([]migration, 0, len(files))
	seen := make(map[int]string)
	for _, f := range files {
		name := path.Base(f)
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version number and _", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		body, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	return ms, nil
}

// migrate applies, in version order, every embedded migration that
// schema_migrations does not list, each in its own transaction together with
// its schema_migrations row. A second process opening the same file waits on
// BEGIN IMMEDIATE and then sees the row, so nothing is applied twice.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := loadMigrations(migrationFS, "migrations/*.sql")
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
