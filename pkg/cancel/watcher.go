package cancel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Watcher holds every tombstone of the bucket in memory, kept current by a
// watcher, so that a worker can check each job before its call without a
// round trip. Create it with NewWatcher, run it with Start, end it with
// Stop.
type Watcher struct {
	js     jetstream.JetStream
	logger *slog.Logger
	now    func() time.Time

	mu    sync.RWMutex
	keys  map[string]time.Time // key -> when the tombstone was written
	watch jetstream.KeyWatcher
	done  chan struct{}
}

// NewWatcher returns a watcher of the bucket. It does not touch NATS
// until Start.
func NewWatcher(js jetstream.JetStream, logger *slog.Logger) *Watcher {
	return &Watcher{js: js, logger: logger, now: time.Now, keys: map[string]time.Time{}}
}

// Start opens the bucket (creating it if needed) and returns once every
// tombstone already written is loaded, so a job cancelled before the
// worker started is caught on its first delivery.
func (w *Watcher) Start(ctx context.Context) error {
	kv, err := bucket(ctx, w.js)
	if err != nil {
		return err
	}
	// The watch outlives ctx (a start deadline); Stop ends it.
	watch, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("cancel: watch bucket %s: %w", Bucket, err)
	}
	for {
		select {
		case <-ctx.Done():
			_ = watch.Stop()
			return fmt.Errorf("cancel: load tombstones: %w", ctx.Err())
		case e, ok := <-watch.Updates():
			if !ok {
				return errors.New("cancel: watch ended while loading tombstones")
			}
			if e != nil {
				w.apply(e)
				continue
			}
		}
		break
	}
	w.mu.Lock()
	w.watch, w.done = watch, make(chan struct{})
	w.mu.Unlock()
	go w.run(watch)
	return nil
}

func (w *Watcher) run(watch jetstream.KeyWatcher) {
	defer close(w.done)
	for e := range watch.Updates() {
		if e != nil {
			w.apply(e)
		}
	}
}

func (w *Watcher) apply(e jetstream.KeyValueEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e.Operation() == jetstream.KeyValuePut {
		w.keys[e.Key()] = e.Created()
		return
	}
	delete(w.keys, e.Key()) // deleted or purged: no longer cancelled
}

// Stop ends the watch. It is idempotent and safe before Start.
func (w *Watcher) Stop() {
	w.mu.Lock()
	watch, done := w.watch, w.done
	w.watch = nil
	w.mu.Unlock()
	if watch == nil {
		return
	}
	_ = watch.Stop()
	<-done
}

// Cancelled reports whether the job with this id or its batch (which may
// be empty) is cancelled, and why, as the key that says so.
func (w *Watcher) Cancelled(id, batch string) (string, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if len(w.keys) == 0 {
		return "", false
	}
	// A tombstone older than the bucket's max age is gone from the
	// server; the server sends no event for that, so it ends here.
	since := w.now().Add(-TTL)
	if k := JobKey(id); w.keys[k].After(since) {
		return k, true
	}
	if batch != "" {
		if k := BatchKey(batch); w.keys[k].After(since) {
			return k, true
		}
	}
	return "", false
}

// Len is the number of tombstones held.
func (w *Watcher) Len() int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return len(w.keys)
}
