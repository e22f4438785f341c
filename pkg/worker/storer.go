package worker

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// storer publishes messages to JetStream streams and waits for their
// PubAcks: what jetstream.PublishMsgAsync and its future do, at a fraction
// of the cost per message. Every outcome the worker stores goes through
// it, so its cost is paid once per job: nats.go's publisher arms a timer
// per message for its timeout, creates two channels per future, and
// decodes each PubAck with encoding/json, together about 6 % of the
// worker's CPU at 10,000 calls in flight. Here one goroutine times out
// every pending PubAck, waiters and their channels are reused, and a
// PubAck is decoded with goccy/go-json.
//
// Replies come to one wildcard subscription, each on its own reply subject
// (prefix and a sequence number), as nats.go's do. The number pending is
// bounded by the caller (Worker.settling).
type storer struct {
	nc      *nats.Conn
	prefix  string // of the reply subjects
	timeout time.Duration
	sub     *nats.Subscription
	status  chan nats.Status

	mu      sync.Mutex
	next    uint64
	pending map[uint64]*storeWait
	closed  bool

	quit chan struct{}
	done chan struct{}
}

// storeWait is one PubAck awaited. It is reused: whoever removes it from
// pending (the reply, the timeout, a disconnect) sends one result on ch,
// and its waiter receives it before the next use.
type storeWait struct {
	ch chan storeResult // capacity 1
	at time.Time        // when the message was published
}

type storeResult struct {
	ack jetstream.PubAck
	err error
}

var storeWaits = sync.Pool{New: func() any { return &storeWait{ch: make(chan storeResult, 1)} }}

// errStorerClosed is returned by store after close.
var errStorerClosed = errors.New("worker: outcome publisher closed")

// newStorer subscribes to the replies of nc's stores. PubAcks not received
// within timeout fail with jetstream.ErrAsyncPublishTimeout; when the
// connection drops, every pending one fails with nats.ErrDisconnected, so
// that the callers retry once it is back rather than wait out the timeout.
func newStorer(nc *nats.Conn, timeout time.Duration) (*storer, error) {
	s := &storer{
		nc: nc, prefix: nc.NewInbox() + ".", timeout: timeout,
		pending: map[uint64]*storeWait{},
		status:  nc.StatusChanged(nats.RECONNECTING, nats.CLOSED),
		quit:    make(chan struct{}), done: make(chan struct{}),
	}
	sub, err := nc.Subscribe(s.prefix+"*", s.reply)
	if err != nil {
		nc.RemoveStatusListener(s.status)
		return nil, err
	}
	// Replies must never be dropped as a slow consumer: a lost PubAck
	// costs the caller a timeout and a second publish.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		nc.RemoveStatusListener(s.status)
		return nil, err
	}
	s.sub = sub
	go s.run()
	return s, nil
}

// store publishes m (its Reply is overwritten) and waits for its PubAck.
// ctx ends the wait, not the publish: the message may still be stored, so
// a caller that retries must publish it with the same message id.
func (s *storer) store(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, error) {
	w := storeWaits.Get().(*storeWait)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		storeWaits.Put(w)
		return nil, errStorerClosed
	}
	s.next++
	id := s.next
	w.at = time.Now()
	s.pending[id] = w
	s.mu.Unlock()

	var buf [20]byte
	m.Reply = s.prefix + string(strconv.AppendUint(buf[:0], id, 10))
	if err := s.nc.PublishMsg(m); err != nil {
		if s.take(id) == nil {
			<-w.ch // a disconnect failed it meanwhile
		}
		storeWaits.Put(w)
		return nil, err
	}
	var r storeResult
	if done := ctx.Done(); done == nil {
		// Outcomes are stored under a context that is never cancelled: a
		// plain receive is cheaper than a select.
		r = <-w.ch
	} else {
		select {
		case r = <-w.ch:
		case <-done:
			if s.take(id) == nil {
				<-w.ch // answered meanwhile: drain it before reuse
			}
			storeWaits.Put(w)
			return nil, ctx.Err()
		}
	}
	storeWaits.Put(w)
	if r.err != nil {
		return nil, r.err
	}
	return &r.ack, nil
}

// take removes and returns the waiter of id, or nil when another already
// took it.
func (s *storer) take(id uint64) *storeWait {
	s.mu.Lock()
	w := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	return w
}

// reply hands a PubAck to its waiter.
func (s *storer) reply(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[min(len(s.prefix), len(m.Subject)):], 10, 64)
	if err != nil {
		return
	}
	w := s.take(id)
	if w == nil {
		return // timed out already, or given up by its caller
	}
	ack, err := pubAck(m)
	w.ch <- storeResult{ack: ack, err: err}
}

// pubAck reads a JetStream publish reply: a PubAck, an API error, or the
// status of a publish no stream listened to.
func pubAck(m *nats.Msg) (jetstream.PubAck, error) {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return jetstream.PubAck{}, jetstream.ErrNoStreamResponse
	}
	var r struct {
		jetstream.PubAck
		Error *jetstream.APIError `json:"error"`
	}
	if err := gojson.Unmarshal(m.Data, &r); err != nil {
		return jetstream.PubAck{}, jetstream.ErrInvalidJSAck
	}
	if r.Error != nil {
		return jetstream.PubAck{}, r.Error
	}
	if r.Stream == "" {
		return jetstream.PubAck{}, jetstream.ErrInvalidJSAck
	}
	return r.PubAck, nil
}

// run fails the PubAcks that waited past the timeout, and all of them when
// the connection drops, until close.
func (s *storer) run() {
	defer close(s.done)
	tick := time.NewTicker(max(s.timeout/8, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.quit:
			return
		case st, ok := <-s.status:
			if !ok {
				s.status = nil // never again
				continue
			}
			if st == nats.CLOSED {
				s.fail(func(*storeWait) bool { return true }, nats.ErrConnectionClosed)
				continue
			}
			s.fail(func(*storeWait) bool { return true }, nats.ErrDisconnected)
		case now := <-tick.C:
			s.fail(func(w *storeWait) bool { return now.Sub(w.at) >= s.timeout }, jetstream.ErrAsyncPublishTimeout)
		}
	}
}

// fail ends every pending wait for which which holds with err.
func (s *storer) fail(which func(*storeWait) bool, err error) {
	var failed []*storeWait
	s.mu.Lock()
	for id, w := range s.pending {
		if which(w) {
			failed = append(failed, w)
			delete(s.pending, id)
		}
	}
	s.mu.Unlock()
	for _, w := range failed {
		w.ch <- storeResult{err: err}
	}
}

// close fails what is pending and ends the subscription; later stores
// fail at once. It is idempotent.
func (s *storer) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	_ = s.sub.Unsubscribe()
	s.nc.RemoveStatusListener(s.status)
	s.fail(func(*storeWait) bool { return true }, errStorerClosed)
}
