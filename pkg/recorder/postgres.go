package recorder

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-io/switchyard/pkg/job"
)

//go:embed migrations/postgres/*.sql
var postgresMigrationFS embed.FS

// migrateLockKey is the pg_advisory_xact_lock key that serialises schema
// migrations: replicas starting together take turns, and each finds what the
// one before it applied. Advisory locks are per database, so stores in other
// databases of the server do not wait for each other.
const migrateLockKey int64 = 0x5377_5944_4d49_4752 // "SwYDMIGR"

// errPostgresClosed is what every method returns after Close.
var errPostgresClosed = errors.New("postgres store is closed")

// Postgres is a Store in a PostgreSQL database, which any number of
// recorder replicas may share: Record keeps its row locks in one order
// across replicas (see Record), so that their transactions wait for each
// other instead of deadlocking.
type Postgres struct {
	pool *pgxpool.Pool

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ Store = (*Postgres)(nil)

// CommitConcurrency tells the Recorder to commit two batches at once: one
// PostgreSQL backend runs a transaction on one core, and with random job
// ids a second connection took a 500,000-result drain from 19.4k to 31.1k
// results/s on the 2-core machine.
func (p *Postgres) CommitConcurrency() int { return 2 }

// OpenPostgres connects to the database at dbURL (postgres://… or
// postgresql://…; pgxpool's pool_* parameters size the pool) and brings its
// schema up to date.
func OpenPostgres(ctx context.Context, dbURL string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", redactURL(dbURL), err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", redactURL(dbURL), err)
	}
	if err := migratePostgres(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w", redactURL(dbURL), err)
	}
	return &Postgres{pool: pool}, nil
}

// redactURL hides a password in dbURL, for errors and logs.
func redactURL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Record implements Store.
//
// A batch is merged in Go before it reaches the database (see
// mergePostgresBatch), so that each job and each attempt occurs once in it,
// and then written with two statements whatever its size: one that upserts
// the job rows from arrays (INSERT … SELECT FROM unnest … ON CONFLICT), and
// one that inserts the attempt rows and adds the calls among them that
// were not stored yet to the latency rollup. PostgreSQL cannot upsert one
// key twice in a statement ("ON CONFLICT DO UPDATE command cannot affect row
// a second time"), which is why the merge is needed, and it is also what
// makes the batch cheap: one array element per column and result, sent in
// PostgreSQL's binary format, and four round trips per batch (BEGIN, the
// two statements, COMMIT), whatever its size. (COPY into temporary tables
// and merging from there cost the server a third more per result in
// BenchmarkPostgresRecord, for the extra write and read of each row.)
//
// The rows go in order of job id (attempts by job id and attempt, rollups
// by key), so that every transaction takes its row locks in one global
// order: two replicas recording overlapping batches then wait for each
// other rather than deadlock.
//
// UpdatedAt is this process's clock, as with SQLite: the change feed of
// Jobs is only as ordered as the clocks of the replicas that write it.
func (p *Postgres) Record(ctx context.Context, results []job.Result) error {
	for i := range results {
		if err := checkResult(i, &results[i]); err != nil {
			return fmt.Errorf("record results: %w", err)
		}
	}
	if p.closed.Load() {
		return fmt.Errorf("record results: %w", errPostgresClosed)
	}
	if len(results) == 0 {
		return nil
	}
	b, err := mergePostgresBatch(results, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("record results: %w", err)
	}
	if err := p.record(ctx, b); err != nil {
		return fmt.Errorf("record %d results: %w", len(results), err)
	}
	return nil
}

