package recorder_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/storetest"
	"github.com/switchyard-io/switchyard/streams"
)

// waitTimeout bounds every wait for the recorder. It is well below the
// recorder consumer's ack_wait (30s), so a result that is only recorded after
// a redelivery fails the test instead of passing slowly.
const waitTimeout = 20 * time.Second

// recorderBundle is what setupRecorder starts: a real NATS server with the
// Switchyard streams, a publisher connection, a connection for the recorder
// and a real SQLite store.
type recorderBundle struct {
	srv   *natstest.Server
	pub   jetstream.JetStream // publishes results, inspects the consumer
	js    jetstream.JetStream // the recorder's own connection
	store *recorder.SQLite
}

func setupRecorder(t *testing.T) *recorderBundle {
	t.Helper()
	srv := natstest.Start(t)
	_, pub := srv.Connect(t)
	srv.ApplyStreams(t, pub)
	_, js := srv.Connect(t)
	return &recorderBundle{
		srv:   srv,
		pub:   pub,
		js:    js,
		store: openSQLite(t, filepath.Join(t.TempDir(), "results.db")),
	}
}

// newRecorder builds a recorder that fetches with a short wait and is
// stopped by t.Cleanup.
func newRecorder(t *testing.T, js jetstream.JetStream, store recorder.Store, cfg recorder.Config) *recorder.Recorder {
	t.Helper()
	if cfg.FetchMaxWait == 0 {
		cfg.FetchMaxWait = 50 * time.Millisecond
	}
	r, err := recorder.New(js, store, cfg, natstest.Logger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(r.Stop)
	return r
}

func startRecorder(t *testing.T, js jetstream.JetStream, store recorder.Store, cfg recorder.Config) *recorder.Recorder {
	t.Helper()
	r := newRecorder(t, js, store, cfg)
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return r
}

// newResult returns a plausible result of one attempt.
func newResult(id, batch string, attempt int, status job.Status) job.Result {
	r := storetest.Result(id, attempt, status)
	r.Batch = batch
	return r
}

// publishResult publishes r as a worker does, with msgID for deduplication.
func publishResult(t *testing.T, js jetstream.JetStream, msgID string, r job.Result) {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := publishRaw(js, job.ResultSubject(r.Provider, r.Task), msgID, data); err != nil {
		t.Fatalf("publish result of %s attempt %d: %v", r.JobID, r.Attempt, err)
	}
}

// publishRaw publishes data as is; it is safe to call from any goroutine.
func publishRaw(js jetstream.JetStream, subject, msgID string, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return err
	}
	if ack.Duplicate {
		return fmt.Errorf("message %s was deduplicated", msgID)
	}
	return nil
}

// publishBatch publishes one succeeded first attempt for each of n jobs
// named <batch>-<i>.
func publishBatch(t *testing.T, js jetstream.JetStream, batch string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		id := jobID(batch, i)
		publishResult(t, js, id+":1", newResult(id, batch, 1, job.StatusSucceeded))
	}
}

func jobID(batch string, i int) string { return fmt.Sprintf("%s-%d", batch, i) }

// waitFor polls cond every 20ms until it holds, and fails the test with
// cond's last description when timeout passes first.
func waitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s: %s", timeout, why)
		}
		<-tick.C
	}
}

