package faulttest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite"

	"github.com/switchyard-io/switchyard/pkg/config"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/producer"
	"github.com/switchyard-io/switchyard/streams"
)

// Every scenario calls one provider's one task on the bulk lane.
const (
	providerName = "fault"
	taskName     = "call"
)

// envInt and envDuration read the manual-run knobs (see the package doc).
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// options shape one scenario's stack.
type options struct {
	nodes       int // nats-server processes: 1, or 3 for a cluster with R3 streams
	workers     int
	concurrency int           // calls in flight per worker process
	timeout     time.Duration // provider call timeout; AckWait is 2×timeout+10s
	maxAttempts int
	backoffBase time.Duration
	backoffCap  time.Duration
	postgres    string // recorder database URL; a SQLite file when empty
	// allowDead accepts jobs recorded dead (and dead-lettered) instead of
	// succeeded, for a scenario that counts them.
	allowDead bool
}

// stack is one scenario's system: nats-server nodes, a recorder and
// workers as processes, the mock provider in the test process.
type stack struct {
	t        *testing.T
	o        options
	dir      string
	logDir   string
	nodes    []*natsNode
	prov     *provider
	conf     string
	sqlite   string
	recorder *proc
	workers  []*proc
	starts   map[string]int // restarts per process name, for log file names
	nc       *nats.Conn
	js       jetstream.JetStream
}

func newStack(t *testing.T, o options) *stack {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 1
	}
	dir := t.TempDir()
	s := &stack{t: t, o: o, dir: dir, logDir: filepath.Join(dir, "logs"), starts: map[string]int{}}
	if keep := os.Getenv("FAULT_LOGS"); keep != "" {
		// Keep the process logs and configs after the test, for a look.
		s.logDir = filepath.Join(keep, t.Name())
		_ = os.RemoveAll(s.logDir)
	}
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs()
		}
	})
	s.nodes = newNATSNodes(t, dir, s.logDir, o.nodes)
	for _, n := range s.nodes {
		n.start(t, false)
	}
	for _, n := range s.nodes {
		waitJetStream(context.Background(), t, n.url(), n.p)
	}
	s.prov = startProvider(t, mockapi.Config{LatencyMin: 100 * time.Millisecond, LatencyMax: 300 * time.Millisecond})
	s.sqlite = filepath.Join(dir, "results.db")
	s.writeConfig()

	nc, err := nats.Connect(s.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Name("faulttest"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s.nc = nc
	if s.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	s.startRecorder()
	for range o.workers {
		s.startWorker()
	}
	return s
}

func (s *stack) urls() string {
	u := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		u[i] = n.url()
	}
	return strings.Join(u, ",")
}

