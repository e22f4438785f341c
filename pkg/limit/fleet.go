package limit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/streams"
)

// Names in JetStream.
const (
	// Bucket is the KV bucket holding membership heartbeats
	// (member.<replica>), pauses (pause.<provider>) and circuit breakers
	// (breaker.<provider>).
	Bucket = "LIMITS"
	// QuotaStream is the counter stream (ADR-49) of daily quotas, one
	// subject quota.<provider>.<YYYYMMDD> per provider and UTC day.
	QuotaStream = "QUOTA"

	memberPrefix  = "member."
	pausePrefix   = "pause."
	breakerPrefix = "breaker."
	quotaPrefix   = "quota"
)

// bucketMaxAge bounds how long anything stays in the bucket: longer than
// any pause (MaxPause), so the markers that deletes leave go too.
const bucketMaxAge = 2 * time.Hour

// tickEvery is how often limiters sample their call rate and the view
// drops silent members.
const tickEvery = 250 * time.Millisecond

// FleetConfig configures a Fleet.
type FleetConfig struct {
	// Replica is this replica's id, unique in the fleet. Required.
	Replica string
	// TTL is how long a replica's heartbeat lives: one that stops
	// heartbeating (it died) leaves every view within about TTL plus a
	// second; it heartbeats every TTL/3. Default 3s, at least 1s.
	TTL time.Duration
}

// Fleet shares the limits of this replica's providers with the other
// replicas through JetStream: it heartbeats this replica's membership,
// watches the others', divides each provider's limits by the members,
// publishes and applies pauses, and reserves daily quotas. Create it with
// NewFleet, add every provider with Add, then Start; Stop is idempotent.
type Fleet struct {
	js     jetstream.JetStream
	cfg    FleetConfig
	key    string // member key token
	logger *slog.Logger

	limiters map[string]*Limiter
	names    []string // sorted
	view     *view
	wake     chan struct{}
	// beatNow asks for a heartbeat before the next tick: shares changed.
	beatNow chan struct{}

	kv     jetstream.KeyValue
	cancel context.CancelFunc
	loops  sync.WaitGroup

	mu      sync.Mutex
	started bool
	stopped bool
}

// NewFleet returns a Fleet for this replica. It does not touch NATS until
// Start.
func NewFleet(js jetstream.JetStream, cfg FleetConfig, logger *slog.Logger) *Fleet {
	if cfg.TTL == 0 {
		cfg.TTL = 3 * time.Second
	}
	cfg.TTL = max(cfg.TTL, time.Second)
	return &Fleet{
		js: js, cfg: cfg, key: memberKey(cfg.Replica), logger: logger.With("component", "limits"),
		limiters: map[string]*Limiter{}, view: newView(cfg.Replica), wake: make(chan struct{}, 1),
		beatNow: make(chan struct{}, 1),
	}
}

// Add returns the limiter of a provider, sharing its limits with the
// fleet. Call it before Start.
func (f *Fleet) Add(provider string, spec Spec) *Limiter {
	l := NewLimiter(provider, spec)
	l.mu.Lock()
	if spec.DailyQuota > 0 {
		l.q = newQuota(spec.DailyQuota)
	}
	l.notify = f.poke
	l.replica = f.cfg.Replica
	l.recomputeLocked()
	l.mu.Unlock()
	f.limiters[provider] = l
	f.names = slices.Sorted(maps.Keys(f.limiters))
	return l
}

// Limiter returns a provider's limiter, nil if not added.
func (f *Fleet) Limiter(provider string) *Limiter { return f.limiters[provider] }

// Snapshots reports every provider's limits, in name order.
func (f *Fleet) Snapshots() []Snapshot {
	out := make([]Snapshot, 0, len(f.names))
	for _, name := range f.names {
		out = append(out, f.limiters[name].Snapshot())
	}
	return out
}

