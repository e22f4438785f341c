package limit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// FleetStatus is one provider's limits across the fleet, summed from the
// replicas' heartbeats.
type FleetStatus struct {
	Provider string `json:"provider"`
	// Members is how many live replicas serve the provider.
	Members int `json:"members"`
	// Rate is the rate the fleet may call at, in calls/s (the sum of the
	// members' rates); 0 when nothing limits it.
	Rate float64 `json:"rate"`
	// Started is the rate the fleet's calls started at, over about the
	// last second.
	Started float64 `json:"started"`
	// Concurrency is the slots of all members together.
	Concurrency int  `json:"concurrency"`
	Adaptive    bool `json:"adaptive,omitempty"`
	// PausedUntil and PauseReason describe the longest pause in force.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	PauseReason string    `json:"pause_reason,omitempty"`
	// QuotaLimit, QuotaUsed (the highest any member saw) and
	// QuotaResumesAt describe the daily quota.
	QuotaLimit     int64     `json:"quota_limit,omitempty"`
	QuotaUsed      int64     `json:"quota_used,omitempty"`
	QuotaResumesAt time.Time `json:"quota_resumes_at,omitzero"`
	// Breaker is the circuit breaker's state (BreakerClosed, BreakerOpen,
	// BreakerHalfOpen) from breaker.<provider>, or closed when no replica
	// ever wrote it; empty when no member has a breaker for the provider.
	// BreakerUntil, BreakerReason and BreakerBy are the key's: when an
	// open breaker may be probed (or a prober's deadline), why, and which
	// replica wrote it (in half_open, the prober).
	Breaker       string    `json:"breaker,omitempty"`
	BreakerUntil  time.Time `json:"breaker_until,omitzero"`
	BreakerReason string    `json:"breaker_reason,omitempty"`
	BreakerBy     string    `json:"breaker_by,omitempty"`
}

// ReadStatus reads the LIMITS bucket and returns every provider's limits
// across the fleet, in name order: nil when no worker ever ran. It reads
// through a watcher's initial values, not a key listing, which can miss
// keys while heartbeats are written.
func ReadStatus(ctx context.Context, js jetstream.JetStream) ([]FleetStatus, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("limit: open bucket %s: %w", Bucket, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("limit: read bucket %s: %w", Bucket, err)
	}
	defer func() { _ = w.Stop() }()
	now := time.Now()
	byName := map[string]*FleetStatus{}
	get := func(name string) *FleetStatus {
		s := byName[name]
		if s == nil {
			s = &FleetStatus{Provider: name}
			byName[name] = s
		}
		return s
	}
	seen := map[string]bool{}
	var entries []jetstream.KeyValueEntry
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e == nil {
			break
		}
		seen[e.Key()] = true
		entries = append(entries, e)
	}
	// The initial values can miss a key written meanwhile: read those.
	for _, key := range missing(ctx, js, seen) {
		if e, err := kv.Get(ctx, key); err == nil {
			entries = append(entries, e)
		}
	}
	for _, e := range entries {
		switch key := e.Key(); {
		case strings.HasPrefix(key, memberPrefix):
			var hb Heartbeat
			if json.Unmarshal(e.Value(), &hb) != nil {
				continue
			}
			for name, r := range hb.Providers {
				s := get(name)
				s.Members++
				s.Rate += r.Rate
				s.Started += r.Started
				s.Concurrency += r.Concurrency
				s.Adaptive = s.Adaptive || r.Adaptive
				if r.PausedUntil.After(now) && r.PausedUntil.After(s.PausedUntil) {
					s.PausedUntil, s.PauseReason = r.PausedUntil, r.PauseReason
				}
				s.QuotaLimit = max(s.QuotaLimit, r.QuotaLimit)
				s.QuotaUsed = max(s.QuotaUsed, r.QuotaUsed)
				if r.QuotaResumesAt.After(s.QuotaResumesAt) {
					s.QuotaResumesAt = r.QuotaResumesAt
				}
				if r.Breaker != "" && s.Breaker == "" {
					s.Breaker = BreakerClosed
				}
			}
		case strings.HasPrefix(key, pausePrefix):
			var p Pause
			if json.Unmarshal(e.Value(), &p) != nil || !p.Until.After(now) {
				continue
			}
			if s := get(strings.TrimPrefix(key, pausePrefix)); p.Until.After(s.PausedUntil) {
				s.PausedUntil, s.PauseReason = p.Until, p.Reason
			}
		}
	}
	// The breakers' keys override what the heartbeats implied.
	for _, e := range entries {
		if key := e.Key(); strings.HasPrefix(key, breakerPrefix) {
			var b Breaker
			if json.Unmarshal(e.Value(), &b) != nil || b.State == "" {
				continue
			}
			s := get(strings.TrimPrefix(key, breakerPrefix))
			s.Breaker, s.BreakerReason, s.BreakerBy = b.State, b.Reason, b.Replica
			if b.State != BreakerClosed {
				s.BreakerUntil = b.Until
			}
		}
	}
	out := make([]FleetStatus, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, *byName[name])
	}
	return out, nil
}

// UsefulWorkers is ceil(rate × latency ÷ slots per replica): how many
// replicas the fleet's rate limit (calls/s) keeps busy when each call takes
// latency and each replica holds slotsPerReplica calls at once. Past it,
// more replicas only wait for tokens, so it is what to cap an autoscaler
// at. ok is false without a rate limit, a latency or slots: then nothing
// caps the replicas. `switchyard status` and the workers' metrics both
// compute it here.
func UsefulWorkers(rate float64, latency time.Duration, slotsPerReplica float64) (n int, ok bool) {
	if rate <= 0 || latency < 0 || slotsPerReplica <= 0 {
		return 0, false
	}
	return max(1, int(math.Ceil(rate*latency.Seconds()/slotsPerReplica))), true
}
