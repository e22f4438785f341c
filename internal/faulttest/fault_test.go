package faulttest

import (
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/internal/pgtest"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/streams"
)

// Defaults for every scenario: 2 s call timeout (AckWait 14 s, see
// natsx.AckWaitFor), 1,000 calls in flight per worker process, and retries
// generous enough that no fault here spends a job's last attempt.
const (
	callTimeout = 2 * time.Second
	concurrency = 1000
)

// limit bounds each wait for the whole backlog; the machine is shared.
const limit = 3 * time.Minute

func defaults() options {
	return options{
		workers:     2,
		concurrency: concurrency,
		timeout:     callTimeout,
		maxAttempts: 20,
		backoffBase: 500 * time.Millisecond,
		backoffCap:  3 * time.Second,
	}
}

// jobs is the burst size of every scenario.
func jobs(t *testing.T) int { return envInt(t, "FAULT_JOBS", 10000) }

// No fault: the baseline the others compare with.
func TestNoFault(t *testing.T) {
	n := jobs(t)
	s := newStack(t, defaults())
	db := s.openDB()
	pr := s.watch(db)
	enq := s.enqueue(n)
	s.waitFor(pr, n/4, limit)
	s.finish("none (baseline)", pr, db, n, enq, time.Now(), limit)
}

// A worker process killed with SIGKILL holds up to its concurrency of
// calls and their messages; the other worker gets them once their AckWait
// runs out.
func TestWorkerKilled(t *testing.T) {
	n := jobs(t)
	s := newStack(t, defaults())
	db := s.openDB()
	pr := s.watch(db)
	enq := s.enqueue(n)
	s.waitFor(pr, n/4, limit)
	faultAt := time.Now()
	s.workers[0].kill()
	t.Logf("worker-1 killed with SIGKILL at %d recorded; AckWait %s", pr.last(), natsx.AckWaitFor(callTimeout))
	s.finish("worker SIGKILL", pr, db, n, enq, faultAt, limit)
}

// The only nats-server is killed with SIGKILL mid-burst and started again
// on the same port and store directory.
func TestNATSKilledAndRestarted(t *testing.T) {
	n := jobs(t)
	s := newStack(t, defaults())
	db := s.openDB()
	pr := s.watch(db)
	enq := s.enqueue(n)
	s.waitFor(pr, n/4, limit)
	faultAt := time.Now()
	node := s.nodes[0]
	node.p.kill()
	t.Logf("nats-server killed with SIGKILL at %d recorded", pr.last())
	node.start(t, false)
	waitJetStream(t.Context(), t, node.url(), node.p)
	t.Logf("nats-server back after %s", time.Since(faultAt).Round(time.Millisecond))
	s.finish("nats SIGKILL+restart", pr, db, n, enq, faultAt, limit)
}

// The same with SIGTERM: a clean shutdown and start.
func TestNATSRestarted(t *testing.T) {
	n := jobs(t)
	s := newStack(t, defaults())
	db := s.openDB()
	pr := s.watch(db)
	enq := s.enqueue(n)
	s.waitFor(pr, n/4, limit)
	faultAt := time.Now()
	node := s.nodes[0]
	if !node.p.stop(30 * time.Second) {
		t.Log("nats-server did not stop on SIGTERM within 30s; killed")
	}
	node.start(t, false)
	waitJetStream(t.Context(), t, node.url(), node.p)
	t.Logf("nats-server restarted (SIGTERM) in %s", time.Since(faultAt).Round(time.Millisecond))
	s.finish("nats SIGTERM+restart", pr, db, n, enq, faultAt, limit)
}

// One node of a 3-node cluster (R3 streams) is killed mid-burst and
// restarted 5 s later (FAULT_NODE_DOWN).
func TestClusterNodeKilled(t *testing.T) {
	n := jobs(t)
	o := defaults()
	o.nodes = 3
	s := newStack(t, o)
	db := s.openDB()
	pr := s.watch(db)
	enq := s.enqueue(n)
	s.waitFor(pr, n/4, limit)
	faultAt := time.Now()
	node := s.nodes[1]
	node.p.kill()
	down := envDuration(t, "FAULT_NODE_DOWN", 5*time.Second)
	t.Logf("node %s killed with SIGKILL at %d recorded, for %s", node.name, pr.last(), down)
	time.Sleep(down) // the fault's length, not a synchronisation
	node.start(t, false)
	waitJetStream(t.Context(), t, node.url(), node.p)
	t.Logf("node %s back at %d recorded, %s after the kill", node.name, pr.last(), time.Since(faultAt).Round(time.Millisecond))
	s.finish("cluster node SIGKILL+restart", pr, db, n, enq, faultAt, limit)
}