// poke wakes the writer; it never blocks.
func (f *Fleet) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Start creates the bucket (and the quota stream, if a provider has a
// quota) unless they exist, announces this replica, reads the fleet as it
// stands, so that the first calls already use the right shares, and
// starts heartbeating and watching.
func (f *Fleet) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started || f.stopped {
		return errors.New("limit: fleet already started (a fleet runs once)")
	}
	replicas := f.replicas(ctx)
	kv, err := f.ensureBucket(ctx, replicas)
	if err != nil {
		return err
	}
	f.kv = kv
	for _, l := range f.limiters {
		if l.q != nil {
			if err := f.ensureQuotaStream(ctx, replicas); err != nil {
				return err
			}
			break
		}
	}
	if err := f.claim(ctx); err != nil {
		if errors.Is(err, ErrReplicaInUse) {
			return err
		}
		return fmt.Errorf("limit: announce replica %s: %w", f.cfg.Replica, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w, err := f.sync(ctx, runCtx)
	if err != nil {
		cancel()
		return err
	}
	// Reserve the first quota chunks now, so the first fetches need not
	// wait for them.
	for _, name := range f.names {
		l := f.limiters[name]
		if l.q == nil {
			continue
		}
		l.mu.Lock()
		l.q.roll(dayOf(time.Now()))
		l.mu.Unlock()
		if err := l.refillQuota(ctx, f); err != nil {
			f.logger.Warn("daily quota", "provider", name, "err", err)
		}
	}
	// The first heartbeat counted this replica alone; tell the new shares.
	if err := f.beat(ctx); err != nil {
		f.logger.Warn("heartbeat failed", "err", err)
	}
	f.cancel = cancel
	f.started = true
	f.loops.Go(func() { f.watch(runCtx, w) })
	f.loops.Go(func() { f.heartbeat(runCtx) })
	f.loops.Go(func() { f.writer(runCtx) })
	return nil
}

// Stop stops heartbeating and watching, hands back unused quota, and
// removes this replica from the fleet at once (rather than after its TTL),
// so the others take up its share. Call it once no call of this replica
// is in flight. It is idempotent and safe before Start.
func (f *Fleet) Stop(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.started || f.stopped {
		f.stopped = true
		return
	}
	f.stopped = true
	f.cancel()
	f.loops.Wait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, name := range f.names {
		if err := f.limiters[name].returnQuota(ctx, f); err != nil {
			f.logger.Warn("hand back unused daily quota", "provider", name, "err", err)
		}
	}
	if err := f.kv.Purge(ctx, memberPrefix+f.key, jetstream.PurgeTTL(f.cfg.TTL)); err != nil {
		f.logger.Warn("leave the fleet; the others see this replica go when its heartbeat expires", "ttl", f.cfg.TTL, "err", err)
	}
}

// replicas is the replica count for the objects Start creates: the JOBS
// stream's, so they are as durable as the jobs.
func (f *Fleet) replicas(ctx context.Context) int {
	s, err := f.js.Stream(ctx, streams.Jobs)
	if err != nil {
		return 1
	}
	return max(1, s.CachedInfo().Config.Replicas)
}

func (f *Fleet) ensureBucket(ctx context.Context, replicas int) (jetstream.KeyValue, error) {
	for try := 0; ; try++ {
		kv, err := f.js.KeyValue(ctx, Bucket)
		if err == nil {
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("limit: open bucket %s: %w", Bucket, err)
		}
		kv, err = f.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      Bucket,
			Description: "switchyard: worker membership heartbeats, provider pauses and circuit breakers, for fleet-wide limits",
			History:     1, TTL: bucketMaxAge, Storage: jetstream.FileStorage, Replicas: replicas,
			// Per-key TTLs need it; watchers then see expired keys go.
			LimitMarkerTTL: time.Second,
		})
		if errors.Is(err, jetstream.ErrBucketExists) && try == 0 {
			continue // created by another replica meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("limit: create bucket %s: %w", Bucket, err)
		}
		f.logger.Info("bucket created", "bucket", Bucket)
		return kv, nil
	}
}

