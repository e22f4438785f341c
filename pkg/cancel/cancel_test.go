package cancel_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/cancel"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
)

func waitFor(t *testing.T, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatcherSeesTombstonesWrittenBeforeAndAfterItStarts(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	ctx := t.Context()
	reg, err := cancel.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Job(ctx, "inv:981", "early"); err != nil {
		t.Fatal(err)
	}
	w := cancel.NewWatcher(js, natstest.Logger(t))
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Loaded by the time Start returns, not eventually.
	if key, ok := w.Cancelled("inv:981", ""); !ok || key != "job.inv=981" {
		t.Fatalf("a job cancelled before the watcher started: %q, %v", key, ok)
	}
	if _, ok := w.Cancelled("inv:982", "nightly"); ok {
		t.Fatal("an uncancelled job reads cancelled")
	}
	if _, err := reg.Batch(ctx, "nightly", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() (bool, string) {
		_, ok := w.Cancelled("inv:982", "nightly")
		return ok, "a batch cancelled after the start never reached the watcher"
	})
	if _, err := reg.Job(ctx, "bad id with spaces", ""); err == nil {
		t.Error("an invalid id was accepted")
	}
	// Deleting a tombstone takes the cancellation back.
	kv, err := js.KeyValue(ctx, cancel.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, cancel.BatchKey("nightly")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() (bool, string) {
		_, ok := w.Cancelled("inv:982", "nightly")
		return !ok, fmt.Sprintf("still cancelled after the tombstone was deleted (%d held)", w.Len())
	})
	w.Stop()
	w.Stop() // idempotent
}
