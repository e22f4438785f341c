package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/producer"
	"github.com/switchyard-io/switchyard/streams"
)

// bundle is what setup starts: a server with the Switchyard streams, a
// connection, and a producer on it with quick retries.
type bundle struct {
	srv *natstest.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	p   *producer.Producer
}

func setup(t *testing.T, opts ...producer.Option) *bundle {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	return &bundle{srv: srv, nc: nc, js: js, p: newProducer(t, nc, opts...)}
}

func newProducer(t *testing.T, nc *nats.Conn, opts ...producer.Option) *producer.Producer {
	t.Helper()
	opts = append([]producer.Option{producer.WithBackoff(time.Millisecond, 20*time.Millisecond), producer.WithLogger(natstest.Logger(t))}, opts...)
	p, err := producer.New(nc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// streamMsgs is how many messages JOBS holds.
func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func invoice() *job.Job {
	return producer.NewJob("acme", "create_invoice", "POST", "/v1/invoices")
}

func TestEnqueueStoresTheJobOnce(t *testing.T) {
	t.Parallel()
	// A day ahead of the server's clock, so that the delayed job's
	// schedule does not fire during the test.
	now := time.Now().UTC().Add(24 * time.Hour).Truncate(time.Second)
	b := setup(t, producer.WithNow(func() time.Time { return now }))
	ctx := testContext(t)

	j := invoice()
	j.Request.Headers = map[string]string{"X-Tenant": "42"}
	res, err := b.p.Enqueue(ctx, j,
		producer.Lane(job.LaneBulk), producer.Batch("nightly"), producer.MaxAttempts(7),
		producer.Delay(time.Hour), producer.ExpiresIn(3*time.Hour),
		producer.Body(map[string]int{"amount": 1200}), producer.Meta(map[string]int{"order": 981}),
		producer.Header("X-Request", "r1"), producer.Query("expand", "lines"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Subject != "sched.job.acme.bulk.create_invoice.nightly."+res.ID || res.Stream != streams.Jobs || res.Sequence != 1 || res.Duplicate || res.Attempts != 1 {
		t.Errorf("result %+v", res)
	}
	if u, err := uuid.Parse(res.ID); err != nil || u.Version() != 7 {
		t.Errorf("generated id %q is not a UUIDv7 (%v)", res.ID, err)
	}
	if j.ID != "" || len(j.Request.Headers) != 1 || j.Request.Query != nil {
		t.Errorf("Enqueue modified the caller's job: %+v", j)
	}

	if n := streamMsgs(t, b.js); n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
	s, err := b.js.Stream(ctx, streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetMsg(ctx, res.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get(jetstream.MsgIDHeader); got != res.ID {
		t.Errorf("Nats-Msg-Id %q, want the job id %q", got, res.ID)
	}
	// Delayed by an hour: stored as a schedule that fires on the job's subject.
	wantNB, wantEA := now.Add(time.Hour), now.Add(3*time.Hour)
	if got, want := raw.Header.Get("Nats-Schedule"), "@at "+wantNB.Format(time.RFC3339Nano); got != want {
		t.Errorf("Nats-Schedule %q, want %q", got, want)
	}
	if got := raw.Header.Get(job.HeaderJobID); got != res.ID {
		t.Errorf("%s %q, want the job id %q", job.HeaderJobID, got, res.ID)
	}
	got, addr, err := job.Parse(raw.Header.Get("Nats-Schedule-Target"), raw.Data)
	if err != nil {
		t.Fatalf("stored job does not parse: %v\n%s", err, raw.Data)
	}
	if got.ID != res.ID || addr.Lane != job.LaneBulk || got.Batch != "nightly" || got.MaxAttempts != 7 ||
		got.NotBefore == nil || !got.NotBefore.Equal(wantNB) || got.ExpiresAt == nil || !got.ExpiresAt.Equal(wantEA) ||
		string(got.Request.Body) != `{"amount":1200}` || string(got.Meta) != `{"order":981}` ||
		got.Request.Headers["X-Tenant"] != "42" || got.Request.Headers["X-Request"] != "r1" ||
		strings.Join(got.Request.Query["expand"], ",") != "lines" {
		t.Errorf("stored job %s", raw.Data)
	}
}

func TestEnqueueDropsRepeats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testContext(t)

	first, err := b.p.Enqueue(ctx, invoice(), producer.ID("order-981"))
	if err != nil || first.Duplicate {
		t.Fatalf("first enqueue: %+v, %v", first, err)
	}
	again, err := b.p.Enqueue(ctx, invoice(), producer.ID("order-981"), producer.Lane(job.LaneBulk))
	if err != nil || !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("repeat: %+v, %v; want a duplicate of sequence %d", again, err, first.Sequence)
	}

	// Content ids: the same job gets the same id, another job another.
	a1, err := b.p.Enqueue(ctx, invoice(), producer.IDFromContent("c-"), producer.Body(map[string]int{"amount": 1}))
	if err != nil || a1.Duplicate || !strings.HasPrefix(a1.ID, "c-") {
		t.Fatalf("content id: %+v, %v", a1, err)
	}
	a2, err := b.p.Enqueue(ctx, invoice(), producer.IDFromContent("c-"), producer.Body(map[string]int{"amount": 1}))
	if err != nil || !a2.Duplicate || a2.ID != a1.ID {
		t.Fatalf("same content: %+v, %v; want a duplicate with id %s", a2, err, a1.ID)
	}
	other, err := b.p.Enqueue(ctx, invoice(), producer.IDFromContent("c-"), producer.Body(map[string]int{"amount": 2}))
	if err != nil || other.Duplicate || other.ID == a1.ID {
		t.Fatalf("other content: %+v, %v", other, err)
	}
	if u, err := uuid.Parse(strings.TrimPrefix(a1.ID, "c-")); err != nil || u.Version() != 5 {
		t.Errorf("content id %q is not prefix + UUIDv5 (%v)", a1.ID, err)
	}
	if n := streamMsgs(t, b.js); n != 3 {
		t.Fatalf("stream holds %d messages, want 3", n)
	}
}

func TestInvalidJobsAreRejectedBeforePublish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testContext(t)
	// Anything published on a job subject would show up here, stored or not.
	sub, err := b.nc.SubscribeSync("jobs.>")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		job       *job.Job
		opts      []producer.JobOption
		wantField string
	}{
		{"nil job", nil, nil, "envelope"},
		{"bad provider", producer.NewJob("Acme", "t", "GET", "/"), nil, "provider"},
		{"bad task", producer.NewJob("acme", "a.b", "GET", "/"), nil, "task"},
		{"absolute URL", producer.NewJob("acme", "t", "GET", "https://evil.example/x"), nil, "request.path"},
		{"bad lane", invoice(), []producer.JobOption{producer.Lane("fast")}, "lane"},
		{"bad id", invoice(), []producer.JobOption{producer.ID("has space")}, "id"},
		{"bad batch", invoice(), []producer.JobOption{producer.Batch("a.b")}, "batch"},
		{"meta not an object", invoice(), []producer.JobOption{producer.Meta([]int{1})}, "meta"},
		{"meta not marshallable", invoice(), []producer.JobOption{producer.Meta(func() {})}, "meta"},
		{"max attempts", invoice(), []producer.JobOption{producer.MaxAttempts(1000)}, "max_attempts"},
		{"expires before start", invoice(), []producer.JobOption{producer.Delay(time.Hour), producer.ExpiresIn(time.Minute)}, "expires_at"},
		{"host header", invoice(), []producer.JobOption{producer.Header("Host", "evil.example")}, "request.headers.Host"},
		{"content id prefix", invoice(), []producer.JobOption{producer.IDFromContent("bad prefix ")}, "id"},
	}
	for _, tt := range tests {
		_, err := b.p.Enqueue(ctx, tt.job, tt.opts...)
		if !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), tt.wantField+":") {
			t.Errorf("%s: err = %v, want job.ErrInvalid naming %q", tt.name, err, tt.wantField)
		}
	}
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := sub.Pending(); n != 0 {
		t.Errorf("%d invalid jobs were published", n)
	}
}

func TestEnqueueHonoursACancelledContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.p.Enqueue(ctx, invoice()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := streamMsgs(t, b.js); n != 0 {
		t.Fatalf("stream holds %d messages, want 0", n)
	}
}

func TestTooLargeJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testContext(t)
	// Above JOBS's max_msg_size (512 KiB), within the server's max_payload:
	// the stream refuses it.
	big := json.RawMessage(`"` + strings.Repeat("x", 600<<10) + `"`)
	_, err := b.p.Enqueue(ctx, invoice(), producer.Body(big))
	if !errors.Is(err, producer.ErrTooLarge) || !strings.Contains(err.Error(), "max_msg_size") {
		t.Errorf("over max_msg_size: err = %v, want ErrTooLarge naming max_msg_size", err)
	}
	// Above the server's max_payload: refused before it is sent.
	huge := json.RawMessage(`"` + strings.Repeat("x", int(b.nc.MaxPayload())) + `"`)
	_, err = b.p.Enqueue(ctx, invoice(), producer.Body(huge))
	if !errors.Is(err, producer.ErrTooLarge) || !strings.Contains(err.Error(), "max_payload") {
		t.Errorf("over max_payload: err = %v, want ErrTooLarge naming max_payload", err)
	}
	if n := streamMsgs(t, b.js); n != 0 {
		t.Fatalf("stream holds %d messages, want 0", n)
	}
}