// writeConfig writes the switchyard.yaml every service reads and loads it
// with the services' own loader, so that a bad key fails here.
func (s *stack) writeConfig() {
	db := s.sqlite
	if s.o.postgres != "" {
		db = s.o.postgres
	}
	prov := map[string]any{
		"base_url":              s.prov.url(),
		"allow_private_network": true, // the mock provider is on loopback
		"concurrency":           s.o.concurrency,
		"timeout":               s.o.timeout.String(),
	}
	if s.o.maxAttempts > 0 {
		prov["max_attempts"] = s.o.maxAttempts
	}
	if s.o.backoffBase > 0 {
		prov["backoff_base"] = s.o.backoffBase.String()
		prov["backoff_cap"] = s.o.backoffCap.String()
	}
	replicas := 1
	if s.o.nodes > 1 {
		replicas = 3
	}
	cfg := map[string]any{
		"log":       map[string]any{"level": "warn", "format": "json"},
		"nats":      map[string]any{"url": s.urls(), "name": "faulttest", "replicas": replicas},
		"worker":    map[string]any{"shutdown_grace": "5s", "http": map[string]any{"listen": "127.0.0.1:0"}},
		"recorder":  map[string]any{"database": db, "api": map[string]any{"listen": "-"}},
		"providers": map[string]any{providerName: prov},
	}
	b, err := yaml.Parser().Marshal(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.conf = filepath.Join(s.logDir, "switchyard.yaml")
	if err := os.WriteFile(s.conf, b, 0o644); err != nil {
		s.t.Fatal(err)
	}
	if _, err := config.Load(config.Options{File: s.conf, Env: []string{}}); err != nil {
		s.t.Fatalf("generated config: %v", err)
	}
}

// name returns name-N, N counting the starts of name, so a restarted
// process gets its own log.
func (s *stack) name(name string) string {
	s.starts[name]++
	return name + "-" + strconv.Itoa(s.starts[name])
}

// startRecorder starts a recorder and waits for its consumer.
func (s *stack) startRecorder() {
	s.recorder = startProc(s.t, s.logDir, s.name("recorder"), binRecorder, "--config", s.conf)
	s.waitConsumer(streams.Results, streams.Recorder, s.recorder)
}

// startWorker starts one more worker and waits for the bulk lane's
// consumer.
func (s *stack) startWorker() *proc {
	id := s.name("worker")
	w := startProc(s.t, s.logDir, id, binWorker, "--config", s.conf, "--id", id)
	s.workers = append(s.workers, w)
	s.waitConsumer(streams.Jobs, job.WorkConsumer(providerName, job.LaneBulk), w)
	return w
}

// waitConsumer polls until stream has the durable consumer, failing if p
// exits first.
func (s *stack) waitConsumer(stream, consumer string, p *proc) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := s.js.Consumer(ctx, stream, consumer)
		cancel()
		if err == nil {
			return
		}
		if p.exited() {
			s.t.Fatalf("%s exited:\n%s", p.name, p.tail(20))
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("consumer %s on %s not there after 60s: %v", consumer, stream, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jobID names job i of a scenario.
func jobID(i int) string { return fmt.Sprintf("job-%06d", i) }

// enqueue publishes jobs 0..n-1 in the background with the Go producer,
// which retries through NATS outages; the returned channel gets the
// outcome.
func (s *stack) enqueue(n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		p, err := producer.New(s.nc, producer.WithRetryFor(3*time.Minute))
		if err != nil {
			done <- err
			return
		}
		defer p.Close()
		pl := p.Pipeline(context.Background(), producer.Window(1000))
		for i := range n {
			id := jobID(i)
			if _, err := pl.Add(producer.NewJob(providerName, taskName, "POST", "/job/"+id), producer.ID(id), producer.Lane(job.LaneBulk)); err != nil {
				done <- fmt.Errorf("add %s: %w", id, err)
				pl.Wait()
				return
			}
		}
		sum := pl.Wait()
		if err := sum.Err(); err != nil {
			done <- err
			return
		}
		if got := sum.Stored + sum.Duplicates; got != n {
			done <- fmt.Errorf("producer: %d of %d jobs stored", got, n)
			return
		}
		done <- nil
	}()
	return done
}

// counter counts the final rows in the recorder's database while the
// recorder writes it.
type counter interface {
	count(ctx context.Context) (int, error)
	rows(ctx context.Context) (map[string]row, int, error)
	// retried summarises the attempts that did not succeed, by outcome.
	retried(ctx context.Context) (string, error)
	close()
}

// row is what the checks read of one job's row.
type row struct {
	status   string
	attempts int
}

type sqliteDB struct{ db *sql.DB }

// finalQuery counts the jobs with a final outcome: every status but
// retrying is final.
const finalQuery = `SELECT count(*) FROM jobs WHERE status <> 'retrying'`

func (s *stack) openDB() counter {
	s.t.Helper()
	if s.o.postgres != "" {
		pool, err := pgxpool.New(context.Background(), s.o.postgres)
		if err != nil {
			s.t.Fatal(err)
		}
		return pgDB{pool}
	}
	db, err := sql.Open("sqlite", "file:"+s.sqlite+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		s.t.Fatal(err)
	}
	return sqliteDB{db}
}

func (d sqliteDB) count(ctx context.Context) (int, error) {
	var n int
	err := d.db.QueryRowContext(ctx, finalQuery).Scan(&n)
	return n, err
}

func (d sqliteDB) rows(ctx context.Context) (map[string]row, int, error) {
	rs, err := d.db.QueryContext(ctx, `SELECT job_id, status, attempts FROM jobs`)
	if err != nil {
		return nil, 0, err
	}
	defer rs.Close()
	m := map[string]row{}
	for rs.Next() {
		var id string
		var r row
		if err := rs.Scan(&id, &r.status, &r.attempts); err != nil {
			return nil, 0, err
		}
		if _, dup := m[id]; dup {
			return nil, 0, fmt.Errorf("job %s has two rows", id)
		}
		m[id] = r
	}
	if err := rs.Err(); err != nil {
		return nil, 0, err
	}
	var succ int
	err = d.db.QueryRowContext(ctx, `SELECT count(*) FROM attempts WHERE status = 'succeeded'`).Scan(&succ)
	return m, succ, err
}

// retriedQuery groups the attempts that did not succeed by status, error
// class and HTTP status, with one error text of each group.
const retriedQuery = `SELECT status, error_class, http_status, count(*), max(error) FROM attempts
	WHERE status <> 'succeeded' GROUP BY status, error_class, http_status ORDER BY count(*) DESC`

func (d sqliteDB) retried(ctx context.Context) (string, error) {
	rs, err := d.db.QueryContext(ctx, retriedQuery)
	if err != nil {
		return "", err
	}
	defer rs.Close()
	var b strings.Builder
	for rs.Next() {
		var status, class, msg string
		var code, n int64
		if err := rs.Scan(&status, &class, &code, &n, &msg); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\n\t%d× %s %s %d (e.g. %.160s)", n, status, class, code, msg)
	}
	return b.String(), rs.Err()
}

func (d sqliteDB) close() { _ = d.db.Close() }

type pgDB struct{ pool *pgxpool.Pool }

func (d pgDB) count(ctx context.Context) (int, error) {
	var n int
	err := d.pool.QueryRow(ctx, finalQuery).Scan(&n)
	return n, err
}

func (d pgDB) rows(ctx context.Context) (map[string]row, int, error) {
	rs, err := d.pool.Query(ctx, `SELECT job_id, status, attempts FROM jobs`)
	if err != nil {
		return nil, 0, err
	}
	defer rs.Close()
	m := map[string]row{}
	for rs.Next() {
		var id string
		var r row
		var attempts int64
		if err := rs.Scan(&id, &r.status, &attempts); err != nil {
			return nil, 0, err
		}
		r.attempts = int(attempts)
		if _, dup := m[id]; dup {
			return nil, 0, fmt.Errorf("job %s has two rows", id)
		}
		m[id] = r
	}
	if err := rs.Err(); err != nil {
		return nil, 0, err
	}
	var succ int
	err = d.pool.QueryRow(ctx, `SELECT count(*) FROM attempts WHERE status = 'succeeded'`).Scan(&succ)
	return m, succ, err
}

func (d pgDB) retried(ctx context.Context) (string, error) {
	rs, err := d.pool.Query(ctx, retriedQuery)
	if err != nil {
		return "", err
	}
	defer rs.Close()
	var b strings.Builder
	for rs.Next() {
		var status, class, msg string
		var code, n int64
		if err := rs.Scan(&status, &class, &code, &n, &msg); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\n\t%d× %s %s %d (e.g. %.160s)", n, status, class, code, msg)
	}
	return b.String(), rs.Err()
}

func (d pgDB) close() { d.pool.Close() }

// sample is the final count at one instant.
type sample struct {
	at time.Time
	n  int
}

// progress polls the final count every 100 ms, tolerating errors
// (the database may be down: that is the point), until stopped.
type progress struct {
	mu      sync.Mutex
	samples []sample
	fails   int   // polls that failed
	lastErr error // of the latest failed poll
	stop    chan struct{}
	done    chan struct{}
}

func (s *stack) watch(db counter) *progress {
	pr := &progress{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			n, err := db.count(ctx)
			cancel()
			pr.mu.Lock()
			if err == nil {
				pr.samples = append(pr.samples, sample{time.Now(), n})
			} else {
				pr.fails++
				pr.lastErr = err
			}
			pr.mu.Unlock()
			select {
			case <-pr.stop:
				return
			case <-tick.C:
			}
		}
	}()
	s.t.Cleanup(pr.close)
	if os.Getenv("FAULT_TRACE") != "" {
		s.t.Cleanup(s.logConsumer(streams.Results, streams.Recorder, 2*time.Second))
		s.t.Cleanup(s.logConsumer(streams.Jobs, job.WorkConsumer(providerName, job.LaneBulk), 2*time.Second))
	}
	return pr
}

func (pr *progress) close() {
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	<-pr.done
}

func (pr *progress) last() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if len(pr.samples) == 0 {
		return 0
	}
	return pr.samples[len(pr.samples)-1].n
}