func (f *Fleet) ensureQuotaStream(ctx context.Context, replicas int) error {
	_, err := f.js.Stream(ctx, QuotaStream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("limit: look up stream %s: %w", QuotaStream, err)
	}
	_, err = f.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        QuotaStream,
		Description: "switchyard: fleet-wide daily quota counters, quota.<provider>.<YYYYMMDD>",
		Subjects:    []string{quotaPrefix + ".>"}, AllowMsgCounter: true,
		// Two days and a bit: today and yesterday stay readable.
		MaxAge:  50 * time.Hour,
		Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("limit: create stream %s: %w", QuotaStream, err)
	}
	return nil
}

// add implements counter on the quota stream: one publish with Nats-Incr.
func (f *Fleet) add(ctx context.Context, subject string, delta int64) (int64, error) {
	m := &nats.Msg{Subject: subject, Header: nats.Header{"Nats-Incr": []string{fmt.Sprintf("%+d", delta)}}}
	ack, err := f.js.PublishMsg(ctx, m)
	if err != nil {
		return 0, err
	}
	total, err := strconv.ParseInt(ack.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("counter %s answered %q: %w", subject, ack.Value, err)
	}
	return total, nil
}

// beat publishes this replica's heartbeat, with the TTL on the message
// (kv.Put would store the key without one).
func (f *Fleet) beat(ctx context.Context) error { return f.beatWith(ctx) }

func (f *Fleet) beatWith(ctx context.Context, opts ...jetstream.PublishOpt) error {
	hb := Heartbeat{Replica: f.cfg.Replica, At: time.Now().UTC(), Providers: make(map[string]Report, len(f.limiters))}
	for name, l := range f.limiters {
		hb.Providers[name] = l.report()
	}
	data, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.TTL/3)
	defer cancel()
	opts = append(opts, jetstream.WithMsgTTL(f.cfg.TTL))
	_, err = f.js.Publish(ctx, "$KV."+Bucket+"."+memberPrefix+f.key, data, opts...)
	return err
}

// report is a limiter's part of the heartbeat.
func (l *Limiter) report() Report {
	s := l.Snapshot()
	return Report{Rate: s.Rate, Started: s.Started, Concurrency: s.Concurrency, Adaptive: s.Adaptive,
		PausedUntil: s.PausedUntil, PauseReason: s.PauseReason,
		QuotaLimit: s.QuotaLimit, QuotaUsed: s.QuotaUsed, QuotaResumesAt: s.QuotaResumesAt, Breaker: s.Breaker}
}

// sync starts the watcher and applies the bucket as it stands, up to the
// end of its initial values.
func (f *Fleet) sync(ctx, runCtx context.Context) (jetstream.KeyWatcher, error) {
	w, err := f.kv.WatchAll(runCtx)
	if err != nil {
		return nil, fmt.Errorf("limit: watch bucket %s: %w", Bucket, err)
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	seen := map[string]bool{}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("limit: watch bucket %s: watcher closed", Bucket)
			}
			if e == nil {
				if err := f.complete(ctx, seen); err != nil {
					f.logger.Warn("read the fleet's keys; the first shares may count too few replicas until their next heartbeat", "err", err)
				}
				f.distribute()
				return w, nil
			}
			seen[e.Key()] = true
			f.apply(e, true)
		case <-timeout.C:
			_ = w.Stop()
			return nil, fmt.Errorf("limit: watch bucket %s: no initial values within 10s", Bucket)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		}
	}
}

// complete reads the keys a watcher's initial values missed. Under
// concurrent heartbeats those can leave out a key that exists (seen in
// tests on this machine); the stream's subject index, which the server
// reads under its lock, does not.
func (f *Fleet) complete(ctx context.Context, seen map[string]bool) error {
	for _, key := range missing(ctx, f.js, seen) {
		e, err := f.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // gone meanwhile
		}
		if err != nil {
			return err
		}
		f.apply(e, true)
	}
	return nil
}

// missing lists the keys of the bucket that are not in seen.
func missing(ctx context.Context, js jetstream.JetStream, seen map[string]bool) []string {
	s, err := js.Stream(ctx, "KV_"+Bucket)
	if err != nil {
		return nil
	}
	prefix := "$KV." + Bucket + "."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil
	}
	var out []string
	for subject := range info.State.Subjects {
		if key := strings.TrimPrefix(subject, prefix); !seen[key] {
			out = append(out, key)
		}
	}
	return out
}

