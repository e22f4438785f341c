package recorder

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Jobs implements Store.
//
// A page is one walk of an index that ends in (updated_at, job_id) (see the
// migration), from the cursor on, which stops after Limit+1 matches: the
// extra one only says whether there is a next page. Unlike SQLite's, the
// planner chooses the index from statistics; the query only states, when
// it filters on a status other than succeeded, the predicate of the index
// of those statuses, which the planner cannot infer from "status = $n".
func (p *Postgres) Jobs(ctx context.Context, f JobFilter) (Page, error) {
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return Page{}, fmt.Errorf("list jobs: %w", err)
	}
	if p.closed.Load() {
		return Page{}, fmt.Errorf("list jobs: %w", errPostgresClosed)
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, eq := range []struct{ column, value string }{
		{"provider", f.Provider}, {"task", f.Task}, {"status", string(f.Status)}, {"batch", f.Batch},
	} {
		if eq.value != "" {
			where = append(where, eq.column+" = "+arg(pgText(eq.value)))
		}
	}
	if f.Status != "" && f.Status != job.StatusSucceeded {
		where = append(where, "status <> 'succeeded'")
	}
	if !f.Since.IsZero() {
		where = append(where, "updated_at >= "+arg(unixNanos(f.Since)))
	}
	if f.After != nil {
		ts := arg(unixNanos(f.After.UpdatedAt))
		where = append(where, "(updated_at, job_id) > ("+ts+", "+arg(pgText(f.After.JobID))+")")
	}
	query := `SELECT job_id, provider, task, lane, batch, status, attempt, attempts,
		http_status, error, error_class, latency_ms, enqueued_at, started_at,
		finished_at, worker_id, updated_at
	FROM jobs`
	if len(where) > 0 {
		query += "\n\tWHERE " + strings.Join(where, " AND ")
	}
	query += "\n\tORDER BY updated_at, job_id LIMIT " + arg(int64(limit+1))

	rows, err := p.pool.Query(ctx, query, args...)
	if err != nil {
		return Page{}, fmt.Errorf("list jobs: %w", err)
	}
	page := Page{Jobs: make([]JobRow, 0, min(limit+1, 128))}
	var (
		row                           JobRow
		lane, status, class           string
		attempt, attempts, httpStatus int64
		enqueued, started, finished   pgtype.Int8
		updated                       int64
	)
	_, err = pgx.ForEachRow(rows, []any{&row.JobID, &row.Provider, &row.Task, &lane, &row.Batch, &status,
		&attempt, &attempts, &httpStatus, &row.Error, &class, &row.LatencyMS,
		&enqueued, &started, &finished, &row.WorkerID, &updated}, func() error {
		r := row
		r.Lane, r.Status, r.ErrorClass = job.Lane(lane), job.Status(status), job.Class(class)
		r.Attempt, r.Attempts, r.HTTPStatus = int(attempt), int(attempts), int(httpStatus)
		r.EnqueuedAt, r.StartedAt, r.FinishedAt = fromPGNanos(enqueued), fromPGNanos(started), fromPGNanos(finished)
		r.UpdatedAt = time.Unix(0, updated).UTC()
		page.Jobs = append(page.Jobs, r)
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("list jobs: %w", err)
	}
	if len(page.Jobs) > limit {
		page.Jobs = page.Jobs[:limit]
		last := page.Jobs[limit-1]
		page.Next = &Cursor{UpdatedAt: last.UpdatedAt, JobID: last.JobID}
	}
	return page, nil
}

// Stats implements Store.
//
// Job counts come from a GROUP BY over jobs, which reads the whole table:
// the cost grows with it, not with the windows. Calls and latencies come
// from latency_rollup, whose rows Record keeps per minute and latency
// bucket, so a window costs its minutes times the buckets in use, however
// many calls it holds. Both are read in one repeatable-read transaction,
// that is of one moment.
func (p *Postgres) Stats(ctx context.Context, q StatsQuery) ([]ProviderStats, error) {
	now := q.Now
	if now.IsZero() {
		now = time.Now()
	}
	nowMinute := unixMinute(now)
	// froms[i] is the last minute before window i: it covers the minutes
	// after froms[i] up to nowMinute. A window that is not whole minutes
	// is rounded up to them.
	froms := make([]int64, len(q.Windows))
	from := nowMinute
	for i, w := range q.Windows {
		if w <= 0 {
			return nil, fmt.Errorf("stats: window %s is not positive", w)
		}
		froms[i] = nowMinute - int64((w+time.Minute-1)/time.Minute)
		from = min(from, froms[i])
	}
	if p.closed.Load() {
		return nil, fmt.Errorf("stats: %w", errPostgresClosed)
	}

	byName := make(map[string]*ProviderStats)
	get := func(provider string) *ProviderStats {
		ps := byName[provider]
		if ps == nil {
			ps = &ProviderStats{Provider: provider, Jobs: make(map[job.Status]int)}
			byName[provider] = ps
		}
		return ps
	}
	hists := make(map[string][]Histogram)
	errs := make(map[string][]int)

	err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT provider, status, count(*) FROM jobs GROUP BY provider, status`)
		if err != nil {
			return fmt.Errorf("count jobs: %w", err)
		}
		var (
			provider, status string
			n                int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&provider, &status, &n}, func() error {
			get(provider).Jobs[job.Status(status)] += int(n)
			return nil
		}); err != nil {
			return fmt.Errorf("count jobs: %w", err)
		}
		if len(q.Windows) == 0 {
			return nil
		}

		// Histograms of each provider and window, summed per bucket over
		// the minutes of the longest window.
		var cols strings.Builder
		args := make([]any, 0, len(froms)+2)
		args = append(args, from, nowMinute)
		for i, f := range froms {
			args = append(args, f)
			fmt.Fprintf(&cols, ",\n\t\tsum(calls) FILTER (WHERE minute > $%d), sum(errors) FILTER (WHERE minute > $%d)", i+3, i+3)
		}
		rows, err = tx.Query(ctx, `SELECT provider, bucket`+cols.String()+`
			FROM latency_rollup
			WHERE minute > $1 AND minute <= $2
			GROUP BY provider, bucket`, args...)
		if err != nil {
			return fmt.Errorf("latencies: %w", err)
		}
		var bucket int32
		counts := make([]pgtype.Int8, 2*len(froms)) // NULL when no minute of a window has the bucket
		dest := make([]any, 2+len(counts))
		dest[0], dest[1] = &provider, &bucket
		for i := range counts {
			dest[2+i] = &counts[i]
		}
		if _, err := pgx.ForEachRow(rows, dest, func() error {
			hs, es := hists[provider], errs[provider]
			if hs == nil {
				hs, es = make([]Histogram, len(froms)), make([]int, len(froms))
				for i := range hs {
					hs[i] = Histogram{}
				}
				hists[provider], errs[provider] = hs, es
				get(provider)
			}
			for i := range froms {
				if calls := counts[2*i]; calls.Valid && calls.Int64 > 0 {
					hs[i].Add(int(bucket), int(calls.Int64))
					es[i] += int(counts[2*i+1].Int64)
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("latencies: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}

	out := make([]ProviderStats, 0, len(byName))
	for _, ps := range byName {
		ps.Windows = make([]WindowStats, len(q.Windows))
		for i, w := range q.Windows {
			ws := WindowStats{Window: w}
			if hs := hists[ps.Provider]; hs != nil {
				for _, n := range hs[i] {
					ws.Calls += n
				}
				ws.Errors = errs[ps.Provider][i]
				ws.P50, ws.P95, ws.P99 = hs[i].Percentile(0.50), hs[i].Percentile(0.95), hs[i].Percentile(0.99)
			}
			ps.Windows[i] = ws
		}
		out = append(out, *ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Provider < out[j].Provider })
	return out, nil
}

// Prune implements Store.
//
// It picks the oldest rows first, without locking them, and then locks
// them all in one statement in job id order, the order Record locks rows
// in, before it deletes or clears any: locked in the order they were
// found (by updated_at), a job that Record updates while Prune deletes it
// could deadlock the two. Once locked, the rows are deleted or cleared
// only if they are still due. The attempts of deleted jobs go in the same
// transaction, after their jobs (see the migration), and the latency
// rollups last, again in the order Record writes them.
func (p *Postgres) Prune(ctx context.Context, o PruneOptions) (Pruned, error) {
	limit := o.Limit
	switch {
	case limit == 0:
		limit = defaultPruneLimit
	case limit < 0:
		return Pruned{}, fmt.Errorf("prune: negative limit %d", limit)
	}
	var pruned Pruned
	if o.RowsBefore.IsZero() && o.BodiesBefore.IsZero() {
		return pruned, nil
	}
	if p.closed.Load() {
		return Pruned{}, fmt.Errorf("prune: %w", errPostgresClosed)
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		pruned = Pruned{}
		// Not nil: pgx sends a nil slice as NULL, and "<> ALL (NULL)" holds
		// for no row.
		rows, bodies := []string{}, []string{}
		if !o.RowsBefore.IsZero() {
			var err error
			rows, err = collectStrings(ctx, tx, `SELECT job_id FROM jobs
				WHERE updated_at < $1 ORDER BY updated_at LIMIT $2`,
				unixNanos(o.RowsBefore), limit)
			if err != nil {
				return fmt.Errorf("find jobs: %w", err)
			}
		}
		if !o.BodiesBefore.IsZero() {
			// Rows first, so that no body is cleared only to be deleted.
			var err error
			bodies, err = collectStrings(ctx, tx, `SELECT job_id FROM jobs
				WHERE response IS NOT NULL AND updated_at < $1 AND job_id <> ALL ($3::text[])
				ORDER BY updated_at LIMIT $2`,
				unixNanos(o.BodiesBefore), limit, rows)
			if err != nil {
				return fmt.Errorf("find bodies: %w", err)
			}
		}
		if len(rows)+len(bodies) > 0 {
			if _, err := tx.Exec(ctx, `SELECT FROM jobs WHERE job_id = ANY ($1::text[])
				ORDER BY job_id FOR UPDATE`, append(rows[:len(rows):len(rows)], bodies...)); err != nil {
				return fmt.Errorf("lock jobs: %w", err)
			}
		}
		if len(rows) > 0 {
			deleted, err := collectInts(ctx, tx, `DELETE FROM jobs
				WHERE job_id = ANY ($1::text[]) AND updated_at < $2
				RETURNING id`, rows, unixNanos(o.RowsBefore))
			if err != nil {
				return fmt.Errorf("delete jobs: %w", err)
			}
			pruned.Jobs = len(deleted)
			if _, err := tx.Exec(ctx, `DELETE FROM attempts WHERE job = ANY ($1::bigint[])`, deleted); err != nil {
				return fmt.Errorf("delete attempts: %w", err)
			}
		}
		if len(bodies) > 0 {
			tag, err := tx.Exec(ctx, `UPDATE jobs SET response = NULL
				WHERE job_id = ANY ($1::text[]) AND response IS NOT NULL AND updated_at < $2`,
				bodies, unixNanos(o.BodiesBefore))
			if err != nil {
				return fmt.Errorf("clear bodies: %w", err)
			}
			pruned.Bodies = int(tag.RowsAffected())
		}
		if !o.RowsBefore.IsZero() {
			// Whole minutes before RowsBefore.
			tag, err := tx.Exec(ctx, `DELETE FROM latency_rollup WHERE (minute, provider, bucket) IN (
				SELECT minute, provider, bucket FROM latency_rollup
				WHERE minute < $1 ORDER BY minute, provider, bucket LIMIT $2 FOR UPDATE)`,
				unixMinute(o.RowsBefore), limit)
			if err != nil {
				return fmt.Errorf("delete latency rollups: %w", err)
			}
			pruned.Rollups = int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return Pruned{}, fmt.Errorf("prune: %w", err)
	}
	return pruned, nil
}

// collectStrings runs a query of one text column and returns its values.
func collectStrings(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func collectInts(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]int64, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}
