package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/streams"
)

// Bounds of the search for a dead job's earlier attempts.
const (
	// historyScans is how many searches may run at once in a worker; a
	// dead letter that finds none free goes without its history, so a
	// wave of dead letters (an outage) cannot turn into a wave of scans.
	historyScans = 4
	// historyMaxMsgs and historyTimeout bound one search.
	historyMaxMsgs = 20000
	historyTimeout = 2 * time.Second
)

// history finds the outcomes of the earlier attempts of d's message in
// RESULTS, where the worker published them, and reports whether it found
// them all.
//
// A delivery knows only its own attempt, and a nak cannot add a header to
// carry the earlier ones forward. So the earlier outcomes are read back
// when, and only when, the job dies: an ordered consumer on the task's
// results subject from the time the job was enqueued, matching the
// results' message ids (<job>:<seq>:<attempt>). This costs nothing on the
// hot path; its cost at a dead letter grows with the results of the same
// task published meanwhile, hence the bounds. The recorder keeps every
// attempt in any case.
func (w *Worker) history(ctx context.Context, d delivery, r job.Result) ([]job.AttemptError, bool) {
	earlier := r.Attempt - d.prior - 1 // attempts of this message before r
	if earlier <= 0 {
		return nil, true
	}
	select {
	case w.historyScans <- struct{}{}:
		defer func() { <-w.historyScans }()
	default:
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, historyTimeout)
	defer cancel()
	start := d.enqueuedAt
	c, err := w.js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{job.ResultSubject(r.Provider, r.Task)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
		InactiveThreshold: time.Second, // the server drops it soon after
	})
	if err != nil {
		w.logger.Warn("dead letter: read earlier attempts", "job_id", r.JobID, "err", err)
		return nil, false
	}
	prefix := fmt.Sprintf("%s:%d:", r.JobID, d.seq)
	found := map[int]job.AttemptError{}
	for read := 0; read < historyMaxMsgs && len(found) < earlier && ctx.Err() == nil; {
		// The results looked for are stored already: take what is there
		// now rather than wait for a batch to fill.
		batch, err := c.FetchNoWait(min(500, historyMaxMsgs-read))
		if err != nil {
			break
		}
		got, last := 0, false
		for m := range batch.Messages() {
			got++
			if meta, err := m.Metadata(); err == nil && meta.NumPending == 0 {
				last = true
			}
			if !strings.HasPrefix(m.Headers().Get(jetstream.MsgIDHeader), prefix) {
				continue
			}
			var a job.Result
			if json.Unmarshal(m.Data(), &a) != nil || a.JobID != r.JobID || a.Attempt >= r.Attempt {
				continue
			}
			found[a.Attempt] = job.AttemptError{Attempt: a.Attempt, Status: a.Status, Class: a.ErrorClass,
				HTTPStatus: a.HTTPStatus, Error: a.Error, FinishedAt: a.FinishedAt}
		}
		read += got
		if last || got == 0 || batch.Error() != nil {
			break
		}
	}
	out := make([]job.AttemptError, 0, len(found))
	for a := d.prior + 1; a < r.Attempt; a++ {
		if e, ok := found[a]; ok {
			out = append(out, e)
		}
	}
	return out, len(out) == earlier
}
