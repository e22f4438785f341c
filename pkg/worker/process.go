package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

// publishTimeout bounds one attempt to store an outcome.
const publishTimeout = 5 * time.Second

// process runs one delivery of a job to its end: an outcome stored, then the
// message settled. ctx is cancelled only when Stop's grace is over.
func (w *Worker) process(ctx context.Context, c *call, msg jetstream.Msg) {
	l := c.lane
	meta, err := msg.Metadata()
	if err != nil { // not a JetStream message; cannot happen on a pull consumer
		w.logger.Error("message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	d := delivery{msg: msg, attempt: int(meta.NumDelivered), seq: meta.Sequence.Stream, enqueuedAt: meta.Timestamp, lane: l.lane,
		prior: priorAttempts(msg)}

	j, _, err := job.Parse(msg.Subject(), msg.Data())
	if err != nil {
		w.deadLetter(ctx, d, j, job.ClassInvalid, err.Error(), 0)
		return
	}
	d.job = j
	now := time.Now()
	if j.ExpiresAt != nil && now.After(*j.ExpiresAt) {
		r := w.newResult(d, time.Time{}, now)
		r.Status, r.ErrorClass, r.Error = job.StatusExpired, job.ClassExpired, "expired at "+j.ExpiresAt.Format(time.RFC3339)
		w.settle(ctx, d, outcome{result: r, action: actionAck, dead: newDeadLetter(r, msg, w.cfg.ID)})
		return
	}
	if w.cancelled(ctx, d) {
		return
	}
	if j.NotBefore != nil && !due(msg.Headers(), j, now) {
		// Not due yet, published straight on its subject: the server holds
		// it as a schedule until then (delay.go).
		w.reschedule(ctx, d, j)
		return
	}
	if j.NotBefore != nil && d.enqueuedAt.Before(*j.NotBefore) && d.attempt > 1 {
		// Its first delivery was spent waiting for not_before, not calling
		// (a schedule could not be stored; see reschedule).
		d.attempt--
	}
	policy := l.provider.Policy(j.Task)
	maxAttempts := cmp.Or(j.MaxAttempts, policy.Attempts)
	if d.attempt > maxAttempts {
		// Delivered again after its last attempt, whose worker died before
		// settling it: the call may or may not have happened.
		w.deadLetter(ctx, d, j, job.ClassExhausted, fmt.Sprintf("delivery %d is past max_attempts %d and the last attempt's outcome is unknown", d.attempt, maxAttempts), 0)
		return
	}

	atMostOnce := l.provider.Config().DeliveryFor(j.Task) == provider.AtMostOnce
	if atMostOnce {
		maxAttempts = d.attempt // never retried
	} else {
		// Keep the message from being delivered again while the call
		// runs and its outcome is stored, however long that takes.
		defer w.beats.untrack(w.beats.track(msg, ackWaitOf(l.provider.Config())))
	}
	started, finished, reply, callErr, ok := w.attempt(ctx, c, &d, maxAttempts, policy, atMostOnce)
	if !ok {
		return // handed back without an outcome
	}
	// The provider is done with this call: free its slot for the next one
	// once storing the outcome has a place.
	w.settling <- struct{}{}
	defer func() { <-w.settling }()
	c.done()
	out := decide(w.newResult(d, started, finished), reply, callErr, d.attempt, maxAttempts, policy.Delay)
	if out.action == actionTerm || out.result.Status == job.StatusFailed {
		// Given up: dead, or refused by the provider. Both go to the DLQ,
		// from where an operator can replay them once the cause is fixed.
		out.dead = newDeadLetter(out.result, msg, w.cfg.ID)
		var complete bool
		out.dead.History, complete = w.history(ctx, d, out.result)
		out.dead.HistoryIncomplete = !complete
	}
	w.settle(ctx, d, out)
}

// delivery is one message as delivered to this worker.
type delivery struct {
	msg        jetstream.Msg
	job        *job.Job // nil when the envelope could not be read
	lane       job.Lane
	attempt    int
	seq        uint64
	enqueuedAt time.Time

	// prior is the attempts the job spent before this message (see
	// job.HeaderPriorAttempts): results number attempts on from it, while
	// attempt, this message's delivery, counts against max_attempts.
	prior int
	// acked is set once an at-most-once job was acked before its call.
	acked bool
}

// newResult starts the result of a delivery. A zero started means the
// provider was not called (expired, invalid, exhausted): the result then
// has no StartedAt and no latency, so the recorder's call statistics leave
// it out.
func (w *Worker) newResult(d delivery, started, finished time.Time) job.Result {
	r := job.Result{
		V: job.Version, Lane: d.lane, Attempt: d.prior + d.attempt,
		EnqueuedAt: d.enqueuedAt.UTC(), FinishedAt: finished.UTC(), WorkerID: w.cfg.ID,
	}
	if !started.IsZero() {
		r.StartedAt, r.LatencyMS = started.UTC(), finished.Sub(started).Milliseconds()
	}
	if j := d.job; j != nil {
		r.JobID, r.Provider, r.Task, r.Batch, r.Meta = j.ID, j.Provider, j.Task, j.Batch, j.Meta
	}
	return r
}

// deadLetter gives up a job without calling its provider.
func (w *Worker) deadLetter(ctx context.Context, d delivery, j *job.Job, class job.Class, reason string, httpStatus int) {
	now := time.Now()
	d.job = nil
	r := w.newResult(d, time.Time{}, now)
	r.JobID, r.Provider, r.Task = identify(d.msg, j, d.seq)
	if j != nil && job.ValidID(j.ID) {
		r.Batch, r.Meta = j.Batch, j.Meta
		if j.Validate() != nil { // never echo unvalidated meta
			r.Meta = nil
		}
	}
	r.Status, r.ErrorClass, r.Error, r.HTTPStatus = job.StatusDead, class, reason, httpStatus
	w.logger.Warn("job dead-lettered", "job_id", r.JobID, "subject", d.msg.Subject(), "reason", class, "err", reason)
	w.settle(ctx, d, outcome{result: r, action: actionTerm, dead: newDeadLetter(r, d.msg, w.cfg.ID), unknown: class == job.ClassExhausted})
}

// settle stores the outcome, then acks, naks or terminates the message. If
// the outcome cannot be stored the message is left for redelivery: never
// acked without its outcome.
func (w *Worker) settle(ctx context.Context, d delivery, out outcome) {
	// Publishing must not be cut short by Stop: the call already happened.
	pctx := context.WithoutCancel(ctx)
	r := out.result
	if out.dead != nil && !out.unknown {
		if !w.storeDeadLetter(pctx, d, out.dead) {
			return
		}
	}
	// Every final outcome of one job message shares a message id: after a
	// lost ack, the server then says an outcome is already stored.
	var id string
	if r.Status.Final() {
		id = msgID(r.JobID, d.seq, "final")
	} else {
		id = msgID(r.JobID, d.seq, strconv.Itoa(r.Attempt))
	}
	ack, err := w.publishResult(pctx, id, &r)
	if permanent(err) {
		r.Response, r.Meta = nil, nil
		r.Error = strings.TrimPrefix(r.Error+"; ", "; ") + "response and meta dropped: the result was too large to store"
		ack, err = w.publishResult(pctx, id, &r)
	}
	if err != nil {
		w.logger.Error("store result; the job will be redelivered", "job_id", r.JobID, "err", err)
		w.handBack(d, r.JobID)
		return
	}
	if out.unknown {
		if ack.Duplicate {
			// The earlier delivery stored its final outcome and only its ack
			// was lost: nothing is unknown after all.
			_ = d.msg.Ack()
			return
		}
		w.storeDeadLetter(pctx, d, out.dead)
	}
	switch {
	case d.acked: // at most once: acked before the call
	case out.action == actionAck:
		err = d.msg.Ack()
	case out.action == actionRetry:
		err = d.msg.NakWithDelay(out.delay)
	case out.action == actionTerm:
		err = d.msg.TermWithReason(string(r.ErrorClass))
	}
	if err != nil {
		w.logger.Warn("settle message", "job_id", r.JobID, "err", err)
	}
	if w.logger.Enabled(ctx, slog.LevelDebug) {
		w.logger.Debug("job attempt", "job_id", r.JobID, "provider", r.Provider, "attempt", r.Attempt, "status", r.Status, "http_status", r.HTTPStatus, "err", r.Error)
	}
}

// storeDeadLetter publishes a dead letter, without the original job if it
// is too large to store. On failure it naks the message and reports false.
func (w *Worker) storeDeadLetter(ctx context.Context, d delivery, dl *job.DeadLetter) bool {
	id := fmt.Sprintf("dlq:%s:%d", dl.JobID, d.seq)
	_, err := w.publishJSON(ctx, job.DLQSubject(dl.Provider, dl.Task), id, dl)
	if permanent(err) {
		stripped := *dl
		stripped.Job, stripped.JobBase64 = nil, nil
		stripped.Error += "; original job dropped: too large to store"
		_, err = w.publishJSON(ctx, job.DLQSubject(dl.Provider, dl.Task), id, &stripped)
	}
	if err != nil {
		w.logger.Error("store dead letter; the job will be redelivered", "job_id", dl.JobID, "err", err)
		w.handBack(d, dl.JobID)
		return false
	}
	w.metrics.deadLettered(dl)
	return true
}

// storePatience is how long publish keeps trying to store an outcome. A
// call's outcome that cannot be stored is handed back and the provider
// called again, so giving up must not be quick: a NATS server restarting
// or a cluster electing a stream leader answers "no responders" for a few
// seconds (the fault suite saw thousands of calls made twice when this was
// 0.6 s). Meanwhile the message's heartbeat keeps it from being delivered
// again.
const storePatience = 20 * time.Second

// publish stores one message, retrying with the same message id (so that a
// lost PubAck cannot store it twice) for up to storePatience, with a
// backoff from 200 ms to 2 s. Permanent errors (too large) are returned at
// once.
//
// Publishes are asynchronous, so the connection batches them with the rest
// of the worker's traffic instead of one round trip each; the caller still
// waits for its PubAck, because the job is acked only once its outcome is
// stored. The storer times each PubAck out; Worker.settling bounds how many
// are pending.
func (w *Worker) publish(ctx context.Context, subject, msgID string, data []byte) (*jetstream.PubAck, error) {
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}}}
	giveUp := time.Now().Add(storePatience)
	pause := 200 * time.Millisecond
	for {
		ack, err := w.pub.store(ctx, m)
		if err == nil || permanent(err) || ctx.Err() != nil || time.Now().Add(pause).After(giveUp) {
			return ack, err
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// publishResult stores a result on its subject. Every attempt publishes
// one, so it is encoded by hand (job.Result.AppendJSON), not by reflection.
func (w *Worker) publishResult(ctx context.Context, msgID string, r *job.Result) (*jetstream.PubAck, error) {
	data, err := r.AppendJSON(make([]byte, 0, r.SizeHint()))
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return w.publish(ctx, job.ResultSubject(r.Provider, r.Task), msgID, data)
}

// publishJSON stores v, encoded by encoding/json, on subject.
func (w *Worker) publishJSON(ctx context.Context, subject, msgID string, v any) (*jetstream.PubAck, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", subject, err)
	}
	return w.publish(ctx, subject, msgID, data)
}

// msgID is "<job id>:<seq>:<suffix>", a result's message id, built in one
// allocation: it is made for every result.
func msgID(jobID string, seq uint64, suffix string) string {
	var buf [job.MaxIDLen + 48]byte
	b := append(buf[:0], jobID...)
	b = append(b, ':')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ':')
	b = append(b, suffix...)
	return string(b)
}

