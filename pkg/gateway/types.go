package gateway

import (
	"fmt"
	"strings"
)

// Status is what became of one job.
type Status string

// Statuses of a job in an answer.
const (
	// StatusStored: the JOBS stream stored the job.
	StatusStored Status = "stored"
	// StatusDuplicate: the stream already had a job with this id within
	// its dedup window and dropped this one.
	StatusDuplicate Status = "duplicate"
	// StatusInvalid: the job was refused before publishing (NDJSON only:
	// an invalid job in an application/json request is a 400).
	StatusInvalid Status = "invalid"
	// StatusTooLarge: the job is bigger than a NATS message or the stream
	// allows. Sending it again will not help.
	StatusTooLarge Status = "too_large"
	// StatusRejected: JetStream refused the job for another reason it will
	// not change its mind about.
	StatusRejected Status = "rejected"
	// StatusUnavailable: JetStream was unavailable or the stream full, or
	// the job's fate is unknown. Send it again, with the same id, after
	// Retry-After.
	StatusUnavailable Status = "unavailable"
)

// Accepted is the 202 answer to an application/json request: every job's
// outcome, in the order of the request.
type Accepted struct {
	Jobs []JobResult `json:"jobs"`
}

// JobResult is the outcome of one job.
type JobResult struct {
	// ID is the job's id, given or generated.
	ID     string `json:"id"`
	Status Status `json:"status"`
	// StreamSeq is where the JOBS stream holds the job (for a duplicate,
	// the first copy).
	StreamSeq uint64 `json:"stream_seq,omitempty"`
	// Error says why the job was not stored.
	Error string `json:"error,omitempty"`
}

// StreamReport is the answer to an NDJSON request: counts over its lines,
// and the lines that failed. It is the whole 200 answer, and part of the
// problem that answers a stream cut short.
type StreamReport struct {
	// Lines counts the lines handled, blank ones included. Lines after it
	// were not read.
	Lines int `json:"lines"`
	// Stored, Duplicates and Failed count the jobs by outcome.
	Stored     int `json:"stored"`
	Duplicates int `json:"duplicates"`
	Failed     int `json:"failed"`
	// Errors lists the failed lines in the order their outcome was known,
	// at most MaxReportedErrors of them; ErrorsTruncated is true when
	// there were more.
	Errors          []LineError `json:"errors,omitempty"`
	ErrorsTruncated bool        `json:"errors_truncated,omitempty"`
	// ResumeLine, in a problem only, is the first line that may not be
	// stored: every line before it was stored, was a duplicate, or failed
	// for good (listed in Errors). Send the stream again from it, or send
	// it all again if its jobs have ids.
	ResumeLine int `json:"resume_line,omitempty"`
}

// MaxReportedErrors caps StreamReport.Errors, so that a stream of bad lines
// is not answered with a copy of itself.
const MaxReportedErrors = 1000

// LineError is one failed line of an NDJSON request.
type LineError struct {
	// Line numbers lines from 1.
	Line int `json:"line"`
	// ID is the job's id when it is known.
	ID     string `json:"id,omitempty"`
	Status Status `json:"status"`
	Error  string `json:"error"`
	// InvalidParams names the fields of an invalid job.
	InvalidParams []InvalidParam `json:"invalid_params,omitempty"`
}

// Problem is an RFC 9457 problem detail, the body of every error answer
// (Content-Type application/problem+json).
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// InvalidParams names each bad field (jobs[3].request.path) or query
	// parameter (lane) and what is wrong with it.
	InvalidParams []InvalidParam `json:"invalid_params,omitempty"`
	// Jobs, when an application/json request was published in part, is
	// every job's outcome in the order of the request.
	Jobs []JobResult `json:"jobs,omitempty"`
	// StreamReport, when an NDJSON request was cut short, says how far it
	// got; its fields are members of the problem.
	*StreamReport
}

// InvalidParam is a bad field or parameter and what is wrong with it.
type InvalidParam struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Error reads like "400 Bad Request: 1 of 3 jobs is invalid; nothing was
// enqueued".
func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	return b.String()
}
