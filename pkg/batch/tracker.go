package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Counter counts the stored jobs of a batch by status; the recorder's
// Store is one.
type Counter interface {
	BatchCounts(ctx context.Context, batch string) (map[job.Status]int, error)
}

// Tracker publishes the completion of declared batches. The recorder tells
// it which batches a commit touched (Touch); at most every interval it
// counts each touched, declared, open batch in the store, and completes
// those whose final jobs reach the declared size. Counting per interval
// rather than per commit keeps the cost at one indexed count per batch per
// interval however fast results arrive.
//
// It learns declarations from a watcher on the bucket, which first
// replays every key: so a batch declared after its last result, or left
// open by a recorder that died, is checked too.
type Tracker struct {
	js       jetstream.JetStream
	reg      *Registry
	counts   Counter
	interval time.Duration
	logger   *slog.Logger

	mu    sync.Mutex
	open  map[string]tracked // declared, not yet completed
	dirty map[string]bool

	cancel context.CancelFunc
	done   chan struct{}
}

type tracked struct {
	d   *Declaration
	rev uint64
}

// NewTracker returns a tracker; it does nothing until Start.
func NewTracker(js jetstream.JetStream, reg *Registry, counts Counter, interval time.Duration, logger *slog.Logger) *Tracker {
	return &Tracker{
		js: js, reg: reg, counts: counts, interval: max(interval, 10*time.Millisecond),
		logger: logger.With("component", "batches"),
		open:   map[string]tracked{}, dirty: map[string]bool{},
	}
}

// Touch notes that results of these batches were just stored. It is cheap
// and never blocks on the network, so the recorder calls it after every
// commit.
func (t *Tracker) Touch(batches ...string) {
	t.mu.Lock()
	for _, b := range batches {
		if _, ok := t.open[b]; ok {
			t.dirty[b] = true
		}
	}
	t.mu.Unlock()
}

// Start watches the bucket and checks touched batches until Stop.
func (t *Tracker) Start(ctx context.Context) error {
	w, err := t.reg.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("batch: watch %s: %w", Bucket, err)
	}
	ctx, t.cancel = context.WithCancel(ctx)
	t.done = make(chan struct{})
	go func() {
		defer close(t.done)
		defer w.Stop()
		t.run(ctx, w)
	}()
	return nil
}

// Stop ends the tracker. It is idempotent and safe before Start.
func (t *Tracker) Stop() {
	if t.cancel == nil {
		return
	}
	t.cancel()
	<-t.done
}

func (t *Tracker) run(ctx context.Context, w jetstream.KeyWatcher) {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil { // nil marks the end of the initial values
				t.learn(e)
			}
		case <-tick.C:
			t.checkDirty(ctx)
		}
	}
}

// learn tracks an open declaration and checks it at the next tick, in case
// its jobs are all stored already; completed or deleted ones are dropped.
func (t *Tracker) learn(e jetstream.KeyValueEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		delete(t.open, id)
		delete(t.dirty, id)
		return
	}
	d, err := decode(e.Value())
	if err != nil {
		t.logger.Warn("ignoring an unreadable batch declaration", "batch", id, "err", err)
		return
	}
	if d.CompletedAt != nil {
		delete(t.open, id)
		delete(t.dirty, id)
		return
	}
	t.open[id] = tracked{d: d, rev: e.Revision()}
	t.dirty[id] = true
}

func (t *Tracker) checkDirty(ctx context.Context) {
	t.mu.Lock()
	var due []string
	for id := range t.dirty {
		due = append(due, id)
	}
	clear(t.dirty)
	t.mu.Unlock()
	for _, id := range due {
		if err := t.check(ctx, id); err != nil && ctx.Err() == nil {
			t.logger.Warn("batch completion check failed; trying again", "batch", id, "err", err)
			t.Touch(id)
		}
	}
}

// check completes batch id if every declared job has a final outcome:
// publish the event first (deduplicated by message id), then mark the
// declaration, so a crash in between publishes again rather than never.
func (t *Tracker) check(ctx context.Context, id string) error {
	t.mu.Lock()
	tr, ok := t.open[id]
	t.mu.Unlock()
	if !ok {
		return nil
	}
	counts, err := t.counts.BatchCounts(ctx, id)
	if err != nil {
		return err
	}
	final := 0
	for s, n := range counts {
		if s.Final() {
			final += n
		}
	}
	if final < tr.d.Expected {
		return nil
	}
	now := time.Now().UTC()
	ev := Completed{V: job.Version, Batch: id, Expected: tr.d.Expected, Counts: counts, DeclaredAt: tr.d.DeclaredAt, CompletedAt: now}
	b, _ := json.Marshal(ev)
	if _, err := t.js.Publish(ctx, EventSubject(id), b, jetstream.WithMsgID(EventMsgID(id))); err != nil {
		return fmt.Errorf("publish completion: %w", err)
	}
	done := *tr.d
	done.CompletedAt, done.Counts = &now, counts
	if err := t.reg.complete(ctx, &done, tr.rev); err != nil {
		return err
	}
	t.logger.Info("batch completed", "batch", id, "expected", tr.d.Expected, "counts", counts)
	t.mu.Lock()
	delete(t.open, id)
	t.mu.Unlock()
	return nil
}
