package producer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
)

// Producer enqueues jobs on a NATS connection it does not own. It is safe
// for concurrent use; make one per connection and share it.
//
// Each publish carries a reply subject of the producer's own, unique to
// that attempt, on which the stream acknowledges it. A goroutine runs
// while publishes await their acknowledgements, to time them out and to
// retry them at once when the connection drops.
type Producer struct {
	nc     *nats.Conn
	cfg    config
	prefix string // of reply subjects: <inbox>.<token>
	sub    *nats.Subscription

	// mu guards everything below, and the state of every Pipeline and
	// entry. It is never held while publishing or calling back.
	mu       sync.Mutex
	closed   bool
	token    uint64
	inflight map[uint64]*entry // by the token of the attempt awaiting its ack
	sweeping bool
}

// New returns a Producer that publishes on nc, an open connection (with a
// jetstream.JetStream js, pass js.Conn()). Give the connection
// nats.MaxReconnects(-1), as natsx.Connect does, so that a server restart
// is retried rather than fatal. Close releases the producer's reply
// subscription; closing the connection does too.
func New(nc *nats.Conn, opts ...Option) (*Producer, error) {
	if nc == nil {
		return nil, errors.New("producer: nil connection")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.ackTimeout <= 0:
		return nil, fmt.Errorf("producer: ack timeout %s must be positive", cfg.ackTimeout)
	case cfg.backoffMin <= 0 || cfg.backoffMax < cfg.backoffMin:
		return nil, fmt.Errorf("producer: backoff %s..%s must be positive and in order", cfg.backoffMin, cfg.backoffMax)
	case cfg.retryFor < 0:
		return nil, fmt.Errorf("producer: retry limit %s must not be negative", cfg.retryFor)
	case cfg.logger == nil || cfg.now == nil:
		return nil, errors.New("producer: logger and clock must not be nil")
	}
	p := &Producer{nc: nc, cfg: cfg, prefix: nc.NewInbox() + ".", inflight: make(map[uint64]*entry)}
	sub, err := nc.Subscribe(p.prefix+"*", p.onReply)
	if err != nil {
		return nil, fmt.Errorf("producer: subscribe to acknowledgements: %w", err)
	}
	// Pipelines bound what is outstanding; the subscription must never
	// drop an acknowledgement.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("producer: %w", err)
	}
	p.sub = sub
	return p, nil
}

// Close releases the producer. Jobs awaiting an acknowledgement or a retry
// are reported with ErrClosed; later ones fail with it. It is safe to call
// more than once.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	done := p.failAllLocked(fmt.Errorf("%w: the producer was closed", ErrClosed))
	p.mu.Unlock()
	deliverAll(done)
	if err := p.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return err
	}
	return nil
}

// DeclareBatch declares that batch id holds expected jobs, so that the
// recorder publishes events.batch.<id>.completed once every one of them
// has a final outcome (see package batch). It may come before, during or
// after the jobs; declaring the same size again is a no-op, another size
// fails with batch.ErrConflict.
func (p *Producer) DeclareBatch(ctx context.Context, id string, expected int) error {
	js, err := jetstream.New(p.nc)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	reg, err := batch.Open(ctx, js)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	if err := reg.Declare(ctx, id, expected); err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	return nil
}

// Enqueue publishes one job and returns when the stream has stored it:
// Result.Duplicate is true when the stream already had a job with its id
// within the dedup window, and dropped this one. Transient failures are
// retried until ctx ends or the retry limit passes. An invalid job is
// never sent; its error matches job.ErrInvalid and names the field.
func (p *Producer) Enqueue(ctx context.Context, j *job.Job, opts ...JobOption) (Result, error) {
	pl := p.Pipeline(ctx, Window(1))
	id, err := pl.Add(j, opts...)
	if err != nil {
		pl.Wait()
		return Result{ID: id, Err: err}, err
	}
	r := pl.Wait().Results[0]
	return r, r.Err
}

// entry is one job of a Pipeline from Add to its outcome. All its fields
// after ref are guarded by Producer.mu.
type entry struct {
	pl    *Pipeline
	index int
	id    string
	msg   *nats.Msg
	ref   any

	attempts  int
	token     uint64 // of the attempt awaiting its ack; 0 if none
	sentAt    time.Time
	done      bool
	firstFail time.Time
	timer     *time.Timer
}

