package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/producer"
)

// outcomes checks, as results arrive, that every index is reported once.
type outcomes struct {
	mu    sync.Mutex
	t     *testing.T
	seen  map[int]producer.Result
	total int
}

func newOutcomes(t *testing.T) *outcomes {
	return &outcomes{t: t, seen: map[int]producer.Result{}}
}

func (o *outcomes) add(r producer.Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if prev, ok := o.seen[r.Index]; ok {
		o.t.Errorf("job %d reported twice: %+v then %+v", r.Index, prev, r)
	}
	o.seen[r.Index] = r
	o.total++
}

func TestPipelineReportsEveryOutcomeExactlyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testContext(t)
	const n = 5000
	got := newOutcomes(t)
	pl := b.p.Pipeline(ctx, producer.Window(256), producer.OnResult(got.add),
		producer.Defaults(producer.Lane(job.LaneBulk), producer.Batch("b1")))

	big := json.RawMessage(`"` + strings.Repeat("x", 600<<10) + `"`) // over max_msg_size
	want := map[int]string{}                                         // index -> "stored", "duplicate", "too large"
	invalid := 0
	for i := range n {
		var opts []producer.JobOption
		kind := "stored"
		switch {
		case i%1000 == 999:
			opts, kind = append(opts, producer.Body(big)), "too large"
		case i%100 == 50:
			// The id of the job before: the stream already has it.
			opts, kind = append(opts, producer.ID(fmt.Sprintf("job-%d", i-1))), "duplicate"
		case i%500 == 7:
			// Invalid: refused by Add, never a Result.
			if _, err := pl.Add(invoice(), producer.Lane("nope")); !errors.Is(err, job.ErrInvalid) {
				t.Fatalf("invalid job: err = %v", err)
			}
			invalid++
			continue
		default:
			opts = append(opts, producer.ID(fmt.Sprintf("job-%d", i)))
		}
		if _, err := pl.Add(invoice(), opts...); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
		want[len(want)] = kind
	}
	s := pl.Wait()

	if s.Added != n-invalid || got.total != s.Added || s.Results != nil {
		t.Fatalf("added %d, reported %d (results slice %d); want %d each, delivered to OnResult only", s.Added, got.total, len(s.Results), n-invalid)
	}
	counts := map[string]int{}
	for i, kind := range want {
		r := got.seen[i]
		ok := false
		switch kind {
		case "stored":
			ok = r.Err == nil && !r.Duplicate && r.Sequence > 0
		case "duplicate":
			ok = r.Err == nil && r.Duplicate
		case "too large":
			ok = errors.Is(r.Err, producer.ErrTooLarge)
		}
		if !ok {
			t.Errorf("job %d: want %s, got %+v", i, kind, r)
		}
		if r.Subject != "jobs.acme.bulk.create_invoice" {
			t.Errorf("job %d on %s", i, r.Subject)
		}
		counts[kind]++
	}
	if s.Stored != counts["stored"] || s.Duplicates != counts["duplicate"] || s.Failed != counts["too large"] || s.Pending() != 0 {
		t.Errorf("summary %+v, want %v", s.Stats, counts)
	}
	if m := streamMsgs(t, b.js); m != uint64(counts["stored"]) {
		t.Errorf("stream holds %d messages, want %d", m, counts["stored"])
	}
}

func TestPipelineCollectsResultsInAddOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pl := b.p.Pipeline(testContext(t), producer.Window(16))
	var ids []string
	for range 100 {
		id, err := pl.Add(invoice())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	s := pl.Wait()
	if s.Stored != 100 || len(s.Results) != 100 || s.Err() != nil {
		t.Fatalf("summary %+v, err %v", s.Stats, s.Err())
	}
	for i, r := range s.Results {
		if r.Index != i || r.ID != ids[i] || r.Err != nil {
			t.Errorf("result %d: %+v, want id %s", i, r, ids[i])
		}
	}
	if _, err := pl.Add(invoice()); !errors.Is(err, producer.ErrPipelineClosed) {
		t.Errorf("Add after Wait: err = %v, want ErrPipelineClosed", err)
	}
	if again := pl.Wait(); again.Stored != 100 {
		t.Errorf("second Wait: %+v", again.Stats)
	}
}

// fakeStream stands in for JOBS on a connection of its own: it receives
// every job published and answers only when the test says so, so that a
// test sees exactly how many publishes await their acknowledgement.
type fakeStream struct {
	ch  chan *nats.Msg
	seq int
}

func startFakeStream(t *testing.T, srv *natstest.Server) *fakeStream {
	t.Helper()
	nc, _ := srv.Connect(t)
	f := &fakeStream{ch: make(chan *nats.Msg, 1<<16)}
	if _, err := nc.ChanSubscribe("jobs.>", f.ch); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeStream) next(t *testing.T, ctx context.Context) *nats.Msg {
	t.Helper()
	select {
	case m := <-f.ch:
		return m
	case <-ctx.Done():
		t.Fatal("no job arrived")
		return nil
	}
}

