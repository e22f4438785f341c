package worker

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/streams"
)

// pausePoll is how often a paused lane asks the server whether its
// consumer is still paused, in case the resume advisory was missed (a
// reconnect, an account without advisories).
const pausePoll = 5 * time.Second

// consumerPause is what a lane knows of its work consumer's pause (the
// server's consumer pause API: `switchyard provider pause`). While its
// consumer is paused a lane sends no pull requests and holds no slots: the
// server would keep a pull waiting until the pause ends, and a manual
// resume does not wake pulls already waiting (they wait for their expiry),
// so a lane that kept pulling would start draining only a fetch_max_wait
// after the resume. Instead it waits for the resume advisory, the pause's
// end, or a poll, and then sends a fresh pull at once.
type consumerPause struct {
	mu      sync.Mutex
	until   time.Time // zero: not paused
	changed chan struct{}
}

// set records the consumer's pause: until zero or past means not paused.
func (p *consumerPause) set(paused bool, until time.Time) {
	if !paused {
		until = time.Time{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.until.Equal(until) {
		return
	}
	p.until = until
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// learn records the pause a consumer info shows.
func (p *consumerPause) learn(ci *jetstream.ConsumerInfo) {
	until := time.Time{}
	if ci.Paused {
		until = time.Now().Add(ci.PauseRemaining)
		if u := ci.Config.PauseUntil; u != nil && !u.IsZero() {
			until = *u
		}
	}
	p.set(ci.Paused, until)
}

// state returns the pause's end (zero: not paused) and a channel closed at
// the next change.
func (p *consumerPause) state() (time.Time, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.until, p.changed
}

// waitResumed returns at once while the lane's consumer is not paused;
// otherwise it waits for the pause to end. It returns false when ctx ends
// first.
func (l *lane) waitResumed(ctx context.Context) bool {
	for {
		until, changed := l.pause.state()
		d := time.Until(until)
		if until.IsZero() || d <= 0 {
			return ctx.Err() == nil
		}
		t := time.NewTimer(min(d, pausePoll))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-changed:
			t.Stop()
		case <-t.C:
			if d > pausePoll {
				l.refreshPause(ctx)
			} else {
				l.pause.set(false, time.Time{}) // the server resumes it now
			}
		}
	}
}

// refreshPause reads the lane's consumer info for its pause.
func (l *lane) refreshPause(ctx context.Context) {
	l.mu.Lock()
	c := l.consumer
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, lagTimeout)
	defer cancel()
	if ci, err := c.Info(ctx); err == nil {
		l.pause.learn(ci)
	} else if consumerGone(err) {
		l.pause.set(false, time.Time{}) // the fetch loop recreates it
	}
}

// pauseAdvisories is the subject on which the server announces that a work
// consumer was paused or resumed (by the API or its pause's end).
const pauseAdvisories = "$JS.EVENT.ADVISORY.CONSUMER.PAUSE." + streams.Jobs + ".*"

// pauseAdvisory is the part of the server's consumer pause advisory
// (io.nats.jetstream.advisory.v1.consumer_pause) the worker reads.
type pauseAdvisory struct {
	Consumer   string    `json:"consumer"`
	Paused     bool      `json:"paused"`
	PauseUntil time.Time `json:"pause_until"`
}

// watchPauses subscribes to the pause advisories of the work consumers and
// passes each to its lane. Subscribe before binding the lanes, so that a
// pause between the bind and the subscription is not missed.
func (w *Worker) watchPauses() (*nats.Subscription, error) {
	byConsumer := make(map[string]*lane, len(w.lanes))
	for _, l := range w.lanes {
		byConsumer[l.consumerName()] = l
	}
	return w.js.Conn().Subscribe(pauseAdvisories, func(m *nats.Msg) {
		var a pauseAdvisory
		if err := json.Unmarshal(m.Data, &a); err != nil {
			return
		}
		if l := byConsumer[a.Consumer]; l != nil {
			l.pause.set(a.Paused, a.PauseUntil)
			w.logger.Info("work consumer pause", "provider", l.provider.Name(), "lane", l.lane, "paused", a.Paused, "until", a.PauseUntil)
		}
	})
}
