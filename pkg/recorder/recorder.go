package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/streams"
)

// Recorder consumes RESULTS into a Store. Create it with New, run it with
// Start, end it with Stop.
type Recorder struct {
	cfg    Config
	js     jetstream.JetStream
	store  Store
	logger *slog.Logger

	onCommit func(batches ...string)
	metrics  *metrics // see Collector

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	healthy bool
}

// Option configures a Recorder.
type Option func(*Recorder)

// OnCommit has the recorder call fn after every committed batch with the
// distinct non-empty batch ids of its results; the batch tracker of
// package batch learns that way which batches may have completed. fn runs
// on the recorder's goroutine, so it must not block.
func OnCommit(fn func(batches ...string)) Option {
	return func(r *Recorder) { r.onCommit = fn }
}

// New builds a recorder writing to store.
func New(js jetstream.JetStream, store Store, cfg Config, logger *slog.Logger, opts ...Option) (*Recorder, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	if cfg.Committers == 0 {
		cfg.Committers = 1
		if s, ok := store.(interface{ CommitConcurrency() int }); ok {
			cfg.Committers = s.CommitConcurrency()
		}
	}
	r := &Recorder{cfg: cfg, js: js, store: store, logger: logger.With("component", "recorder"), healthy: true, metrics: newMetrics()}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Start binds the recorder consumer and starts consuming.
func (r *Recorder) Start(ctx context.Context) error {
	c, err := natsx.ApplyConsumer(ctx, r.js, streams.Results, streams.RecorderConsumer(), nil, r.logger)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return errors.New("recorder: already started")
	}
	r.metrics.mu.Lock()
	r.metrics.consumer = c
	r.metrics.mu.Unlock()
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.run(ctx, c)
	}()
	return nil
}

// Stop ends consuming after the batch in hand is committed or handed back.
// It is idempotent and safe before Start.
func (r *Recorder) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Healthy reports whether the last write to the store succeeded.
func (r *Recorder) Healthy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.healthy
}

// run fetches and decodes the next batch while the previous one is being
// committed: with one goroutine doing both in turn, the store sat idle
// during every fetch and the fetch during every commit, and a PostgreSQL
// recorder used little more than one core's worth of either.
//
// Several committers take turns: a PostgreSQL backend runs one transaction
// on one core, so a second connection committing beside it is what lets
// the database use the second core. Concurrent commits are safe because
// every store is idempotent and monotonic, and the PostgreSQL store locks
// rows in job-id order, so two of them never deadlock. SQLite has a single
// writer, and measured slower with a second committer waiting on it, so
// Config.Committers defaults to the store's CommitConcurrency.
func (r *Recorder) run(ctx context.Context, c jetstream.Consumer) {
	// One decoded batch waits while others commit; more would only hold
	// messages longer before their ack.
	batches := make(chan decoded, 1)
	go func() {
		defer close(batches)
		r.fetchLoop(ctx, c, batches)
	}()
	var wg sync.WaitGroup
	for range r.cfg.Committers {
		wg.Go(func() {
			for b := range batches {
				r.commit(ctx, b)
			}
		})
	}
	wg.Wait()
}

// fetchLoop fetches and decodes batches into out until ctx ends. A batch
// in hand is always handed over, even after ctx ended: the committer
// drains out before it stops.
func (r *Recorder) fetchLoop(ctx context.Context, c jetstream.Consumer, out chan<- decoded) {
	pause := time.Duration(0)
	for ctx.Err() == nil {
		if pause > 0 {
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return
			}
		}
		msgs, err := r.next(c)
		// Messages in hand are committed even when the fetch then failed:
		// dropped, they would wait out ack_wait before redelivery.
		if len(msgs) > 0 {
			if b := r.decode(msgs); len(b.msgs) > 0 {
				out <- b
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				r.logger.Warn("fetch results", "err", err)
			}
			pause = min(max(2*pause, 100*time.Millisecond), 5*time.Second)
			continue
		}
		pause = 0
	}
}

// next returns the next batch: whatever is waiting, up to BatchSize, or —
// when nothing is — the first result to arrive within FetchMaxWait plus
// whatever came with it. That keeps latency low at a trickle and batches big
// under load.
func (r *Recorder) next(c jetstream.Consumer) ([]jetstream.Msg, error) {
	msgs, err := collect(c.FetchNoWait(r.cfg.BatchSize))
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	// The wait ends when the server says so, not on a client-side deadline:
	// a result the server delivered just as a client deadline passed would
	// go to an abandoned inbox and wait out ack_wait. So Stop waits for the
	// end of this wait, and what arrives meanwhile is committed.
	msgs, err = collect(c.Fetch(1, jetstream.FetchMaxWait(r.cfg.FetchMaxWait)))
	if err != nil || len(msgs) == 0 || r.cfg.BatchSize == 1 {
		return msgs, err
	}
	more, err := collect(c.FetchNoWait(r.cfg.BatchSize - 1))
	return append(msgs, more...), err
}

func collect(batch jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	err = batch.Error()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, jetstream.ErrNoMessages) {
		err = nil
	}
	return msgs, err
}

// decoded is a fetched batch ready to commit: its readable messages and
// their results, in the same order.
type decoded struct {
	msgs    []jetstream.Msg
	results []job.Result
}

// decode parses a batch. Unreadable results are terminated (logged, never
// retried): no store could keep them, and retrying would hold the batch
// forever.
func (r *Recorder) decode(msgs []jetstream.Msg) decoded {
	results := make([]job.Result, 0, len(msgs))
	keep := msgs[:0]
	for _, m := range msgs {
		var res job.Result
		err := gojson.Unmarshal(m.Data(), &res)
		if err == nil {
			err = checkResult(0, &res)
		}
		if err == nil && !job.ValidID(res.JobID) {
			err = fmt.Errorf("job id %q is not a job id", res.JobID)
		}
		if err != nil {
			r.logger.Error("unreadable result dropped", "subject", m.Subject(), "err", err)
			_ = m.TermWithReason("unreadable result")
			continue
		}
		results = append(results, res)
		keep = append(keep, m)
	}
	return decoded{msgs: keep, results: results}
}

// commit stores one decoded batch and acks it, retrying until the store
// takes it or the recorder stops, when the batch is naked for another
// replica.
func (r *Recorder) commit(ctx context.Context, b decoded) {
	results, keep := b.results, b.msgs
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 5*time.Second) {
		// A batch in hand is committed even when Stop comes meanwhile.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		began := time.Now()
		err := r.store.Record(wctx, results)
		r.metrics.committed(len(results), time.Since(began), err)
		cancel()
		if err == nil {
			break
		}
		r.setHealthy(false)
		r.logger.Error("store results failed; holding the batch and retrying", "results", len(results), "retry_in", pause, "err", err)
		for _, m := range keep {
			_ = m.InProgress()
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			for _, m := range keep {
				_ = m.Nak()
			}
			return
		}
	}
	if !r.Healthy() {
		r.logger.Info("store writes recovered")
	}
	r.setHealthy(true)
	for _, m := range keep {
		_ = m.Ack()
	}
	if r.onCommit != nil {
		r.onCommit(batchesOf(results)...)
	}
}

// batchesOf returns the distinct non-empty batch ids of results.
func batchesOf(results []job.Result) []string {
	seen := map[string]bool{}
	var ids []string
	for i := range results {
		if b := results[i].Batch; b != "" && !seen[b] {
			seen[b] = true
			ids = append(ids, b)
		}
	}
	return ids
}

func (r *Recorder) setHealthy(ok bool) {
	r.mu.Lock()
	r.healthy = ok
	r.mu.Unlock()
}