// countJobs returns the number of job rows of a batch.
func countJobs(t testing.TB, s recorder.Store, batch string) int {
	t.Helper()
	counts, err := s.BatchCounts(context.Background(), batch)
	if err != nil {
		t.Fatalf("BatchCounts: %v", err)
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

func waitJobs(t testing.TB, s recorder.Store, batch string, want int) {
	t.Helper()
	waitFor(t, waitTimeout, func() (bool, string) {
		n := countJobs(t, s, batch)
		return n == want, fmt.Sprintf("batch %s has %d job rows, want %d", batch, n, want)
	})
}

// checkOnce checks that each of the jobs <batch>-<from..to> has one row with
// one attempt.
func checkOnce(t *testing.T, s recorder.Store, batch string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		id := jobID(batch, i)
		row, err := s.Job(context.Background(), id)
		if err != nil {
			t.Fatalf("Job(%s): %v", id, err)
		}
		if row.Status != job.StatusSucceeded || row.Attempts != 1 || len(row.AttemptRows) != 1 {
			t.Fatalf("job %s: status %s, attempts %d, %d attempt rows; want succeeded, 1, 1",
				id, row.Status, row.Attempts, len(row.AttemptRows))
		}
	}
}

func consumerInfo(t testing.TB, js jetstream.JetStream) (*jetstream.ConsumerInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, streams.Results, streams.Recorder)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// waitSettled waits until the recorder consumer has nothing left to deliver
// and nothing delivered but unacknowledged, and returns its state then.
func waitSettled(t testing.TB, js jetstream.JetStream) *jetstream.ConsumerInfo {
	t.Helper()
	var info *jetstream.ConsumerInfo
	waitFor(t, waitTimeout, func() (bool, string) {
		var err error
		info, err = consumerInfo(t, js)
		if err != nil {
			return false, fmt.Sprintf("consumer info: %v", err)
		}
		return info.NumPending == 0 && info.NumAckPending == 0,
			fmt.Sprintf("consumer has %d pending and %d awaiting ack", info.NumPending, info.NumAckPending)
	})
	return info
}

// checkDelivered checks that the consumer delivered exactly n messages: none
// was redelivered.
func checkDelivered(t *testing.T, info *jetstream.ConsumerInfo, n uint64) {
	t.Helper()
	if info.Delivered.Consumer != n || info.NumRedelivered != 0 {
		t.Errorf("consumer delivered %d messages (%d redelivered now), want exactly %d",
			info.Delivered.Consumer, info.NumRedelivered, n)
	}
}

func TestRecorderRecordsResults(t *testing.T) {
	t.Parallel()
	b := setupRecorder(t)
	startRecorder(t, b.js, b.store, recorder.Config{})

	ok := newResult("fields-ok", "fields", 1, job.StatusSucceeded)
	ok.Response = &job.Response{
		Headers: map[string][]string{"Content-Type": {"application/json"}},
		Body:    json.RawMessage(`{"invoice":"inv_1"}`),
	}
	ok.Meta = json.RawMessage(`{"customer":"c-9"}`)
	failed := newResult("fields-failed", "fields", 2, job.StatusFailed)
	// A job that expired unrun has attempt 0 (see result.schema.json).
	expired := newResult("fields-expired", "fields", 0, job.StatusExpired)
	published := []job.Result{ok, failed, expired}
	for _, r := range published {
		publishResult(t, b.pub, fmt.Sprintf("%s:%d", r.JobID, r.Attempt), r)
	}

	waitJobs(t, b.store, "fields", len(published))
	for _, r := range published {
		got, err := b.store.Job(context.Background(), r.JobID)
		if err != nil {
			t.Fatalf("Job(%s): %v", r.JobID, err)
		}
		if got.UpdatedAt.IsZero() {
			t.Errorf("job %s: UpdatedAt is zero", r.JobID)
		}
		got.UpdatedAt = time.Time{}
		want := recorder.JobRow{
			JobID: r.JobID, Provider: r.Provider, Task: r.Task, Lane: r.Lane, Batch: r.Batch,
			Status: r.Status, Attempt: r.Attempt, Attempts: r.Attempt, HTTPStatus: r.HTTPStatus,
			Error: r.Error, ErrorClass: r.ErrorClass, LatencyMS: r.LatencyMS,
			EnqueuedAt: r.EnqueuedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
			Meta: r.Meta, WorkerID: r.WorkerID,
			AttemptRows: []recorder.AttemptRow{{
				Attempt: r.Attempt, Status: r.Status, HTTPStatus: r.HTTPStatus, Error: r.Error,
				ErrorClass: r.ErrorClass, LatencyMS: r.LatencyMS, StartedAt: r.StartedAt,
				FinishedAt: r.FinishedAt, WorkerID: r.WorkerID,
			}},
		}
		if r.Response != nil {
			var resp job.Response
			if err := json.Unmarshal(got.Response, &resp); err != nil {
				t.Errorf("job %s: response %s: %v", r.JobID, got.Response, err)
			} else if !reflect.DeepEqual(&resp, r.Response) {
				t.Errorf("job %s: response = %+v, want %+v", r.JobID, resp, *r.Response)
			}
			got.Response = nil
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("job %s:\n got %+v\nwant %+v", r.JobID, *got, want)
		}
	}

	// Acked after the commit: nothing waits for delivery or an ack, and
	// nothing was delivered twice.
	info := waitSettled(t, b.pub)
	checkDelivered(t, info, uint64(len(published)))
}

// With a batch size of 1, the result that ends a fetch wait is the whole
// batch.
func TestRecorderBatchSizeOne(t *testing.T) {
	t.Parallel()
	b := setupRecorder(t)
	startRecorder(t, b.js, b.store, recorder.Config{BatchSize: 1})

	for i := range 5 {
		publishBatch(t, b.pub, "one", i, i+1)
		waitJobs(t, b.store, "one", i+1)
	}
	checkOnce(t, b.store, "one", 0, 5)
	checkDelivered(t, waitSettled(t, b.pub), 5)
}

func TestRecorderDuplicateResult(t *testing.T) {
	t.Parallel()
	b := setupRecorder(t)
	startRecorder(t, b.js, b.store, recorder.Config{})

	// A worker that published and then died before acking the job publishes
	// the same outcome again under another message id.
	r := newResult("dup-1", "dup", 1, job.StatusSucceeded)
	publishResult(t, b.pub, "dup-1:7:1", r)
	publishResult(t, b.pub, "dup-1:7:1-again", r)
	// A later job, so that both copies have been consumed once it is in.
	publishBatch(t, b.pub, "dup-after", 0, 1)

	waitJobs(t, b.store, "dup-after", 1)
	checkDelivered(t, waitSettled(t, b.pub), 3)
	if n := countJobs(t, b.store, "dup"); n != 1 {
		t.Fatalf("batch dup has %d job rows, want 1", n)
	}
	row, err := b.store.Job(context.Background(), "dup-1")
	if err != nil {
		t.Fatal(err)
	}
	if row.Status != job.StatusSucceeded || row.Attempts != 1 || len(row.AttemptRows) != 1 {
		t.Errorf("job dup-1: status %s, attempts %d, %d attempt rows; want succeeded, 1, 1",
			row.Status, row.Attempts, len(row.AttemptRows))
	}
}

func TestRecorderOutOfOrder(t *testing.T) {
	t.Parallel()
	b := setupRecorder(t)
	startRecorder(t, b.js, b.store, recorder.Config{})

	second := newResult("ooo-1", "ooo", 2, job.StatusSucceeded)
	first := newResult("ooo-1", "ooo", 1, job.StatusRetrying)
	publishResult(t, b.pub, "ooo-1:1:2", second)
	publishResult(t, b.pub, "ooo-1:1:1", first)

	var row *recorder.JobRow
	waitFor(t, waitTimeout, func() (bool, string) {
		var err error
		row, err = b.store.Job(context.Background(), "ooo-1")
		if err != nil {
			return false, err.Error()
		}
		return len(row.AttemptRows) == 2, fmt.Sprintf("%d attempt rows, want 2", len(row.AttemptRows))
	})
	if row.Status != job.StatusSucceeded || row.Attempt != 2 || row.Attempts != 2 || row.WorkerID != second.WorkerID {
		t.Errorf("job row: status %s attempt %d attempts %d worker %s; want succeeded 2 2 %s",
			row.Status, row.Attempt, row.Attempts, row.WorkerID, second.WorkerID)
	}
	for i, want := range []job.Status{job.StatusRetrying, job.StatusSucceeded} {
		if a := row.AttemptRows[i]; a.Attempt != i+1 || a.Status != want {
			t.Errorf("attempt row %d: attempt %d status %s, want %d %s", i, a.Attempt, a.Status, i+1, want)
		}
	}
	checkDelivered(t, waitSettled(t, b.pub), 2)
}

func TestRecorderDropsUnreadableResults(t *testing.T) {
	t.Parallel()
	b := setupRecorder(t)
	startRecorder(t, b.js, b.store, recorder.Config{})

	noID, err := json.Marshal(newResult("", "bad", 1, job.StatusSucceeded))
	if err != nil {
		t.Fatal(err)
	}
	bogus := newResult("bad-bogus", "bad", 1, job.StatusSucceeded)
	bogus.Status = "bogus"
	bogusJSON, err := json.Marshal(bogus)
	if err != nil {
		t.Fatal(err)
	}
	negative, err := json.Marshal(newResult("bad-negative", "bad", -1, job.StatusSucceeded))
	if err != nil {
		t.Fatal(err)
	}
	ancient := newResult("bad-ancient", "bad", 1, job.StatusSucceeded)
	ancient.StartedAt = time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)
	ancientJSON, err := json.Marshal(ancient)
	if err != nil {
		t.Fatal(err)
	}
	unreadable := map[string][]byte{
		"not json":           []byte("this is not json"),
		"empty job_id":       noID,
		"unknown status":     bogusJSON,
		"negative attempt":   negative,
		"time out of range":  ancientJSON,
		"job id with spaces": []byte(`{"v":1,"job_id":"a b","provider":"x","task":"y","attempt":1,"status":"succeeded","batch":"bad"}`),
	}
	for name, data := range unreadable {
		if err := publishRaw(b.pub, job.ResultSubject("x", "y"), "bad:"+name, data); err != nil {
			t.Fatalf("publish %s: %v", name, err)
		}
	}
	publishBatch(t, b.pub, "good", 0, 3)

	waitJobs(t, b.store, "good", 3)
	checkOnce(t, b.store, "good", 0, 3)
	// Terminated, not left to redeliver: everything was delivered once.
	checkDelivered(t, waitSettled(t, b.pub), uint64(len(unreadable)+3))
	if n := countJobs(t, b.store, "bad"); n != 0 {
		t.Errorf("batch bad has %d job rows, want 0", n)
	}
}