func (p *Postgres) record(ctx context.Context, b *pgBatch) (err error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			// A rollback with a canceled context would close the
			// connection rather than roll back on it.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = tx.Rollback(rctx) // the error that got us here says more
			cancel()
		}
	}()
	if _, err := tx.Exec(ctx, upsertJobsPG,
		b.jobID, b.provider, b.task, b.lane, b.batch, b.status, b.final, b.attempt, b.attempts,
		b.httpStatus, b.errText, b.errClass, b.latency, b.enqueued, b.started, b.finished,
		b.response, b.meta, b.workerID, b.updatedAt); err != nil {
		return fmt.Errorf("upsert %d jobs: %w", len(b.jobID), err)
	}
	if _, err := tx.Exec(ctx, insertAttemptsPG,
		b.aJobID, b.aAttempt, b.aStatus, b.aHTTPStatus, b.aErrText, b.aErrClass, b.aLatency,
		b.aStarted, b.aFinished, b.aWorkerID, b.aProvider, b.aMinute, b.aBucket); err != nil {
		return fmt.Errorf("insert %d attempts: %w", len(b.aJobID), err)
	}
	// A transaction whose context ended is not committed, as with
	// database/sql. Past this point the context no longer counts: the
	// COMMIT, once sent, may well succeed, and a Record that failed must
	// have written nothing. commitTimeout still bounds a server that hangs.
	if err := ctx.Err(); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := tx.Commit(cctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// commitTimeout bounds Record's COMMIT, which its context does not (see
// Postgres.record).
const commitTimeout = 10 * time.Second

// pgOutranks holds when the incoming job row (excluded) ranks at least as
// high as the stored one (j): (final, attempt) compared in that order, false
// before true.
const pgOutranks = `(excluded.final > j.final OR (excluded.final = j.final AND excluded.attempt >= j.attempt))`

// upsertJobsPG inserts the merged job rows of a batch, or updates a stored
// one: every outcome column takes the incoming value when it outranks the
// stored one, and attempts becomes the highest attempt seen either way. A
// row neither outranked nor raised is left alone (though locked, like every
// row the statement meets, until the commit).
var upsertJobsPG = func() string {
	var set strings.Builder
	for _, c := range []string{
		"provider", "task", "lane", "batch", "status", "final", "attempt",
		"http_status", "error", "error_class", "latency_ms", "enqueued_at", "started_at",
		"finished_at", "response", "meta", "worker_id", "updated_at",
	} {
		fmt.Fprintf(&set, "\t%s = CASE WHEN %s THEN excluded.%s ELSE j.%s END,\n", c, pgOutranks, c, c)
	}
	return `INSERT INTO jobs AS j (job_id, provider, task, lane, batch, status, final, attempt, attempts,
	http_status, error, error_class, latency_ms, enqueued_at, started_at, finished_at,
	response, meta, worker_id, updated_at)
SELECT job_id, provider, task, lane, batch, status, final, attempt, attempts,
	http_status, error, error_class, latency_ms, ` + pgNullIf("enqueued_at") + `, ` + pgNullIf("started_at") + `, ` + pgNullIf("finished_at") + `,
	nullif(response, ''), nullif(meta, ''), worker_id, $20::bigint
FROM unnest(
	$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::bigint[], $9::bigint[],
	$10::bigint[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[],
	$17::text[], $18::text[], $19::text[])
	AS u (job_id, provider, task, lane, batch, status, final, attempt, attempts,
		http_status, error, error_class, latency_ms, enqueued_at, started_at, finished_at,
		response, meta, worker_id)
ON CONFLICT (job_id) DO UPDATE SET
` + set.String() + `	attempts = greatest(j.attempts, excluded.attempts)
WHERE ` + pgOutranks + ` OR excluded.attempts > j.attempts`
}()

// insertAttemptsPG inserts the merged attempt rows of a batch (the first
// one recorded for an attempt stays) and counts the calls among the ones it
// inserted into the latency rollup: a redelivered result is one call, not
// two. The rollup rows are written in key order, for the same reason as the
// job rows.
//
// Attempts are keyed by the job row's id, which it looks up by job_id in
// the index pages the job upsert just walked: new jobs have the highest
// ids, so their attempts go at the end of the attempts key however random
// job ids are (see migration 0002).
var insertAttemptsPG = `WITH input AS (
	SELECT job_id COLLATE "C" AS job_id, attempt, status, http_status, error, error_class,
		latency_ms, ` + pgNullIf("started_at") + `, ` + pgNullIf("finished_at") + `,
		worker_id, provider COLLATE "C" AS provider, ` + pgNullIf("minute") + `, bucket
	FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[],
		$7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::bigint[], $13::integer[])
		AS u (job_id, attempt, status, http_status, error, error_class,
			latency_ms, started_at, finished_at, worker_id, provider, minute, bucket)
), keyed AS (
	SELECT j.id AS job, i.*
	FROM input i JOIN jobs j ON j.job_id = i.job_id
), inserted AS (
	INSERT INTO attempts (job, attempt, status, http_status, error, error_class,
		latency_ms, started_at, finished_at, worker_id)
	SELECT job, attempt, status, http_status, error, error_class,
		latency_ms, started_at, finished_at, worker_id
	FROM keyed
	ON CONFLICT (job, attempt) DO NOTHING
	RETURNING job, attempt
)
INSERT INTO latency_rollup AS r (minute, provider, bucket, calls, errors)
SELECT i.minute, i.provider, i.bucket, count(*), count(*) FILTER (WHERE i.status <> 'succeeded')
FROM inserted JOIN keyed i USING (job, attempt)
WHERE i.minute IS NOT NULL
GROUP BY i.minute, i.provider, i.bucket
ORDER BY i.minute, i.provider, i.bucket
ON CONFLICT (minute, provider, bucket) DO UPDATE
SET calls = r.calls + excluded.calls, errors = r.errors + excluded.errors`

// pgNull stands for NULL in the bigint arrays Record sends, and the empty
// string in its response and meta arrays: arrays of plain int64 and string
// encode without reflection, several times faster than pgx's arrays of
// nullable values. math.MinInt64 is no time's UnixNano (that ends in 1678),
// and a stored response or meta is never empty.
const pgNull = math.MinInt64

// pgNullIf turns pgNull in a column of Record's arrays back into NULL.
func pgNullIf(column string) string {
	return fmt.Sprintf("nullif(%s, '%d'::bigint) AS %s", column, int64(pgNull), column)
}

// pgBatch is a merged batch as the columns of upsertJobsPG (one element per
// job) and of insertAttemptsPG (the a… fields, one per attempt).
type pgBatch struct {
	jobID, provider, task, lane, batch, status, errText, errClass, workerID []string
	final                                                                   []bool
	attempt, attempts, httpStatus, latency                                  []int64
	enqueued, started, finished                                             []int64
	response, meta                                                          []string
	updatedAt                                                               int64

	aJobID, aStatus, aErrText, aErrClass, aWorkerID, aProvider []string
	aAttempt, aHTTPStatus, aLatency                            []int64
	aStarted, aFinished, aMinute                               []int64
	aBucket                                                    []int32
}

// mergePostgresBatch merges results into the rows they leave, as if they
// had been applied one by one in order: per job, the highest-ranking result
// (see Store.Record), a later one winning a tie, with attempts the highest
// attempt seen; per (job, attempt), the first result. Jobs come sorted by
// id, attempts by job id and attempt.
//
// One stable sort by (job id, attempt) gives both: within a job, results
// of one attempt stay in batch order, so picking the last result that
// ranks at least as high as the best so far picks the same one as batch
// order would (a tie can only be between results of one attempt).
//
// Ids are compared as they will be stored (see pgText), so that two ids
// that PostgreSQL would store alike cannot meet in one statement.
func mergePostgresBatch(results []job.Result, updatedAt int64) (*pgBatch, error) {
	n := len(results)
	ids := make([]string, n)
	order := make([]int32, n)
	for i := range order {
		ids[i], order[i] = pgText(results[i].JobID), int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		return cmp.Or(strings.Compare(ids[a], ids[b]), cmp.Compare(results[a].Attempt, results[b].Attempt))
	})

	b := &pgBatch{updatedAt: updatedAt}
	b.grow(n)
	var resp pgResponseCache
	for start := 0; start < n; {
		end := start + 1
		for end < n && ids[order[end]] == ids[order[start]] {
			end++
		}
		best := &results[order[start]]
		for k := start; k < end; k++ {
			r := &results[order[k]]
			if pgRanksAtLeast(r, best) {
				best = r
			}
			if k == start || r.Attempt != results[order[k-1]].Attempt {
				b.addAttempt(ids[order[k]], r)
			}
		}
		// Sorted by attempt, the job's highest is its last.
		if err := b.addJob(ids[order[start]], best, results[order[end-1]].Attempt, &resp); err != nil {
			return nil, err
		}
		start = end
	}
	return b, nil
}

