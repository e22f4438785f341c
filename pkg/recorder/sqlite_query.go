package recorder

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Jobs implements Store.
//
// A page is read by walks of an index whose keys end in updated_at (see
// jobsWalk), each from the cursor on and stopping after Limit+1 matches,
// the extra one only telling whether there is a next page. SQLite then
// sorts by job_id only rows that tie on updated_at, which Record never
// stamps alike (see writerConn.stamp): it never sorts every match. The
// indexes are named rather than left to the planner, which without
// statistics takes "provider = ?" for a handful of rows and would happily
// sort them all.
func (s *SQLite) Jobs(ctx context.Context, f JobFilter) (Page, error) {
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return Page{}, fmt.Errorf("list jobs: %w", err)
	}
	// One snapshot for finding the walks and taking them.
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return Page{}, fmt.Errorf("list jobs: begin: %w", err)
	}
	defer tx.Rollback()
	walk, err := planJobs(ctx, tx, f)
	if err != nil {
		return Page{}, fmt.Errorf("list jobs: %w", err)
	}

	// The filters the walks' fixed columns do not already apply.
	var (
		where []string
		args  []any
	)
	for _, eq := range []struct{ column, value string }{
		{"provider", f.Provider}, {"task", f.Task}, {"status", string(f.Status)}, {"batch", f.Batch},
	} {
		if eq.value != "" && !slices.Contains(walk.fixed, eq.column) {
			where = append(where, eq.column+" = ?")
			args = append(args, eq.value)
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "updated_at >= ?")
		args = append(args, unixNanos(f.Since))
	}
	if f.After != nil {
		where = append(where, "(updated_at, job_id) > (?, ?)")
		args = append(args, unixNanos(f.After.UpdatedAt), f.After.JobID)
	}
	args = append(args, limit+1)
	for _, c := range slices.Backward(walk.fixed) {
		where = slices.Insert(where, 0, c+" = ?")
	}
	arm := `SELECT job_id, provider, task, lane, batch, status, attempt, attempts,
		http_status, error, error_class, latency_ms, enqueued_at, started_at,
		finished_at, worker_id, updated_at
	FROM jobs INDEXED BY ` + walk.index
	if len(where) > 0 {
		arm += "\n\tWHERE " + strings.Join(where, " AND ")
	}
	arm += "\n\tORDER BY updated_at, job_id LIMIT ?"

	// Several walks go in one statement, which SQLite merges in order, so
	// that only the page's rows come out: decoding them in Go costs more
	// than the walks.
	var (
		query     string
		queryArgs []any
	)
	switch len(walk.arms) {
	case 0:
		return Page{Jobs: []JobRow{}}, nil
	case 1:
		query, queryArgs = arm, slices.Concat(walk.arms[0], args)
	default:
		arms := make([]string, len(walk.arms))
		for i, values := range walk.arms {
			arms[i] = "SELECT * FROM (" + arm + ")"
			queryArgs = append(append(queryArgs, values...), args...)
		}
		query = strings.Join(arms, "\nUNION ALL\n") + "\nORDER BY updated_at, job_id LIMIT ?"
		queryArgs = append(queryArgs, limit+1)
	}
	rows, err := tx.QueryContext(ctx, query, queryArgs...)
	if err != nil {
		return Page{}, fmt.Errorf("list jobs: %w", err)
	}
	page := Page{Jobs: make([]JobRow, 0, min(limit+1, 128))}
	if page.Jobs, err = scanJobRows(rows, page.Jobs); err != nil {
		return Page{}, fmt.Errorf("list jobs: %w", err)
	}
	if len(page.Jobs) > limit {
		page.Jobs = page.Jobs[:limit:limit]
		last := page.Jobs[limit-1]
		page.Next = &Cursor{UpdatedAt: last.UpdatedAt, JobID: last.JobID}
	}
	return page, nil
}

// scanJobRows appends the listing rows of rows to out and closes rows.
func scanJobRows(rows *sql.Rows, out []JobRow) ([]JobRow, error) {
	defer rows.Close()
	for rows.Next() {
		var (
			row                         JobRow
			lane, status, class         string
			enqueued, started, finished sql.NullInt64
			updated                     int64
		)
		if err := rows.Scan(&row.JobID, &row.Provider, &row.Task, &lane, &row.Batch, &status,
			&row.Attempt, &row.Attempts, &row.HTTPStatus, &row.Error, &class, &row.LatencyMS,
			&enqueued, &started, &finished, &row.WorkerID, &updated); err != nil {
			return out, err
		}
		row.Lane, row.Status, row.ErrorClass = job.Lane(lane), job.Status(status), job.Class(class)
		row.EnqueuedAt, row.StartedAt, row.FinishedAt = fromNanos(enqueued), fromNanos(started), fromNanos(finished)
		row.UpdatedAt = time.Unix(0, updated).UTC()
		out = append(out, row)
	}
	return out, rows.Err()
}

