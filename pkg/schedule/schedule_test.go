package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/schedule"
	"github.com/switchyard-io/switchyard/pkg/worker"
)

type bundle struct {
	srv   *natstest.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	store *schedule.Store

	mu        sync.Mutex
	published []string // job ids in the order they were published
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{srv: natstest.Start(t)}
	b.nc, b.js = b.srv.Connect(t)
	b.srv.ApplyStreams(t, b.js)
	b.store = schedule.NewStore(b.js)
	// Every publish of a job, whether the stream keeps it or drops it as
	// a duplicate: a firing expanded twice shows here.
	_, err := b.nc.Subscribe("jobs.>", func(m *nats.Msg) {
		b.mu.Lock()
		b.published = append(b.published, m.Header.Get(jetstream.MsgIDHeader))
		b.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *bundle) ids() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.published)
}

func (b *bundle) expander(t *testing.T) *schedule.Expander {
	t.Helper()
	e := schedule.NewExpander(b.js, natstest.Logger(t))
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

func waitFor(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ping() *schedule.Template {
	return &schedule.Template{Provider: "acme", Task: "ping", Request: schedule.RequestTemplate{Method: "POST", Path: "/ping", Body: map[string]any{"n": 1}}}
}

// ticks parses the tick of each id and checks that no tick repeats.
func ticks(t *testing.T, name string, ids []string) []time.Time {
	t.Helper()
	var out []time.Time
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("job %s published twice: one firing expanded twice", id)
		}
		seen[id] = true
		tick, err := time.Parse(schedule.Tick, strings.TrimPrefix(id, name+":"))
		if err != nil {
			t.Fatalf("job id %q is not %s:<tick>", id, name)
		}
		out = append(out, tick)
	}
	return out
}

// TestPeriodicScheduleFiresOncePerTickWithTwoReplicas runs two worker
// replicas, each with its expander, on an "@every 1s" schedule, across a
// server restart: every tick makes one job, called once.
func TestPeriodicScheduleFiresOncePerTickWithTwoReplicas(t *testing.T) {
	b := setup(t)
	api := mockapi.New(mockapi.Config{})
	hs := httptest.NewServer(api)
	t.Cleanup(hs.Close)
	for _, id := range []string{"w1", "w2"} {
		ps, err := provider.NewAll(map[string]provider.Config{"acme": {BaseURL: hs.URL, AllowPrivateNetwork: true, Concurrency: 10, Timeout: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		w, err := worker.New(b.js, worker.Config{ID: id, FetchMaxWait: 200 * time.Millisecond}, ps, natstest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Stop(context.Background()) })
		b.expander(t)
	}
	wrote, err := b.store.Put(t.Context(), "beat", schedule.Config{Every: time.Second, Job: ping()}, schedule.OriginCLI)
	if err != nil || !wrote {
		t.Fatalf("Put = %v, %v", wrote, err)
	}
	called := func(n int) func() (bool, string) {
		return func() (bool, string) {
			got := api.Stats().Requests
			return got >= int64(n), fmt.Sprintf("%d calls, want %d", got, n)
		}
	}
	waitFor(t, 10*time.Second, called(3))
	b.srv.Restart()
	before := api.Stats().Requests
	waitFor(t, 10*time.Second, called(int(before)+2))
	ids := b.ids()
	ts := ticks(t, "beat", ids)
	for i := 1; i < len(ts); i++ {
		if gap := ts[i].Sub(ts[i-1]); gap < time.Second {
			t.Errorf("ticks %s and %s only %s apart", ts[i-1], ts[i], gap)
		}
	}
	if d := api.Duplicates(); d != 0 {
		t.Errorf("%d jobs called twice", d)
	}
	for _, id := range ids {
		if n := api.Calls(id); n > 1 {
			t.Errorf("%s called %d times", id, n)
		}
	}
	t.Logf("%d firings: %v", len(ids), ids)
}

func TestBatchScheduleDeclaresEachFiringsBatch(t *testing.T) {
	b := setup(t)
	b.expander(t)
	two := []schedule.Template{*ping(), *ping()}
	two[1].Task = "pong"
	two[1].Request.Path = "/pong/{{date}}"
	two[1].Meta = map[string]any{"tick": "{{tick}}", "schedule": "{{name}}"}
	if _, err := b.store.Put(t.Context(), "nightly", schedule.Config{Cron: "* * * * * *", Timezone: "Europe/Paris", Lane: job.LaneBulk, Jobs: two}, schedule.OriginConfig); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		n := len(b.ids())
		return n >= 2, fmt.Sprintf("%d jobs published", n)
	})
	ids := b.ids()[:2]
	slices.Sort(ids)
	tick, err := time.Parse(schedule.Tick, strings.TrimSuffix(strings.TrimPrefix(ids[0], "nightly:"), ":1"))
	if err != nil || ids[1] != schedule.JobID("nightly", tick, 2) {
		t.Fatalf("ids %v, want nightly:<tick>:1 and :2", ids)
	}
	reg, err := batch.Open(t.Context(), b.js)
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := reg.Get(t.Context(), schedule.BatchID("nightly", tick))
	if err != nil || d.Expected != 2 {
		t.Fatalf("batch declaration %+v, %v; want 2 jobs", d, err)
	}
	st, _ := b.js.Stream(t.Context(), "JOBS")
	m, err := st.GetLastMsgForSubject(t.Context(), "jobs.acme.bulk.pong")
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := job.Parse(m.Subject, m.Data)
	if err != nil || j.Batch != schedule.BatchID("nightly", tick) {
		t.Fatalf("job %s (%v), want batch %s", m.Data, err, schedule.BatchID("nightly", tick))
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	if want := "/pong/" + tick.In(paris).Format(time.DateOnly); j.Request.Path != want {
		t.Errorf("path %s, want the placeholder filled: %s", j.Request.Path, want)
	}
	if want := `{"schedule":"nightly","tick":"` + tick.Format(time.RFC3339) + `"}`; string(j.Meta) != want {
		t.Errorf("meta %s, want %s", j.Meta, want)
	}
}

// Firings stored while no worker ran collapse into the latest, like the
// ticks the server itself missed.
func TestFiringsQueuedWithoutWorkersCollapseIntoOne(t *testing.T) {
	b := setup(t)
	if _, err := b.store.Put(t.Context(), "beat", schedule.Config{Every: time.Second, Job: ping()}, schedule.OriginCLI); err != nil {
		t.Fatal(err)
	}
	st, _ := b.js.Stream(t.Context(), "JOBS")
	waitFor(t, 5*time.Second, func() (bool, string) {
		info, err := st.Info(t.Context(), jetstream.WithSubjectFilter("sched.fire.beat"))
		if err != nil {
			t.Fatal(err)
		}
		n := info.State.Subjects["sched.fire.beat"]
		return n >= 2, fmt.Sprintf("%d firings queued", n)
	})
	if err := b.store.Remove(t.Context(), "beat"); err != nil {
		t.Fatal(err)
	}
	b.expander(t)
	waitFor(t, 5*time.Second, func() (bool, string) {
		info, err := st.Info(t.Context(), jetstream.WithSubjectFilter("sched.>"))
		if err != nil {
			t.Fatal(err)
		}
		return len(info.State.Subjects) == 0, fmt.Sprintf("firings left: %v", info.State.Subjects)
	})
	if ids := b.ids(); len(ids) != 1 {
		t.Errorf("%d jobs from the queued firings, want 1: %v", len(ids), ids)
	}
}

func TestStoreLeavesAnUnchangedScheduleAlone(t *testing.T) {
	b := setup(t)
	ctx := t.Context()
	cfg := map[string]schedule.Config{"daily": {Cron: "0 4 * * *", Timezone: "America/New_York", Job: ping()}}
	if err := b.store.Apply(ctx, cfg, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	first, err := b.store.Get(ctx, "daily")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.store.Apply(ctx, cfg, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	again, err := b.store.Get(ctx, "daily")
	if err != nil || !again.UpdatedAt.Equal(first.UpdatedAt) {
		t.Fatalf("applying the same schedule again rewrote it (%v)", err)
	}
	if first.Pattern() != "0 0 4 * * *" || first.Origin != schedule.OriginConfig {
		t.Errorf("stored %+v", first)
	}
	st, _ := b.js.Stream(ctx, "JOBS")
	m, err := st.GetLastMsgForSubject(ctx, "sched.cron.daily")
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Nats-Schedule-Time-Zone") != "America/New_York" || m.Header.Get("Nats-Schedule-Target") != "sched.fire.daily" {
		t.Errorf("schedule headers %v", m.Header)
	}
	var back schedule.Spec
	if err := json.Unmarshal(m.Data, &back); err != nil || back.Job == nil || back.Job.Provider != "acme" {
		t.Errorf("stored spec %s (%v)", m.Data, err)
	}
	list, err := b.store.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "daily" {
		t.Fatalf("List = %v, %v", list, err)
	}
	if err := b.store.Remove(ctx, "daily"); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Remove(ctx, "daily"); !errors.Is(err, schedule.ErrNotFound) {
		t.Errorf("removing it twice: %v, want ErrNotFound", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     schedule.Config
		wantErr string
	}{
		{"cron", schedule.Config{Cron: "0 0 4 * * *", Job: ping()}, ""},
		{"crontab", schedule.Config{Cron: "0 4 * * 1-5", Timezone: "Europe/Paris", Job: ping()}, ""},
		{"daily", schedule.Config{Cron: "@daily", Job: ping()}, ""},
		{"neither", schedule.Config{Job: ping()}, "exactly one of cron and every"},
		{"both", schedule.Config{Cron: "@daily", Every: time.Hour, Job: ping()}, "exactly one of cron and every"},
		{"sub-second", schedule.Config{Every: 500 * time.Millisecond, Job: ping()}, "every"},
		{"zone with every", schedule.Config{Every: time.Hour, Timezone: "UTC", Job: ping()}, "timezone"},
		{"bad zone", schedule.Config{Cron: "@daily", Timezone: "Mars/Olympus", Job: ping()}, "timezone"},
		{"fields", schedule.Config{Cron: "0 4 * *", Job: ping()}, "cron"},
		{"no job", schedule.Config{Cron: "@daily"}, "exactly one of job"},
		{"bad job", schedule.Config{Cron: "@daily", Job: &schedule.Template{Provider: "acme", Task: "x", Request: schedule.RequestTemplate{Path: "http://evil"}}}, "request.path"},
		{"bad lane", schedule.Config{Cron: "@daily", Lane: "fast", Job: ping()}, "lane"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