// waitFor waits until at least n jobs are recorded, failing after limit.
func (s *stack) waitFor(pr *progress, n int, limit time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for pr.last() < n {
		if time.Now().After(deadline) {
			s.t.Fatalf("%d of %d jobs recorded after %s", pr.last(), n, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// timing is what the samples say about a fault at faultAt: the rate
// before it, the longest stretch with no job recorded after it, and when
// the last job was recorded.
type timing struct {
	rateBefore float64
	stall      time.Duration
	toDone     time.Duration
	// delay is toDone less the time the jobs left at the fault would have
	// taken at rateBefore: what the fault cost.
	delay time.Duration
}

func (pr *progress) timing(faultAt time.Time, total int) timing {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var tm timing
	var first *sample
	var atFault sample
	for i := range pr.samples {
		sm := pr.samples[i]
		if first == nil && sm.n > 0 {
			first = &pr.samples[i]
		}
		if !sm.at.After(faultAt) {
			atFault = sm
		}
	}
	if first != nil && atFault.at.After(first.at) {
		tm.rateBefore = float64(atFault.n-first.n) / atFault.at.Sub(first.at).Seconds()
	}
	lastChange := atFault
	for _, sm := range pr.samples {
		if !sm.at.After(faultAt) {
			continue
		}
		if sm.n != lastChange.n {
			from := lastChange.at
			if from.Before(faultAt) {
				from = faultAt
			}
			tm.stall = max(tm.stall, sm.at.Sub(from))
			lastChange = sm
		}
		if sm.n >= total && tm.toDone == 0 {
			tm.toDone = sm.at.Sub(faultAt)
		}
	}
	if tm.rateBefore > 0 && tm.toDone > 0 {
		tm.delay = tm.toDone - time.Duration(float64(total-atFault.n)/tm.rateBefore*float64(time.Second))
	}
	return tm
}

// report is one scenario's figures, for RELIABILITY.md.
type report struct {
	jobs          int
	lost          int // jobs with no succeeded row (nor a dead one, with allowDead)
	deadRows      int
	extraRows     int // rows of jobs never enqueued
	dupRecorded   int // succeeded attempts recorded beyond one per job
	providerCalls int64
	dupDelivered  int64 // provider calls beyond one per job
	dupKeys       int   // jobs the provider saw more than once
	attemptsTotal int
	attemptsMax   int
	dead          uint64 // DLQ messages
	resultsMsgs   uint64 // RESULTS messages published
	timing        timing
}

// finish waits for every job to be recorded, stops the services, reads the
// database, the DLQ and the provider's counters, logs the figures and fails
// on any lost or duplicated row.
func (s *stack) finish(name string, pr *progress, db counter, total int, enq <-chan error, faultAt time.Time, limit time.Duration) report {
	s.t.Helper()
	t := s.t
	select {
	case err := <-enq:
		if err != nil {
			t.Errorf("enqueue: %v", err)
		}
	case <-time.After(limit):
		t.Errorf("enqueue not done after %s", limit)
	}
	deadline := time.Now().Add(limit)
	for pr.last() < total && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	pr.close()
	rep := report{jobs: total, timing: pr.timing(faultAt, total)}
	if pr.fails > 0 {
		t.Logf("%d polls of the results database failed (they leave gaps in the timing); the last: %v", pr.fails, pr.lastErr)
	}

	// A cluster may still be electing stream leaders after a fault.
	infoStart := time.Now()
	if info, err := s.streamInfo(streams.DLQ, time.Minute); err == nil {
		rep.dead = info.State.Msgs
	} else {
		t.Errorf("DLQ info: %v", err)
	}
	if info, err := s.streamInfo(streams.Results, time.Minute); err == nil {
		rep.resultsMsgs = info.State.LastSeq
	}
	if d := time.Since(infoStart); d > 5*time.Second {
		t.Logf("stream info took %s", d.Round(100*time.Millisecond))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, w := range s.workers {
		w.stop(15 * time.Second)
	}
	if !s.recorder.stop(15 * time.Second) {
		t.Errorf("recorder did not stop within 15s")
	}
	rows, succ, err := db.rows(ctx)
	if why, err := db.retried(ctx); err == nil {
		t.Logf("attempts that did not succeed:%s", why)
	} else {
		t.Errorf("read attempts: %v", err)
	}
	db.close()
	if err != nil {
		t.Fatalf("read results: %v", err)
	}
	want := map[string]bool{}
	for i := range total {
		want[jobID(i)] = true
		r, ok := rows[jobID(i)]
		if ok && s.o.allowDead && r.status == string(job.StatusDead) {
			rep.deadRows++
			continue
		}
		if !ok || r.status != string(job.StatusSucceeded) {
			rep.lost++
			if rep.lost <= 5 {
				t.Errorf("job %s: row %+v (present %v), want succeeded", jobID(i), r, ok)
			}
			continue
		}
		rep.attemptsTotal += r.attempts
		rep.attemptsMax = max(rep.attemptsMax, r.attempts)
	}
	for id := range rows {
		if !want[id] {
			rep.extraRows++
		}
	}
	rep.dupRecorded = succ - (total - rep.lost - rep.deadRows)
	st := s.prov.mock.Stats()
	rep.providerCalls = st.Requests
	rep.dupDelivered = st.Requests - int64(st.Keys)
	rep.dupKeys = st.Duplicates

	tm := rep.timing
	t.Logf("provider answers by status %v, %d calls cut before the answer", st.ByStatus, st.Canceled)
	t.Logf("FAULT %s: jobs=%d lost=%d extra_rows=%d dup_recorded=%d provider_calls=%d dup_delivered=%d (jobs called twice or more: %d) attempts=%d (max %d) dlq=%d results_msgs=%d rate_before=%.0f/s stall=%s fault_to_all_recorded=%s delay=%s",
		name, rep.jobs, rep.lost, rep.extraRows, rep.dupRecorded, rep.providerCalls, rep.dupDelivered, rep.dupKeys,
		rep.attemptsTotal, rep.attemptsMax, rep.dead, rep.resultsMsgs, tm.rateBefore, tm.stall.Round(100*time.Millisecond), tm.toDone.Round(100*time.Millisecond), tm.delay.Round(100*time.Millisecond))
	if rep.deadRows > 0 {
		t.Logf("%d jobs recorded dead", rep.deadRows)
	}
	if rep.lost > 0 {
		t.Errorf("%d of %d jobs lost", rep.lost, total)
	}
	if rep.extraRows > 0 {
		t.Errorf("%d rows of jobs never enqueued", rep.extraRows)
	}
	switch {
	case !s.o.allowDead && rep.dead > 0:
		t.Errorf("%d jobs dead-lettered", rep.dead)
	case s.o.allowDead && rep.dead != uint64(rep.deadRows):
		t.Errorf("%d jobs dead-lettered, %d recorded dead", rep.dead, rep.deadRows)
	}
	if !s.o.allowDead && st.Keys != total {
		t.Errorf("the provider saw %d distinct jobs, want %d", st.Keys, total)
	}
	return rep
}

// streamInfo retries for up to limit while the cluster elects leaders.
func (s *stack) streamInfo(name string, limit time.Duration) (*jetstream.StreamInfo, error) {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var info *jetstream.StreamInfo
		st, err := s.js.Stream(ctx, name)
		if err == nil {
			info, err = st.Info(ctx)
		}
		cancel()
		if err == nil {
			return info, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dumpLogs prints the end of every process log after a failure.
func (s *stack) dumpLogs() {
	entries, _ := os.ReadDir(s.logDir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		p := &proc{name: e.Name(), log: filepath.Join(s.logDir, e.Name())}
		s.t.Logf("--- %s:\n%s", e.Name(), p.tail(15))
	}
}

// logConsumer logs the consumer's state every interval until stopped, to
// show where a stall comes from.
func (s *stack) logConsumer(stream, name string, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := s.js.Consumer(ctx, stream, name)
			cancel()
			if err != nil {
				s.t.Logf("+%s %s/%s: %v", time.Since(start).Round(100*time.Millisecond), stream, name, err)
				continue
			}
			i := c.CachedInfo()
			s.t.Logf("+%s %s/%s: pending %d, ack pending %d, redelivered %d, waiting pulls %d",
				time.Since(start).Round(100*time.Millisecond), stream, name, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting)
		}
	}()
	return func() { close(done); wg.Wait() }
}
