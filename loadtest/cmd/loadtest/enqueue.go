package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// jobTemplate makes job envelopes that differ only in their id: the
// envelope is marshalled once, and each job is the bytes before the id,
// the id, and the bytes after it. That keeps the runner's cost per job to
// one small allocation and a copy.
type jobTemplate struct {
	subject        string
	prefix, suffix []byte
	idPrefix       string
}

// idPlaceholder stands for the id while the template is marshalled; it
// cannot occur anywhere else in the envelope.
const idPlaceholder = "LOADTEST-ID-PLACEHOLDER"

// newJobTemplate prepares jobs for provider/lane/task in batch with a
// request body of payloadBytes. Job ids are idPrefix followed by a number.
func newJobTemplate(provider string, lane job.Lane, task, batch, idPrefix string, payloadBytes int) (*jobTemplate, error) {
	j := job.Job{
		V: job.Version, ID: idPlaceholder, Provider: provider, Task: task, Batch: batch,
		Request: job.Request{Method: "POST", Path: "/call", Body: payload(payloadBytes)},
	}
	data, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	before, after, ok := bytes.Cut(data, []byte(idPlaceholder))
	if !ok {
		return nil, errors.New("job template: id placeholder not found")
	}
	t := &jobTemplate{subject: job.Subject(provider, lane, task), prefix: before, suffix: after, idPrefix: idPrefix}
	// The worker will parse every job this way; check one now rather than
	// enqueue a run of dead letters.
	id := t.id(0)
	if _, _, err := job.Parse(t.subject, t.envelope(id)); err != nil {
		return nil, fmt.Errorf("job template: %w", err)
	}
	return t, nil
}

func (t *jobTemplate) id(n int) string { return t.idPrefix + strconv.Itoa(n) }

func (t *jobTemplate) envelope(id string) []byte {
	b := make([]byte, 0, len(t.prefix)+len(id)+len(t.suffix))
	b = append(b, t.prefix...)
	b = append(b, id...)
	return append(b, t.suffix...)
}

// msg is job n as a NATS message, with its id as Nats-Msg-Id so that a
// retried publish is deduplicated by the stream.
func (t *jobTemplate) msg(n int) *nats.Msg {
	id := t.id(n)
	return &nats.Msg{Subject: t.subject, Data: t.envelope(id), Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
}

// payload returns a JSON request body of exactly n bytes: an object with
// one padding string when there is room for it, else a bare string.
func payload(n int) json.RawMessage {
	const open, close = `{"pad":"`, `"}`
	switch {
	case n <= 0:
		return nil
	case n == 1:
		return json.RawMessage("0")
	case n < len(open)+len(close):
		return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`)
	}
	return json.RawMessage(open + strings.Repeat("x", n-len(open)-len(close)) + close)
}

// publisher enqueues jobs with asynchronous publishes, at most window
// awaiting their PubAck. Every PubAck is checked in the ack and error
// handlers (no goroutine or future per job): a failed publish is queued
// and published again, never dropped.
type publisher struct {
	js jetstream.JetStream

	acked      atomic.Int64
	duplicates atomic.Int64 // PubAcks saying the stream already had the id
	failures   atomic.Int64 // publishes that failed and were retried
	lastAck    atomic.Int64 // unix ns of the latest PubAck

	mu    sync.Mutex
	retry []*nats.Msg
}

func newPublisher(nc *nats.Conn, window int) (*publisher, error) {
	p := &publisher{}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, ack *jetstream.PubAck) {
			p.acked.Add(1)
			if ack.Duplicate {
				p.duplicates.Add(1)
			}
			p.lastAck.Store(time.Now().UnixNano())
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, _ error) {
			p.failures.Add(1)
			p.mu.Lock()
			p.retry = append(p.retry, m)
			p.mu.Unlock()
		}),
	)
	if err != nil {
		return nil, err
	}
	p.js = js
	return p, nil
}

// lastAckTime is when the latest PubAck arrived; zero before the first.
func (p *publisher) lastAckTime() time.Time {
	if ns := p.lastAck.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// stallWait is how long a publish may wait for room in the window before
// it is tried again; a full window is backpressure, not an error.
const stallWait = 5 * time.Second

// publish starts one asynchronous publish, retrying while the client
// refuses it (window still full after stallWait, or disconnected).
func (p *publisher) publish(ctx context.Context, m *nats.Msg) error {
	for {
		_, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(stallWait))
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			p.failures.Add(1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// enqueue publishes jobs 0..n-1 of t, at most rate per second when rate is
// positive, and returns once every one has a PubAck.
func (p *publisher) enqueue(ctx context.Context, t *jobTemplate, n int, rate float64) error {
	start := time.Now()
	for i := range n {
		// Pace in steps of 64 jobs, so that a rate costs no timer per job.
		if rate > 0 && i%64 == 0 {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
		if err := p.publish(ctx, t.msg(i)); err != nil {
			return err
		}
	}
	return p.settle(ctx)
}

// settle waits until no publish awaits its PubAck, publishing the failed
// ones again until none is left.
func (p *publisher) settle(ctx context.Context) error {
	for {
		select {
		case <-p.js.PublishAsyncComplete():
		case <-ctx.Done():
			return fmt.Errorf("enqueue: %d publishes unconfirmed: %w", p.js.PublishAsyncPending(), ctx.Err())
		}
		p.mu.Lock()
		again := p.retry
		p.retry = nil
		p.mu.Unlock()
		if len(again) == 0 && p.js.PublishAsyncPending() == 0 {
			return nil
		}
		for _, m := range again {
			if err := p.publish(ctx, m); err != nil {
				return err
			}
		}
	}
}

// trickle publishes live-lane jobs at rate per second until stop is closed
// or ctx ends, each one synchronously (a trickle needs no window), and
// returns how many it published and how many publishes failed and were
// retried. A job whose publish fails is published again, never skipped.
func trickle(ctx context.Context, stop <-chan struct{}, js jetstream.JetStream, t *jobTemplate, rate float64) (sent, failures int) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return sent, failures
		case <-ctx.Done():
			return sent, failures
		case <-tick.C:
		}
		m := t.msg(sent)
		for {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := js.PublishMsg(pctx, m)
			cancel()
			if err == nil {
				break
			}
			failures++
			if ctx.Err() != nil {
				return sent, failures
			}
		}
		sent++
	}
}
