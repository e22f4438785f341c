package api

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

// Job is a job as the API shows it: GET /v1/jobs/{id} fills every field,
// GET /v1/jobs leaves out Meta, Response and Attempts.
type Job struct {
	JobID    string     `json:"job_id"`
	Provider string     `json:"provider"`
	Task     string     `json:"task"`
	Lane     job.Lane   `json:"lane,omitempty"`
	Batch    string     `json:"batch,omitempty"`
	Status   job.Status `json:"status"`
	// Attempt is the attempt whose outcome the row shows.
	Attempt int `json:"attempt"`
	// LastAttempt is the highest attempt seen; see recorder.JobRow.Attempts.
	LastAttempt int       `json:"last_attempt"`
	HTTPStatus  int       `json:"http_status,omitempty"`
	Error       string    `json:"error,omitempty"`
	ErrorClass  job.Class `json:"error_class,omitempty"`
	LatencyMS   int64     `json:"latency_ms"`
	EnqueuedAt  time.Time `json:"enqueued_at,omitzero"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	// UpdatedAt is when the recorder last replaced the row's outcome.
	UpdatedAt time.Time       `json:"updated_at,omitzero"`
	WorkerID  string          `json:"worker_id,omitempty"`
	Meta      json.RawMessage `json:"meta,omitempty"`
	// Response is what the provider answered in the attempt shown, if the
	// result carried it and retention has not cleared it.
	Response *job.Response `json:"response,omitempty"`
	Attempts []Attempt     `json:"attempts,omitempty"`
}

// Attempt is the outcome of one attempt of a job.
type Attempt struct {
	Attempt    int        `json:"attempt"`
	Status     job.Status `json:"status"`
	HTTPStatus int        `json:"http_status,omitempty"`
	Error      string     `json:"error,omitempty"`
	ErrorClass job.Class  `json:"error_class,omitempty"`
	LatencyMS  int64      `json:"latency_ms"`
	StartedAt  time.Time  `json:"started_at,omitzero"`
	FinishedAt time.Time  `json:"finished_at,omitzero"`
	WorkerID   string     `json:"worker_id,omitempty"`
}

// JobList is one page of GET /v1/jobs.
type JobList struct {
	Jobs []Job `json:"jobs"`
	// NextCursor continues the listing; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// Batch is GET /v1/batches/{id}.
type Batch struct {
	Batch  string             `json:"batch"`
	Total  int                `json:"total"`
	Counts map[job.Status]int `json:"counts"`
	// Final is true when every job of the batch has a final status: every
	// declared job when the batch was declared, else every recorded one.
	Final bool `json:"final"`
	// Declared is set when a producer declared the batch (package batch):
	// Expected jobs, of which Pending have no final status yet.
	Declared    bool       `json:"declared"`
	Expected    int        `json:"expected,omitempty"`
	Pending     int        `json:"pending,omitempty"`
	DeclaredAt  *time.Time `json:"declared_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// Stats is GET /v1/stats.
type Stats struct {
	// Now is when the windows end.
	Now       time.Time       `json:"now"`
	Providers []ProviderStats `json:"providers"`
}

// ProviderStats is what Stats reports of one provider.
type ProviderStats struct {
	Provider string `json:"provider"`
	// Jobs counts the stored jobs by current status.
	Jobs    map[job.Status]int `json:"jobs"`
	Windows []WindowStats      `json:"windows"`
}

// WindowStats covers the calls that finished within one window.
type WindowStats struct {
	// Window is the window's length as asked for, such as "5m" or "1h".
	Window string `json:"window"`
	Calls  int    `json:"calls"`
	// Errors counts the calls whose status was not succeeded.
	Errors int `json:"errors"`
	// ErrorRate is Errors / Calls, 0 without calls.
	ErrorRate float64 `json:"error_rate"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
	P99MS     float64 `json:"p99_ms"`
}

// Problem is an RFC 9457 problem detail, the body of every error answer.
// The client returns it as the error of a call that was answered with one.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// InvalidParams names the query parameters that were wrong.
	InvalidParams []InvalidParam `json:"invalid_params,omitempty"`
}

// InvalidParam is a bad query parameter and what is wrong with it.
type InvalidParam struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Error reads like "400 Bad Request: limit: must be a whole number from 1
// to 1000".
func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	return b.String()
}

// jobFromRow converts a stored row. Rows from Store.Jobs have no response,
// meta or attempts, so those stay empty.
func jobFromRow(r *recorder.JobRow) (Job, error) {
	j := Job{
		JobID: r.JobID, Provider: r.Provider, Task: r.Task, Lane: r.Lane, Batch: r.Batch,
		Status: r.Status, Attempt: r.Attempt, LastAttempt: r.Attempts, HTTPStatus: r.HTTPStatus,
		Error: r.Error, ErrorClass: r.ErrorClass, LatencyMS: r.LatencyMS,
		EnqueuedAt: r.EnqueuedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, UpdatedAt: r.UpdatedAt,
		WorkerID: r.WorkerID, Meta: r.Meta,
	}
	if len(r.Response) > 0 && string(r.Response) != "null" {
		j.Response = new(job.Response)
		if err := json.Unmarshal(r.Response, j.Response); err != nil {
			return Job{}, fmt.Errorf("job %s: stored response: %w", r.JobID, err)
		}
	}
	if len(r.AttemptRows) > 0 {
		j.Attempts = make([]Attempt, len(r.AttemptRows))
		for i, a := range r.AttemptRows {
			j.Attempts[i] = Attempt{
				Attempt: a.Attempt, Status: a.Status, HTTPStatus: a.HTTPStatus, Error: a.Error,
				ErrorClass: a.ErrorClass, LatencyMS: a.LatencyMS, StartedAt: a.StartedAt,
				FinishedAt: a.FinishedAt, WorkerID: a.WorkerID,
			}
		}
	}
	return j, nil
}

func statsFromStore(now time.Time, ps []recorder.ProviderStats) Stats {
	s := Stats{Now: now, Providers: make([]ProviderStats, len(ps))}
	for i, p := range ps {
		jobs := p.Jobs
		if jobs == nil {
			jobs = map[job.Status]int{}
		}
		out := ProviderStats{Provider: p.Provider, Jobs: jobs, Windows: make([]WindowStats, len(p.Windows))}
		for k, w := range p.Windows {
			ws := WindowStats{
				Window: formatWindow(w.Window), Calls: w.Calls, Errors: w.Errors,
				P50MS: millis(w.P50), P95MS: millis(w.P95), P99MS: millis(w.P99),
			}
			if w.Calls > 0 {
				ws.ErrorRate = float64(w.Errors) / float64(w.Calls)
			}
			out.Windows[k] = ws
		}
		s.Providers[i] = out
	}
	return s
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// formatWindow writes whole-minute windows as people write them: "5m",
// "1h", "1h30m".
func formatWindow(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
