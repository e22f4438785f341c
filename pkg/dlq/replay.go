package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// ErrNotReplayable is matched by the error of an entry that cannot be
// replayed: its original job was dropped (too large to store) or its
// subject is not a job subject.
var ErrNotReplayable = errors.New("dlq: entry cannot be replayed")

// ReplayOptions say how Replay goes.
type ReplayOptions struct {
	// Rate caps replays per second; 0 means as fast as JOBS acknowledges.
	Rate float64
	// DryRun lists what would be replayed and changes nothing.
	DryRun bool
	// Keep leaves each replayed entry in the DLQ instead of deleting it.
	Keep bool
}

// Replayed is what Replay did with one entry.
type Replayed struct {
	Entry Entry `json:"entry"`
	// MsgID is the Nats-Msg-Id the job was (or would be) published with.
	MsgID string `json:"msg_id"`
	// JobsSeq is the replay's sequence in JOBS; 0 on a dry run or an error.
	JobsSeq uint64 `json:"jobs_seq,omitempty"`
	// Duplicate is set when JOBS already held this replay (a replay run
	// again within the dedup window): nothing new was stored.
	Duplicate bool `json:"duplicate,omitempty"`
	// Deleted is set once the entry was removed from the DLQ.
	Deleted bool   `json:"deleted,omitempty"`
	Err     string `json:"error,omitempty"`
}

// ReplayMsgID is the Nats-Msg-Id of the replay of entry seq of job id.
func ReplayMsgID(jobID string, seq uint64) string {
	return jobID + ":replay:" + strconv.FormatUint(seq, 10)
}

// Message returns the JOBS message that replays e.
func (e *Entry) Message() (*nats.Msg, error) {
	data := []byte(e.Job)
	if len(data) == 0 {
		data = e.JobBase64
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: entry %d has no original job (it was too large to store)", ErrNotReplayable, e.Seq)
	}
	if _, err := job.ParseSubject(e.Subject); err != nil {
		return nil, fmt.Errorf("%w: entry %d: subject %q: %v", ErrNotReplayable, e.Seq, e.Subject, err)
	}
	h := nats.Header{}
	h.Set(jetstream.MsgIDHeader, ReplayMsgID(e.JobID, e.Seq))
	h.Set(job.HeaderPriorAttempts, strconv.Itoa(e.Attempts))
	h.Set(job.HeaderReplayOf, "DLQ:"+strconv.FormatUint(e.Seq, 10))
	return &nats.Msg{Subject: e.Subject, Data: data, Header: h}, nil
}

// Replay republishes the original job of every entry matching f to JOBS,
// at most o.Rate per second, and then deletes the entry (unless o.Keep):
// the entry goes only after JOBS has stored the replay. It calls report
// (if not nil) with each outcome as it happens, and returns the first
// error that stops it; an entry that cannot be replayed is reported and
// skipped.
func (q *DLQ) Replay(ctx context.Context, f Filter, o ReplayOptions, report func(Replayed)) error {
	if o.Rate < 0 {
		return fmt.Errorf("dlq: rate %v must not be negative", o.Rate)
	}
	var gap time.Duration
	if o.Rate > 0 {
		gap = time.Duration(float64(time.Second) / o.Rate)
	}
	next := time.Now()
	return q.List(ctx, f, func(e Entry) error {
		r := Replayed{Entry: e, MsgID: ReplayMsgID(e.JobID, e.Seq)}
		m, err := e.Message()
		if err != nil {
			r.Err = err.Error()
			if report != nil {
				report(r)
			}
			return nil
		}
		if o.DryRun {
			if report != nil {
				report(r)
			}
			return nil
		}
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		// Pace from the schedule, not from each publish's end, but never
		// owe more than a second's worth after a slow publish.
		next = next.Add(gap)
		if floor := time.Now().Add(-time.Second); next.Before(floor) {
			next = floor
		}
		ack, err := q.js.PublishMsg(ctx, m)
		if err != nil {
			return fmt.Errorf("dlq: replay entry %d (job %s) to %s: %w", e.Seq, e.JobID, e.Subject, err)
		}
		r.JobsSeq, r.Duplicate = ack.Sequence, ack.Duplicate
		if !o.Keep {
			if err := q.stream.DeleteMsg(ctx, e.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("dlq: delete replayed entry %d (job %s, now JOBS %d): %w", e.Seq, e.JobID, ack.Sequence, err)
			}
			r.Deleted = true
		}
		if report != nil {
			report(r)
		}
		return nil
	})
}
