package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

// The dispatch benchmarks drain a backlog of b.N jobs, published before the
// timer starts, through one worker calling a provider that answers 200 at
// once. They measure what Switchyard itself costs per job: fetch, parse,
// HTTP call, result publish and ack, with the NATS server, the fake API and
// (in BenchmarkDispatchWithRecorder) SQLite in the same process, so ns/op,
// B/op and allocs/op are those of the whole system per job, not of the
// worker alone.
//
// The jobs go to the bulk lane, the lane backlogs drain on; bulk may use
// Concurrency minus the live reserve (a tenth) of the provider's slots.
//
// They use b.N, not b.Loop: the backlog must be published, untimed, before
// the worker starts.
const (
	benchProvider = "bench"
	benchTask     = "create_invoice"
	benchBatch    = "bench"
)

var benchConcurrency = []int{100, 1000}

// BenchmarkDispatch: publish → worker → provider → result stored in
// RESULTS, timed from the worker's start until the b.N-th result is
// published.
func BenchmarkDispatch(b *testing.B) {
	for _, conc := range benchConcurrency {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			e := setupBench(b)
			e.publishJobs(b, b.N)
			w := e.newWorker(b, conc)
			done := e.countResults(b, b.N)

			b.ResetTimer()
			if err := w.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			e.await(b, done, "results published")
			b.StopTimer()
			e.report(b)

			w.Stop(context.Background())
			e.checkDrained(b, b.N)
		})
	}
}

// BenchmarkDispatchWithRecorder adds the recorder: timed from the worker's
// start until the b.N-th final row is committed to SQLite.
func BenchmarkDispatchWithRecorder(b *testing.B) {
	for _, conc := range benchConcurrency {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			e := setupBench(b)
			store := e.startRecorder(b, b.N)
			e.publishJobs(b, b.N)
			w := e.newWorker(b, conc)

			b.ResetTimer()
			if err := w.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			e.await(b, store.done, "final rows committed")
			b.StopTimer()
			e.report(b)

			w.Stop(context.Background())
			e.checkDrained(b, b.N)
			counts, err := store.BatchCounts(context.Background(), benchBatch)
			if err != nil {
				b.Fatal(err)
			}
			if len(counts) != 1 || counts[job.StatusSucceeded] != b.N {
				b.Fatalf("batch counts %v, want %d succeeded", counts, b.N)
			}
		})
	}
}

// benchEnv is one run's world: a NATS server with the streams, the
// worker's connection, a second connection for the benchmark's own
// publishing and counting (so that it does not share the worker's socket),
// and the fake API.
type benchEnv struct {
	js  jetstream.JetStream // the worker's and recorder's
	nc  *nats.Conn          // the benchmark's
	api *mockapi.Server
	url string
	log *slog.Logger
}

// setupBench starts everything a run needs; b.Cleanup takes it all down,
// in reverse order.
func setupBench(b *testing.B) *benchEnv {
	b.Helper()
	e := &benchEnv{api: mockapi.New(mockapi.Config{}), log: slog.New(slog.DiscardHandler)}
	srv := natstest.Start(b)
	_, e.js = srv.Connect(b)
	e.nc, _ = srv.Connect(b)
	// natsx.ApplyStreams rather than srv.ApplyStreams: the latter logs
	// through b.Log, which a benchmark always prints.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natsx.ApplyStreams(ctx, e.js, 1, e.log); err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(e.api)
	b.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

// publishJobs publishes n jobs asynchronously, at most a window of them
// unacknowledged, and checks every PubAck.
func (e *benchEnv) publishJobs(b *testing.B, n int) {
	b.Helper()
	const window = 1024
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(4*window),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	subject := job.Subject(benchProvider, job.LaneBulk, benchTask)
	pending := make([]jetstream.PubAckFuture, 0, window)
	settle := func() {
		for _, f := range pending {
			select {
			case ack := <-f.Ok():
				if ack.Stream != streams.Jobs || ack.Duplicate {
					b.Fatalf("job %s: PubAck %+v", f.Msg().Header.Get(jetstream.MsgIDHeader), ack)
				}
			case err := <-f.Err():
				b.Fatalf("job %s: %v", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			}
		}
		pending = pending[:0]
	}
	for i := range n {
		id := fmt.Sprintf("bench-%08d", i)
		data, err := json.Marshal(benchJob(id))
		if err != nil {
			b.Fatal(err)
		}
		m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			b.Fatalf("publish job %s: %v", id, err)
		}
		if pending = append(pending, f); len(pending) == window {
			settle()
		}
	}
	settle()
}

// benchJob is a typical envelope of about 300 bytes: a POST with two
// headers, a small JSON body and meta.
func benchJob(id string) *job.Job {
	return &job.Job{V: job.Version, ID: id, Provider: benchProvider, Task: benchTask, Batch: benchBatch,
		Request: job.Request{Method: http.MethodPost, Path: "/v1/customers/cus_8f3a/invoices",
			Headers: map[string]string{"X-Tenant": "t-42", "Accept": "application/json"},
			Body:    json.RawMessage(`{"amount":1299,"currency":"EUR"}`)},
		Meta: json.RawMessage(`{"order":981}`)}
}

// newWorker builds (but does not start) a worker for one provider with the
// given concurrency, stopped by b.Cleanup if the run ends early.
func (e *benchEnv) newWorker(b *testing.B, concurrency int) *worker.Worker {
	b.Helper()
	p, err := provider.New(benchProvider, provider.Config{BaseURL: e.url, AllowPrivateNetwork: true, Concurrency: concurrency})
	if err != nil {
		b.Fatal(err)
	}
	// A short FetchMaxWait only shortens Stop (which waits for the last
	// pull to end); while a backlog drains, every pull comes back full.
	w, err := worker.New(e.js, worker.Config{ID: "bench", FetchMaxWait: 100 * time.Millisecond},
		[]*provider.Provider{p}, e.log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Stop(context.Background()) })
	return w
}