func TestStreamFullIsReportedPerJob(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	ctx := testContext(t)
	// A JOBS stream with room for ten jobs that refuses the eleventh.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: streams.Jobs, Subjects: []string{"jobs.>"}, Retention: jetstream.WorkQueuePolicy,
		MaxMsgs: 10, Discard: jetstream.DiscardNew,
	}); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, nc)
	pl := p.Pipeline(ctx, producer.Window(4))
	for range 15 {
		if _, err := pl.Add(invoice()); err != nil {
			t.Fatal(err)
		}
	}
	s := pl.Wait()
	if s.Stored != 10 || s.Failed != 5 {
		t.Fatalf("stored %d, failed %d; want 10 and 5", s.Stored, s.Failed)
	}
	for _, r := range s.Results[10:] {
		if !errors.Is(r.Err, producer.ErrStreamFull) || !strings.Contains(r.Err.Error(), "maximum messages exceeded") || r.Attempts != 1 {
			t.Errorf("job %d: %+v, want ErrStreamFull saying why, not retried", r.Index, r)
		}
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "5 of 15 jobs not enqueued") {
		t.Errorf("Summary.Err() = %v", err)
	}
}

func TestNoStreamGivesUpAfterTheRetryLimit(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t) // no streams: nobody answers on jobs.>
	nc, _ := srv.Connect(t)
	p := newProducer(t, nc, producer.WithRetryFor(100*time.Millisecond))
	res, err := p.Enqueue(testContext(t), invoice())
	if !errors.Is(err, producer.ErrUnavailable) || !errors.Is(err, nats.ErrNoResponders) || res.Attempts < 2 {
		t.Fatalf("result %+v, err %v; want ErrUnavailable after retrying no responders", res, err)
	}
	// The error names the job's subject, not the producer's reply inbox.
	if !strings.Contains(err.Error(), "no stream takes "+res.Subject) || strings.Contains(err.Error(), "_INBOX") {
		t.Errorf("error %q should name subject %s", err, res.Subject)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, _ := srv.Connect(t)
	tests := []struct {
		name string
		opt  producer.Option
	}{
		{"ack timeout", producer.WithAckTimeout(0)},
		{"backoff order", producer.WithBackoff(time.Second, time.Millisecond)},
		{"retry limit", producer.WithRetryFor(-time.Second)},
		{"logger", producer.WithLogger(nil)},
	}
	for _, tt := range tests {
		if _, err := producer.New(nc, tt.opt); err == nil {
			t.Errorf("%s: New accepted it", tt.name)
		}
	}
	if _, err := producer.New(nil); err == nil {
		t.Error("New accepted a nil connection")
	}
}

func TestDeclareBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testContext(t)
	if err := b.p.DeclareBatch(ctx, "nightly", 500); err != nil {
		t.Fatal(err)
	}
	if err := b.p.DeclareBatch(ctx, "nightly", 500); err != nil {
		t.Errorf("declaring the same size again: %v", err)
	}
	if err := b.p.DeclareBatch(ctx, "nightly", 501); !errors.Is(err, batch.ErrConflict) {
		t.Errorf("another size: err = %v, want batch.ErrConflict", err)
	}
	if err := b.p.DeclareBatch(ctx, "not a batch", 1); err == nil {
		t.Error("an invalid batch id was declared")
	}
	reg, err := batch.Open(ctx, b.js)
	if err != nil {
		t.Fatal(err)
	}
	if d, _, err := reg.Get(ctx, "nightly"); err != nil || d.Expected != 500 {
		t.Errorf("declaration %+v, %v", d, err)
	}
}