var errInjected = errors.New("injected store failure")

// faultyStore is the real SQLite store with Record failing while failing is
// set: fault injection around a real database.
type faultyStore struct {
	*recorder.SQLite
	failing atomic.Bool
	// failed receives once per failed Record, when there is room.
	failed chan struct{}
}

func (s *faultyStore) Record(ctx context.Context, results []job.Result) error {
	if s.failing.Load() {
		select {
		case s.failed <- struct{}{}:
		default:
		}
		return errInjected
	}
	return s.SQLite.Record(ctx, results)
}

func TestRecorderStoreFailureAndRecovery(t *testing.T) {
	t.Parallel()
	b := setupRecorder(t)
	store := &faultyStore{SQLite: b.store, failed: make(chan struct{}, 100)}
	store.failing.Store(true)
	rec := startRecorder(t, b.js, store, recorder.Config{})
	if !rec.Healthy() {
		t.Fatal("Healthy() = false before any write")
	}

	const n = 200
	publishBatch(t, b.pub, "outage", 0, n)
	timeout := time.After(waitTimeout)
	for i := range 2 {
		select {
		case <-store.failed:
		case <-timeout:
			t.Fatalf("%d failed Record calls after %s, want 2", i, waitTimeout)
		}
	}
	// The first failure was reported before Record was called again.
	if rec.Healthy() {
		t.Error("Healthy() = true while the store fails")
	}
	if got := countJobs(t, b.store, "outage"); got != 0 {
		t.Fatalf("%d job rows while the store fails, want 0", got)
	}

	store.failing.Store(false)
	waitJobs(t, b.store, "outage", n)
	waitFor(t, waitTimeout, func() (bool, string) {
		return rec.Healthy(), "Healthy() = false after the store recovered"
	})
	checkOnce(t, b.store, "outage", 0, n)
	// The held batch was kept in progress, not redelivered.
	checkDelivered(t, waitSettled(t, b.pub), n)
}

