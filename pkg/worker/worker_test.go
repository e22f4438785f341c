package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

// bundle is a whole pipeline: a real NATS server with the streams, a
// recorder writing to a real SQLite file, and a fake third-party API.
type bundle struct {
	nats  *natstest.Server
	js    jetstream.JetStream
	store *recorder.SQLite
	api   *mockapi.Server
	url   string
}

func setup(t *testing.T, api mockapi.Config) *bundle {
	t.Helper()
	b := &bundle{nats: natstest.Start(t), api: mockapi.New(api)}
	_, b.js = b.nats.Connect(t)
	b.nats.ApplyStreams(t, b.js)

	hs := httptest.NewServer(b.api)
	t.Cleanup(hs.Close)
	b.url = hs.URL

	ctx := context.Background()
	store, err := recorder.OpenSQLite(ctx, filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b.store = store
	rec, err := recorder.New(b.js, store, recorder.Config{FetchMaxWait: 50 * time.Millisecond}, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Stop)
	return b
}

// fastRetries is a provider config for tests: short backoff, three attempts.
func (b *bundle) provider(url string, mods ...func(*provider.Config)) provider.Config {
	c := provider.Config{BaseURL: url, AllowPrivateNetwork: true, Concurrency: 50, Timeout: 5 * time.Second, MaxAttempts: 3,
		BackoffBase: 10 * time.Millisecond, BackoffCap: 50 * time.Millisecond}
	for _, m := range mods {
		m(&c)
	}
	return c
}

func (b *bundle) startWorker(t *testing.T, cfg worker.Config, providers map[string]provider.Config) *worker.Worker {
	t.Helper()
	ps, err := provider.NewAll(providers)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UnroutedInterval == 0 {
		cfg.UnroutedInterval = 100 * time.Millisecond
	}
	if cfg.FetchMaxWait == 0 {
		cfg.FetchMaxWait = 200 * time.Millisecond
	}
	w, err := worker.New(b.js, cfg, ps, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	return w
}

func newJob(id, prov, task, path string) *job.Job {
	return &job.Job{V: 1, ID: id, Provider: prov, Task: task, Batch: "b1",
		Request: job.Request{Method: "POST", Path: path, Body: json.RawMessage(`{"n":1}`)},
		Meta:    json.RawMessage(`{"order":981}`)}
}

func (b *bundle) publish(t *testing.T, j *job.Job, lane job.Lane) {
	t.Helper()
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	b.publishRaw(t, job.Subject(j.Provider, lane, j.Task), j.ID, data)
}

func (b *bundle) publishRaw(t *testing.T, subject, id string, data []byte) {
	t.Helper()
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	if _, err := b.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

// waitFinal waits until every id has a final row and returns the rows.
func (b *bundle) waitFinal(t *testing.T, timeout time.Duration, ids ...string) map[string]*recorder.JobRow {
	t.Helper()
	rows := map[string]*recorder.JobRow{}
	waitFor(t, timeout, func() (bool, string) {
		for _, id := range ids {
			if rows[id] != nil {
				continue
			}
			row, err := b.store.Job(context.Background(), id)
			if errors.Is(err, recorder.ErrNotFound) || (err == nil && !row.Status.Final()) {
				return false, fmt.Sprintf("job %s has no final row yet (%d of %d done)", id, len(rows), len(ids))
			}
			if err != nil {
				t.Fatal(err)
			}
			rows[id] = row
		}
		return true, ""
	})
	return rows
}

// waitFor polls cond until it holds; it fails the test with cond's last
// explanation at the deadline.
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

func (b *bundle) jobsLeft(t *testing.T) uint64 {
	t.Helper()
	s, err := b.js.Stream(context.Background(), streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

func (b *bundle) deadLetter(t *testing.T, prov, task string) job.DeadLetter {
	t.Helper()
	s, err := b.js.Stream(context.Background(), streams.DLQ)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), job.DLQSubject(prov, task))
	if err != nil {
		t.Fatalf("dead letter on %s: %v", job.DLQSubject(prov, task), err)
	}
	var dl job.DeadLetter
	if err := json.Unmarshal(m.Data, &dl); err != nil {
		t.Fatal(err)
	}
	return dl
}

func TestManyJobsOverTwoProvidersAreEachRecordedOnce(t *testing.T) {
	b := setup(t, mockapi.Config{LatencyMax: 5 * time.Millisecond})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{
		"acme":   b.provider(b.url+"/acme", func(c *provider.Config) { c.Concurrency = 200 }),
		"globex": b.provider(b.url+"/globex", func(c *provider.Config) { c.Concurrency = 200 }),
	})
	const n = 2000
	ids := make([]string, n)
	for i := range n {
		prov, lane := "acme", job.LaneBulk
		if i%2 == 1 {
			prov = "globex"
		}
		if i%10 == 0 {
			lane = job.LaneLive
		}
		ids[i] = fmt.Sprintf("job-%04d", i)
		b.publish(t, newJob(ids[i], prov, "create_invoice", "/v1/invoices"), lane)
	}
	rows := b.waitFinal(t, 60*time.Second, ids...)

	counts, err := b.store.BatchCounts(context.Background(), "b1")
	if err != nil {
		t.Fatal(err)
	}
	if counts[job.StatusSucceeded] != n || len(counts) != 1 {
		t.Fatalf("batch counts = %v, want %d succeeded and nothing else", counts, n)
	}
	for id, row := range rows {
		if row.Attempts != 1 || len(row.AttemptRows) != 1 || row.HTTPStatus != 200 || string(row.Meta) != `{"order":981}` {
			t.Fatalf("job %s: attempts %d (%d rows), http %d, meta %s", id, row.Attempts, len(row.AttemptRows), row.HTTPStatus, row.Meta)
		}
	}
	if got := b.api.Stats().Requests; got != n {
		t.Errorf("provider saw %d calls, want %d", got, n)
	}
	if d := b.api.Duplicates(); d != 0 {
		t.Errorf("%d jobs were called twice", d)
	}
	if left := b.jobsLeft(t); left != 0 {
		t.Errorf("%d jobs left in JOBS", left)
	}
}

// flaky answers 503 to the first call with each idempotency key, then 200.
type flaky struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	key := r.Header.Get("Idempotency-Key")
	first := !f.seen[key]
	f.seen[key] = true
	f.mu.Unlock()
	if first {
		w.Header().Set("Retry-After", "0")
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"ok":true}`)
}

func TestFailingThenSucceedingProviderIsRetried(t *testing.T) {
	b := setup(t, mockapi.Config{})
	hs := httptest.NewServer(&flaky{seen: map[string]bool{}})
	t.Cleanup(hs.Close)
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(hs.URL)})

	b.publish(t, newJob("retry-1", "acme", "charge", "/charge"), job.LaneLive)
	row := b.waitFinal(t, 10*time.Second, "retry-1")["retry-1"]
	if row.Status != job.StatusSucceeded || row.Attempts != 2 {
		t.Fatalf("status %s after %d attempts, want succeeded after 2", row.Status, row.Attempts)
	}
	first := row.AttemptRows[0]
	if first.Status != job.StatusRetrying || first.HTTPStatus != 503 || first.ErrorClass != job.ClassHTTP5xx {
		t.Fatalf("first attempt = %+v, want retrying after a 503", first)
	}
	if string(row.Response) == "" || !strings.Contains(string(row.Response), `"ok":true`) {
		t.Errorf("response %s does not hold the provider's answer", row.Response)
	}
}

func TestAlwaysFailingProviderEndsInTheDLQ(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})

	j := newJob("doomed", "acme", "charge", "/status/500")
	b.publish(t, j, job.LaneLive)
	row := b.waitFinal(t, 10*time.Second, "doomed")["doomed"]
	if row.Status != job.StatusDead || row.Attempts != 3 || len(row.AttemptRows) != 3 || row.ErrorClass != job.ClassHTTP5xx {
		t.Fatalf("row = %s after %d attempts, class %s; want dead after 3 with http_5xx", row.Status, row.Attempts, row.ErrorClass)
	}
	if calls := b.api.Calls("doomed"); calls != 3 {
		t.Errorf("provider called %d times, want 3", calls)
	}
	dl := b.deadLetter(t, "acme", "charge")
	if dl.JobID != "doomed" || dl.Reason != job.ClassHTTP5xx || dl.Attempts != 3 || dl.HTTPStatus != 500 || !strings.Contains(dl.Error, "gave up after 3 attempts") {
		t.Fatalf("dead letter = %+v", dl)
	}
	// Every attempt's error: the two before the last come from RESULTS.
	if len(dl.History) != 2 || dl.HistoryIncomplete || dl.History[0].Attempt != 1 || dl.History[1].Attempt != 2 ||
		dl.History[0].Class != job.ClassHTTP5xx || dl.History[1].HTTPStatus != 500 || dl.History[0].Status != job.StatusRetrying {
		t.Fatalf("dead letter history = %+v (incomplete %v), want attempts 1 and 2, retrying with HTTP 500", dl.History, dl.HistoryIncomplete)
	}
	var orig job.Job
	if err := json.Unmarshal(dl.Job, &orig); err != nil || orig.ID != "doomed" || orig.Request.Path != "/status/500" {
		t.Fatalf("dead letter does not carry the original job: %s (%v)", dl.Job, err)
	}
	if left := b.jobsLeft(t); left != 0 {
		t.Errorf("%d jobs left in JOBS after the dead letter", left)
	}
}

func TestClientErrorFailsWithoutRetry(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})

	b.publish(t, newJob("bad-request", "acme", "charge", "/status/404"), job.LaneLive)
	row := b.waitFinal(t, 10*time.Second, "bad-request")["bad-request"]
	if row.Status != job.StatusFailed || row.Attempts != 1 || row.HTTPStatus != 404 || row.ErrorClass != job.ClassHTTP4xx {
		t.Fatalf("row = %s/%d after %d attempts (%s), want failed/404 after 1", row.Status, row.HTTPStatus, row.Attempts, row.ErrorClass)
	}
	// Refused jobs go to the DLQ too, to be replayed once the cause is fixed.
	if dl := b.deadLetter(t, "acme", "charge"); dl.JobID != "bad-request" || dl.Reason != job.ClassHTTP4xx || dl.HTTPStatus != 404 || dl.Attempts != 1 || len(dl.History) != 0 {
		t.Fatalf("dead letter = %+v, want bad-request with http_4xx after 1 attempt", dl)
	}
}

func TestExpiredJobIsNeverCalled(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})

	j := newJob("too-late", "acme", "charge", "/charge")
	past := time.Now().Add(-time.Minute)
	j.ExpiresAt = &past
	b.publish(t, j, job.LaneLive)
	row := b.waitFinal(t, 10*time.Second, "too-late")["too-late"]
	if row.Status != job.StatusExpired || b.api.Calls("too-late") != 0 {
		t.Fatalf("status %s with %d calls, want expired with none", row.Status, b.api.Calls("too-late"))
	}
	if dl := b.deadLetter(t, "acme", "charge"); dl.JobID != "too-late" || dl.Reason != job.ClassExpired {
		t.Fatalf("dead letter = %+v, want too-late with reason expired", dl)
	}
	// Never called: no start and no latency, so no call in the stats.
	if !row.StartedAt.IsZero() || row.LatencyMS != 0 || row.FinishedAt.IsZero() {
		t.Errorf("expired job started %v, latency %d ms, finished %v; want no start, no latency, a finish", row.StartedAt, row.LatencyMS, row.FinishedAt)
	}
}

func TestBadJobsAreDeadLetteredWhileTheWorkerKeepsServing(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})

	hostile := newJob("hostile", "acme", "steal", "/x")
	hostile.Request.Path = "http://169.254.169.254/latest/meta-data"
	hostileData, _ := json.Marshal(hostile)
	mismatched := newJob("mismatch", "globex", "charge", "/charge") // published on acme's subject
	mismatchedData, _ := json.Marshal(mismatched)

	cases := []struct {
		name, subject, msgID, wantID string
		data                         []byte
		wantClass                    job.Class
		wantErr                      string
	}{
		{"malformed JSON", "jobs.acme.live.broken", "broken-1", "broken-1", []byte(`{"v":1,"id":`), job.ClassInvalid, "not a v1 job"},
		{"hostile path", "jobs.acme.live.steal", "hostile", "hostile", hostileData, job.ClassInvalid, "request.path"},
		{"provider not matching subject", "jobs.acme.live.charge", "mismatch", "mismatch", mismatchedData, job.ClassInvalid, "does not match the subject's provider"},
		{"unknown provider", "jobs.nobody.live.charge", "unknown-1", "unknown-1", mustJSON(newJob("unknown-1", "nobody", "charge", "/x")), job.ClassUnrouted, "no worker serves provider \"nobody\""},
		{"unknown lane", "jobs.acme.urgent.lanes", "lane-1", "lane-1", mustJSON(newJob("lane-1", "acme", "lanes", "/x")), job.ClassInvalid, "is not a lane"},
		{"no id anywhere", "jobs.acme.bulk.noid", "", "seq-", []byte(`not json at all`), job.ClassInvalid, "not a v1 job"},
	}
	for _, tc := range cases {
		b.publishRaw(t, tc.subject, tc.msgID, tc.data)
	}
	b.publish(t, newJob("good-after", "acme", "charge", "/charge"), job.LaneLive)
	if row := b.waitFinal(t, 10*time.Second, "good-after")["good-after"]; row.Status != job.StatusSucceeded {
		t.Fatalf("a good job after bad ones: %s", row.Status)
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tokens := strings.Split(tc.subject, ".")
			var dl job.DeadLetter
			waitFor(t, 10*time.Second, func() (bool, string) {
				s, _ := b.js.Stream(context.Background(), streams.DLQ)
				for _, task := range []string{tokens[len(tokens)-1], "_invalid"} {
					for _, prov := range []string{tokens[1], "_invalid"} {
						m, err := s.GetLastMsgForSubject(context.Background(), job.DLQSubject(prov, task))
						if err == nil && json.Unmarshal(m.Data, &dl) == nil && strings.HasPrefix(dl.JobID, tc.wantID) {
							return true, ""
						}
					}
				}
				return false, "no dead letter yet for " + tc.subject
			})
			if dl.Reason != tc.wantClass || !strings.Contains(dl.Error, tc.wantErr) || dl.Subject != tc.subject {
				t.Fatalf("dead letter = reason %s, error %q, subject %s; want %s containing %q", dl.Reason, dl.Error, dl.Subject, tc.wantClass, tc.wantErr)
			}
			if len(dl.Job) == 0 && len(dl.JobBase64) == 0 {
				t.Error("dead letter lost the original message")
			}
			row := b.waitFinal(t, 10*time.Second, dl.JobID)[dl.JobID]
			if row.Status != job.StatusDead || row.ErrorClass != tc.wantClass {
				t.Errorf("recorded %s/%s, want dead/%s", row.Status, row.ErrorClass, tc.wantClass)
			}
		})
	}
	if calls := b.api.Stats().Requests; calls != 1 {
		t.Errorf("provider got %d calls, want only the good job's", calls)
	}
	waitFor(t, 10*time.Second, func() (bool, string) {
		left := b.jobsLeft(t)
		return left == 0, fmt.Sprintf("%d messages left in JOBS", left)
	})
}

func TestWorkerStoppedMidBatchLosesNothing(t *testing.T) {
	b := setup(t, mockapi.Config{LatencyMin: 100 * time.Millisecond, LatencyMax: 300 * time.Millisecond})
	providers := map[string]provider.Config{"acme": b.provider(b.url, func(c *provider.Config) { c.Concurrency = 100 })}
	// The jobs are all in the stream before the worker starts: published
	// while it ran, on a loaded machine, they could be done as fast as
	// they came, and there would be no batch to stop in the middle of.
	const n = 600
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("stop-%03d", i)
		b.publish(t, newJob(ids[i], "acme", "charge", "/charge"), job.LaneBulk)
	}
	// No grace: calls in flight are cancelled at Stop and handed back.
	first := b.startWorker(t, worker.Config{ID: "first", ShutdownGrace: 1}, providers)
	waitFor(t, 30*time.Second, func() (bool, string) {
		c, _ := b.store.BatchCounts(context.Background(), "b1")
		return c[job.StatusSucceeded] >= 150, fmt.Sprintf("%d succeeded", c[job.StatusSucceeded])
	})
	first.Stop(context.Background())
	if cut := b.api.Stats().Canceled; cut == 0 {
		t.Fatal("no call was in flight at Stop: the test did not stop mid-batch")
	}
	b.startWorker(t, worker.Config{ID: "second"}, providers)

	rows := b.waitFinal(t, 60*time.Second, ids...)
	byWorker := map[string]int{}
	for id, row := range rows {
		succeeded := 0
		for _, a := range row.AttemptRows {
			if a.Status == job.StatusSucceeded {
				succeeded++
			}
		}
		if row.Status != job.StatusSucceeded || succeeded != 1 {
			t.Fatalf("job %s: %s with %d succeeded attempts, want exactly one", id, row.Status, succeeded)
		}
		byWorker[row.WorkerID]++
	}
	if byWorker["first"] == 0 || byWorker["second"] == 0 {
		t.Errorf("jobs by worker = %v, want both to have finished some", byWorker)
	}
	if left := b.jobsLeft(t); left != 0 {
		t.Errorf("%d jobs left in JOBS", left)
	}
	t.Logf("jobs by worker %v; calls cut short by the stop and repeated: %d", byWorker, b.api.Duplicates())
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestNATSRestartMidBurstLosesNothing(t *testing.T) {
	b := setup(t, mockapi.Config{LatencyMin: 100 * time.Millisecond, LatencyMax: 300 * time.Millisecond})
	// Every job is in the stream before the worker starts, so that the
	// burst is still mid-way when 100 are done, however slow publishing is.
	const n = 600
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("restart-%03d", i)
		b.publish(t, newJob(ids[i], "acme", "charge", "/charge"), job.LaneBulk)
	}
	b.startWorker(t, worker.Config{}, map[string]provider.Config{
		"acme": b.provider(b.url, func(c *provider.Config) { c.Concurrency = 50 }),
	})
	waitFor(t, 30*time.Second, func() (bool, string) {
		c, _ := b.store.BatchCounts(context.Background(), "b1")
		return c[job.StatusSucceeded] >= 100, fmt.Sprintf("%d succeeded", c[job.StatusSucceeded])
	})
	c, _ := b.store.BatchCounts(context.Background(), "b1")
	if c[job.StatusSucceeded] > n/2 {
		t.Fatalf("%d of %d already done: the restart would not be mid-burst", c[job.StatusSucceeded], n)
	}
	b.nats.Restart()

	rows := b.waitFinal(t, 90*time.Second, ids...)
	for id, row := range rows {
		if row.Status != job.StatusSucceeded {
			t.Fatalf("job %s: %s (%s)", id, row.Status, row.Error)
		}
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		left := b.jobsLeft(t)
		return left == 0, fmt.Sprintf("%d jobs left in JOBS", left)
	})
	t.Logf("provider calls %d for %d jobs (%d repeated across the restart)", b.api.Stats().Requests, n, b.api.Duplicates())
}

func TestSingleSlotProviderServesBothLanes(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{
		"acme": b.provider(b.url, func(c *provider.Config) { c.Concurrency = 1 }),
	})
	b.publish(t, newJob("one-bulk", "acme", "charge", "/charge"), job.LaneBulk)
	b.publish(t, newJob("one-live", "acme", "charge", "/charge"), job.LaneLive)
	for id, row := range b.waitFinal(t, 10*time.Second, "one-bulk", "one-live") {
		if row.Status != job.StatusSucceeded {
			t.Errorf("%s: %s", id, row.Status)
		}
	}
}

func TestStopWithGraceFinishesCallsInFlight(t *testing.T) {
	b := setup(t, mockapi.Config{LatencyMin: 200 * time.Millisecond, LatencyMax: 400 * time.Millisecond})
	providers := map[string]provider.Config{"acme": b.provider(b.url, func(c *provider.Config) { c.Concurrency = 50 })}
	w := b.startWorker(t, worker.Config{ID: "graceful", ShutdownGrace: 30 * time.Second}, providers)
	const n = 300
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("grace-%03d", i)
		b.publish(t, newJob(ids[i], "acme", "charge", "/charge"), job.LaneBulk)
	}
	waitFor(t, 20*time.Second, func() (bool, string) {
		inFlight := b.api.Stats().InFlight
		return inFlight >= 20, fmt.Sprintf("%d calls in flight", inFlight)
	})
	w.Stop(context.Background())
	st := b.api.Stats()
	if st.InFlight != 0 || st.Canceled != 0 {
		t.Fatalf("after a graceful stop: %d in flight, %d cancelled; want every call finished", st.InFlight, st.Canceled)
	}
	b.startWorker(t, worker.Config{ID: "second"}, providers)
	b.waitFinal(t, 60*time.Second, ids...)
	if d := b.api.Duplicates(); d != 0 {
		t.Errorf("%d jobs were called twice across a graceful stop", d)
	}
}

func TestNotBeforeSpendsNoAttempt(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})
	j := newJob("later", "acme", "charge", "/charge")
	due := time.Now().Add(time.Second)
	j.NotBefore, j.MaxAttempts = &due, 1
	b.publish(t, j, job.LaneLive)
	row := b.waitFinal(t, 10*time.Second, "later")["later"]
	if row.Status != job.StatusSucceeded || row.Attempts != 1 || b.api.Calls("later") != 1 {
		t.Fatalf("status %s after %d attempts and %d calls; want succeeded at attempt 1", row.Status, row.Attempts, b.api.Calls("later"))
	}
	if row.StartedAt.Before(due) {
		t.Errorf("called at %s, before not_before %s", row.StartedAt, due)
	}
}

func TestDeletedWorkConsumerIsRecreated(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})
	ctx := context.Background()
	if err := b.js.DeleteConsumer(ctx, streams.Jobs, job.WorkConsumer("acme", job.LaneLive)); err != nil {
		t.Fatal(err)
	}
	b.publish(t, newJob("after-delete", "acme", "charge", "/charge"), job.LaneLive)
	row := b.waitFinal(t, 20*time.Second, "after-delete")["after-delete"]
	if row.Status != job.StatusSucceeded {
		t.Fatalf("status %s (%s): the job was not run after its consumer was deleted", row.Status, row.Error)
	}
	if _, err := b.js.Consumer(ctx, streams.Jobs, job.WorkConsumer("acme", job.LaneLive)); err != nil {
		t.Fatalf("consumer not recreated: %v", err)
	}
}

func TestWorkerStartsThroughAnUnroutedDrain(t *testing.T) {
	b := setup(t, mockapi.Config{})
	ctx := context.Background()
	// A sweeper of another replica is draining a subject of globex, which
	// no worker served until now.
	s, err := b.js.Stream(ctx, streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Description: "switchyard: dead-lettering unrouted jobs on jobs.globex.live.charge", FilterSubject: "jobs.globex.live.charge",
		AckPolicy: jetstream.AckExplicitPolicy, InactiveThreshold: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"globex": b.provider(b.url)})
	b.publish(t, newJob("globex-1", "globex", "charge", "/charge"), job.LaneLive)
	if row := b.waitFinal(t, 10*time.Second, "globex-1")["globex-1"]; row.Status != job.StatusSucceeded {
		t.Fatalf("status %s", row.Status)
	}
}

// TestOversizedResultIsStoredStripped: a response that cannot fit in a
// RESULTS message is dropped from the result, which is stored once;
// nothing loops.
func TestOversizedResultIsStoredStripped(t *testing.T) {
	b := setup(t, mockapi.Config{})
	// 512 KiB of control characters: within the body cap, but six bytes
	// each once escaped in JSON, far past RESULTS' 1 MiB.
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte{1}, provider.MaxResponseBodyLimit))
	}))
	t.Cleanup(big.Close)
	b.startWorker(t, worker.Config{}, map[string]provider.Config{
		"acme": b.provider(big.URL, func(c *provider.Config) { c.ResponseBodyLimit = provider.MaxResponseBodyLimit }),
	})
	b.publish(t, newJob("huge", "acme", "charge", "/charge"), job.LaneLive)
	row := b.waitFinal(t, 20*time.Second, "huge")["huge"]
	if row.Status != job.StatusSucceeded || row.Attempts != 1 || !strings.Contains(row.Error, "too large to store") || row.Response != nil {
		t.Fatalf("row = %s attempt %d error %q response %d bytes", row.Status, row.Attempts, row.Error, len(row.Response))
	}
	waitFor(t, 10*time.Second, func() (bool, string) {
		left := b.jobsLeft(t)
		return left == 0, fmt.Sprintf("%d jobs left", left)
	})
}

func TestMetaTooLargeIsRejected(t *testing.T) {
	j := newJob("big-meta", "acme", "charge", "/charge")
	j.Meta = json.RawMessage(`{"x":"` + strings.Repeat("a", job.MaxMetaBytes) + `"}`)
	if err := j.Validate(); err == nil || !strings.Contains(err.Error(), "meta") {
		t.Fatalf("err = %v, want one naming meta", err)
	}
}