func (f *fakeStream) ack(t *testing.T, m *nats.Msg) {
	t.Helper()
	f.seq++
	if err := m.Respond(fmt.Appendf(nil, `{"stream":"JOBS","seq":%d}`, f.seq)); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeStream) fail(t *testing.T, m *nats.Msg, code, errCode int, desc string) {
	t.Helper()
	if err := m.Respond(fmt.Appendf(nil, `{"error":{"code":%d,"err_code":%d,"description":%q}}`, code, errCode, desc)); err != nil {
		t.Fatal(err)
	}
}

// TestPipelineNeverHasMoreThanItsWindowOutstanding observes the window
// from the stream's side: the fake stream counts jobs received and not yet
// answered, and answers at random moments.
func TestPipelineNeverHasMoreThanItsWindowOutstanding(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	fake := startFakeStream(t, srv)
	nc, _ := srv.Connect(t)
	p := newProducer(t, nc)
	ctx := testContext(t)
	const window, n = 64, 3000
	pl := p.Pipeline(ctx, producer.Window(window))
	added := make(chan error, 1)
	go func() {
		for range n {
			if _, err := pl.Add(invoice()); err != nil {
				added <- err
				return
			}
		}
		added <- nil
	}()

	var outstanding []*nats.Msg
	received, most, filled := 0, 0, false
	receive := func(m *nats.Msg) {
		received++
		outstanding = append(outstanding, m)
		if len(outstanding) > window {
			t.Fatalf("%d jobs outstanding, window %d", len(outstanding), window)
		}
		most = max(most, len(outstanding))
		filled = filled || len(outstanding) == window
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for received < n || len(outstanding) > 0 {
		// Until the window has been full once, answer nothing: the
		// producer must fill it without help.
		if received < n && (!filled || len(outstanding) == 0) {
			receive(fake.next(t, ctx))
			continue
		}
		select {
		case m := <-fake.ch:
			receive(m)
		default:
			k := 1 + rng.IntN(len(outstanding))
			rng.Shuffle(len(outstanding), func(i, j int) { outstanding[i], outstanding[j] = outstanding[j], outstanding[i] })
			for _, m := range outstanding[:k] {
				fake.ack(t, m)
			}
			outstanding = append(outstanding[:0], outstanding[k:]...)
		}
	}
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	s := pl.Wait()
	if s.Stored != n || most != window {
		t.Fatalf("stored %d of %d; at most %d outstanding, want the window %d", s.Stored, n, most, window)
	}
}

func TestPipelineRetriesTransientErrorsAndReportsPermanentOnes(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	fake := startFakeStream(t, srv)
	nc, _ := srv.Connect(t)
	p := newProducer(t, nc)
	ctx := testContext(t)

	pl := p.Pipeline(ctx)
	transient, err := pl.Add(invoice())
	if err != nil {
		t.Fatal(err)
	}
	fake.fail(t, fake.next(t, ctx), 503, 10008, "JetStream system temporarily unavailable")
	retried := fake.next(t, ctx) // the same job again
	if got := retried.Header.Get("Nats-Msg-Id"); got != transient {
		t.Fatalf("retry carries id %q, want %q", got, transient)
	}
	fake.ack(t, retried)

	if _, err := pl.Add(invoice()); err != nil {
		t.Fatal(err)
	}
	fake.fail(t, fake.next(t, ctx), 400, 10003, "bad request")
	s := pl.Wait()

	if r := s.Results[0]; r.Err != nil || r.Attempts != 2 {
		t.Errorf("transient: %+v, want stored on attempt 2", r)
	}
	if r := s.Results[1]; !errors.Is(r.Err, producer.ErrRejected) || !strings.Contains(r.Err.Error(), "bad request") || r.Attempts != 1 {
		t.Errorf("permanent: %+v, want ErrRejected after 1 attempt", r)
	}
	if s.Retries != 1 || s.LastError == nil || !strings.Contains(s.LastError.Error(), "temporarily unavailable") {
		t.Errorf("stats %+v", s.Stats)
	}
}

func TestPipelineStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	fake := startFakeStream(t, srv) // never answers
	nc, _ := srv.Connect(t)
	p := newProducer(t, nc)
	ctx, cancel := context.WithCancel(testContext(t))
	const window = 8
	pl := p.Pipeline(ctx, producer.Window(window))
	for range window {
		if _, err := pl.Add(invoice()); err != nil {
			t.Fatal(err)
		}
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := pl.Add(invoice()) // waits for a slot that never frees
		blocked <- err
	}()
	for range window {
		fake.next(t, ctx)
	}
	cancel()
	if err := <-blocked; !errors.Is(err, context.Canceled) {
		t.Errorf("blocked Add: err = %v, want context.Canceled", err)
	}
	s := pl.Wait()
	if s.Added != window || s.Failed != window || len(s.Results) != window {
		t.Fatalf("summary %+v", s.Stats)
	}
	for _, r := range s.Results {
		if !errors.Is(r.Err, producer.ErrUnconfirmed) || !errors.Is(r.Err, context.Canceled) {
			t.Errorf("job %d: %v, want ErrUnconfirmed and context.Canceled", r.Index, r.Err)
		}
	}
	if _, err := pl.Add(invoice()); !errors.Is(err, context.Canceled) {
		t.Errorf("Add after cancel: err = %v", err)
	}
}

