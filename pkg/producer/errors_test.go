package producer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	api := func(code int, errCode jetstream.ErrorCode, desc string) error {
		return &jetstream.APIError{Code: code, ErrorCode: errCode, Description: desc}
	}
	tests := []struct {
		name      string
		err       error
		transient bool
		want      error // matched by the final error when not transient
	}{
		{"no responders", fmt.Errorf("no stream: %w", nats.ErrNoResponders), true, nil},
		{"no stream response", jetstream.ErrNoStreamResponse, true, nil},
		{"ack timeout", errAckTimeout, true, nil},
		{"bad ack", errBadAck, true, nil},
		{"disconnected", nats.ErrDisconnected, true, nil},
		{"reconnect buffer full", nats.ErrReconnectBufExceeded, true, nil},
		{"stalled", jetstream.ErrTooManyStalledMsgs, true, nil},
		{"unknown", errors.New("something odd"), true, nil},
		{"temporarily unavailable", api(503, 10008, "JetStream system temporarily unavailable"), true, nil},
		{"store failed on I/O", api(503, 10077, "input/output error"), true, nil},
		{"same msg id in process", api(409, 10158, "duplicate message id is in process"), true, nil},
		{"request timeout", api(408, 10000, "timeout"), true, nil},

		{"exceeds max_msg_size", api(400, 10054, "message size exceeds maximum allowed"), false, ErrTooLarge},
		{"store: too large", api(503, 10077, "message too large"), false, ErrTooLarge},
		{"max payload", nats.ErrMaxPayload, false, ErrTooLarge},
		{"max msgs, discard new", api(503, 10077, "maximum messages exceeded"), false, ErrStreamFull},
		{"max bytes, discard new", api(503, 10077, "maximum bytes exceeded"), false, ErrStreamFull},
		{"per subject, discard new", api(503, 10077, "maximum messages per subject exceeded"), false, ErrStreamFull},
		{"insufficient resources", api(503, 10023, "insufficient resources"), false, ErrStreamFull},
		{"bad request", api(400, 10003, "bad request"), false, ErrRejected},
		{"closed", nats.ErrConnectionClosed, false, ErrClosed},
		{"draining", fmt.Errorf("publish: %w", nats.ErrConnectionDraining), false, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			transient, final := classify(tt.err)
			if transient != tt.transient {
				t.Fatalf("transient = %v, want %v (%v)", transient, tt.transient, final)
			}
			if !tt.transient && !errors.Is(final, tt.want) {
				t.Errorf("final %v does not match %v", final, tt.want)
			}
			if !errors.Is(final, tt.err) && tt.want != ErrTooLarge && tt.want != ErrStreamFull {
				t.Errorf("final %v lost the cause %v", final, tt.err)
			}
		})
	}
}

func TestBackoffDoublesWithinBounds(t *testing.T) {
	t.Parallel()
	p := &Producer{cfg: config{backoffMin: 100 * time.Millisecond, backoffMax: time.Second}}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 80: time.Second} {
		for range 50 {
			if d := p.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
}

// TestAbortReportsEveryEntryOnce: the end of the context and late
// acknowledgements race; each job is reported once either way.
func TestAbortReportsEveryEntryOnce(t *testing.T) {
	t.Parallel()
	p := &Producer{cfg: defaultConfig(), prefix: "_INBOX.test.", inflight: map[uint64]*entry{}}
	ctx, cancel := context.WithCancel(t.Context())
	pl := p.Pipeline(ctx, Window(4))
	var reported []Result
	pl.cfg.onResult = func(r Result) { reported = append(reported, r) }
	pl.collect = false
	for i := range 4 {
		e := &entry{pl: pl, index: i, id: fmt.Sprint(i), msg: &nats.Msg{Subject: "jobs.a.live.t"}, attempts: 1, token: uint64(i + 1)}
		pl.slots <- struct{}{}
		pl.wg.Add(1)
		pl.stats.Added++
		pl.entries[e] = struct{}{}
		p.inflight[e.token] = e
	}
	reply := func(token, data string) {
		p.onReply(&nats.Msg{Subject: p.prefix + token, Data: []byte(data)})
	}
	reply("1", `{"stream":"JOBS","seq":1}`)
	cancel()
	s := pl.Wait()
	reply("2", `{"stream":"JOBS","seq":2}`)                                     // too late
	reply("3", `{"error":{"code":503,"err_code":10008,"description":"later"}}`) // too late
	reply("zz!", `{"stream":"JOBS","seq":3}`)                                   // not a token
	if len(reported) != 4 || s.Stored != 1 || s.Failed != 3 || len(p.inflight) != 0 {
		t.Fatalf("reported %d, summary %+v, %d still in flight", len(reported), s.Stats, len(p.inflight))
	}
	for _, r := range reported[1:] {
		if !errors.Is(r.Err, ErrUnconfirmed) || !errors.Is(r.Err, context.Canceled) {
			t.Errorf("job %d: %v", r.Index, r.Err)
		}
	}
}
