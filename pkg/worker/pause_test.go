package worker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

// TestAFetchFromAPausedConsumerWaitsAndIsNotWokenByAResume pins down the
// server's behaviour the worker's pause handling rests on: a pull on a
// paused consumer returns nothing, without an error, when it expires; a
// manual resume does not serve a pull already waiting; the next pull does.
func TestAFetchFromAPausedConsumerWaitsAndIsNotWokenByAResume(t *testing.T) {
	b := setup(t, mockapi.Config{})
	ctx := context.Background()
	c, err := b.js.CreateOrUpdateConsumer(ctx, streams.Jobs, jetstream.ConsumerConfig{
		Durable: "work_acme_bulk", FilterSubject: job.LaneFilter("acme", job.LaneBulk), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.js.PauseConsumer(ctx, streams.Jobs, "work_acme_bulk", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.publish(t, newJob("p-1", "acme", "t", "/x"), job.LaneBulk)

	batch, err := c.Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if n != 0 || (batch.Error() != nil && !errors.Is(batch.Error(), jetstream.ErrNoMessages)) {
		t.Fatalf("fetch from a paused consumer: %d messages, err %v; want none and no error", n, batch.Error())
	}

	// A pull waiting through a resume is not served by it...
	waiting, err := c.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the pull reach the server: there is no event for it
	if _, err := b.js.ResumeConsumer(ctx, streams.Jobs, "work_acme_bulk"); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	select {
	case m := <-waiting.Messages():
		if m != nil {
			t.Fatalf("the waiting pull was served %s after the resume; the worker's pause handling assumes it is not", time.Since(resumed))
		}
	case <-time.After(500 * time.Millisecond):
	}
	// ...but the next pull wakes the server: the job then goes out at once
	// (to the older pull).
	fresh, err := c.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-waiting.Messages():
		if m == nil {
			t.Fatal("the waiting pull ended without the job")
		}
		_ = m.Ack()
	case m := <-fresh.Messages():
		if m == nil {
			t.Fatal("the fresh pull ended without the job")
		}
		_ = m.Ack()
	case <-time.After(time.Second):
		t.Fatal("no pull was served within 1s of a fresh pull after the resume")
	}
}

// TestAPausedLaneGetsNothingAndDrainsPromptlyOnResume pauses one
// provider's bulk lane for the fleet with the consumer pause API: its jobs
// wait while another provider's run, and after a manual resume they start
// at once, not a fetch_max_wait later.
func TestAPausedLaneGetsNothingAndDrainsPromptlyOnResume(t *testing.T) {
	b := setup(t, mockapi.Config{})
	ctx := context.Background()
	const fetchMaxWait = 3 * time.Second
	w := b.startWorker(t, worker.Config{FetchMaxWait: fetchMaxWait}, map[string]provider.Config{
		"acme": b.provider(b.url), "other": b.provider(b.url)})
	// An idle lane has a pull waiting now; the pause finds it there.
	waitReady(t, w)
	pauseUntil := time.Now().Add(time.Hour)
	if _, err := b.js.PauseConsumer(ctx, streams.Jobs, job.WorkConsumer("acme", job.LaneBulk), pauseUntil); err != nil {
		t.Fatal(err)
	}
	// The paused pull expires within fetch_max_wait; the pause advisory
	// keeps the lane from sending another.
	var paused, running []string
	for i := range 20 {
		j := newJob(fmt.Sprintf("paused-%d", i), "acme", "t", "/paused")
		b.publish(t, j, job.LaneBulk)
		paused = append(paused, j.ID)
		j = newJob(fmt.Sprintf("running-%d", i), "other", "t", "/running")
		b.publish(t, j, job.LaneBulk)
		running = append(running, j.ID)
	}
	live := newJob("acme-live", "acme", "t", "/live")
	b.publish(t, live, job.LaneLive)
	b.waitFinal(t, 10*time.Second, append(running, live.ID)...)
	// Give a pull that slipped through the time to show (fetch_max_wait).
	deadline := time.Now().Add(fetchMaxWait + 500*time.Millisecond)
	for time.Now().Before(deadline) {
		for _, id := range paused {
			if b.api.Calls(id) > 0 {
				t.Fatalf("job %s of the paused lane was called", id)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, id := range paused {
		if _, err := b.store.Job(ctx, id); !errors.Is(err, recorder.ErrNotFound) {
			t.Fatalf("job %s of the paused lane has a row (err %v)", id, err)
		}
	}

	if _, err := b.js.ResumeConsumer(ctx, streams.Jobs, job.WorkConsumer("acme", job.LaneBulk)); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	b.waitFinal(t, 10*time.Second, paused...)
	took := time.Since(resumed)
	t.Logf("20 jobs of the resumed lane recorded %s after the resume (fetch_max_wait %s)", took, fetchMaxWait)
	if took > fetchMaxWait/2 {
		t.Fatalf("the resumed lane took %s to drain; want well under fetch_max_wait %s", took, fetchMaxWait)
	}
}

// TestAPauseWithAnEndResumesByItself: a pause until a time in the near
// future ends on its own, and the lane drains then.
func TestAPauseWithAnEndResumesByItself(t *testing.T) {
	b := setup(t, mockapi.Config{})
	ctx := context.Background()
	w := b.startWorker(t, worker.Config{FetchMaxWait: 3 * time.Second}, map[string]provider.Config{"acme": b.provider(b.url)})
	waitReady(t, w)
	until := time.Now().Add(1500 * time.Millisecond)
	if _, err := b.js.PauseConsumer(ctx, streams.Jobs, job.WorkConsumer("acme", job.LaneLive), until); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		j := newJob(fmt.Sprintf("later-%d", i), "acme", "t", "/later")
		b.publish(t, j, job.LaneLive)
		ids = append(ids, j.ID)
	}
	rows := b.waitFinal(t, 10*time.Second, ids...)
	done := time.Now()
	t.Logf("5 jobs recorded %s after the pause ended", done.Sub(until))
	for id, r := range rows {
		if r.StartedAt.Before(until) {
			t.Fatalf("job %s was called at %s, before the pause's end %s", id, r.StartedAt, until)
		}
	}
	if late := done.Sub(until); late > 1500*time.Millisecond {
		t.Fatalf("the lane drained %s after its pause ended; want promptly", late)
	}
}

// waitReady waits until the worker reports ready: started, connected,
// its streams present.
func waitReady(t *testing.T, w *worker.Worker) {
	t.Helper()
	waitFor(t, 5*time.Second, func() (bool, string) {
		err := w.Ready(context.Background())
		return err == nil, fmt.Sprint(err)
	})
}
