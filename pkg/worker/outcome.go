package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/limit"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

type action int

const (
	actionAck   action = iota // final outcome stored: done
	actionRetry               // nak with delay: another attempt later
	actionTerm                // dead: stored in DLQ too, never redelivered
)

type outcome struct {
	result job.Result
	action action
	delay  time.Duration
	dead   *job.DeadLetter
	// unknown marks a dead letter for a job whose last attempt's outcome is
	// unknown: it is stored only if no final outcome was stored before.
	unknown bool
}

// decide is the one place that maps an attempt's answer to a status and to
// what happens to the message.
func decide(r job.Result, reply *provider.Reply, err error, attempt, maxAttempts int, retryDelay func(int, time.Duration) time.Duration) outcome {
	if reply != nil {
		r.HTTPStatus, r.Response = reply.HTTPStatus, reply.Response
	}
	if err == nil {
		r.Status = job.StatusSucceeded
		return outcome{result: r, action: actionAck}
	}
	r.Error = err.Error()
	var perr *provider.Error
	if !errors.As(err, &perr) {
		perr = &provider.Error{Class: job.ClassNetwork, Retryable: true, Err: err}
	}
	r.ErrorClass = perr.Class
	switch {
	case perr.Retryable && attempt < maxAttempts:
		delay := retryDelay(attempt, perr.RetryAfter)
		at := r.FinishedAt.Add(delay)
		r.Status, r.RetryAt = job.StatusRetrying, &at
		return outcome{result: r, action: actionRetry, delay: delay}
	case perr.Retryable:
		r.Status, r.Error = job.StatusDead, fmt.Sprintf("gave up after %d attempts: %s", attempt, r.Error)
		return outcome{result: r, action: actionTerm}
	case perr.Class == job.ClassInvalid:
		r.Status = job.StatusDead
		return outcome{result: r, action: actionTerm}
	default:
		r.Status = job.StatusFailed
		return outcome{result: r, action: actionAck}
	}
}

// retrying reports whether decide would schedule another attempt for err,
// attempts permitting.
func retrying(err error) bool {
	var perr *provider.Error
	return err != nil && (!errors.As(err, &perr) || perr.Retryable)
}

// health is what a call's answer says about its provider, for the circuit
// breaker and the retry budget: no answer, a timeout, a 408 or a 5xx is a
// failure; any other answer but a 429 (which the rate limit handles) shows
// the provider up.
func health(reply *provider.Reply, err error) limit.Outcome {
	var perr *provider.Error
	switch {
	case err == nil:
		return limit.Success
	case !errors.As(err, &perr) || perr.Class == job.ClassInvalid:
		return limit.Neutral // cancelled, or never sent
	case perr.HTTPStatus == 0, perr.HTTPStatus == 408, perr.HTTPStatus >= 500:
		return limit.Failure
	case perr.HTTPStatus == 429:
		return limit.Neutral
	default:
		return limit.Success
	}
}