// pgRanksAtLeast reports whether r ranks at least as high as best: (final,
// attempt) compared in that order.
func pgRanksAtLeast(r, best *job.Result) bool {
	rf, bf := r.Status.Final(), best.Status.Final()
	if rf != bf {
		return rf
	}
	return r.Attempt >= best.Attempt
}

func (b *pgBatch) grow(n int) {
	b.jobID, b.provider, b.task = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	b.lane, b.batch, b.status = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	b.errText, b.errClass, b.workerID = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	b.final = make([]bool, 0, n)
	b.attempt, b.attempts = make([]int64, 0, n), make([]int64, 0, n)
	b.httpStatus, b.latency = make([]int64, 0, n), make([]int64, 0, n)
	b.enqueued, b.started, b.finished = make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
	b.response, b.meta = make([]string, 0, n), make([]string, 0, n)

	b.aJobID, b.aStatus, b.aErrText = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	b.aErrClass, b.aWorkerID, b.aProvider = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	b.aAttempt, b.aHTTPStatus, b.aLatency = make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
	b.aStarted, b.aFinished, b.aMinute = make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
	b.aBucket = make([]int32, 0, n)
}

func (b *pgBatch) addJob(id string, r *job.Result, attempts int, resp *pgResponseCache) error {
	response, err := resp.encode(r.Response)
	if err != nil {
		return fmt.Errorf("job %s attempt %d: encode response: %w", r.JobID, r.Attempt, err)
	}
	b.jobID = append(b.jobID, id)
	b.provider = append(b.provider, pgText(r.Provider))
	b.task = append(b.task, pgText(r.Task))
	b.lane = append(b.lane, pgText(string(r.Lane)))
	b.batch = append(b.batch, pgText(r.Batch))
	b.status = append(b.status, string(r.Status))
	b.final = append(b.final, r.Status.Final())
	b.attempt = append(b.attempt, int64(r.Attempt))
	b.attempts = append(b.attempts, int64(attempts))
	b.httpStatus = append(b.httpStatus, int64(r.HTTPStatus))
	b.errText = append(b.errText, pgText(r.Error))
	b.errClass = append(b.errClass, pgText(string(r.ErrorClass)))
	b.latency = append(b.latency, r.LatencyMS)
	b.enqueued = append(b.enqueued, pgNanos(r.EnqueuedAt))
	b.started = append(b.started, pgNanos(r.StartedAt))
	b.finished = append(b.finished, pgNanos(r.FinishedAt))
	b.response = append(b.response, response)
	b.meta = append(b.meta, pgText(string(r.Meta))) // "" for none
	b.workerID = append(b.workerID, pgText(r.WorkerID))
	return nil
}

