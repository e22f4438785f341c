package limit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/limit"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
)

// replica is one worker replica's fleet, on its own connection.
type replica struct {
	fleet *limit.Fleet
	nc    *nats.Conn
}

func startReplica(t *testing.T, srv *natstest.Server, id string, specs map[string]limit.Spec) *replica {
	t.Helper()
	return startReplicaTTL(t, srv, id, specs, 0)
}

// startReplicaTTL starts a replica whose heartbeats live ttl (0: the
// default).
func startReplicaTTL(t *testing.T, srv *natstest.Server, id string, specs map[string]limit.Spec, ttl time.Duration) *replica {
	t.Helper()
	nc, js := srv.Connect(t)
	f := limit.NewFleet(js, limit.FleetConfig{Replica: id, TTL: ttl}, natstest.Logger(t))
	for name, spec := range specs {
		f.Add(name, spec)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop(context.Background()) })
	return &replica{fleet: f, nc: nc}
}

// await polls cond until it holds, failing with its last explanation.
func await(t *testing.T, timeout time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		ok, why := cond()
		if ok {
			return time.Since(begin)
		}
		if time.Since(begin) > timeout {
			t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func awaitRate(t *testing.T, timeout time.Duration, r *replica, provider string, members int, rate float64) time.Duration {
	t.Helper()
	return await(t, timeout, func() (bool, string) {
		s := r.fleet.Limiter(provider).Snapshot()
		return s.Members == members && s.Rate == rate, fmt.Sprintf("%s: %d members at %v/s, want %d at %v/s", provider, s.Members, s.Rate, members, rate)
	})
}

func TestMembersShareTheRateAndTakeUpALeaversShare(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	acme := limit.Spec{Rate: 90, Burst: 9}
	globex := limit.Spec{Rate: 10}
	a := startReplica(t, srv, "a", map[string]limit.Spec{"acme": acme, "globex": globex})
	b := startReplica(t, srv, "b", map[string]limit.Spec{"acme": acme, "globex": globex})
	c := startReplica(t, srv, "c", map[string]limit.Spec{"acme": acme})

	// The last to start knows the fleet at once; the others learn of it.
	if s := c.fleet.Limiter("acme").Snapshot(); s.Members != 3 || s.Rate != 30 {
		t.Fatalf("the newcomer starts with %+v, want 3 members at 30/s", s)
	}
	for _, r := range []*replica{a, b} {
		awaitRate(t, time.Second, r, "acme", 3, 30)
		awaitRate(t, time.Second, r, "globex", 2, 5)
	}

	c.fleet.Stop(context.Background())
	took := awaitRate(t, time.Second, a, "acme", 2, 45)
	awaitRate(t, time.Second, b, "acme", 2, 45)
	t.Logf("a stopped replica's share was taken up in %s", took)

	// Every replica reports its share in its heartbeats: status sums them.
	js := mustJS(t, srv)
	await(t, 2*time.Second, func() (bool, string) {
		st, err := limit.ReadStatus(context.Background(), js)
		if err != nil {
			t.Fatal(err)
		}
		ok := len(st) == 2 && st[0].Provider == "acme" && st[0].Members == 2 && st[0].Rate == 90 &&
			st[1].Provider == "globex" && st[1].Members == 2 && st[1].Rate == 10
		return ok, fmt.Sprintf("ReadStatus = %+v", st)
	})
}

func mustJS(t *testing.T, srv *natstest.Server) jetstream.JetStream {
	_, js := srv.Connect(t)
	return js
}

func TestADeadReplicaLeavesWithinItsTTL(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	spec := map[string]limit.Spec{"acme": {Rate: 100}}
	a := startReplicaTTL(t, srv, "a", spec, time.Second)
	b := startReplicaTTL(t, srv, "b", spec, time.Second)
	awaitRate(t, time.Second, a, "acme", 2, 50)

	b.nc.Close() // dies: no goodbye, its heartbeats stop
	took := awaitRate(t, 5*time.Second, a, "acme", 1, 100)
	// TTL 1s, plus up to a second for the server to expire it.
	if took > 3*time.Second {
		t.Errorf("a dead replica kept its share for %s", took)
	}
	t.Logf("a dead replica's share was taken up in %s (TTL 1s)", took)
}

func TestAPauseStopsEveryReplicaForThatProviderOnly(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	spec := map[string]limit.Spec{"acme": {PauseOn429: true}, "globex": {PauseOn429: true}}
	a := startReplica(t, srv, "a", spec)
	b := startReplica(t, srv, "b", spec)

	a.fleet.Limiter("acme").Observe(time.Now(), http.StatusTooManyRequests, http.Header{"Retry-After": {"2"}})
	took := await(t, time.Second, func() (bool, string) {
		s := b.fleet.Limiter("acme").Snapshot()
		return !s.PausedUntil.IsZero(), "b has not paused acme"
	})
	s := b.fleet.Limiter("acme").Snapshot()
	if left := time.Until(s.PausedUntil); left < 1500*time.Millisecond || left > 2*time.Second {
		t.Errorf("b pauses for %s more, want about 2s from a's 429", left)
	}
	if g := b.fleet.Limiter("globex").Snapshot(); !g.PausedUntil.IsZero() {
		t.Errorf("globex paused too: %+v", g)
	}
	t.Logf("the pause reached the other replica in %s: %q", took, s.PauseReason)

	// A replica starting during the pause honours it.
	c := startReplica(t, srv, "c", spec)
	if s := c.fleet.Limiter("acme").Snapshot(); s.PausedUntil.IsZero() {
		t.Error("a replica started during the pause does not know of it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.fleet.Limiter("acme").Admit(ctx, job.LaneLive, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Admit during the pause: %v, want a wait", err)
	}
}

func TestDailyQuotaHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	const quota = 60
	spec := map[string]limit.Spec{"acme": {DailyQuota: quota}}
	replicas := []*replica{startReplica(t, srv, "a", spec), startReplica(t, srv, "b", spec), startReplica(t, srv, "c", spec)}

	var calls atomic.Int64
	var wg sync.WaitGroup
	for _, r := range replicas {
		l := r.fleet.Limiter("acme")
		for _, lane := range job.Lanes {
			wg.Go(func() {
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
					a, err := l.Admit(ctx, lane, 4)
					cancel()
					if err != nil {
						return // spent: Admit waits for tomorrow
					}
					for range a.N {
						if err := l.Wait(context.Background(), nil, lane, nil); err != nil {
							t.Error(err)
						}
						calls.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if got := calls.Load(); got != quota {
		t.Fatalf("%d calls made, want exactly the quota of %d", got, quota)
	}
	s := replicas[0].fleet.Limiter("acme").Snapshot()
	tomorrow := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	if s.QuotaUsed != quota || !s.QuotaResumesAt.Equal(tomorrow) {
		t.Errorf("snapshot %+v, want %d used, resuming at %s", s, quota, tomorrow)
	}
	if n := counter(t, srv); n != quota {
		t.Errorf("the day's counter is %d, want %d", n, quota)
	}
}

func TestUnusedQuotaIsHandedBackAtStop(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	r := startReplica(t, srv, "a", map[string]limit.Spec{"acme": {DailyQuota: 1000}})
	l := r.fleet.Limiter("acme")
	a, err := l.Admit(context.Background(), job.LaneBulk, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(context.Background(), nil, job.LaneBulk, nil); err != nil {
		t.Fatal(err)
	}
	_ = a
	if n := counter(t, srv); n <= 1 {
		t.Fatalf("counter %d: no chunk reserved", n)
	}
	r.fleet.Stop(context.Background())
	if n := counter(t, srv); n != 1 {
		t.Fatalf("counter %d after stop, want the one call made", n)
	}
}

// counter reads today's quota counter of acme.
func counter(t *testing.T, srv *natstest.Server) int64 {
	t.Helper()
	_, js := srv.Connect(t)
	s, err := js.Stream(context.Background(), limit.QuotaStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), "quota.acme."+time.Now().UTC().Format("20060102"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Val string }
	if err := json.Unmarshal(m.Data, &v); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(v.Val, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFleetConcurrencyIsDivided(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	var mu sync.Mutex
	got := map[string][2]int{}
	spec := func(id string) map[string]limit.Spec {
		return map[string]limit.Spec{"acme": {Concurrency: 10, LiveReserve: 2, FleetConcurrency: true,
			OnConcurrency: func(size, reserve int) { mu.Lock(); got[id] = [2]int{size, reserve}; mu.Unlock() }}}
	}
	a := startReplica(t, srv, "a", spec("a"))
	startReplica(t, srv, "b", spec("b"))
	startReplica(t, srv, "c", spec("c"))
	await(t, time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		total := got["a"][0] + got["b"][0] + got["c"][0]
		ok := total == 10 && got["a"] == [2]int{4, 1} && got["b"] == [2]int{3, 1} && got["c"] == [2]int{3, 0}
		return ok, fmt.Sprintf("shares %v", got)
	})
	if s := a.fleet.Limiter("acme").Snapshot(); s.Concurrency != 4 || s.LiveReserve != 1 {
		t.Errorf("snapshot %+v", s)
	}
}

func TestASecondReplicaWithTheSameIDIsRefused(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	spec := map[string]limit.Spec{"acme": {Rate: 10}}
	startReplicaTTL(t, srv, "twin", spec, time.Second)

	_, js := srv.Connect(t)
	f := limit.NewFleet(js, limit.FleetConfig{Replica: "twin", TTL: time.Second}, natstest.Logger(t))
	f.Add("acme", spec["acme"])
	err := f.Start(context.Background())
	t.Cleanup(func() { f.Stop(context.Background()) })
	if !errors.Is(err, limit.ErrReplicaInUse) {
		t.Fatalf("Start with an id in use = %v, want ErrReplicaInUse", err)
	}
	t.Log(err)
}

func TestAReplicaRestartedUnderItsIDReclaimsIt(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	spec := map[string]limit.Spec{"acme": {Rate: 10}}

	// A clean stop hands the id back at once.
	first := startReplicaTTL(t, srv, "pod-0", spec, time.Second)
	first.fleet.Stop(context.Background())
	begin := time.Now()
	startReplicaTTL(t, srv, "pod-0", spec, time.Second).fleet.Stop(context.Background())
	t.Logf("after a clean stop the id was free in %s", time.Since(begin))

	// A process that died leaves its last heartbeat: the id is free once
	// that expires, without anyone deleting it.
	_, js := srv.Connect(t)
	hb, err := json.Marshal(limit.Heartbeat{Replica: "pod-0", At: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), "$KV."+limit.Bucket+".member.pod-0", hb, jetstream.WithMsgTTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	r := startReplicaTTL(t, srv, "pod-0", spec, time.Second)
	waited := time.Since(begin)
	t.Logf("after a crash the id was free in %s", waited)
	if waited < 500*time.Millisecond {
		t.Errorf("claimed the id %s after a live heartbeat was written: it did not wait for it to expire", waited)
	}
	awaitRate(t, 2*time.Second, r, "acme", 1, 10)
}
