package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/streams"
)

// ErrNotFound is returned (wrapped) by Get when no dead letter has the
// sequence.
var ErrNotFound = errors.New("dlq: no such dead letter")

// Entry is one dead letter as stored in the DLQ stream.
type Entry struct {
	// Seq is the entry's sequence in the DLQ stream: its id for Get,
	// `nats stream get DLQ <seq>` and replay.
	Seq uint64 `json:"seq"`
	// StoredAt is when the stream stored it.
	StoredAt time.Time `json:"stored_at"`
	job.DeadLetter
}

// Filter selects dead letters. Zero fields match everything.
type Filter struct {
	Provider, Task, Batch, JobID string
	// Classes keeps entries whose reason is one of them.
	Classes []job.Class
	// Since and Until bound the time the entry was stored, both inclusive.
	Since, Until time.Time
	// Limit stops after this many matches; 0 means no limit.
	Limit int
}

// Subject returns the DLQ subject filter for f's provider and task.
func (f Filter) Subject() string {
	p, t := f.Provider, f.Task
	if p == "" {
		p = "*"
	}
	if t == "" {
		t = "*"
	}
	return "dlq." + p + "." + t
}

// Validate reports the first bad field.
func (f Filter) Validate() error {
	switch {
	case f.Provider != "" && !job.ValidToken(f.Provider):
		return fmt.Errorf("provider: %q is not a provider name ([a-z0-9_-]{1,64})", f.Provider)
	case f.Task != "" && !job.ValidToken(f.Task):
		return fmt.Errorf("task: %q is not a task name ([a-z0-9_-]{1,64})", f.Task)
	case f.Batch != "" && !job.ValidBatch(f.Batch):
		return fmt.Errorf("batch: %q is not a batch id ([A-Za-z0-9_-]{1,128})", f.Batch)
	case !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since):
		return fmt.Errorf("until: %s is before since %s", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	case f.Limit < 0:
		return fmt.Errorf("limit: %d must not be negative", f.Limit)
	}
	for _, c := range f.Classes {
		if !slices.Contains(Classes, c) {
			return fmt.Errorf("class: %q is not one of %v", c, Classes)
		}
	}
	return nil
}

// Classes are the reasons a dead letter can carry.
var Classes = []job.Class{job.ClassHTTP4xx, job.ClassHTTP5xx, job.ClassThrottled, job.ClassTimeout,
	job.ClassNetwork, job.ClassInvalid, job.ClassUnrouted, job.ClassExhausted, job.ClassExpired}

func (f Filter) match(e *Entry) bool {
	return (f.Batch == "" || e.Batch == f.Batch) &&
		(f.JobID == "" || e.JobID == f.JobID) &&
		(len(f.Classes) == 0 || slices.Contains(f.Classes, e.Reason)) &&
		(f.Since.IsZero() || !e.StoredAt.Before(f.Since)) &&
		(f.Until.IsZero() || !e.StoredAt.After(f.Until))
}

// DLQ reads and replays the dead letters of one DLQ stream.
type DLQ struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Open binds to the DLQ stream, which must exist.
func Open(ctx context.Context, js jetstream.JetStream) (*DLQ, error) {
	s, err := js.Stream(ctx, streams.DLQ)
	if err != nil {
		return nil, fmt.Errorf("dlq: stream %s: %w", streams.DLQ, err)
	}
	return &DLQ{js: js, stream: s}, nil
}

// Get returns the entry with stream sequence seq.
func (q *DLQ) Get(ctx context.Context, seq uint64) (*Entry, error) {
	m, err := q.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: sequence %d", ErrNotFound, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: get %d: %w", seq, err)
	}
	return decode(m.Sequence, m.Time, m.Data)
}

func decode(seq uint64, stored time.Time, data []byte) (*Entry, error) {
	e := &Entry{Seq: seq, StoredAt: stored.UTC()}
	if err := json.Unmarshal(data, &e.DeadLetter); err != nil {
		return nil, fmt.Errorf("dlq: entry %d is not a dead letter: %w", seq, err)
	}
	return e, nil
}

// scanWait bounds how long one fetch of a scan waits; the scan knows
// where the stream ends, so it waits only if the server is slow.
const scanWait = 5 * time.Second

// List calls fn with every entry matching f, oldest first, until fn
// returns an error (which List returns), f.Limit entries matched, or the
// scan reaches the entries stored after it started. Entries that are not
// dead letters are skipped.
func (q *DLQ) List(ctx context.Context, f Filter, fn func(Entry) error) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	// Where the scan ends: the last entry on the filter now. Later ones
	// are left for the next scan, so that a replay that dies again
	// cannot keep a scan going.
	last, err := q.stream.GetLastMsgForSubject(ctx, f.Subject())
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dlq: last entry on %s: %w", f.Subject(), err)
	}
	if !f.Since.IsZero() && last.Time.Before(f.Since) {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.Subject()}, InactiveThreshold: 5 * time.Second}
	if !f.Since.IsZero() {
		since := f.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	c, err := q.js.OrderedConsumer(ctx, streams.DLQ, cfg)
	if err != nil {
		return fmt.Errorf("dlq: scan %s: %w", f.Subject(), err)
	}
	matched := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := c.Fetch(256, jetstream.FetchMaxWait(scanWait))
		if err != nil {
			return fmt.Errorf("dlq: scan %s: %w", f.Subject(), err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("dlq: scan %s: %w", f.Subject(), err)
			}
			seq := meta.Sequence.Stream
			if seq > last.Sequence || (!f.Until.IsZero() && meta.Timestamp.After(f.Until)) {
				return nil
			}
			e, err := decode(seq, meta.Timestamp, m.Data())
			if err == nil && f.match(e) {
				if err := fn(*e); err != nil {
					return err
				}
				if matched++; f.Limit > 0 && matched >= f.Limit {
					return nil
				}
			}
			if seq == last.Sequence {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("dlq: scan %s: %w", f.Subject(), err)
		}
		if got == 0 {
			// The last entry was deleted meanwhile (replayed by someone
			// else): nothing more to read.
			return ctx.Err()
		}
	}
}