// permanent reports whether a publish can never succeed as it is.
func permanent(err error) bool {
	if err == nil {
		return false // before apiErr, which escapes to the heap
	}
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum)
}

// identify finds the best id, provider and task for a message whose
// envelope may be unreadable: the envelope's, else the subject's, else a
// placeholder that is still a valid token.
func identify(msg jetstream.Msg, j *job.Job, seq uint64) (id, provider, task string) {
	id = fmt.Sprintf("seq-%d", seq)
	provider, task = "_invalid", "_invalid"
	if h := msg.Headers().Get(jetstream.MsgIDHeader); job.ValidID(h) {
		id = h
	}
	if j != nil && job.ValidID(j.ID) {
		id = j.ID
	}
	if a, err := job.ParseSubject(msg.Subject()); err == nil {
		return id, a.Provider, a.Task
	}
	if j != nil && job.ValidToken(j.Provider) && job.ValidToken(j.Task) {
		provider, task = j.Provider, j.Task
	}
	return id, provider, task
}

func newDeadLetter(r job.Result, msg jetstream.Msg, workerID string) *job.DeadLetter {
	dl := &job.DeadLetter{
		V: job.Version, JobID: r.JobID, Provider: r.Provider, Task: r.Task, Lane: r.Lane, Batch: r.Batch,
		Reason: r.ErrorClass, Error: r.Error, HTTPStatus: r.HTTPStatus, Attempts: r.Attempt,
		Subject: msg.Subject(), DeadAt: r.FinishedAt, WorkerID: workerID,
	}
	if json.Valid(msg.Data()) {
		dl.Job = msg.Data()
	} else {
		dl.JobBase64 = msg.Data()
	}
	return dl
}

// priorAttempts reads job.HeaderPriorAttempts; a missing or bad value is 0.
func priorAttempts(msg jetstream.Msg) int {
	h := msg.Headers().Get(job.HeaderPriorAttempts)
	if h == "" {
		return 0 // the usual case, where Atoi would allocate its error
	}
	n, err := strconv.Atoi(h)
	if err != nil || n < 0 || n > 1_000_000 {
		return 0
	}
	return n
}
