package provider

import (
	"fmt"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Error is a call that did not succeed.
type Error struct {
	Class job.Class
	// Retryable says whether another attempt may succeed.
	Retryable bool
	// HTTPStatus is 0 when no response arrived.
	HTTPStatus int
	// RetryAfter is the wait the provider asked for, or 0.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("HTTP %d: %v", e.HTTPStatus, e.Err)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }
