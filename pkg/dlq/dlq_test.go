package dlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/dlq"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/streams"
)

type letter struct {
	id, provider, task, batch string
	reason                    job.Class
	noJob                     bool
}

// setup stores the letters in the DLQ as a worker would, and returns the
// time after the first half of them was stored.
func setup(t *testing.T, letters []letter) (jetstream.JetStream, *dlq.DLQ, time.Time) {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	var mid time.Time
	for i, l := range letters {
		if i == len(letters)/2 {
			mid = time.Now()
		}
		j, _ := json.Marshal(job.Job{V: 1, ID: l.id, Provider: l.provider, Task: l.task, Batch: l.batch,
			Request: job.Request{Path: "/x"}})
		dl := job.DeadLetter{V: 1, JobID: l.id, Provider: l.provider, Task: l.task, Batch: l.batch, Reason: l.reason,
			Attempts: 3, Subject: job.Subject(l.provider, job.LaneBulk, l.task), Job: j, DeadAt: time.Now().UTC()}
		if l.noJob {
			dl.Job = nil
		}
		data, _ := json.Marshal(dl)
		if _, err := js.Publish(context.Background(), job.DLQSubject(l.provider, l.task), data); err != nil {
			t.Fatal(err)
		}
	}
	q, err := dlq.Open(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	return js, q, mid
}

func ids(t *testing.T, q *dlq.DLQ, f dlq.Filter) []string {
	t.Helper()
	var got []string
	if err := q.List(context.Background(), f, func(e dlq.Entry) error { got = append(got, e.JobID); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestListFilters(t *testing.T) {
	_, q, mid := setup(t, []letter{
		{"a1", "acme", "charge", "b1", job.ClassHTTP5xx, false},
		{"a2", "acme", "refund", "b2", job.ClassHTTP4xx, false},
		{"g1", "globex", "charge", "b1", job.ClassTimeout, false},
		{"a3", "acme", "charge", "b2", job.ClassHTTP5xx, false},
		{"g2", "globex", "charge", "", job.ClassInvalid, false},
		{"a4", "acme", "charge", "b1", job.ClassNetwork, false},
	})
	for _, tt := range []struct {
		name string
		f    dlq.Filter
		want []string
	}{
		{"all", dlq.Filter{}, []string{"a1", "a2", "g1", "a3", "g2", "a4"}},
		{"provider", dlq.Filter{Provider: "acme"}, []string{"a1", "a2", "a3", "a4"}},
		{"task", dlq.Filter{Task: "charge"}, []string{"a1", "g1", "a3", "g2", "a4"}},
		{"batch", dlq.Filter{Batch: "b1"}, []string{"a1", "g1", "a4"}},
		{"classes", dlq.Filter{Classes: []job.Class{job.ClassHTTP5xx, job.ClassTimeout}}, []string{"a1", "g1", "a3"}},
		{"since", dlq.Filter{Since: mid}, []string{"a3", "g2", "a4"}},
		{"until", dlq.Filter{Until: mid}, []string{"a1", "a2", "g1"}},
		{"job", dlq.Filter{JobID: "g2"}, []string{"g2"}},
		{"limit", dlq.Filter{Provider: "acme", Limit: 2}, []string{"a1", "a2"}},
		{"no match", dlq.Filter{Provider: "initech"}, nil},
		{"since after the last", dlq.Filter{Since: time.Now().Add(time.Minute)}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids(t, q, tt.f); !slices.Equal(got, tt.want) {
				t.Fatalf("List = %v, want %v", got, tt.want)
			}
		})
	}
	if err := q.List(context.Background(), dlq.Filter{Provider: "Acme!"}, func(dlq.Entry) error { return nil }); err == nil {
		t.Fatal("List with a bad provider: no error")
	}
	e, err := q.Get(context.Background(), 3)
	if err != nil || e.JobID != "g1" || e.Seq != 3 || e.StoredAt.IsZero() {
		t.Fatalf("Get(3) = %+v, %v; want g1", e, err)
	}
	if _, err := q.Get(context.Background(), 99); !errors.Is(err, dlq.ErrNotFound) {
		t.Fatalf("Get(99) = %v, want ErrNotFound", err)
	}
}

func TestReplay(t *testing.T) {
	var letters []letter
	for i := range 5 {
		letters = append(letters, letter{fmt.Sprintf("r%d", i), "acme", "charge", "b1", job.ClassHTTP5xx, false})
	}
	letters = append(letters, letter{"big", "acme", "charge", "b1", job.ClassHTTP5xx, true})
	js, q, _ := setup(t, letters)
	ctx := context.Background()
	jobs, err := js.Stream(ctx, streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}

	// --keep, twice: the second run is deduplicated by the replay's id.
	var out []dlq.Replayed
	collect := func(r dlq.Replayed) { out = append(out, r) }
	start := time.Now()
	if err := q.Replay(ctx, dlq.Filter{}, dlq.ReplayOptions{Rate: 20, Keep: true}, collect); err != nil {
		t.Fatal(err)
	}
	// Five publishes 50 ms apart: the first at once, the fifth at 200 ms.
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("5 replays at 20/s took %s, want at least 200ms", took)
	}
	if len(out) != 6 || out[5].Err == "" || out[0].Duplicate || out[0].Deleted || out[0].JobsSeq == 0 {
		t.Fatalf("first replay = %+v, want 5 stored and kept, the one without a job skipped", out)
	}
	m, err := jobs.GetMsg(ctx, out[0].JobsSeq)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "jobs.acme.bulk.charge" || m.Header.Get(nats.MsgIdHdr) != "r0:replay:1" ||
		m.Header.Get(job.HeaderPriorAttempts) != "3" || m.Header.Get(job.HeaderReplayOf) != "DLQ:1" {
		t.Fatalf("replayed message %s %v", m.Subject, m.Header)
	}
	out = nil
	if err := q.Replay(ctx, dlq.Filter{}, dlq.ReplayOptions{}, collect); err != nil {
		t.Fatal(err)
	}
	if len(out) != 6 || !out[0].Duplicate || !out[0].Deleted {
		t.Fatalf("second replay = %+v, want duplicates, deleted", out)
	}
	info, _ := jobs.Info(ctx)
	if info.State.Msgs != 5 {
		t.Fatalf("JOBS holds %d messages, want 5", info.State.Msgs)
	}
	if left := ids(t, q, dlq.Filter{}); !slices.Equal(left, []string{"big"}) {
		t.Fatalf("DLQ after replay holds %v, want only the entry that cannot be replayed", left)
	}
}