// watch applies the bucket's changes until ctx ends, restarting the
// watcher if it closes.
func (f *Fleet) watch(ctx context.Context, w jetstream.KeyWatcher) {
	pause := time.Duration(0)
	for {
		if w != nil {
			f.follow(ctx, w)
			_ = w.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		pause = min(max(2*pause, 100*time.Millisecond), 5*time.Second)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return
		}
		var err error
		if w, err = f.kv.WatchAll(ctx); err != nil {
			f.logger.Warn("watch the fleet; retrying", "err", err)
			w = nil
		}
	}
}

// follow applies one watcher's changes until it closes or ctx ends.
func (f *Fleet) follow(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil && f.apply(e, false) {
				f.distribute()
			}
		}
	}
}

// apply takes one change of the bucket; it reports whether membership
// changed. Initial values older than the TTL are stale keys (a server
// without per-key TTLs) and are skipped.
func (f *Fleet) apply(e jetstream.KeyValueEntry, initial bool) bool {
	now := time.Now()
	key := e.Key()
	switch {
	case strings.HasPrefix(key, memberPrefix):
		key = strings.TrimPrefix(key, memberPrefix)
		if e.Operation() != jetstream.KeyValuePut {
			gone := f.view.remove(key)
			if gone && key != f.key {
				f.logger.Info("replica left the fleet", "replica", key, "how", e.Operation())
			}
			return gone
		}
		if initial && now.Sub(e.Created()) > 2*f.cfg.TTL {
			return false
		}
		var hb Heartbeat
		if err := json.Unmarshal(e.Value(), &hb); err != nil || hb.Replica == "" {
			f.logger.Warn("unreadable heartbeat; ignored", "key", e.Key(), "err", err)
			return false
		}
		changed := f.view.put(key, hb, now)
		if changed && !initial && hb.Replica != f.cfg.Replica {
			f.logger.Info("replica joined the fleet", "replica", hb.Replica, "providers", len(hb.Providers))
		}
		return changed
	case strings.HasPrefix(key, pausePrefix) && e.Operation() == jetstream.KeyValuePut:
		l := f.limiters[strings.TrimPrefix(key, pausePrefix)]
		if l == nil {
			return false
		}
		var p Pause
		if err := json.Unmarshal(e.Value(), &p); err != nil {
			f.logger.Warn("unreadable pause; ignored", "key", e.Key(), "err", err)
			return false
		}
		l.remotePause(p)
	case strings.HasPrefix(key, breakerPrefix):
		name := strings.TrimPrefix(key, breakerPrefix)
		l := f.limiters[name]
		if l == nil || l.brk == nil {
			return false
		}
		rec := Breaker{State: BreakerClosed, Reason: "key removed"}
		if e.Operation() == jetstream.KeyValuePut {
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				f.logger.Warn("unreadable breaker; ignored", "key", e.Key(), "err", err)
				return false
			}
		}
		before := l.BreakerState()
		l.remoteBreaker(rec, e.Revision())
		if after := l.BreakerState(); after != before && rec.Replica != f.cfg.Replica {
			f.logger.Info("breaker "+after, "provider", name, "by", rec.Replica, "reason", rec.Reason, "until", rec.Until)
		}
	}
	return false
}

// distribute gives every limiter its members and share, and has a
// heartbeat tell the new shares when they changed.
func (f *Fleet) distribute() {
	changed := false
	for _, name := range f.names {
		l := f.limiters[name]
		ids, rank, others := f.view.serving(name)
		size, reserve, resized, moved := l.setMembers(len(ids), rank, others)
		if resized && l.spec.OnConcurrency != nil {
			l.spec.OnConcurrency(size, reserve)
		}
		changed = changed || moved
	}
	if changed {
		select {
		case f.beatNow <- struct{}{}:
		default:
		}
	}
}

