package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/streams"
)

func TestPayloadIsExactSizeJSON(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 5, 9, 10, 11, 100, 4096} {
		p := payload(n)
		if len(p) != n || !json.Valid(p) {
			t.Errorf("payload(%d) = %q (%d bytes, valid %v)", n, p, len(p), json.Valid(p))
		}
	}
	if p := payload(0); p != nil {
		t.Errorf("payload(0) = %q, want none", p)
	}
}

func TestJobTemplateMakesValidEnvelopes(t *testing.T) {
	t.Parallel()
	tpl, err := newJobTemplate("loadtest", job.LaneBulk, "call", "lt-1", "lt-1-", 300)
	if err != nil {
		t.Fatal(err)
	}
	m := tpl.msg(41)
	if m.Subject != "jobs.loadtest.bulk.call" || m.Header.Get(jetstream.MsgIDHeader) != "lt-1-41" {
		t.Errorf("subject %q, msg id %q", m.Subject, m.Header.Get(jetstream.MsgIDHeader))
	}
	j, addr, err := job.Parse(m.Subject, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != "lt-1-41" || j.Batch != "lt-1" || j.Request.Method != "POST" || j.Request.Path != "/call" ||
		len(j.Request.Body) != 300 || addr.Lane != job.LaneBulk {
		t.Errorf("job %+v", j)
	}
	if _, err := newJobTemplate("loadtest", job.LaneBulk, "call", "bad batch!", "x-", 10); err == nil {
		t.Error("an invalid batch should fail the template")
	}
}

func TestEnqueueCountsEveryPubAck(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tpl, err := newJobTemplate("acme", job.LaneBulk, "call", "lt-2", "lt-2-", 100)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := newPublisher(nc, 64) // a small window, so publishing stalls often
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := pub.enqueue(ctx, tpl, 3000, 0); err != nil {
		t.Fatal(err)
	}
	if got := pub.acked.Load(); got != 3000 {
		t.Errorf("acked %d, want 3000", got)
	}
	if pub.failures.Load() != 0 || pub.duplicates.Load() != 0 {
		t.Errorf("failures %d duplicates %d", pub.failures.Load(), pub.duplicates.Load())
	}
	if last := pub.lastAckTime(); last.Before(start) || last.After(time.Now()) {
		t.Errorf("last ack at %s, not within the run", last)
	}
	s, err := js.Stream(ctx, streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3000 {
		t.Errorf("JOBS holds %d messages, want 3000", info.State.Msgs)
	}
	msg, err := s.GetMsg(ctx, 1234)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := job.Parse(msg.Subject, msg.Data); err != nil {
		t.Errorf("stored job does not parse: %v", err)
	}

	// Publishing the same ids again is deduplicated by Nats-Msg-Id: every
	// PubAck says so and the stream does not grow.
	again, err := newPublisher(nc, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.enqueue(ctx, tpl, 100, 0); err != nil {
		t.Fatal(err)
	}
	if again.duplicates.Load() != 100 {
		t.Errorf("duplicates %d, want 100", again.duplicates.Load())
	}
	if info, _ := s.Info(ctx); info.State.Msgs != 3000 {
		t.Errorf("JOBS holds %d messages after republishing, want 3000", info.State.Msgs)
	}
}

func TestEnqueueRetriesFailedPublishes(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// No stream yet: every publish fails (no responders) until the streams
	// exist, and none may be dropped.
	tpl, err := newJobTemplate("acme", job.LaneBulk, "call", "lt-3", "lt-3-", 10)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := newPublisher(nc, 16)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pub.enqueue(ctx, tpl, 200, 0) }()
	for pub.failures.Load() == 0 {
		select {
		case err := <-done:
			t.Fatalf("enqueue finished (%v) before any publish failed", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	srv.ApplyStreams(t, js)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pub.acked.Load() < 200 {
		t.Errorf("acked %d, want at least 200", pub.acked.Load())
	}
	s, _ := js.Stream(ctx, streams.Jobs)
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 200 {
		t.Errorf("JOBS holds %d messages, want 200", info.State.Msgs)
	}
}

func TestEnqueueRate(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	tpl, _ := newJobTemplate("acme", job.LaneBulk, "call", "lt-4", "lt-4-", 10)
	pub, err := newPublisher(nc, 100)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := pub.enqueue(context.Background(), tpl, 257, 500); err != nil {
		t.Fatal(err)
	}
	// 257 jobs at 500/s: the last step of 64 starts at 256/500 s.
	if took := time.Since(start); took < 500*time.Millisecond || took > 5*time.Second {
		t.Errorf("257 jobs at 500/s took %s", took)
	}
}

func TestTrickle(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	tpl, _ := newJobTemplate("acme", job.LaneLive, "call", "lt-5", "lt-5-live-", 10)
	stop := make(chan struct{})
	res := make(chan [2]int, 1)
	go func() {
		sent, failures := trickle(context.Background(), stop, js, tpl, 100)
		res <- [2]int{sent, failures}
	}()
	s, _ := js.Stream(context.Background(), streams.Jobs)
	for {
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs >= 5 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	got := <-res
	info, _ := s.Info(context.Background())
	if got[0] != int(info.State.Msgs) || got[1] != 0 {
		t.Errorf("trickle says %d sent (%d failures); JOBS holds %d", got[0], got[1], info.State.Msgs)
	}
	msg, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "jobs.acme.live.call" || !strings.HasPrefix(msg.Header.Get(jetstream.MsgIDHeader), "lt-5-live-") {
		t.Errorf("first trickle job: %s %v", msg.Subject, msg.Header)
	}
}
