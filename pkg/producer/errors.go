package producer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors a Result or Enqueue may match with errors.Is. An invalid job
// matches job.ErrInvalid instead, and is never sent.
var (
	// ErrTooLarge: the envelope is bigger than the server's max_payload or
	// the stream's max_msg_size. Permanent.
	ErrTooLarge = errors.New("job too large")
	// ErrStreamFull: the stream is at one of its limits and its discard
	// policy is new, or JetStream is out of storage. Permanent for this
	// attempt: let workers drain the stream or raise its limits, then
	// enqueue the job again.
	ErrStreamFull = errors.New("stream full")
	// ErrRejected: the stream refused the job for another reason it will
	// not change its mind about. Permanent.
	ErrRejected = errors.New("rejected by JetStream")
	// ErrClosed: the NATS connection is closed or draining.
	ErrClosed = errors.New("nats connection closed")
	// ErrUnavailable: transient failures went on for longer than the retry
	// limit (WithRetryFor). The job may or may not be stored.
	ErrUnavailable = errors.New("JetStream unavailable")
	// ErrUnconfirmed: the context ended before the stream acknowledged the
	// job. The job may or may not be stored.
	ErrUnconfirmed = errors.New("not confirmed")
	// ErrPipelineClosed: Add was called after Wait.
	ErrPipelineClosed = errors.New("pipeline closed")
)

// Server error codes the producer tells apart; see nats-server's
// errors.json.
const (
	codeInsufficientResources jetstream.ErrorCode = 10023
	codeStoreFailed           jetstream.ErrorCode = 10077
	// codeMsgIDInProcess: a publish with the same Nats-Msg-Id is still
	// being stored (a retry that overtook the first try, as around a
	// leader change). A retry then gets the stored message's ack or a
	// duplicate.
	codeMsgIDInProcess jetstream.ErrorCode = 10158
)

// classify decides whether a failed publish is worth trying again, and
// otherwise turns err into the error the job is reported with.
func classify(err error) (transient bool, final error) {
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		d := apiErr.Description
		switch {
		case apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum,
			apiErr.ErrorCode == codeStoreFailed && strings.Contains(d, "too large"):
			return false, fmt.Errorf("%w: the stream's max_msg_size is smaller (%s)", ErrTooLarge, d)
		case apiErr.ErrorCode == codeStoreFailed && strings.Contains(d, "maximum "):
			return false, fmt.Errorf("%w: %s, and the stream discards new messages", ErrStreamFull, d)
		case apiErr.ErrorCode == codeInsufficientResources:
			return false, fmt.Errorf("%w: %s", ErrStreamFull, d)
		case apiErr.Code >= 500 || apiErr.Code == 408, apiErr.ErrorCode == codeMsgIDInProcess:
			// JetStream temporarily unavailable, a store failure, a
			// leader election: the server says try again.
			return true, err
		}
		return false, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return false, fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
		return false, fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrBadHeaderMsg):
		return false, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	// No responders, ack timeouts, disconnects, a full reconnect buffer,
	// and anything unknown: a retry is safe thanks to Nats-Msg-Id, and it
	// is bounded by WithRetryFor and the context.
	return true, err
}
