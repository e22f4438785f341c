package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/gateway"
	"github.com/switchyard-io/switchyard/streams"
)

// await waits for one value on ch.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not within 30s", what)
	}
	var zero T
	return zero
}

// sendAsync posts the NDJSON read from body in the background.
func sendAsync(t *testing.T, b *bundle, body io.Reader) <-chan answer {
	answers := make(chan answer, 1)
	ctx := testContext(t)
	go func() {
		a, err := b.send(ctx, http.MethodPost, "/v1/jobs", "application/x-ndjson", body)
		if err != nil {
			a = answer{body: []byte(err.Error())}
		}
		answers <- a
	}()
	return answers
}

// unavailable checks a 503 answer tells callers when to come back.
func unavailable(t *testing.T, a answer) *gateway.Problem {
	t.Helper()
	p := problem(t, a, http.StatusServiceUnavailable)
	if got := a.header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After = %q, want 5", got)
	}
	return p
}

// TestStreamFull: a full stream that discards new messages stores what it
// has room for, and the rest is a 503 listing every job's outcome.
func TestStreamFull(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{cfg: func(c *gateway.Config) { c.Window = 1 }, jobs: &jetstream.StreamConfig{
		Name: streams.Jobs, Subjects: []string{"jobs.>"}, Retention: jetstream.WorkQueuePolicy,
		MaxMsgs: 3, Discard: jetstream.DiscardNew, Duplicates: 2 * time.Minute,
	}})
	accepted(t, b.postJSON(t, "/v1/jobs", envelope(`"id": "f-1"`)))

	p := unavailable(t, b.postJSON(t, "/v1/jobs", "["+envelope(`"id": "f-2"`)+","+envelope(`"id": "f-3"`)+","+envelope(`"id": "f-4"`)+"]"))
	if len(p.Jobs) != 3 || p.Jobs[0].Status != gateway.StatusStored || p.Jobs[1].Status != gateway.StatusStored ||
		p.Jobs[2].Status != gateway.StatusUnavailable || p.Jobs[2].ID != "f-4" || !strings.Contains(p.Jobs[2].Error, "stream full") {
		t.Fatalf("jobs %+v, want f-2 and f-3 stored, f-4 unavailable: stream full", p.Jobs)
	}
	if !strings.Contains(p.Detail, "1 of 3 jobs was not stored") {
		t.Errorf("detail %q", p.Detail)
	}

	// A stream stops at its first job the stream has no room for.
	p = unavailable(t, b.postNDJSON(t, "/v1/jobs", envelope(`"id": "f-2"`)+"\n\n"+envelope(`"id": "f-5"`)+"\n"+envelope(`"id": "f-6"`)+"\n"+envelope(`"id": "f-7"`)+"\n"))
	rep := p.StreamReport
	if rep == nil || rep.Duplicates != 1 || rep.Stored != 0 || rep.ResumeLine != 3 || len(rep.Errors) == 0 ||
		rep.Errors[0].Line != 3 || rep.Errors[0].ID != "f-5" || rep.Errors[0].Status != gateway.StatusUnavailable || rep.Lines == 5 {
		t.Fatalf("report %+v, want line 1 a duplicate, stopped at line 3", rep)
	}
	if n := streamMsgs(t, b.js); n != 3 {
		t.Fatalf("stream holds %d jobs, want 3", n)
	}
}

// TestNoStream: JetStream that does not answer for the subject is a 503
// once the publish timeout has passed, and /readyz says why.
func TestNoStream(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{noStreams: true, cfg: func(c *gateway.Config) { c.PublishTimeout = 300 * time.Millisecond }})
	p := unavailable(t, b.postJSON(t, "/v1/jobs", envelope(`"id": "x-1"`)))
	if len(p.Jobs) != 1 || p.Jobs[0].Status != gateway.StatusUnavailable || !strings.Contains(p.Jobs[0].Error, "JetStream unavailable") {
		t.Errorf("jobs %+v", p.Jobs)
	}
	p = unavailable(t, b.postNDJSON(t, "/v1/jobs", envelope()+"\n"))
	if p.StreamReport == nil || p.ResumeLine != 1 {
		t.Errorf("stream: %+v", p.StreamReport)
	}
	p = problem(t, b.do(t, http.MethodGet, "/readyz", "", nil), http.StatusServiceUnavailable)
	if p.Detail != "not ready: the JOBS stream does not answer" {
		t.Errorf("readyz: %+v", p)
	}
}