func TestRecorderHandOver(t *testing.T) {
	t.Parallel()
	b := setupRecorder(t)
	// Small batches, so that the first recorder is stopped mid-stream.
	first := startRecorder(t, b.js, b.store, recorder.Config{BatchSize: 10})

	const n = 1000
	published := make(chan error, 1)
	go func() {
		for i := range n {
			id := jobID("handover", i)
			data, err := json.Marshal(newResult(id, "handover", 1, job.StatusSucceeded))
			if err == nil {
				err = publishRaw(b.pub, job.ResultSubject("acme", "create_invoice"), id+":1", data)
			}
			if err != nil {
				published <- fmt.Errorf("publish %s: %w", id, err)
				return
			}
		}
		published <- nil
	}()

	waitFor(t, waitTimeout, func() (bool, string) {
		return countJobs(t, b.store, "handover") > 0, "no rows yet"
	})
	first.Stop()
	stoppedAt := countJobs(t, b.store, "handover")
	if stoppedAt == n {
		t.Fatalf("the first recorder recorded all %d results before Stop; the test needs it stopped mid-stream", n)
	}
	// Stop returns after the batch in hand is committed, not before.
	if got := countJobs(t, b.store, "handover"); got != stoppedAt {
		t.Fatalf("%d rows after Stop returned, then %d", stoppedAt, got)
	}
	t.Logf("first recorder stopped after %d of %d rows", stoppedAt, n)

	startRecorder(t, b.js, b.store, recorder.Config{BatchSize: 10})
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	waitJobs(t, b.store, "handover", n)
	checkOnce(t, b.store, "handover", 0, n)
	checkDelivered(t, waitSettled(t, b.pub), n)
}

