package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/cancel"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/producer"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

func (b *bundle) producer(t *testing.T) *producer.Producer {
	t.Helper()
	p, err := producer.New(b.js.Conn(), producer.WithLogger(natstest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// schedules counts the delayed-job schedules in JOBS.
func (b *bundle) schedules(t *testing.T) int {
	t.Helper()
	s, err := b.js.Stream(context.Background(), streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstreamSubjects(job.DelayFilter))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// checkOnTime checks that a delayed job was called once, on its first
// attempt, at its not_before or within a second after it.
func (b *bundle) checkOnTime(t *testing.T, id string, due time.Time) {
	t.Helper()
	row := b.waitFinal(t, 15*time.Second, id)[id]
	if row.Status != job.StatusSucceeded || row.Attempts != 1 || row.Attempt != 1 || b.api.Calls(id) != 1 {
		t.Fatalf("%s: status %s, attempt %d of %d, %d calls; want succeeded on its first attempt, called once",
			id, row.Status, row.Attempt, row.Attempts, b.api.Calls(id))
	}
	late := row.StartedAt.Sub(due)
	t.Logf("%s called %s after its not_before", id, late)
	if late < 0 || late > time.Second {
		t.Errorf("%s called at %s, %s from its not_before %s; want within [0, 1s]", id, row.StartedAt.Format(time.RFC3339Nano), late, due.Format(time.RFC3339Nano))
	}
}

func TestDelayedJobFiresOnTimeAsAScheduleAndSpendsNoAttempt(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})
	p := b.producer(t)
	due := time.Now().Add(1500 * time.Millisecond)
	res, err := p.Enqueue(t.Context(), newJob("later", "acme", "charge", "/charge"), producer.NotBefore(due), producer.MaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	if want := "sched.job.acme.live.charge.b1.later"; res.Subject != want {
		t.Fatalf("stored on %s, want the schedule subject %s", res.Subject, want)
	}
	// The same job again (a producer's retry, a re-run): still one schedule.
	again, err := p.Enqueue(t.Context(), newJob("later", "acme", "charge", "/charge"), producer.NotBefore(due), producer.MaxAttempts(1))
	if err != nil || !again.Duplicate {
		t.Errorf("enqueueing it again: %+v, %v; want a duplicate", again, err)
	}
	if n := b.schedules(t); n != 1 {
		t.Fatalf("%d schedules in JOBS, want 1", n)
	}
	if b.api.Calls("later") != 0 {
		t.Fatal("called before its not_before")
	}
	b.checkOnTime(t, "later", due)
	if n := b.schedules(t); n != 0 {
		t.Errorf("%d schedules left after firing, want 0", n)
	}
}

func TestDelayedJobSurvivesAServerRestart(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})
	p := b.producer(t)
	due := time.Now().Add(2 * time.Second)
	if _, err := p.Enqueue(t.Context(), newJob("reboot", "acme", "charge", "/charge"), producer.NotBefore(due)); err != nil {
		t.Fatal(err)
	}
	b.nats.Restart()
	if time.Now().After(due) {
		t.Fatal("the restart took past the job's not_before; the test proves nothing")
	}
	b.checkOnTime(t, "reboot", due)
}

// A job published straight on its jobs subject (nats pub) with a
// not_before ahead is turned into a schedule by the worker, not naked
// until then.
func TestJobPublishedStraightBeforeItsNotBeforeBecomesASchedule(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})
	j := newJob("raw.later", "acme", "charge", "/charge")
	due := time.Now().Add(1500 * time.Millisecond)
	j.NotBefore, j.MaxAttempts = &due, 1
	b.publish(t, j, job.LaneLive)
	waitFor(t, time.Second, func() (bool, string) {
		n := b.schedules(t)
		return n == 1, fmt.Sprintf("%d schedules, want the job's", n)
	})
	if b.api.Calls("raw.later") != 0 {
		t.Fatal("called before its not_before")
	}
	b.checkOnTime(t, "raw.later", due)
}

func TestCancelledJobsAreRecordedAndNeverCalled(t *testing.T) {
	b := setup(t, mockapi.Config{})
	// Two calls a second for the fleet, so most jobs are still queued when
	// they are cancelled.
	cfg := map[string]provider.Config{"acme": b.provider(b.url, func(c *provider.Config) {
		c.RateLimit = provider.RateLimit{Rate: 2, Burst: 1}
	})}
	b.startWorker(t, worker.Config{ID: "w1"}, cfg)
	b.startWorker(t, worker.Config{ID: "w2"}, cfg)
	var ids, doomed []string
	for i := range 30 {
		j := newJob(fmt.Sprintf("c%02d", i), "acme", "charge", "/charge")
		j.Batch = "nightly"
		if i%10 == 0 {
			j.Batch = "keep"
		}
		ids = append(ids, j.ID)
		b.publish(t, j, job.LaneBulk)
	}
	reg, err := cancel.Open(t.Context(), b.js)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := reg.Batch(t.Context(), "nightly", "test"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c10", "c20"} { // of batch keep
		if _, err := reg.Job(t.Context(), id, "test"); err != nil {
			t.Fatal(err)
		}
		doomed = append(doomed, id)
	}
	rows := b.waitFinal(t, 15*time.Second, ids...)
	took := time.Since(start)
	cancelled := 0
	for id, row := range rows {
		calls := b.api.Calls(id)
		switch row.Status {
		case job.StatusCancelled:
			cancelled++
			if calls != 0 {
				t.Errorf("%s recorded cancelled but called %d times", id, calls)
			}
		case job.StatusSucceeded:
			if calls != 1 {
				t.Errorf("%s succeeded with %d calls", id, calls)
			}
		default:
			t.Errorf("%s: status %s", id, row.Status)
		}
	}
	for _, id := range doomed {
		// Cancelled, unless its call had started before the cancel.
		if rows[id].Status != job.StatusCancelled && b.api.Calls(id) == 0 {
			t.Errorf("%s is %s, want cancelled", id, rows[id].Status)
		}
	}
	if rows["c00"].Status != job.StatusSucceeded {
		t.Errorf("c00, in no cancelled batch, is %s", rows["c00"].Status)
	}
	t.Logf("%d of 30 cancelled, all settled %s after the cancel", cancelled, took)
	// At 2 calls/s, 30 jobs take 15 s; cancelled ones must not wait
	// for the rate limit.
	if cancelled < 20 {
		t.Errorf("only %d jobs cancelled; the rate limit should have kept most queued", cancelled)
	}
	if took > 6*time.Second {
		t.Errorf("cancelled jobs took %s to settle: they waited for the rate limit", took)
	}
}

