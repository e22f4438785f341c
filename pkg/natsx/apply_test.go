package natsx_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/streams"
)

func TestApplyStreamsIsIdempotent(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()

	for i := range 2 {
		var logs bytes.Buffer
		if err := natsx.ApplyStreams(ctx, js, 1, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
			t.Fatalf("ApplyStreams: %v", err)
		}
		if i == 1 && logs.Len() > 0 {
			t.Fatalf("the second apply changed something:\n%s", logs.String())
		}
	}
	for name, retention := range map[string]jetstream.RetentionPolicy{
		streams.Jobs: jetstream.WorkQueuePolicy, streams.Results: jetstream.LimitsPolicy, streams.DLQ: jetstream.LimitsPolicy,
	} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if got := s.CachedInfo().Config.Retention; got != retention {
			t.Errorf("%s retention = %v, want %v", name, got, retention)
		}
	}
}

func TestApplyStreamUpdatesDeclaredFieldsAndKeepsOthers(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	log := natstest.Logger(t)
	srv.ApplyStreams(t, js)

	// An operator changes a declared field and adds an undeclared one.
	s, _ := js.Stream(ctx, streams.Results)
	cfg := s.CachedInfo().Config
	cfg.MaxAge = time.Hour
	cfg.MaxMsgsPerSubject = 1000
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	s, err := natsx.ApplyStream(ctx, js, streams.Stream(streams.Results), nil, log)
	if err != nil {
		t.Fatalf("ApplyStream: %v", err)
	}
	got := s.CachedInfo().Config
	if got.MaxAge != 7*24*time.Hour {
		t.Errorf("max_age = %v, want it restored to 168h", got.MaxAge)
	}
	if got.MaxMsgsPerSubject != 1000 {
		t.Errorf("max_msgs_per_subject = %d, want the operator's 1000 kept", got.MaxMsgsPerSubject)
	}
}

func TestApplyStreamReportsConflict(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()

	// Someone made JOBS with limits retention, which cannot become workqueue.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: streams.Jobs, Subjects: []string{"jobs.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err := natsx.ApplyStream(ctx, js, streams.Stream(streams.Jobs), nil, natstest.Logger(t))
	if !errors.Is(err, natsx.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if !strings.Contains(err.Error(), "retention") {
		t.Errorf("error %q does not name the retention field", err)
	}
	s, _ := js.Stream(ctx, streams.Jobs)
	if s.CachedInfo().Config.Retention != jetstream.LimitsPolicy {
		t.Error("the existing stream was replaced")
	}
}

func TestApplyConsumer(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	log := natstest.Logger(t)
	srv.ApplyStreams(t, js)
	def := streams.WorkConsumer("acme", "live")

	c, err := natsx.ApplyConsumer(ctx, js, streams.Jobs, def, natsx.Override{"ack_wait": 90 * time.Second}, log)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	info := c.CachedInfo()
	if info.Name != "work_acme_live" || info.Config.FilterSubject != "jobs.acme.live.>" || info.Config.AckWait != 90*time.Second {
		t.Fatalf("consumer = %s filter %s ack_wait %v", info.Name, info.Config.FilterSubject, info.Config.AckWait)
	}
	// Same definition again: no change. A new ack_wait: updated in place.
	var logs bytes.Buffer
	if _, err := natsx.ApplyConsumer(ctx, js, streams.Jobs, def, natsx.Override{"ack_wait": 90 * time.Second}, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatalf("reapply: %v", err)
	}
	if logs.Len() > 0 {
		t.Fatalf("reapplying the same definition changed something:\n%s", logs.String())
	}
	c, err = natsx.ApplyConsumer(ctx, js, streams.Jobs, def, natsx.Override{"ack_wait": 2 * time.Minute}, log)
	if err != nil || c.CachedInfo().Config.AckWait != 2*time.Minute {
		t.Fatalf("update ack_wait: %v", err)
	}
	// deliver_policy cannot change on an existing consumer.
	_, err = natsx.ApplyConsumer(ctx, js, streams.Jobs, def, natsx.Override{"deliver_policy": "new"}, log)
	if !errors.Is(err, natsx.ErrConflict) || !strings.Contains(err.Error(), "deliver_policy") {
		t.Fatalf("err = %v, want ErrConflict naming deliver_policy", err)
	}
}

func TestDefinitionsDecodeStrictly(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	_, err := natsx.ApplyStream(context.Background(), js, []byte(`{"name":"X","subjects":["x.>"],"max_agee":1}`), nil, natstest.Logger(t))
	if err == nil || !strings.Contains(err.Error(), "max_agee") {
		t.Fatalf("err = %v, want one naming the unknown field max_agee", err)
	}
}

// TestApplyTurnsOnSchedulesOnAnOldJobsStream upgrades JOBS as earlier
// releases created it (discard new, jobs.> only, no schedules) in place:
// the jobs it holds stay, and it then takes message schedules.
func TestApplyTurnsOnSchedulesOnAnOldJobsStream(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	old := jetstream.StreamConfig{
		Name: streams.Jobs, Subjects: []string{"jobs.>"}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew, MaxMsgs: -1, MaxBytes: -1,
		Duplicates: 2 * time.Minute, MaxMsgSize: 524288, MaxConsumers: -1,
	}
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "jobs.acme.live.t", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	s, err := natsx.ApplyStream(ctx, js, streams.Stream(streams.Jobs), nil, natstest.Logger(t))
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	c := s.CachedInfo().Config
	if !c.AllowMsgSchedules || c.Discard != jetstream.DiscardOld || !slices.Contains(c.Subjects, "sched.>") {
		t.Fatalf("after the upgrade: schedules %v, discard %v, subjects %v", c.AllowMsgSchedules, c.Discard, c.Subjects)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("%d jobs after the upgrade, want the 1 before it", n)
	}
	at := time.Now().Add(300 * time.Millisecond)
	if _, err := js.Publish(ctx, "sched.job.acme.live.t.~.x", []byte("{}"),
		jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget("jobs.acme.live.t")); err != nil {
		t.Fatalf("publish a schedule after the upgrade: %v", err)
	}
}
