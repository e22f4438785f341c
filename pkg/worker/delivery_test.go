package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

// Environment of a worker process started by a test from its own binary.
const (
	childNATS = "SWITCHYARD_TEST_CHILD_NATS"
	childAPI  = "SWITCHYARD_TEST_CHILD_API"
)

func TestMain(m *testing.M) {
	if os.Getenv(childNATS) != "" {
		os.Exit(runChildWorker())
	}
	os.Exit(m.Run())
}

// atMostOnce is the provider config of the at-most-once tests, the same in
// the child process and in the test's own worker.
func atMostOnce(url string) map[string]provider.Config {
	return map[string]provider.Config{"acme": {BaseURL: url, AllowPrivateNetwork: true, Concurrency: 10, Timeout: 30 * time.Second,
		Tasks: map[string]provider.Task{"charge": {Delivery: provider.AtMostOnce}}}}
}

// runChildWorker runs a worker until it is killed.
func runChildWorker() int {
	nc, err := nats.Connect(os.Getenv(childNATS))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	js, _ := jetstream.New(nc)
	ps, err := provider.NewAll(atMostOnce(os.Getenv(childAPI)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	w, err := worker.New(js, worker.Config{ID: "child", FetchMaxWait: 200 * time.Millisecond}, ps,
		slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := w.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	<-ctx.Done()
	w.Stop(context.Background())
	return 0
}

// countingAPI answers 200 and counts calls by idempotency key. /hang
// holds the call until the client goes away, after saying it started;
// /slow answers after delay.
type countingAPI struct {
	delay   time.Duration
	started chan string
	quit    chan struct{} // closed at the end of the test
	mu      sync.Mutex
	calls   map[string]int
}

func newCountingAPI(t *testing.T, delay time.Duration) (*countingAPI, string) {
	a := &countingAPI{delay: delay, started: make(chan string, 16), quit: make(chan struct{}), calls: map[string]int{}}
	hs := httptest.NewServer(a)
	t.Cleanup(hs.Close)
	t.Cleanup(func() { close(a.quit) })
	return a, hs.URL
}

func (a *countingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("Idempotency-Key")
	a.mu.Lock()
	a.calls[id]++
	a.mu.Unlock()
	switch r.URL.Path {
	case "/hang":
		a.started <- id
		select {
		case <-r.Context().Done():
		case <-a.quit:
		}
	case "/slow":
		select {
		case <-time.After(a.delay):
		case <-r.Context().Done():
		}
	}
}

func (a *countingAPI) callsOf(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[id]
}

func TestCallSlowerThanAckWaitIsDeliveredOnce(t *testing.T) {
	b := setup(t, mockapi.Config{})
	api, url := newCountingAPI(t, 2500*time.Millisecond)
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(url, func(c *provider.Config) {
		c.AckWait = time.Second // the call takes 2.5 of them
	})})
	b.publish(t, newJob("slow-1", "acme", "charge", "/slow"), job.LaneLive)
	row := b.waitFinal(t, 15*time.Second, "slow-1")["slow-1"]
	if row.Status != job.StatusSucceeded || row.Attempts != 1 || row.LatencyMS < 2500 {
		t.Fatalf("row %s after %d attempts in %d ms, want succeeded after 1 in 2.5 s", row.Status, row.Attempts, row.LatencyMS)
	}
	if n := api.callsOf("slow-1"); n != 1 {
		t.Fatalf("provider called %d times, want 1: the message was delivered again during the call", n)
	}
}

func TestAtMostOnceJobIsCalledOnce(t *testing.T) {
	b := setup(t, mockapi.Config{})
	api, url := newCountingAPI(t, 0)
	b.startWorker(t, worker.Config{}, atMostOnce(url))
	b.publish(t, newJob("amo-ok", "acme", "charge", "/ok"), job.LaneLive)
	row := b.waitFinal(t, 10*time.Second, "amo-ok")["amo-ok"]
	if row.Status != job.StatusSucceeded || row.Attempt != 1 || api.callsOf("amo-ok") != 1 {
		t.Fatalf("row %s at attempt %d with %d calls, want succeeded at 1 with 1 call", row.Status, row.Attempt, api.callsOf("amo-ok"))
	}
	// Attempt 0 is the provisional unknown stored before the ack.
	if len(row.AttemptRows) != 2 || row.AttemptRows[0].Status != job.StatusUnknown || row.AttemptRows[1].Status != job.StatusSucceeded {
		t.Fatalf("attempt rows %+v, want unknown at 0 then succeeded at 1", row.AttemptRows)
	}
}

func TestAtMostOnceWorkerKilledMidCallLeavesUnknown(t *testing.T) {
	b := setup(t, mockapi.Config{})
	api, url := newCountingAPI(t, 0)

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childNATS+"="+b.nats.URL(), childAPI+"="+url)
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })

	b.publish(t, newJob("amo-hang", "acme", "charge", "/hang"), job.LaneLive)
	select {
	case <-api.started:
	case <-time.After(15 * time.Second):
		t.Fatal("the child worker never called the provider")
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	// Acked before the call: nothing is left to deliver again.
	c, err := b.js.Consumer(context.Background(), streams.Jobs, job.WorkConsumer("acme", job.LaneLive))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || b.jobsLeft(t) != 0 {
		t.Fatalf("after the kill: %d pending acks, %d pending, %d in JOBS; want none", info.NumAckPending, info.NumPending, b.jobsLeft(t))
	}

	// Another worker serves the lane; a job after the dead one shows it
	// has taken over, and that the dead one did not come back.
	b.startWorker(t, worker.Config{ID: "survivor"}, atMostOnce(url))
	b.publish(t, newJob("amo-after", "acme", "charge", "/ok"), job.LaneLive)
	if row := b.waitFinal(t, 10*time.Second, "amo-after")["amo-after"]; row.Status != job.StatusSucceeded {
		t.Fatalf("amo-after: %s, want succeeded", row.Status)
	}
	row, err := b.store.Job(context.Background(), "amo-hang")
	if err != nil {
		t.Fatal(err)
	}
	if row.Status != job.StatusUnknown || row.WorkerID != "child" {
		t.Fatalf("amo-hang recorded %s by %s, want unknown by child", row.Status, row.WorkerID)
	}
	if n := api.callsOf("amo-hang"); n != 1 {
		t.Fatalf("amo-hang called %d times, want exactly 1", n)
	}
}