func (e *entry) result() Result {
	return Result{Index: e.index, ID: e.id, Subject: e.msg.Subject, Attempts: e.attempts, Ref: e.ref}
}

// delivery is a final Result for a pipeline, to deliver once Producer.mu
// is released.
type delivery struct {
	pl *Pipeline
	r  Result
}

func deliverAll(ds []delivery) {
	for _, d := range ds {
		d.pl.deliver(d.r)
	}
}

// send publishes the next attempt of e.
func (p *Producer) send(e *entry) {
	p.mu.Lock()
	if e.done {
		p.mu.Unlock()
		return
	}
	if p.closed {
		r := p.finalLocked(e, fmt.Errorf("%w: the producer was closed", ErrClosed))
		p.mu.Unlock()
		e.pl.deliver(r)
		return
	}
	p.token++
	tok := p.token
	e.attempts++
	e.token, e.sentAt = tok, time.Now()
	p.inflight[tok] = e
	startSweep := !p.sweeping
	p.sweeping = true
	// Only this goroutine uses Reply until the next attempt, which the
	// outcome of this one (under mu) has to come before.
	e.msg.Reply = p.prefix + strconv.FormatUint(tok, 36)
	p.mu.Unlock()
	if startSweep {
		go p.sweep()
	}
	if err := p.nc.PublishMsg(e.msg); err != nil {
		p.mu.Lock()
		if e.token != tok {
			// Already handled: a disconnect or Close raced with the send.
			p.mu.Unlock()
			return
		}
		delete(p.inflight, tok)
		e.token = 0
		r, final := p.failedLocked(e, err)
		p.mu.Unlock()
		p.after(e, r, final, err)
	}
}

// pubAck is what a stream answers to a publish.
type pubAck struct {
	Stream    string              `json:"stream"`
	Sequence  uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate"`
	Error     *jetstream.APIError `json:"error"`
}

// Errors of an attempt that lead to a retry.
var (
	errAckTimeout = fmt.Errorf("no acknowledgement in time: %w", nats.ErrTimeout)
	errBadAck     = errors.New("the stream's acknowledgement is not a PubAck")
)

// onReply handles the stream's answer to one attempt.
func (p *Producer) onReply(m *nats.Msg) {
	tok, err := strconv.ParseUint(m.Subject[len(p.prefix):], 36, 64)
	if err != nil {
		return
	}
	var ack pubAck
	var failure error
	noResponders := len(m.Data) == 0 && m.Header.Get("Status") == "503"
	switch {
	case noResponders:
		// Named below, once the entry (and with it the job's subject) is
		// known: m.Subject is only the reply inbox.
	case gojson.Unmarshal(m.Data, &ack) != nil:
		failure = fmt.Errorf("%w: %.100q", errBadAck, m.Data)
	case ack.Error != nil:
		failure = ack.Error
	case ack.Stream == "":
		failure = fmt.Errorf("%w: %.100q", errBadAck, m.Data)
	}
	p.mu.Lock()
	e := p.inflight[tok]
	if e == nil { // an attempt already given up on, or finished
		p.mu.Unlock()
		return
	}
	delete(p.inflight, tok)
	e.token = 0
	if noResponders {
		failure = fmt.Errorf("no stream takes %s: %w", e.msg.Subject, nats.ErrNoResponders)
	}
	if failure != nil {
		r, final := p.failedLocked(e, failure)
		p.mu.Unlock()
		p.after(e, r, final, failure)
		return
	}
	r := e.result()
	r.Stream, r.Sequence, r.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
	p.finishLocked(e, r)
	p.mu.Unlock()
	e.pl.deliver(r)
}