// One node of a 3-node cluster is cut off from the other two: restarted
// on its client port and store but with a fresh route port and no routes,
// so no route can form either way while its clients stay connected to it.
// After 10 s (FAULT_CUT) it is restarted with its routes again. Clients
// connected to it keep their connection to a node that has no JetStream
// quorum.
func TestClusterNodePartitioned(t *testing.T) {
	n := jobs(t)
	o := defaults()
	o.nodes = 3
	s := newStack(t, o)
	db := s.openDB()
	pr := s.watch(db)
	enq := s.enqueue(n)
	s.waitFor(pr, n/4, limit)
	faultAt := time.Now()
	node := s.nodes[2]
	node.p.kill()
	node.start(t, true)
	cutFor := envDuration(t, "FAULT_CUT", 10*time.Second)
	t.Logf("node %s cut off at %d recorded, for %s", node.name, pr.last(), cutFor)
	time.Sleep(cutFor) // the fault's length, not a synchronisation
	cut := time.Since(faultAt)
	node.p.kill()
	node.start(t, false)
	waitJetStream(t.Context(), t, node.url(), node.p)
	t.Logf("node %s healed at %d recorded after %s cut off", node.name, pr.last(), cut.Round(time.Millisecond))
	s.finish("cluster node partitioned+healed", pr, db, n, enq, faultAt, limit)
}

// The recorder is killed with SIGKILL mid-burst and started again.
func TestRecorderKilled(t *testing.T) {
	n := jobs(t)
	s := newStack(t, defaults())
	db := s.openDB()
	pr := s.watch(db)
	enq := s.enqueue(n)
	s.waitFor(pr, n/4, limit)
	faultAt := time.Now()
	s.recorder.kill()
	t.Logf("recorder killed with SIGKILL at %d recorded", pr.last())
	if c, err := s.js.Consumer(t.Context(), streams.Results, streams.Recorder); err == nil {
		info := c.CachedInfo()
		t.Logf("the dead recorder holds %d results unacked; they come back after its consumer's AckWait, %s", info.NumAckPending, info.Config.AckWait)
	}
	s.startRecorder()
	stop := s.logConsumer(streams.Results, streams.Recorder, 2*time.Second)
	defer stop()
	s.finish("recorder SIGKILL+restart", pr, db, n, enq, faultAt, limit)
}

// The recorder's PostgreSQL is stopped mid-burst for a few seconds and
// started again; the recorder keeps running.
func TestRecorderDatabaseStopped(t *testing.T) {
	pg := pgtest.Start(t)
	n := jobs(t)
	o := defaults()
	o.postgres = pg.CreateDatabase(t)
	s := newStack(t, o)
	db := s.openDB()
	pr := s.watch(db)
	enq := s.enqueue(n)
	s.waitFor(pr, n/4, limit)
	faultAt := time.Now()
	pg.Stop()
	down := envDuration(t, "FAULT_DB_OUTAGE", 5*time.Second)
	t.Logf("PostgreSQL stopped at %d recorded, for %s", pr.last(), down)
	time.Sleep(down) // the fault's length, not a synchronisation
	pg.Start()
	if s.recorder.exited() {
		t.Errorf("the recorder exited while its database was down:\n%s", s.recorder.tail(10))
		s.startRecorder()
	}
	s.finish("recorder database stopped+started", pr, db, n, enq, faultAt, limit)
}

// The provider goes down (connections cut, new ones refused) mid-burst
// and comes back; no job may be dead-lettered for the outage alone.
func TestProviderDown(t *testing.T) {
	n := jobs(t)
	down := envDuration(t, "FAULT_OUTAGE", 15*time.Second)
	o := defaults()
	// Enough attempts to outlast the outage with room to spare: backoff is
	// up to 3 s with full jitter, so a job makes about one attempt a second
	// (with 20 for a 15 s outage, one job took 19).
	o.maxAttempts = 3 * int(max(down, 15*time.Second)/time.Second)
	s := newStack(t, o)
	db := s.openDB()
	pr := s.watch(db)
	enq := s.enqueue(n)
	s.waitFor(pr, n/4, limit)
	faultAt := time.Now()
	s.prov.down()
	t.Logf("provider down at %d recorded, for %s; max_attempts %d", pr.last(), down, o.maxAttempts)
	time.Sleep(down) // the outage's length, not a synchronisation
	atUp := pr.last()
	s.prov.up(t)
	t.Logf("provider up at %d recorded", atUp)
	rep := s.finish("provider down "+down.String(), pr, db, n, enq, faultAt, limit)
	t.Logf("attempts spent: %d for %d jobs (max %d per job)", rep.attemptsTotal, n, rep.attemptsMax)
}

// The same outage under the default retry policy (5 attempts, backoff from
// 1 s): jobs whose attempts run out during the outage are dead-lettered,
// which is what a fleet breaker is to prevent. Every job must still end in
// exactly one row, succeeded or dead, and each dead one in the DLQ; the
// test reports how many died.
func TestProviderDownDefaultRetries(t *testing.T) {
	n := jobs(t)
	down := envDuration(t, "FAULT_OUTAGE", 15*time.Second)
	o := defaults()
	o.maxAttempts, o.backoffBase, o.backoffCap = 0, 0, 0
	o.allowDead = true
	s := newStack(t, o)
	db := s.openDB()
	pr := s.watch(db)
	enq := s.enqueue(n)
	s.waitFor(pr, n/4, limit)
	faultAt := time.Now()
	s.prov.down()
	t.Logf("provider down at %d recorded, for %s; default retry policy", pr.last(), down)
	time.Sleep(down) // the outage's length, not a synchronisation
	s.prov.up(t)
	rep := s.finish("provider down "+down.String()+", default retries", pr, db, n, enq, faultAt, limit)
	t.Logf("dead-lettered by the outage: %d of %d jobs; attempts spent %d", rep.deadRows, n, rep.attemptsTotal)
}