// addAttempt adds r's attempt row, and where r is a call (it has a start
// and an end) the rollup key it counts under: the minute it finished and
// its latency bucket.
func (b *pgBatch) addAttempt(id string, r *job.Result) {
	b.aJobID = append(b.aJobID, id)
	b.aAttempt = append(b.aAttempt, int64(r.Attempt))
	b.aStatus = append(b.aStatus, string(r.Status))
	b.aHTTPStatus = append(b.aHTTPStatus, int64(r.HTTPStatus))
	b.aErrText = append(b.aErrText, pgText(r.Error))
	b.aErrClass = append(b.aErrClass, pgText(string(r.ErrorClass)))
	b.aLatency = append(b.aLatency, r.LatencyMS)
	b.aStarted = append(b.aStarted, pgNanos(r.StartedAt))
	b.aFinished = append(b.aFinished, pgNanos(r.FinishedAt))
	b.aWorkerID = append(b.aWorkerID, pgText(r.WorkerID))
	b.aProvider = append(b.aProvider, pgText(r.Provider))
	minute := int64(pgNull)
	if !r.StartedAt.IsZero() && !r.FinishedAt.IsZero() {
		minute = unixMinute(r.FinishedAt)
	}
	b.aMinute = append(b.aMinute, minute)
	b.aBucket = append(b.aBucket, int32(LatencyBucket(r.LatencyMS)))
}

