package worker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
)

func resultMsg(id, data string) *nats.Msg {
	return &nats.Msg{Subject: "results.acme.charge", Data: []byte(data), Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
}

// startStorer starts a server with the Switchyard streams and a storer on
// a connection to it, closed by t.Cleanup.
func startStorer(t testing.TB, timeout time.Duration) (*natstest.Server, *nats.Conn, jetstream.JetStream, *storer) {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	s, err := newStorer(nc, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return srv, nc, js, s
}

// silence subscribes to silent.>, where publishes get no reply: no stream
// stores them, and the subscriber keeps the server from answering "no
// responders".
func silence(t testing.TB, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.Subscribe("silent.>", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestStorerStoresAndReportsDuplicates(t *testing.T) {
	_, _, js, s := startStorer(t, 5*time.Second)

	first, err := s.store(t.Context(), resultMsg("a:1:final", `{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if first.Stream != "RESULTS" || first.Sequence != 1 || first.Duplicate {
		t.Fatalf("first PubAck %+v, want RESULTS seq 1", first)
	}
	again, err := s.store(t.Context(), resultMsg("a:1:final", `{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Sequence != 1 {
		t.Fatalf("same message id again: %+v, want a duplicate of seq 1", again)
	}
	info, err := js.Stream(t.Context(), "RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("RESULTS holds %d messages, want 1", n)
	}
}

// Many stores at once each get their own PubAck.
func TestStorerManyAtOnce(t *testing.T) {
	_, _, _, s := startStorer(t, 5*time.Second)

	const n = 2000
	seqs := make([]uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ack, err := s.store(t.Context(), resultMsg("m:"+strconv.Itoa(i), "{}"))
			if err != nil {
				t.Error(err)
				return
			}
			seqs[i] = ack.Sequence
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i, q := range seqs {
		if q == 0 || seen[q] {
			t.Fatalf("store %d got sequence %d (zero or seen before)", i, q)
		}
		seen[q] = true
	}
	if left := s.pendingCount(); left != 0 {
		t.Fatalf("%d waits left pending", left)
	}
}

func (s *storer) pendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// awaitPending waits until s has n PubAcks pending: a store has published.
func awaitPending(t *testing.T, s *storer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.pendingCount() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d pending after 10s, want %d", s.pendingCount(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStorerErrors(t *testing.T) {
	_, nc, _, s := startStorer(t, 300*time.Millisecond)
	silence(t, nc)

	t.Run("no stream", func(t *testing.T) {
		_, err := s.store(t.Context(), &nats.Msg{Subject: "nostream.x", Data: []byte("x")})
		if !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Fatalf("err %v, want ErrNoStreamResponse", err)
		}
	})
	t.Run("over the stream's message size", func(t *testing.T) {
		// JOBS takes at most 512 KiB; the server's max payload is 1 MiB.
		m := &nats.Msg{Subject: "jobs.acme.bulk.charge", Data: []byte(strings.Repeat("x", 600<<10))}
		_, err := s.store(t.Context(), m)
		if !permanent(err) {
			t.Fatalf("err %v, want the stream's too-large API error, which is permanent", err)
		}
	})
	t.Run("no PubAck in time", func(t *testing.T) {
		start := time.Now()
		_, err := s.store(t.Context(), &nats.Msg{Subject: "silent.x", Data: []byte("x")})
		if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			t.Fatalf("err %v, want ErrAsyncPublishTimeout", err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("timed out after %s, before the 300ms timeout", d)
		}
	})
	t.Run("caller gives up", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := s.store(ctx, &nats.Msg{Subject: "silent.x", Data: []byte("x")}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		// Its wait was returned for reuse in a clean state.
		ack, err := s.store(t.Context(), resultMsg("after-cancel", "{}"))
		if err != nil || ack.Stream != "RESULTS" {
			t.Fatalf("store after a cancelled one: %+v, %v", ack, err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		s2, err := newStorer(nc, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := s2.store(t.Context(), &nats.Msg{Subject: "silent.x", Data: []byte("x")})
			done <- err
		}()
		awaitPending(t, s2, 1)
		s2.close()
		if err := <-done; !errors.Is(err, errStorerClosed) {
			t.Fatalf("pending store at close: %v, want errStorerClosed", err)
		}
		if _, err := s2.store(t.Context(), resultMsg("late", "{}")); !errors.Is(err, errStorerClosed) {
			t.Fatalf("store after close: %v, want errStorerClosed", err)
		}
		s2.close() // twice is harmless
	})
}

// A dropped connection fails what is pending at once, so that the caller
// retries after the reconnect instead of waiting out the timeout; the
// replies of later stores arrive on the resubscribed inbox.
func TestStorerFailsPendingOnDisconnect(t *testing.T) {
	srv, nc, _, s := startStorer(t, time.Minute)
	silence(t, nc)

	done := make(chan error, 1)
	go func() {
		_, err := s.store(t.Context(), &nats.Msg{Subject: "silent.x", Data: []byte("x")})
		done <- err
	}()
	awaitPending(t, s, 1)
	start := time.Now()
	srv.Restart()
	if err := <-done; !errors.Is(err, nats.ErrDisconnected) {
		t.Fatalf("pending store across a restart: %v, want nats.ErrDisconnected", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("failed after %s: it waited for the timeout", d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ack, err := s.store(t.Context(), resultMsg("after-restart", "{}"))
		if err == nil {
			if ack.Stream != "RESULTS" {
				t.Fatalf("PubAck %+v", ack)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no store 10s after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPubAckOf(t *testing.T) {
	tests := []struct {
		name string
		msg  *nats.Msg
		want error
	}{
		{"no responders", &nats.Msg{Header: nats.Header{"Status": []string{"503"}}}, jetstream.ErrNoStreamResponse},
		{"not JSON", &nats.Msg{Data: []byte("+OK")}, jetstream.ErrInvalidJSAck},
		{"no stream", &nats.Msg{Data: []byte(`{"seq":3}`)}, jetstream.ErrInvalidJSAck},
	}
	for _, tc := range tests {
		if _, err := pubAck(tc.msg); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	_, err := pubAck(&nats.Msg{Data: []byte(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`)})
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != 10077 || apiErr.Code != 503 {
		t.Errorf("API error: %v, want *jetstream.APIError 10077", err)
	}
	ack, err := pubAck(&nats.Msg{Data: []byte(`{"stream":"RESULTS","seq":42,"duplicate":true}`)})
	if err != nil || ack.Stream != "RESULTS" || ack.Sequence != 42 || !ack.Duplicate {
		t.Errorf("PubAck %+v, %v", ack, err)
	}
}

// BenchmarkStorer is one outcome stored, PubAck awaited, with many others
// pending, against the jetstream package's async publish that it replaced.
func BenchmarkStorer(b *testing.B) {
	_, nc, _, s := startStorer(b, 5*time.Second)
	pub, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(strings.Repeat("x", 400))
	run := func(b *testing.B, store func(*nats.Msg) error) {
		b.SetParallelism(64)
		var n sync.Mutex
		i := 0
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n.Lock()
				i++
				id := b.Name() + ":" + strconv.Itoa(i)
				n.Unlock()
				m := &nats.Msg{Subject: "results.acme.charge", Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
				if err := store(m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("storer", func(b *testing.B) {
		run(b, func(m *nats.Msg) error { _, err := s.store(context.Background(), m); return err })
	})
	b.Run("jetstream", func(b *testing.B) {
		run(b, func(m *nats.Msg) error {
			f, err := pub.PublishMsgAsync(m)
			if err != nil {
				return err
			}
			select {
			case <-f.Ok():
				return nil
			case err := <-f.Err():
				return err
			}
		})
	})
}
