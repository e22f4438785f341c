package limit

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"sync"
	"time"
)

// Heartbeat is the value of a replica's member key, member.<replica>: who
// it is and, for each provider it serves, where its limits stand. The key
// carries a TTL, so a replica that dies without a word drops out of every
// view when it expires.
type Heartbeat struct {
	Replica   string            `json:"replica"`
	At        time.Time         `json:"at"`
	Providers map[string]Report `json:"providers"`
}

// Report is one provider's part of a heartbeat.
type Report struct {
	// Rate is the rate the replica may call at, in calls/s; 0 for none.
	Rate float64 `json:"rate,omitempty"`
	// Started is the rate its calls started at, over about a second.
	Started float64 `json:"started"`
	// Concurrency is its slots for the provider.
	Concurrency int  `json:"concurrency"`
	Adaptive    bool `json:"adaptive,omitempty"`
	// PausedUntil and PauseReason describe a pause in force.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	PauseReason string    `json:"pause_reason,omitempty"`
	// QuotaLimit, QuotaUsed and QuotaResumesAt describe the daily quota,
	// as in Snapshot.
	QuotaLimit     int64     `json:"quota_limit,omitempty"`
	QuotaUsed      int64     `json:"quota_used,omitempty"`
	QuotaResumesAt time.Time `json:"quota_resumes_at,omitzero"`
	// Breaker is the breaker's state as this replica sees it; empty when
	// the provider has none.
	Breaker string `json:"breaker,omitempty"`
}

// Pause is the value of pause.<provider>: the provider said stop, and
// every replica stops calling it until Until.
type Pause struct {
	Until   time.Time `json:"until"`
	Reason  string    `json:"reason"`
	Replica string    `json:"replica,omitempty"`
}

// memberKey turns a replica id into a key token: the id itself when it
// only has letters, digits, '-' and '_', else a readable form of it plus a
// hash, so two ids never share a key.
func memberKey(id string) string {
	clean := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '_'
	}, id)
	if clean == id && id != "" {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return clean + "-" + hex.EncodeToString(sum[:6])
}

// view is this replica's picture of the fleet, built from a watcher on the
// bucket (NATS-NOTES: listing keys misses some while heartbeats are
// written).
type view struct {
	self string // this replica's id

	mu      sync.Mutex
	members map[string]member // by key
}

type member struct {
	hb   Heartbeat
	seen time.Time // local clock, when its last heartbeat arrived
}

func newView(self string) *view { return &view{self: self, members: map[string]member{}} }

// put records a heartbeat; it reports whether the set of members changed.
func (v *view) put(key string, hb Heartbeat, seen time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	old, had := v.members[key]
	v.members[key] = member{hb: hb, seen: seen}
	return !had || !sameProviders(old.hb, hb)
}

func sameProviders(a, b Heartbeat) bool {
	if len(a.Providers) != len(b.Providers) || a.Replica != b.Replica {
		return false
	}
	for name := range a.Providers {
		if _, ok := b.Providers[name]; !ok {
			return false
		}
	}
	return true
}

// remove drops a member; it reports whether it was there.
func (v *view) remove(key string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, had := v.members[key]
	delete(v.members, key)
	return had
}

// expire drops members not heard from for longer than after, as long as
// this replica's own heartbeats are arriving: if they are not, the view is
// stale rather than the others gone, and dropping them would raise this
// replica's share while they still call. It returns the keys dropped.
func (v *view) expire(now time.Time, after time.Duration, selfKey string) (gone []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if self, ok := v.members[selfKey]; !ok || now.Sub(self.seen) > after {
		return nil
	}
	for key, m := range v.members {
		if key != selfKey && now.Sub(m.seen) > after {
			delete(v.members, key)
			gone = append(gone, key)
		}
	}
	return gone
}

// serving returns, for provider, the ids of the replicas serving it
// (always including this one), sorted, this replica's rank among them, and
// the rates the others report, summed.
func (v *view) serving(provider string) (ids []string, rank int, others float64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ids = append(ids, v.self)
	for _, m := range v.members {
		r, ok := m.hb.Providers[provider]
		if !ok || m.hb.Replica == v.self {
			continue
		}
		ids = append(ids, m.hb.Replica)
		others += r.Rate
	}
	sort.Strings(ids)
	ids = dedup(ids)
	return ids, sort.SearchStrings(ids, v.self), others
}

func dedup(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