// maxWalks caps the walks of one page, far below SQLite's limit of 500
// SELECTs in one compound statement. Beyond it, a status alone walks the
// whole feed.
const maxWalks = 100

// jobsWalk is how Jobs reads a page: one walk of index per arm, each with
// the columns fixed set to the arm's values, merged in feed order.
//
// The indexes of a provider and of a batch are (x, status, updated_at), so
// that Stats and BatchCounts count statuses from them without reading rows
// or sorting. Walking one in updated_at order needs the status fixed too;
// without a status filter Jobs takes one walk per status present, each of
// at most Limit+1 rows, rather than Record paying for a second index of
// (x, updated_at). A status alone likewise takes one walk per provider.
type jobsWalk struct {
	index string
	fixed []string
	arms  [][]any
}

// planJobs picks the walks of a listing: the index led by the filter
// likely to match the fewest rows, so that the walks read few rows that
// the other filters then reject. A batch is a bounded set; a provider is a
// share of the traffic; a status alone is mostly a rare one (failures),
// and all of a provider's are few. A task alone walks the whole feed:
// tasks belong to providers, so filter on both.
func planJobs(ctx context.Context, tx *sql.Tx, f JobFilter) (jobsWalk, error) {
	var x, value, index string
	switch {
	case f.Batch != "":
		x, value, index = "batch", f.Batch, "jobs_batch_status_updated"
	case f.Provider != "":
		x, value, index = "provider", f.Provider, "jobs_provider_status_updated"
	case f.Status != "":
		providers, err := distinct(ctx, tx, `SELECT min(provider) FROM jobs INDEXED BY jobs_provider_status_updated`,
			`SELECT min(provider) FROM jobs INDEXED BY jobs_provider_status_updated WHERE provider > v.value`)
		if err != nil {
			return jobsWalk{}, fmt.Errorf("find providers: %w", err)
		}
		if len(providers) > maxWalks {
			return jobsWalk{index: "jobs_updated", arms: [][]any{nil}}, nil
		}
		w := jobsWalk{index: "jobs_provider_status_updated", fixed: []string{"provider", "status"}}
		for _, p := range providers {
			w.arms = append(w.arms, []any{p, string(f.Status)})
		}
		return w, nil
	default:
		return jobsWalk{index: "jobs_updated", arms: [][]any{nil}}, nil
	}
	w := jobsWalk{index: index, fixed: []string{x, "status"}}
	if f.Status != "" {
		w.arms = [][]any{{value, string(f.Status)}}
		return w, nil
	}
	statuses, err := distinct(ctx, tx,
		`SELECT min(status) FROM jobs INDEXED BY `+index+` WHERE `+x+` = ?1`,
		`SELECT min(status) FROM jobs INDEXED BY `+index+` WHERE `+x+` = ?1 AND status > v.value`, value)
	if err != nil {
		return jobsWalk{}, fmt.Errorf("find statuses: %w", err)
	}
	for _, st := range statuses {
		w.arms = append(w.arms, []any{value, st})
	}
	return w, nil
}

// distinct returns the values of a column of an index in order, with one
// seek per value: first selects the smallest, next (over v.value) the
// one after v.value. SQLite would otherwise read every entry.
func distinct(ctx context.Context, tx *sql.Tx, first, next string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `WITH RECURSIVE v(value) AS (
		`+first+`
		UNION ALL
		SELECT (`+next+`) FROM v WHERE v.value IS NOT NULL
	)
	SELECT value FROM v WHERE value IS NOT NULL`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// pageLimit applies JobFilter.Limit's default and bounds.
func pageLimit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, fmt.Errorf("page size %d is not between 1 and %d", n, MaxPageSize)
	}
	return n, nil
}