func TestRecorderSurvivesNATSRestart(t *testing.T) {
	t.Parallel()
	b := setupRecorder(t)
	startRecorder(t, b.js, b.store, recorder.Config{})

	const half = 100
	publishBatch(t, b.pub, "restart", 0, half)
	waitJobs(t, b.store, "restart", half)
	waitSettled(t, b.pub)

	b.srv.Restart()

	// Publish the second half once JetStream answers again, through a new
	// connection if the old one fails.
	pub := b.pub
	waitFor(t, waitTimeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := pub.Stream(ctx, streams.Results); err != nil {
			_, pub = b.srv.Connect(t)
			return false, fmt.Sprintf("stream %s after restart: %v", streams.Results, err)
		}
		return true, ""
	})
	publishBatch(t, pub, "restart", half, 2*half)

	// The recorder's connection reconnected by itself.
	waitJobs(t, b.store, "restart", 2*half)
	checkOnce(t, b.store, "restart", 0, 2*half)
	waitSettled(t, pub)
}

func TestRecorderLifecycle(t *testing.T) {
	t.Parallel()
	b := setupRecorder(t)

	rec := newRecorder(t, b.js, b.store, recorder.Config{})
	rec.Stop() // before Start: a no-op
	rec.Stop()

	ctx := context.Background()
	if err := rec.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := rec.Start(ctx); err == nil {
		t.Error("second Start succeeded, want an error")
	}
	publishBatch(t, b.pub, "life", 0, 1)
	waitJobs(t, b.store, "life", 1)

	done := make(chan struct{})
	go func() {
		defer close(done)
		rec.Stop()
		rec.Stop()
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Stop did not return")
	}
}