// pgResponseCache encodes responses, once for a run of results that share
// one (as a test or a benchmark might send).
type pgResponseCache struct {
	last *job.Response
	text string
}

// encode returns r as JSON, or "" for none.
func (c *pgResponseCache) encode(r *job.Response) (string, error) {
	if r == nil {
		return "", nil
	}
	if r == c.last {
		return c.text, nil
	}
	js, err := gojson.Marshal(r)
	if err != nil {
		return "", err
	}
	c.last, c.text = r, pgText(string(js))
	return c.text, nil
}

// pgNanos stores a time as unix nanoseconds, exact where timestamptz would
// round to microseconds, and the zero time as NULL (pgNull).
func pgNanos(t time.Time) int64 {
	if t.IsZero() {
		return pgNull
	}
	return t.UnixNano()
}

func fromPGNanos(n pgtype.Int8) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// pgText makes s storable in a PostgreSQL text column, which takes neither
// NUL bytes nor invalid UTF-8 (SQLite takes both): each becomes U+FFFD. The
// alternative, failing the batch, would hold the recorder on one bad
// result forever, since the error would not be ErrInvalidResult.
func pgText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// Job implements Store. One statement reads the job and its attempts, so
// both come from one snapshot.
func (p *Postgres) Job(ctx context.Context, id string) (*JobRow, error) {
	if p.closed.Load() {
		return nil, fmt.Errorf("get job %s: %w", id, errPostgresClosed)
	}
	rows, err := p.pool.Query(ctx, `
		SELECT j.job_id, j.provider, j.task, j.lane, j.batch, j.status, j.attempt, j.attempts,
			j.http_status, j.error, j.error_class, j.latency_ms, j.enqueued_at, j.started_at,
			j.finished_at, j.response, j.meta, j.worker_id, j.updated_at,
			a.attempt, a.status, a.http_status, a.error, a.error_class, a.latency_ms,
			a.started_at, a.finished_at, a.worker_id
		FROM jobs j LEFT JOIN attempts a ON a.job = j.id
		WHERE j.job_id = $1
		ORDER BY a.attempt`, pgText(id))
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	defer rows.Close()
	var row *JobRow
	for rows.Next() {
		var (
			jr                          JobRow
			lane, status, class         string
			enqueued, started, finished pgtype.Int8
			updated                     int64
			response, meta              pgtype.Text
			a                           struct {
				attempt, httpStatus, latency pgtype.Int8
				status, err, class, worker   pgtype.Text
				started, finished            pgtype.Int8
			}
		)
		var attempt, attempts, httpStatus int64
		if err := rows.Scan(&jr.JobID, &jr.Provider, &jr.Task, &lane, &jr.Batch, &status, &attempt, &attempts,
			&httpStatus, &jr.Error, &class, &jr.LatencyMS, &enqueued, &started,
			&finished, &response, &meta, &jr.WorkerID, &updated,
			&a.attempt, &a.status, &a.httpStatus, &a.err, &a.class, &a.latency,
			&a.started, &a.finished, &a.worker); err != nil {
			return nil, fmt.Errorf("get job %s: %w", id, err)
		}
		if row == nil {
			jr.Lane, jr.Status, jr.ErrorClass = job.Lane(lane), job.Status(status), job.Class(class)
			jr.Attempt, jr.Attempts, jr.HTTPStatus = int(attempt), int(attempts), int(httpStatus)
			jr.EnqueuedAt, jr.StartedAt, jr.FinishedAt = fromPGNanos(enqueued), fromPGNanos(started), fromPGNanos(finished)
			jr.UpdatedAt = time.Unix(0, updated).UTC()
			if response.Valid {
				jr.Response = []byte(response.String)
			}
			if meta.Valid {
				jr.Meta = []byte(meta.String)
			}
			row = &jr
		}
		if a.attempt.Valid {
			row.AttemptRows = append(row.AttemptRows, AttemptRow{
				Attempt: int(a.attempt.Int64), Status: job.Status(a.status.String),
				HTTPStatus: int(a.httpStatus.Int64), Error: a.err.String,
				ErrorClass: job.Class(a.class.String), LatencyMS: a.latency.Int64,
				StartedAt: fromPGNanos(a.started), FinishedAt: fromPGNanos(a.finished),
				WorkerID: a.worker.String,
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	if row == nil {
		return nil, fmt.Errorf("get job %s: %w", id, ErrNotFound)
	}
	return row, nil
}

// BatchCounts implements Store.
func (p *Postgres) BatchCounts(ctx context.Context, batch string) (map[job.Status]int, error) {
	if p.closed.Load() {
		return nil, fmt.Errorf("count batch %s: %w", batch, errPostgresClosed)
	}
	rows, err := p.pool.Query(ctx,
		`SELECT status, count(*) FROM jobs WHERE batch = $1 GROUP BY status`, pgText(batch))
	if err != nil {
		return nil, fmt.Errorf("count batch %s: %w", batch, err)
	}
	counts := make(map[job.Status]int)
	var (
		status string
		n      int64
	)
	_, err = pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		counts[job.Status(status)] = int(n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count batch %s: %w", batch, err)
	}
	return counts, nil
}

// Latencies implements Store.
func (p *Postgres) Latencies(ctx context.Context, batch string) ([]time.Duration, error) {
	if p.closed.Load() {
		return nil, fmt.Errorf("latencies of batch %s: %w", batch, errPostgresClosed)
	}
	rows, err := p.pool.Query(ctx, `
		SELECT finished_at - enqueued_at FROM jobs
		WHERE batch = $1 AND final
			AND enqueued_at IS NOT NULL AND finished_at IS NOT NULL
		ORDER BY 1`, pgText(batch))
	if err != nil {
		return nil, fmt.Errorf("latencies of batch %s: %w", batch, err)
	}
	var (
		out []time.Duration
		ns  int64
	)
	_, err = pgx.ForEachRow(rows, []any{&ns}, func() error {
		out = append(out, time.Duration(ns))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("latencies of batch %s: %w", batch, err)
	}
	return out, nil
}

// Ping implements Store.
func (p *Postgres) Ping(ctx context.Context) error {
	if p.closed.Load() {
		return fmt.Errorf("ping postgres: %w", errPostgresClosed)
	}
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close implements Store. It waits for the calls in progress to return
// their connections.
func (p *Postgres) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.pool.Close()
	})
	return nil
}

// migratePostgres applies, in version order, every embedded migration that
// schema_migrations does not list, in one transaction that holds the
// migration lock: replicas starting together take turns, the first applies
// what is missing, and the others find it applied. A failed migration
// leaves the schema as it was.
func migratePostgres(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := loadMigrations(postgresMigrationFS, "migrations/postgres/*.sql")
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer NOT NULL PRIMARY KEY,
			name       text    NOT NULL,
			applied_at bigint  NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		for _, m := range ms {
			if slices.Contains(applied, int32(m.version)) {
				continue
			}
			// Without arguments, Exec uses the simple protocol, which
			// runs a file of several statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx,
				`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}
