package main

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Percentiles of a set of durations, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 1) of
// sorted: the smallest value with at least p of the values at or below it.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// percentilesOf sorts ns (nanoseconds) in place and summarises it.
func percentilesOf(ns []int64) Percentiles {
	slices.Sort(ns)
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	return Percentiles{P50: ms(percentile(ns, 0.50)), P99: ms(percentile(ns, 0.99)), Max: ms(percentile(ns, 1))}
}

// LaneLatency is how long one lane's jobs took, over their final rows.
type LaneLatency struct {
	Lane string `json:"lane"`
	Jobs int    `json:"jobs"`
	// QueueWait is started_at - enqueued_at: from the stream storing the job
	// to the worker starting the call (for a retried job, the last call).
	QueueWait Percentiles `json:"queue_wait"`
	// EndToEnd is updated_at - enqueued_at: from the stream storing the job
	// to its final result committed in SQLite.
	EndToEnd Percentiles `json:"end_to_end"`
}

// batchSummary is what the results database says about a finished batch.
type batchSummary struct {
	Statuses map[string]int
	// Final counts final rows by lane; NotFinal counts the rest.
	Final    map[string]int
	NotFinal int
	// Retried counts jobs with more than one attempt; Attempts sums the
	// attempts of every job (each attempt publishes one result).
	Retried  int
	Attempts int64
	// LastRecorded is the latest updated_at by lane.
	LastRecorded map[string]time.Time
	Latency      []LaneLatency
}

// summarizeBatch reads every row of the batch once, after the measured
// window, and computes the latency percentiles by lane.
func summarizeBatch(ctx context.Context, db *sql.DB, batch string) (*batchSummary, error) {
	rows, err := db.QueryContext(ctx, `
		SELECT lane, status, final, attempts, enqueued_at, started_at, updated_at
		FROM jobs WHERE batch = ?`, batch)
	if err != nil {
		return nil, fmt.Errorf("summarize batch: %w", err)
	}
	defer rows.Close()
	s := &batchSummary{Statuses: map[string]int{}, Final: map[string]int{}, LastRecorded: map[string]time.Time{}}
	wait := map[string][]int64{}
	e2e := map[string][]int64{}
	for rows.Next() {
		var (
			lane, status      string
			final, attempts   int
			enqueued, started sql.NullInt64
			updated           int64
		)
		if err := rows.Scan(&lane, &status, &final, &attempts, &enqueued, &started, &updated); err != nil {
			return nil, fmt.Errorf("summarize batch: %w", err)
		}
		s.Statuses[status]++
		s.Attempts += int64(attempts)
		if attempts > 1 {
			s.Retried++
		}
		if final != 1 {
			s.NotFinal++
			continue
		}
		s.Final[lane]++
		if t := time.Unix(0, updated); t.After(s.LastRecorded[lane]) {
			s.LastRecorded[lane] = t
		}
		if enqueued.Valid {
			e2e[lane] = append(e2e[lane], updated-enqueued.Int64)
			if started.Valid {
				wait[lane] = append(wait[lane], started.Int64-enqueued.Int64)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summarize batch: %w", err)
	}
	for _, lane := range sortedLanes(s.Final) {
		s.Latency = append(s.Latency, LaneLatency{
			Lane: lane, Jobs: s.Final[lane],
			QueueWait: percentilesOf(wait[lane]), EndToEnd: percentilesOf(e2e[lane]),
		})
	}
	return s, nil
}

// sortedLanes orders lanes bulk first, then live, then anything else.
func sortedLanes(m map[string]int) []string {
	rank := func(l string) string {
		switch l {
		case "bulk":
			return "0"
		case "live":
			return "1"
		}
		return "2" + l
	}
	var lanes []string
	for l := range m {
		lanes = append(lanes, l)
	}
	slices.SortFunc(lanes, func(a, b string) int { return strings.Compare(rank(a), rank(b)) })
	return lanes
}

// missingJobs lists up to limit of the ids idPrefix0..idPrefix(n-1) that
// have no final row, for a report that must say what was lost.
func missingJobs(ctx context.Context, db *sql.DB, batch, idPrefix string, n, limit int) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT job_id FROM jobs WHERE batch = ? AND final = 1`, batch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	seen := make([]bool, n)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(id, idPrefix); ok {
			if i, err := strconv.Atoi(rest); err == nil && i >= 0 && i < n {
				seen[i] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []string
	for i, ok := range seen {
		if !ok {
			out = append(out, idPrefix+strconv.Itoa(i))
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}