// sweep runs while attempts await their acks: it times them out, and
// fails them all at once when the connection drops, so that they are
// retried as soon as it is back instead of after the ack timeout.
func (p *Producer) sweep() {
	status := p.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	defer p.nc.RemoveStatusListener(status)
	tick := time.NewTicker(min(max(p.cfg.ackTimeout/4, 5*time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		var cause error
		select {
		case <-tick.C:
		case s := <-status:
			cause = nats.ErrDisconnected
			if s == nats.CLOSED {
				cause = nats.ErrConnectionClosed
			}
		}
		now := time.Now()
		p.mu.Lock()
		var done []entryOutcome
		for tok, e := range p.inflight {
			err := cause
			if err == nil && now.Sub(e.sentAt) >= p.cfg.ackTimeout {
				err = fmt.Errorf("%w (%s)", errAckTimeout, p.cfg.ackTimeout)
			}
			if err == nil {
				continue
			}
			delete(p.inflight, tok)
			e.token = 0
			r, final := p.failedLocked(e, err)
			done = append(done, entryOutcome{e: e, r: r, final: final, err: err})
		}
		stop := len(p.inflight) == 0
		if stop {
			p.sweeping = false
		}
		p.mu.Unlock()
		for _, o := range done {
			p.after(o.e, o.r, o.final, o.err)
		}
		if stop {
			return
		}
	}
}

type entryOutcome struct {
	e     *entry
	r     Result
	final bool
	err   error
}

// after delivers r if the failure was final, or logs the retry.
func (p *Producer) after(e *entry, r Result, final bool, err error) {
	if final {
		p.cfg.logger.Debug("job not enqueued", "id", r.ID, "subject", r.Subject, "attempts", r.Attempts, "err", r.Err)
		e.pl.deliver(r)
		return
	}
	p.cfg.logger.Debug("publish failed, retrying", "id", e.id, "subject", e.msg.Subject, "err", err)
}

// failedLocked decides what follows a failed attempt: a retry after a
// backoff, or a final Result (final true).
func (p *Producer) failedLocked(e *entry, err error) (Result, bool) {
	transient, permanent := classify(err)
	now := time.Now()
	if e.firstFail.IsZero() {
		e.firstFail = now
	}
	switch {
	case !transient:
		return p.finalLocked(e, permanent), true
	case p.closed || p.nc.IsClosed():
		return p.finalLocked(e, fmt.Errorf("%w before the stream acknowledged the job: %w", ErrClosed, err)), true
	case e.pl.ctx.Err() != nil:
		return p.finalLocked(e, fmt.Errorf("%w: %w (last publish error: %v)", ErrUnconfirmed, context.Cause(e.pl.ctx), err)), true
	case p.cfg.retryFor > 0 && now.Sub(e.firstFail) >= p.cfg.retryFor:
		return p.finalLocked(e, fmt.Errorf("%w: gave up after %d attempts over %s: %w", ErrUnavailable, e.attempts, now.Sub(e.firstFail).Round(time.Millisecond), err)), true
	}
	e.pl.stats.Retries++
	e.pl.stats.LastError = err
	e.timer = time.AfterFunc(p.backoff(e.attempts), func() { p.send(e) })
	return Result{}, false
}

// failAllLocked ends every attempt in flight with err, for Close. Jobs
// waiting for a retry end when it comes.
func (p *Producer) failAllLocked(err error) []delivery {
	var done []delivery
	for _, e := range p.inflight {
		done = append(done, delivery{e.pl, p.finalLocked(e, err)})
	}
	return done
}

// finalLocked ends e with err and returns its Result.
func (p *Producer) finalLocked(e *entry, err error) Result {
	r := e.result()
	r.Err = err
	p.finishLocked(e, r)
	return r
}

// backoff is the wait before the retry that follows attempt n (from 1):
// doubling from the minimum up to the maximum, with jitter over its upper
// half so that a window of jobs does not retry in lockstep.
func (p *Producer) backoff(n int) time.Duration {
	d := p.cfg.backoffMax
	if n < 32 {
		d = min(p.cfg.backoffMin<<(n-1), p.cfg.backoffMax)
	}
	half := int64(d / 2)
	return time.Duration(half + rand.Int64N(half+1))
}

// finishLocked records e's final result r and forgets e. The caller
// delivers r after unlocking.
func (p *Producer) finishLocked(e *entry, r Result) {
	e.done = true
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if e.token != 0 {
		delete(p.inflight, e.token)
		e.token = 0
	}
	pl := e.pl
	delete(pl.entries, e)
	switch {
	case r.Err != nil:
		pl.stats.Failed++
	case r.Duplicate:
		pl.stats.Duplicates++
	default:
		pl.stats.Stored++
	}
	if pl.collect {
		pl.results[r.Index] = r
	}
}