// TestPipelineSurvivesAServerRestart restarts the server while a window of
// jobs is outstanding: their publishes fail, are retried, and every job
// ends up stored exactly once.
func TestPipelineSurvivesAServerRestart(t *testing.T) {
	t.Parallel()
	b := setup(t, producer.WithRetryFor(0), producer.WithAckTimeout(5*time.Second))
	ctx := testContext(t)
	const n, window, hold = 20000, 1024, 20000 / 4
	got := newOutcomes(t)
	// Outcomes arrive in order. Holding the one for job `hold` stops the
	// producer from seeing any acknowledgement after it, so the window
	// fills up with jobs the server has (very likely) stored but whose
	// acks the producer has not read when the server goes away.
	held, release := make(chan struct{}), make(chan struct{})
	pl := b.p.Pipeline(ctx, producer.Window(window), producer.OnResult(func(r producer.Result) {
		got.add(r)
		if r.Index == hold {
			close(held)
			<-release
		}
	}))
	added := make(chan int, n)
	failed := make(chan error, 1)
	go func() {
		defer close(added)
		for i := range n {
			if _, err := pl.Add(invoice(), producer.ID(fmt.Sprintf("r-%d", i))); err != nil {
				failed <- err
				return
			}
			added <- i
		}
	}()
	<-held
	// Job hold+window-1 is the last that fits: then window-1 jobs await
	// acks the producer cannot read yet.
	for i := range added {
		if i == hold+window-1 {
			break
		}
	}
	b.srv.Restart()
	close(release)
	for range added {
	}
	select {
	case err := <-failed:
		t.Fatal(err)
	default:
	}
	s := pl.Wait()
	t.Logf("stored %d, duplicates %d (acks lost in the restart), retries %d", s.Stored, s.Duplicates, s.Retries)
	if s.Failed != 0 || s.Stored+s.Duplicates != n || got.total != n {
		for _, r := range got.seen {
			if r.Err != nil {
				t.Errorf("job %d: %v", r.Index, r.Err)
				break
			}
		}
		t.Fatalf("summary %+v, %d reported; want all %d stored", s.Stats, got.total, n)
	}
	if s.Retries < window-1 {
		t.Errorf("%d publishes retried, want at least the %d outstanding at the restart", s.Retries, window-1)
	}
	if m := streamMsgs(t, b.js); m != n {
		t.Fatalf("stream holds %d messages, want exactly %d", m, n)
	}
}

// TestPipelineEndsWhenTheConnectionCloses: jobs awaiting acks when the
// caller closes the connection are reported with ErrClosed once their ack
// timeout passes, and Wait returns.
func TestPipelineEndsWhenTheConnectionCloses(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	fake := startFakeStream(t, srv) // never answers
	nc, _ := srv.Connect(t)
	p := newProducer(t, nc, producer.WithAckTimeout(100*time.Millisecond))
	ctx := testContext(t)
	pl := p.Pipeline(ctx)
	for range 3 {
		if _, err := pl.Add(invoice()); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		fake.next(t, ctx)
	}
	nc.Close()
	s := pl.Wait()
	for _, r := range s.Results {
		if !errors.Is(r.Err, producer.ErrClosed) {
			t.Errorf("job %d: %v, want ErrClosed", r.Index, r.Err)
		}
	}
	if _, err := pl.Add(invoice()); !errors.Is(err, producer.ErrPipelineClosed) {
		t.Errorf("Add after Wait: %v", err)
	}
	if _, err := p.Enqueue(ctx, invoice()); !errors.Is(err, producer.ErrClosed) {
		t.Errorf("Enqueue on a closed connection: %v, want ErrClosed", err)
	}
}

// TestCloseEndsOutstandingJobs: Close reports the jobs awaiting acks, and
// a closed producer fails what it is given.
func TestCloseEndsOutstandingJobs(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	fake := startFakeStream(t, srv) // never answers
	nc, _ := srv.Connect(t)
	p := newProducer(t, nc)
	ctx := testContext(t)
	pl := p.Pipeline(ctx)
	for range 2 {
		if _, err := pl.Add(invoice()); err != nil {
			t.Fatal(err)
		}
	}
	fake.next(t, ctx)
	fake.next(t, ctx)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s := pl.Wait()
	if s.Failed != 2 || !errors.Is(s.Results[0].Err, producer.ErrClosed) || !errors.Is(s.Results[1].Err, producer.ErrClosed) {
		t.Fatalf("summary %+v, results %+v", s.Stats, s.Results)
	}
	if _, err := p.Enqueue(ctx, invoice()); !errors.Is(err, producer.ErrClosed) {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
	}
}
