package job

import (
	"encoding/json"
	"time"
)

// Status is the outcome of one attempt.
type Status string

const (
	// StatusSucceeded: the provider answered 2xx. Final.
	StatusSucceeded Status = "succeeded"
	// StatusRetrying: the attempt failed in a way worth retrying; another
	// attempt is scheduled. Not final.
	StatusRetrying Status = "retrying"
	// StatusFailed: the provider refused the call (a 4xx other than 408 and
	// 429); retrying cannot help. Final.
	StatusFailed Status = "failed"
	// StatusDead: the job was given up — attempts ran out, or it could not be
	// run at all — and was copied to the DLQ. Final.
	StatusDead Status = "dead"
	// StatusExpired: the job was past its expires_at and was never called.
	// Final.
	StatusExpired Status = "expired"
	// StatusUnknown: an at-most-once job whose message was acked just
	// before its call, so it will never be delivered again; the call's
	// outcome is not known yet, and stays unknown if the worker died
	// during it. Not final: the call's outcome, when it comes, replaces
	// it, and it never replaces a final one.
	StatusUnknown Status = "unknown"
	// StatusCancelled: the job was cancelled (switchyard cancel) before its
	// call started, and was never called. Final.
	StatusCancelled Status = "cancelled"
)

// Final reports whether s is the job's outcome for good: no later attempt
// and no later outcome of this attempt can follow.
func (s Status) Final() bool { return s != StatusRetrying && s != StatusUnknown }

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusSucceeded, StatusRetrying, StatusFailed, StatusDead, StatusExpired, StatusUnknown, StatusCancelled:
		return true
	}
	return false
}

// Class says why an attempt did not succeed, coarsely enough to filter dead
// letters by it.
type Class string

const (
	ClassNone      Class = ""
	ClassHTTP4xx   Class = "http_4xx"
	ClassHTTP5xx   Class = "http_5xx"
	ClassThrottled Class = "throttled" // 429
	ClassTimeout   Class = "timeout"
	ClassNetwork   Class = "network"
	ClassInvalid   Class = "invalid"   // the envelope or its subject is malformed
	ClassUnrouted  Class = "unrouted"  // no worker serves the subject's provider or lane
	ClassExhausted Class = "exhausted" // redelivered past max_attempts with no outcome
	ClassExpired   Class = "expired"
	ClassCancelled Class = "cancelled"
)

// Result is published on results.<provider>.<task> once per attempt outcome.
type Result struct {
	V          int             `json:"v"`
	JobID      string          `json:"job_id"`
	Provider   string          `json:"provider"`
	Task       string          `json:"task"`
	Lane       Lane            `json:"lane,omitempty"`
	Batch      string          `json:"batch,omitempty"`
	Attempt    int             `json:"attempt"`
	Status     Status          `json:"status"`
	HTTPStatus int             `json:"http_status,omitempty"`
	Error      string          `json:"error,omitempty"`
	ErrorClass Class           `json:"error_class,omitempty"`
	LatencyMS  int64           `json:"latency_ms"`
	EnqueuedAt time.Time       `json:"enqueued_at"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at"`
	RetryAt    *time.Time      `json:"retry_at,omitempty"`
	Response   *Response       `json:"response,omitempty"`
	Meta       json.RawMessage `json:"meta,omitempty"`
	WorkerID   string          `json:"worker_id"`
}

// Response is what the provider answered, with the body capped by the
// provider's response_body_limit. Exactly one of Body (valid JSON),
// BodyText (other UTF-8) and BodyBase64 (anything else) is set when there
// was a body.
type Response struct {
	Headers    map[string][]string `json:"headers,omitempty"`
	Body       json.RawMessage     `json:"body,omitempty"`
	BodyText   string              `json:"body_text,omitempty"`
	BodyBase64 []byte              `json:"body_base64,omitempty"`
	Truncated  bool                `json:"truncated,omitempty"`
}

// DeadLetter is published on dlq.<provider>.<task> when a job is given up.
// It carries the original envelope so the job can be replayed.
type DeadLetter struct {
	V          int    `json:"v"`
	JobID      string `json:"job_id"`
	Provider   string `json:"provider"`
	Task       string `json:"task"`
	Lane       Lane   `json:"lane,omitempty"`
	Batch      string `json:"batch,omitempty"`
	Reason     Class  `json:"reason"`
	Error      string `json:"error"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Attempts   int    `json:"attempts"`
	// Subject is the subject the job was published on.
	Subject string `json:"subject"`
	// Job is the original envelope when it was valid JSON; JobBase64 holds
	// the original bytes otherwise.
	Job       json.RawMessage `json:"job,omitempty"`
	JobBase64 []byte          `json:"job_base64,omitempty"`
	DeadAt    time.Time       `json:"dead_at"`
	WorkerID  string          `json:"worker_id"`
	// History lists the outcomes of the attempts before the last one,
	// oldest first, as far as the worker found them in RESULTS (see
	// HistoryIncomplete). Error above is the last attempt's.
	History []AttemptError `json:"history,omitempty"`
	// HistoryIncomplete is set when the worker stopped looking for earlier
	// attempts before it found them all; the recorder keeps every attempt.
	HistoryIncomplete bool `json:"history_incomplete,omitempty"`
}

// AttemptError is the outcome of one earlier attempt of a dead job.
type AttemptError struct {
	Attempt    int       `json:"attempt"`
	Status     Status    `json:"status"`
	Class      Class     `json:"class,omitempty"`
	HTTPStatus int       `json:"http_status,omitempty"`
	Error      string    `json:"error,omitempty"`
	FinishedAt time.Time `json:"finished_at"`
}

// Headers on job messages that Switchyard reads besides Nats-Msg-Id.
const (
	// HeaderPriorAttempts on a job message counts the attempts the job
	// already spent before this message: a replay from the DLQ sets it to
	// the dead letter's attempts. Attempt numbers in results continue
	// from it, so that the recorder, which ranks outcomes by attempt,
	// lets the replay's outcome replace the dead one; max_attempts counts
	// this message's deliveries only, so a replay has fresh attempts.
	HeaderPriorAttempts = "Switchyard-Prior-Attempts"
	// HeaderReplayOf names the dead letter a replayed job came from, as
	// "DLQ:<stream sequence>"; informational.
	HeaderReplayOf = "Switchyard-Replay-Of"
)
