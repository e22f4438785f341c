package batch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/storetest"
	"github.com/switchyard-io/switchyard/streams"
)

type env struct {
	js    jetstream.JetStream
	reg   *batch.Registry
	store *recorder.SQLite
}

func setup(t *testing.T) env {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	ctx := context.Background()
	reg, err := batch.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	store, err := recorder.OpenSQLite(ctx, filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return env{js: js, reg: reg, store: store}
}

func (e env) tracker(t *testing.T) *batch.Tracker {
	t.Helper()
	tr := batch.NewTracker(e.js, e.reg, e.store, 20*time.Millisecond, natstest.Logger(t))
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Stop)
	return tr
}

// record stores one result per id of batch b with status s.
func (e env) record(t *testing.T, b string, s job.Status, ids ...string) {
	t.Helper()
	var rs []job.Result
	for _, id := range ids {
		r := storetest.Result(id, 1, s)
		r.Batch = b
		rs = append(rs, r)
	}
	if err := e.store.Record(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

// events returns the completion events of batch b in EVENTS.
func (e env) events(t *testing.T, b string) []batch.Completed {
	t.Helper()
	ctx := context.Background()
	c, err := e.js.OrderedConsumer(ctx, streams.Events, jetstream.OrderedConsumerConfig{FilterSubjects: []string{batch.EventSubject(b)}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []batch.Completed
	for range info.NumPending {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev batch.Completed
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func waitCompleted(t *testing.T, reg *batch.Registry, b string) *batch.Declaration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := reg.Wait(ctx, b)
	if err != nil {
		t.Fatalf("batch %s not completed: %v", b, err)
	}
	return d
}

func TestDeclare(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	if err := e.reg.Declare(ctx, "nightly-1", 3); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Declare(ctx, "nightly-1", 3); err != nil {
		t.Errorf("declaring the same size again: %v", err)
	}
	if err := e.reg.Declare(ctx, "nightly-1", 4); !errors.Is(err, batch.ErrConflict) {
		t.Errorf("another size: err = %v, want ErrConflict", err)
	}
	for _, tc := range []struct {
		id       string
		expected int
	}{{"has space", 1}, {"", 1}, {"a.b", 1}, {"ok", 0}, {"ok", batch.MaxExpected + 1}} {
		if err := e.reg.Declare(ctx, tc.id, tc.expected); err == nil {
			t.Errorf("Declare(%q, %d) accepted", tc.id, tc.expected)
		}
	}
	d, _, err := e.reg.Get(ctx, "nightly-1")
	if err != nil || d.Expected != 3 || d.CompletedAt != nil || d.DeclaredAt.IsZero() {
		t.Errorf("Get = %+v, %v", d, err)
	}
	if _, _, err := e.reg.Get(ctx, "never"); !errors.Is(err, batch.ErrNotDeclared) {
		t.Errorf("Get(never): err = %v, want ErrNotDeclared", err)
	}
}

// TestTrackerCompletesWhenEveryJobIsFinal: a retrying job holds the batch
// open; its final result completes it, with one event carrying the final
// counts.
func TestTrackerCompletesWhenEveryJobIsFinal(t *testing.T) {
	e := setup(t)
	tr := e.tracker(t)
	ctx := context.Background()
	if err := e.reg.Declare(ctx, "b1", 3); err != nil {
		t.Fatal(err)
	}
	e.record(t, "b1", job.StatusSucceeded, "j1")
	e.record(t, "b1", job.StatusRetrying, "j2")
	e.record(t, "b1", job.StatusFailed, "j3")
	tr.Touch("b1")
	// Had the tracker completed with j2 still retrying, the counts below
	// would say so.
	e.record(t, "b1", job.StatusSucceeded, "j2")
	tr.Touch("b1")
	d := waitCompleted(t, e.reg, "b1")
	want := map[job.Status]int{job.StatusSucceeded: 2, job.StatusFailed: 1}
	if fmt.Sprint(d.Counts) != fmt.Sprint(want) {
		t.Errorf("declaration counts %v, want %v", d.Counts, want)
	}
	evs := e.events(t, "b1")
	if len(evs) != 1 {
		t.Fatalf("%d completion events, want 1", len(evs))
	}
	if ev := evs[0]; ev.Batch != "b1" || ev.Expected != 3 || fmt.Sprint(ev.Counts) != fmt.Sprint(want) || ev.CompletedAt.IsZero() {
		t.Errorf("event %+v", ev)
	}
}

// TestTrackerLateDeclaration: every result is stored before the batch is
// declared; the declaration alone completes it.
func TestTrackerLateDeclaration(t *testing.T) {
	e := setup(t)
	e.tracker(t)
	e.record(t, "late", job.StatusSucceeded, "a", "b")
	if err := e.reg.Declare(context.Background(), "late", 2); err != nil {
		t.Fatal(err)
	}
	waitCompleted(t, e.reg, "late")
	if n := len(e.events(t, "late")); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
}

// TestTrackersShareTheWork: two recorder replicas' trackers, both touched,
// publish a batch's completion once.
func TestTrackersShareTheWork(t *testing.T) {
	e := setup(t)
	a, b := e.tracker(t), e.tracker(t)
	if err := e.reg.Declare(context.Background(), "shared", 50); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 50 {
		ids = append(ids, fmt.Sprintf("s%02d", i))
	}
	e.record(t, "shared", job.StatusSucceeded, ids...)
	a.Touch("shared")
	b.Touch("shared")
	waitCompleted(t, e.reg, "shared")
	// Both may have published; the stream keeps one.
	if n := len(e.events(t, "shared")); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
}

// TestTrackerUndeclaredBatchIsIgnored: touching a batch nobody declared
// costs nothing and completes nothing.
func TestTrackerUndeclaredBatchIsIgnored(t *testing.T) {
	e := setup(t)
	tr := e.tracker(t)
	e.record(t, "loose", job.StatusSucceeded, "x")
	tr.Touch("loose")
	// A declared batch touched after it is checked on a later tick, so
	// once it completes the undeclared one has been passed over too.
	if err := e.reg.Declare(context.Background(), "marker", 1); err != nil {
		t.Fatal(err)
	}
	e.record(t, "marker", job.StatusSucceeded, "m")
	tr.Touch("marker")
	waitCompleted(t, e.reg, "marker")
	if n := len(e.events(t, "loose")); n != 0 {
		t.Errorf("%d events for an undeclared batch", n)
	}
}