// TestNATSDown: while the server is down every request is a 503 at once,
// and nothing stored before is lost: after a restart the job refused is
// taken, and the one stored before is still there, its id deduplicated.
func TestNATSDown(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	accepted(t, b.postJSON(t, "/v1/jobs", envelope(`"id": "before"`)))

	down := b.nc.StatusChanged(nats.RECONNECTING)
	b.srv.Stop()
	await(t, down, "disconnected")
	p := unavailable(t, b.postJSON(t, "/v1/jobs", envelope(`"id": "during"`)))
	if !strings.Contains(p.Detail, "not connected to NATS") || len(p.Jobs) != 0 {
		t.Errorf("problem %+v", p)
	}
	unavailable(t, b.postNDJSON(t, "/v1/jobs", envelope(`"id": "during"`)+"\n"))
	p = problem(t, b.do(t, http.MethodGet, "/readyz", "", nil), http.StatusServiceUnavailable)
	if p.Detail != "not ready: not connected to NATS" {
		t.Errorf("readyz: %+v", p)
	}

	up := b.nc.StatusChanged(nats.CONNECTED)
	b.srv.Restart()
	await(t, up, "reconnected")
	acc := accepted(t, b.postJSON(t, "/v1/jobs", "["+envelope(`"id": "during"`)+","+envelope(`"id": "before"`)+"]"))
	if acc.Jobs[0].Status != gateway.StatusStored || acc.Jobs[1].Status != gateway.StatusDuplicate {
		t.Errorf("after the restart: %+v, want during stored and before a duplicate", acc.Jobs)
	}
	if n := streamMsgs(t, b.js); n != 2 {
		t.Fatalf("stream holds %d jobs, want 2", n)
	}
	if a := b.do(t, http.MethodGet, "/readyz", "", nil); a.status != http.StatusOK {
		t.Errorf("readyz after the restart: %s", a)
	}
}

// TestNATSDownMidStream: the server goes away in the middle of an NDJSON
// stream; the stream is answered 503 with the line to resume from, and
// sending the rest from it after the restart leaves every job stored
// exactly once.
func TestNATSDownMidStream(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{cfg: func(c *gateway.Config) { c.PublishTimeout, c.Window = 500*time.Millisecond, 32 }})
	line := func(i int) string { return envelope(fmt.Sprintf(`"id": "s-%d"`, i)) + "\n" }
	published, err := b.nc.SubscribeSync("jobs.>")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	answers := sendAsync(t, b, pr)
	for i := 1; i <= 5; i++ {
		if _, err := io.WriteString(pw, line(i)); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		if _, err := published.NextMsg(30 * time.Second); err != nil {
			t.Fatalf("the first lines were not published: %v", err)
		}
	}
	down := b.nc.StatusChanged(nats.RECONNECTING)
	b.srv.Stop()
	await(t, down, "disconnected")
	for i := 6; i <= 10; i++ {
		if _, err := io.WriteString(pw, line(i)); err != nil {
			t.Fatal(err)
		}
	}
	pw.Close()
	p := unavailable(t, await(t, answers, "the answer"))
	rep := p.StreamReport
	if rep == nil || rep.ResumeLine < 1 || rep.ResumeLine > 10 || rep.Lines > 10 {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("stopped with %+v", *rep)

	up := b.nc.StatusChanged(nats.CONNECTED)
	b.srv.Restart()
	await(t, up, "reconnected")
	var rest strings.Builder
	for i := rep.ResumeLine; i <= 10; i++ {
		rest.WriteString(line(i))
	}
	again := report(t, b.postNDJSON(t, "/v1/jobs", rest.String()))
	if again.Failed != 0 || again.Stored+again.Duplicates != 10-rep.ResumeLine+1 {
		t.Fatalf("the rest: %+v", again)
	}
	if n := streamMsgs(t, b.js); n != 10 {
		t.Fatalf("stream holds %d jobs, want all 10 exactly once", n)
	}
}

// TestShutdownDrainsStreams: at shutdown an NDJSON stream stops at its
// next line, even while waiting on a slow client, and answers 503 with
// what it stored.
func TestShutdownDrainsStreams(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	published, err := b.nc.SubscribeSync("jobs.>")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	answers := sendAsync(t, b, pr)
	for i := 1; i <= 3; i++ {
		if _, err := io.WriteString(pw, envelope(fmt.Sprintf(`"id": "d-%d"`, i))+"\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := published.NextMsg(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// The stream now waits for its fourth line, which never comes.
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- b.gw.Shutdown(ctx)
	}()
	p := unavailable(t, await(t, answers, "the answer"))
	if rep := p.StreamReport; rep == nil || rep.Stored != 3 || rep.Lines != 3 || rep.ResumeLine != 4 || !strings.Contains(p.Detail, "shutting down") {
		t.Fatalf("problem %+v, report %+v", p, rep)
	}
	if err := await(t, stopped, "shutdown"); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