// countResults returns a channel closed when n results have been
// published. It counts on a core subscription, so it sees each result as
// the server routes it, with no polling.
func (e *benchEnv) countResults(b *testing.B, n int) <-chan struct{} {
	b.Helper()
	done := make(chan struct{})
	var seen atomic.Int64
	sub, err := e.nc.Subscribe(job.ResultsPrefix+".>", func(*nats.Msg) {
		if seen.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	// A slow consumer would drop results and leave the run waiting.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		b.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil { // the subscription is in place
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	return done
}

// countingStore is the SQLite store that closes done once n final results
// are committed. Record returns after its transaction commits, so this
// awaits the event itself: polling BatchCounts would add up to a poll
// interval to the time measured and run a GROUP BY over the batch against
// the writer on every poll. Counting results rather than distinct jobs is
// exact here because nothing is redelivered (the run checks the rows with
// BatchCounts afterwards).
type countingStore struct {
	*recorder.SQLite
	want  int64
	final atomic.Int64
	done  chan struct{}
}

func (s *countingStore) Record(ctx context.Context, results []job.Result) error {
	if err := s.SQLite.Record(ctx, results); err != nil {
		return err
	}
	var n int64
	for i := range results {
		if results[i].Status.Final() {
			n++
		}
	}
	if total := s.final.Add(n); total >= s.want && total-n < s.want {
		close(s.done)
	}
	return nil
}

// startRecorder opens a SQLite store in b.TempDir and starts a recorder on
// it, both taken down by b.Cleanup.
func (e *benchEnv) startRecorder(b *testing.B, n int) *countingStore {
	b.Helper()
	ctx := context.Background()
	db, err := recorder.OpenSQLite(ctx, filepath.Join(b.TempDir(), "results.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	store := &countingStore{SQLite: db, want: int64(n), done: make(chan struct{})}
	rec, err := recorder.New(e.js, store, recorder.Config{}, e.log)
	if err != nil {
		b.Fatal(err)
	}
	if err := rec.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rec.Stop)
	return store
}

// await waits for done, failing the run with the fake API's counters if it
// does not come within a generous deadline.
func (e *benchEnv) await(b *testing.B, done <-chan struct{}, what string) {
	b.Helper()
	limit := 30*time.Second + time.Duration(b.N)*time.Millisecond
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.Fatalf("%d %s not reached within %s; fake API stats %+v", b.N, what, limit, e.api.Stats())
	}
}

func (e *benchEnv) report(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// checkDrained checks, after the worker stopped, that the fake API was
// called once per job (no duplicates), that each job has exactly one result,
// and that every job was acked off JOBS.
func (e *benchEnv) checkDrained(b *testing.B, n int) {
	b.Helper()
	st := e.api.Stats()
	if st.Requests != int64(n) || st.ByStatus[http.StatusOK] != int64(n) || st.Keys != n || st.Duplicates != 0 {
		b.Fatalf("fake API saw %+v, want %d requests answered 200 with distinct keys", st, n)
	}
	ctx := context.Background()
	results, err := e.js.Stream(ctx, streams.Results)
	if err != nil {
		b.Fatal(err)
	}
	if got := results.CachedInfo().State.Msgs; got != uint64(n) {
		b.Fatalf("RESULTS holds %d messages, want %d", got, n)
	}
	// Acks are fire-and-forget, so the last ones may still be on their way.
	deadline := time.Now().Add(10 * time.Second)
	for {
		jobs, err := e.js.Stream(ctx, streams.Jobs)
		if err != nil {
			b.Fatal(err)
		}
		left := jobs.CachedInfo().State.Msgs
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d jobs still on JOBS 10s after the worker stopped", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