func TestCancelledDelayedJobsNeverFire(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{ID: "w1"}, map[string]provider.Config{"acme": b.provider(b.url)})
	b.startWorker(t, worker.Config{ID: "w2"}, map[string]provider.Config{"acme": b.provider(b.url)})
	p := b.producer(t)
	due := time.Now().Add(time.Second)
	for _, j := range []struct{ id, batch string }{{"d1", "b1"}, {"d2", "gone"}, {"d3", "gone"}, {"d4", "b1"}} {
		nj := newJob(j.id, "acme", "charge", "/charge")
		nj.Batch = j.batch
		if _, err := p.Enqueue(t.Context(), nj, producer.NotBefore(due)); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := cancel.Open(t.Context(), b.js)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Job(t.Context(), "d5", ""); err != nil {
		t.Fatal(err)
	}
	n1, err := reg.Job(t.Context(), "d1", "")
	if err != nil {
		t.Fatal(err)
	}
	n2, err := reg.Batch(t.Context(), "gone", "")
	if err != nil {
		t.Fatal(err)
	}
	if n1 != 1 || n2 != 2 {
		t.Errorf("cancel purged %d and %d schedules, want 1 and 2", n1, n2)
	}
	// Published straight on its subject, due in an hour, cancelled (above,
	// first, so every watcher has the tombstone by now): the worker
	// records it cancelled at once instead of holding it.
	raw := newJob("d5", "acme", "charge", "/charge")
	later := time.Now().Add(time.Hour)
	raw.NotBefore = &later
	b.publish(t, raw, job.LaneLive)
	if row := b.waitFinal(t, 5*time.Second, "d5")["d5"]; row.Status != job.StatusCancelled {
		t.Errorf("d5 is %s, want cancelled", row.Status)
	}
	b.checkOnTime(t, "d4", due)
	// d4 fired; the others were due with it. Give them the time a firing
	// takes to be recorded (d4's), twice over.
	time.Sleep(500 * time.Millisecond)
	for _, id := range []string{"d1", "d2", "d3"} {
		if _, err := b.store.Job(context.Background(), id); err == nil || b.api.Calls(id) != 0 {
			t.Errorf("cancelled delayed job %s fired (%d calls)", id, b.api.Calls(id))
		}
	}
	if n := b.schedules(t); n != 0 {
		t.Errorf("%d schedules left", n)
	}
}

func jetstreamSubjects(filter string) jetstream.StreamInfoOpt {
	return jetstream.WithSubjectFilter(filter)
}

// On a JOBS stream that refuses schedules (an old server, or a stream not
// upgraded yet; once on, schedules cannot be turned off), a job before its
// not_before waits out the delay in one nak, which is not counted as an
// attempt.
func TestNotBeforeWithoutSchedulesFallsBackToOneNak(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := t.Context()
	var old jetstream.StreamConfig
	if err := json.Unmarshal(streams.Stream(streams.Jobs), &old); err != nil {
		t.Fatal(err)
	}
	old.AllowMsgSchedules, old.Discard, old.Subjects = false, jetstream.DiscardNew, []string{"jobs.>"}
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{streams.Results, streams.DLQ, streams.Events} {
		if _, err := natsx.ApplyStream(ctx, js, streams.Stream(name), nil, natstest.Logger(t)); err != nil {
			t.Fatal(err)
		}
	}
	api := mockapi.New(mockapi.Config{})
	hs := httptest.NewServer(api)
	t.Cleanup(hs.Close)
	b := &bundle{nats: srv, js: js, api: api, url: hs.URL}
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})
	results, err := js.CreateOrUpdateConsumer(ctx, streams.Results, jetstream.ConsumerConfig{FilterSubject: "results.acme.charge"})
	if err != nil {
		t.Fatal(err)
	}

	j := newJob("no-sched", "acme", "charge", "/charge")
	due := time.Now().Add(time.Second)
	j.NotBefore, j.MaxAttempts = &due, 1
	b.publish(t, j, job.LaneLive)
	m, err := results.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var r job.Result
	if err := json.Unmarshal(m.Data(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != job.StatusSucceeded || r.Attempt != 1 || api.Calls("no-sched") != 1 {
		t.Fatalf("status %s at attempt %d, %d calls; want succeeded at attempt 1, called once", r.Status, r.Attempt, api.Calls("no-sched"))
	}
	if late := r.StartedAt.Sub(due); late < 0 || late > time.Second {
		t.Errorf("called %s from its not_before", late)
	}
}