// heartbeat runs the limiters' ticks, publishes this replica's heartbeat
// every TTL/3, and drops members whose heartbeats stopped.
func (f *Fleet) heartbeat(ctx context.Context) {
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	beatEvery := max(1, int(f.cfg.TTL/3/tickEvery))
	failing := false
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-f.beatNow:
			if err := f.beat(ctx); err == nil {
				continue
			}
		case <-t.C:
		}
		now := time.Now()
		for _, l := range f.limiters {
			l.tick(l.monoAt(now))
		}
		if n%beatEvery == 0 {
			switch err := f.beat(ctx); {
			case err != nil && !failing && ctx.Err() == nil:
				f.logger.Warn("heartbeat failed; the fleet drops this replica if it keeps failing for the TTL", "ttl", f.cfg.TTL, "err", err)
				failing = true
			case err == nil && failing:
				f.logger.Info("heartbeat back")
				failing = false
			}
		}
		if gone := f.view.expire(now, f.cfg.TTL+f.cfg.TTL/2, f.key); len(gone) > 0 {
			f.logger.Info("replicas silent for longer than their TTL left the fleet", "replicas", gone)
			f.distribute()
		}
		// Heartbeat values changed the others' rates; refresh them.
		if n%beatEvery == 0 {
			f.distribute()
		}
	}
}

// writer publishes pauses and refills quotas, off the hot path.
func (f *Fleet) writer(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-t.C:
		}
		for _, name := range f.names {
			l := f.limiters[name]
			if p := l.takePause(); p != nil {
				f.publishPause(ctx, name, *p)
			}
			if b, rev := l.takeBreaker(); b != nil {
				f.publishBreaker(ctx, name, l, *b, rev)
			}
			if l.wantsQuota() {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := l.refillQuota(rctx, f); err != nil && ctx.Err() == nil {
					f.logger.Warn("daily quota", "provider", name, "err", err)
				}
				cancel()
			}
		}
	}
}

// publishPause tells every replica to pause provider. The key expires a
// little after the pause ends.
func (f *Fleet) publishPause(ctx context.Context, provider string, p Pause) {
	p.Replica = f.cfg.Replica
	data, err := json.Marshal(p)
	if err != nil {
		return
	}
	ttl := max(time.Until(p.Until), 0) + f.cfg.TTL
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := f.js.Publish(ctx, "$KV."+Bucket+"."+pausePrefix+provider, data, jetstream.WithMsgTTL(ttl.Round(time.Second)+time.Second)); err != nil {
		f.logger.Warn("publish pause; only this replica pauses", "provider", provider, "until", p.Until, "err", err)
		return
	}
	f.logger.Info("provider paused for the fleet", "provider", provider, "until", p.Until, "reason", p.Reason)
}

// publishBreaker writes a breaker state to breaker.<provider>, as a
// compare-and-set on the revision this replica last saw: of several
// replicas claiming the probe, one wins; a loser takes the state in force.
func (f *Fleet) publishBreaker(ctx context.Context, provider string, l *Limiter, rec Breaker, rev uint64) {
	data, err := json.Marshal(rec)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	key := breakerPrefix + provider
	var got uint64
	if rev == 0 {
		got, err = f.kv.Create(ctx, key, data)
	} else {
		got, err = f.kv.Update(ctx, key, data, rev)
	}
	if err == nil {
		l.breakerWritten(rec, got)
		f.logger.Info("breaker "+rec.State+" for the fleet", "provider", provider, "reason", rec.Reason, "until", rec.Until, "opens", rec.Opens)
		return
	}
	e, gerr := f.kv.Get(ctx, key)
	switch {
	case errors.Is(gerr, jetstream.ErrKeyNotFound):
		l.breakerLost(nil, 0)
	case gerr != nil:
		l.breakerLost(nil, 0)
		f.logger.Warn("publish breaker; only this replica follows it", "provider", provider, "state", rec.State, "err", err)
	default:
		var cur Breaker
		if json.Unmarshal(e.Value(), &cur) != nil {
			cur = Breaker{State: BreakerClosed}
		}
		l.breakerLost(&cur, e.Revision())
		f.logger.Debug("breaker changed by another replica first", "provider", provider, "wanted", rec.State, "state", cur.State, "by", cur.Replica)
	}
}
