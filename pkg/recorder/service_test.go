package recorder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/streams"
)

// TestServiceCompletesADeclaredBatchOnce: a batch of 10,000 declared jobs,
// every result published once and 2,000 of them again under other message
// ids (as redeliveries after a lost ack would), drained by two recorder
// replicas sharing the consumer, fires exactly one completion event with
// the right counts.
func TestServiceCompletesADeclaredBatchOnce(t *testing.T) {
	t.Parallel()
	b := setupRecorder(t)
	ctx := context.Background()
	const n, again = 10000, 2000
	reg, err := batch.Open(ctx, b.pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Declare(ctx, "big", n); err != nil {
		t.Fatal(err)
	}
	cfg := recorder.Config{BatchCheckInterval: 50 * time.Millisecond}
	for range 2 {
		s, err := recorder.StartService(ctx, b.js, b.store, cfg, natstest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
	}

	pub, err := jetstream.New(b.pub.Conn(), jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(i int, msgID string, status job.Status) {
		id := jobID("big", i)
		data, _ := json.Marshal(newResult(id, "big", 1, status))
		// A full window waits for room (the stall wait) rather than failing:
		// on a loaded machine acks can lag the default 200ms.
		if _, err := pub.PublishAsync(job.ResultSubject("acme", "create_invoice"), data, jetstream.WithMsgID(msgID), jetstream.WithStallWait(30*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		status := job.StatusSucceeded
		if i%100 == 0 {
			status = job.StatusFailed
		}
		publish(i, jobID("big", i)+":1", status)
	}
	for i := range again {
		status := job.StatusSucceeded
		if i%100 == 0 {
			status = job.StatusFailed
		}
		publish(i, jobID("big", i)+":1:again", status)
	}
	select {
	case <-pub.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("results not acknowledged")
	}

	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	d, err := reg.Wait(wctx, "big")
	if err != nil {
		t.Fatalf("batch not completed: %v", err)
	}
	want := map[job.Status]int{job.StatusSucceeded: n - n/100, job.StatusFailed: n / 100}
	if fmt.Sprint(d.Counts) != fmt.Sprint(want) {
		t.Errorf("completed with counts %v, want %v", d.Counts, want)
	}
	// Let every result be consumed, then count the events: exactly one.
	waitFor(t, 30*time.Second, func() (bool, string) {
		c, err := b.js.Consumer(ctx, streams.Results, streams.Recorder)
		if err != nil {
			return false, err.Error()
		}
		info, err := c.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.NumPending == 0 && info.NumAckPending == 0, fmt.Sprintf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
	})
	st, err := b.js.Stream(ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(batch.EventSubject("big")))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Subjects[batch.EventSubject("big")]; got != 1 {
		t.Errorf("%d completion events, want exactly 1", got)
	}
}
