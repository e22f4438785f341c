package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// ErrNotFound is returned (wrapped) by Store.Job when no result of the job
// has been recorded.
var ErrNotFound = errors.New("recorder: job not found")

// ErrInvalidResult is matched (with errors.Is) by the error Store.Record
// returns when a result could never be stored: no job id, an unknown status
// or a negative attempt. Nothing of the batch is written then, so a caller
// that consumes a stream should drop or dead-letter that result and record
// the rest again rather than retry the whole batch forever.
var ErrInvalidResult = errors.New("recorder: invalid result")

// Store keeps one row per job plus one row per attempt.
//
// Every implementation must pass the conformance suite in
// pkg/recorder/storetest. Times come back in UTC, exact to the nanosecond;
// a zero time is stored as "unknown" and comes back zero.
type Store interface {
	// Record writes a batch of results in one transaction: all of it is
	// stored or none of it is.
	//
	// It is idempotent and monotonic, so at-least-once delivery in any
	// order converges on the same rows. Each result adds its attempt row
	// unless that attempt is already stored. The job row takes the incoming
	// result only when it ranks at least as high as the one it holds, rank
	// being (status is final, attempt): a final status beats a non-final
	// one and, between equals, the higher or equal attempt wins. The job's
	// Attempts is the highest attempt seen either way.
	Record(ctx context.Context, results []job.Result) error
	// Job returns the row of one job with its attempts, or an error
	// matching ErrNotFound.
	Job(ctx context.Context, id string) (*JobRow, error)
	// BatchCounts returns the number of jobs per status for a batch id.
	// Only statuses that occur are present.
	BatchCounts(ctx context.Context, batch string) (map[job.Status]int, error)
	// Jobs returns one page of job rows matching f, ordered by (UpdatedAt,
	// JobID) ascending, and the cursor of the next page (nil after the
	// last). Rows come without Response, Meta and AttemptRows; Job has
	// them. The order makes the listing a change feed: a row updated while
	// a client pages moves behind the cursor and shows up again. UpdatedAt
	// is the writing recorder's clock when it wrote, though, so with
	// several recorder replicas (or a transaction that commits late) a row
	// can land just behind a cursor; a poller that must see every change
	// re-reads with Since a few seconds before its last cursor.
	Jobs(ctx context.Context, f JobFilter) (Page, error)
	// Stats returns, per provider, the number of stored jobs by current
	// status and the calls finished in each of the windows ending at
	// q.Now, with their latency percentiles (see Histogram). Providers come
	// sorted by name.
	Stats(ctx context.Context, q StatsQuery) ([]ProviderStats, error)
	// Prune applies retention: it deletes up to o.Limit jobs (with their
	// attempts) last updated before o.RowsBefore, clears the stored
	// response of up to o.Limit jobs last updated before o.BodiesBefore,
	// and drops latency rollups older than o.RowsBefore. A zero time
	// skips that part. Each call is one short transaction, so a pruner
	// that loops until it returns fewer than o.Limit never stalls Record
	// for long.
	Prune(ctx context.Context, o PruneOptions) (Pruned, error)
	// Latencies returns the end-to-end latencies (FinishedAt - EnqueuedAt)
	// of the jobs of a batch whose status is final, sorted ascending. Jobs
	// whose results lack either time are left out.
	Latencies(ctx context.Context, batch string) ([]time.Duration, error)
	// Ping checks that the store can be reached.
	Ping(ctx context.Context) error
	// Close releases the store. It is safe to call more than once; every
	// other method fails after it.
	Close() error
}

// JobRow is the stored state of one job: the fields of its highest-ranking
// result (see Store.Record) and the outcome of every attempt.
type JobRow struct {
	JobID    string
	Provider string
	Task     string
	Lane     job.Lane
	Batch    string
	Status   job.Status
	// Attempt is the attempt whose outcome this row shows.
	Attempt int
	// Attempts is the highest attempt number seen for the job. It can be
	// above Attempt when a non-final result arrived after a final one.
	Attempts   int
	HTTPStatus int
	Error      string
	ErrorClass job.Class
	LatencyMS  int64
	EnqueuedAt time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	// Response is the result's job.Response as JSON, or nil if it had none.
	Response json.RawMessage
	// Meta is the job's meta as published, or nil.
	Meta     json.RawMessage
	WorkerID string
	// UpdatedAt is when the store last replaced this row's outcome.
	UpdatedAt time.Time
	// AttemptRows holds one row per recorded attempt, by attempt number.
	AttemptRows []AttemptRow
}