// Stats implements Store.
//
// Job counts come from a GROUP BY over jobs, which reads a whole index:
// the cost grows with the table, not with the windows. Calls and latencies
// come from latency_rollup, whose rows Record keeps per minute and latency
// bucket, so a window costs its minutes times the buckets in use, however
// many calls it holds.
func (s *SQLite) Stats(ctx context.Context, q StatsQuery) ([]ProviderStats, error) {
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

	// One read transaction, so that counts and calls are of one moment.
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("stats: begin: %w", err)
	}
	defer tx.Rollback()

	byName := make(map[string]*ProviderStats)
	get := func(provider string) *ProviderStats {
		ps := byName[provider]
		if ps == nil {
			ps = &ProviderStats{Provider: provider, Jobs: make(map[job.Status]int)}
			byName[provider] = ps
		}
		return ps
	}

	// This reads jobs_provider_status_updated in order, without a sort.
	rows, err := tx.QueryContext(ctx, `SELECT provider, status, count(*) FROM jobs
		INDEXED BY jobs_provider_status_updated GROUP BY provider, status`)
	if err != nil {
		return nil, fmt.Errorf("stats: count jobs: %w", err)
	}
	for rows.Next() {
		var (
			provider, status string
			n                int
		)
		if err := rows.Scan(&provider, &status, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("stats: count jobs: %w", err)
		}
		get(provider).Jobs[job.Status(status)] += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stats: count jobs: %w", err)
	}

	// Histograms of each provider and window, summed per bucket in SQL
	// over the minutes of the longest window.
	hists := make(map[string][]Histogram)
	errs := make(map[string][]int)
	if len(q.Windows) > 0 {
		var cols strings.Builder
		args := make([]any, 0, 2*len(froms)+2)
		for i, f := range froms {
			fmt.Fprintf(&cols, ",\n\t\tsum(iif(minute > ?%d, calls, 0)), sum(iif(minute > ?%d, errors, 0))", i+1, i+1)
			args = append(args, f)
		}
		args = append(args, from, nowMinute)
		rows, err := tx.QueryContext(ctx, fmt.Sprintf(`SELECT provider, bucket%s
	FROM latency_rollup
	WHERE minute > ?%d AND minute <= ?%d
	GROUP BY provider, bucket`, cols.String(), len(froms)+1, len(froms)+2), args...)
		if err != nil {
			return nil, fmt.Errorf("stats: latencies: %w", err)
		}
		defer rows.Close()
		counts := make([]int64, 2*len(froms))
		dest := make([]any, 2+len(counts))
		var (
			provider string
			bucket   int
		)
		dest[0], dest[1] = &provider, &bucket
		for i := range counts {
			dest[2+i] = &counts[i]
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return nil, fmt.Errorf("stats: latencies: %w", err)
			}
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
				if calls := counts[2*i]; calls > 0 {
					hs[i].Add(bucket, int(calls))
					es[i] += int(counts[2*i+1])
				}
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("stats: latencies: %w", err)
		}
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

// defaultPruneLimit is PruneOptions.Limit's default.
const defaultPruneLimit = 1000

// Prune implements Store.
//
// It runs on the writer, the one connection that writes, in one BEGIN
// IMMEDIATE transaction, so a Record waits for at most one call's chunk.
// Each part walks an index in updated_at (or minute) order from the
// oldest row, and deletes or clears what the walk found by rowid. The
// attempts of a deleted job go with it through their foreign key to
// jobs.id, ON DELETE CASCADE: both connections enable foreign_keys. Rollup rows of
// old minutes go Limit at a time too.
func (s *SQLite) Prune(ctx context.Context, o PruneOptions) (Pruned, error) {
	limit := o.Limit
	switch {
	case limit == 0:
		limit = defaultPruneLimit
	case limit < 0:
		return Pruned{}, fmt.Errorf("prune: negative limit %d", limit)
	}
	var p Pruned
	if o.RowsBefore.IsZero() && o.BodiesBefore.IsZero() {
		return p, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return p, fmt.Errorf("prune: begin: %w", err)
	}
	defer tx.Rollback()

	if !o.RowsBefore.IsZero() {
		// Rows first, so that no body is cleared only to be deleted.
		res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE rowid IN (
			SELECT rowid FROM jobs INDEXED BY jobs_updated
			WHERE updated_at < ? ORDER BY updated_at LIMIT ?)`,
			unixNanos(o.RowsBefore), limit)
		if err != nil {
			return Pruned{}, fmt.Errorf("prune: delete jobs: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return Pruned{}, fmt.Errorf("prune: delete jobs: %w", err)
		}
		p.Jobs = int(n)
		// Whole minutes before RowsBefore.
		res, err = tx.ExecContext(ctx, `DELETE FROM latency_rollup WHERE (provider, minute, bucket) IN (
			SELECT provider, minute, bucket FROM latency_rollup INDEXED BY latency_rollup_minute
			WHERE minute < ? ORDER BY minute LIMIT ?)`,
			unixMinute(o.RowsBefore), limit)
		if err != nil {
			return Pruned{}, fmt.Errorf("prune: delete latency rollups: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return Pruned{}, fmt.Errorf("prune: delete latency rollups: %w", err)
		}
		p.Rollups = int(n)
	}
	if !o.BodiesBefore.IsZero() {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET response = NULL WHERE rowid IN (
			SELECT rowid FROM jobs INDEXED BY jobs_body_updated
			WHERE response IS NOT NULL AND updated_at < ? ORDER BY updated_at LIMIT ?)`,
			unixNanos(o.BodiesBefore), limit)
		if err != nil {
			return Pruned{}, fmt.Errorf("prune: clear bodies: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return Pruned{}, fmt.Errorf("prune: clear bodies: %w", err)
		}
		p.Bodies = int(n)
	}
	if err := tx.Commit(); err != nil {
		return Pruned{}, fmt.Errorf("prune: commit: %w", err)
	}
	return p, nil
}

// unixNanos is t in unix nanoseconds, clamped to what an int64 holds, so
// that a bound far in the past or future still compares as one.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanosTime):
		return math.MinInt64
	case t.After(maxNanosTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)