// JobFilter selects the rows Store.Jobs returns. Zero fields match
// everything.
type JobFilter struct {
	Provider string
	Task     string
	Status   job.Status
	Batch    string
	// Since keeps rows whose UpdatedAt is at or after it.
	Since time.Time
	// After continues a listing after the row it names: the Next of the
	// previous page.
	After *Cursor
	// Limit is the page size, 1 to MaxPageSize; 0 means DefaultPageSize.
	Limit int
}

// Page sizes of Store.Jobs.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Cursor is the position of a row in the order of Store.Jobs.
type Cursor struct {
	UpdatedAt time.Time
	JobID     string
}

// Page is one page of Store.Jobs.
type Page struct {
	Jobs []JobRow
	// Next is where the next page starts, or nil when this one is the last.
	Next *Cursor
}

// StatsQuery asks Store.Stats for the windows ending at Now (the current
// time when zero). Windows are whole minutes: a store keeps call counts
// and latencies per minute of FinishedAt, so a window of 5m covers the
// five minutes up to and including the one holding Now.
type StatsQuery struct {
	Now     time.Time
	Windows []time.Duration
}

// ProviderStats is what Store.Stats reports of one provider.
type ProviderStats struct {
	Provider string
	// Jobs counts the stored jobs by their current status. Only statuses
	// that occur are present.
	Jobs    map[job.Status]int
	Windows []WindowStats
}

// WindowStats counts the calls (results of attempts that started a call,
// that is with a StartedAt) that finished within Window, and gives their
// latency percentiles, exact to Histogram's resolution.
type WindowStats struct {
	Window time.Duration
	Calls  int
	// Errors counts calls whose status was not succeeded.
	Errors        int
	P50, P95, P99 time.Duration
}

// PruneOptions says what Store.Prune removes; see there.
type PruneOptions struct {
	RowsBefore   time.Time
	BodiesBefore time.Time
	// Limit caps the rows each part touches; 0 means 1000.
	Limit int
}

// Pruned counts what one Store.Prune call removed.
type Pruned struct {
	// Jobs is the number of job rows deleted (attempts go with them).
	Jobs int
	// Bodies is the number of stored responses cleared.
	Bodies int
	// Rollups is the number of per-minute latency rows deleted.
	Rollups int
}

// AttemptRow is the outcome of one attempt of a job.
type AttemptRow struct {
	Attempt    int
	Status     job.Status
	HTTPStatus int
	Error      string
	ErrorClass job.Class
	LatencyMS  int64
	StartedAt  time.Time
	FinishedAt time.Time
	WorkerID   string
}

// checkResult rejects what no store could keep. It is deliberately lenient
// about everything else (unknown lanes, tokens, classes): the recorder stores
// what workers said, and workers validate what they say.
func checkResult(i int, r *job.Result) error {
	switch {
	case r.JobID == "":
		return fmt.Errorf("result %d: no job_id: %w", i, ErrInvalidResult)
	case !r.Status.Valid():
		return fmt.Errorf("result %d (job %s): unknown status %q: %w", i, r.JobID, r.Status, ErrInvalidResult)
	case r.Attempt < 0:
		return fmt.Errorf("result %d (job %s): negative attempt %d: %w", i, r.JobID, r.Attempt, ErrInvalidResult)
	case !storableTime(r.EnqueuedAt) || !storableTime(r.StartedAt) || !storableTime(r.FinishedAt):
		return fmt.Errorf("result %d (job %s): a time outside 1678–2261, which unix nanoseconds cannot hold: %w", i, r.JobID, ErrInvalidResult)
	}
	return nil
}

// storableTime reports whether t is zero ("unknown") or fits the unix
// nanoseconds both stores keep, rather than overflowing silently.
func storableTime(t time.Time) bool {
	return t.IsZero() || t.Year() >= 1678 && t.Year() <= 2261
}
