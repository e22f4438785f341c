package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

// binary is the worker command built once for the tests that run it as a
// real process.
var binary struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.path != "" {
		_ = os.RemoveAll(filepath.Dir(binary.path))
	}
	os.Exit(code)
}

// buildWorker builds this command with the go tool into a temporary
// directory, once per test binary.
func buildWorker(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			binary.err = err
			return
		}
		dir, err := os.MkdirTemp("", "switchyard-worker-*")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "worker")
		out, err := exec.Command(goTool, "build", "-o", binary.path, ".").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// drainSetup is a NATS server, a slow mock API, a backlog of jobs, and the
// worker command running against them as its own process.
type drainSetup struct {
	srv  *natstest.Server
	js   jetstream.JetStream
	mock *mockapi.Server
	url  string
	ids  []string
	cmd  *exec.Cmd
	logs *bytes.Buffer
}

const drainConcurrency = 4

func startDrain(t *testing.T, latency, grace time.Duration, jobs int) *drainSetup {
	t.Helper()
	bin := buildWorker(t)
	d := &drainSetup{srv: natstest.Start(t), mock: mockapi.New(mockapi.Config{LatencyMin: latency})}
	_, d.js = d.srv.Connect(t)
	d.srv.ApplyStreams(t, d.js)
	api := httptest.NewServer(d.mock)
	t.Cleanup(api.Close)
	d.url = api.URL
	// The backlog is there before the worker starts, so it fills every
	// slot at once.
	for i := range jobs {
		j := job.Job{V: 1, ID: fmt.Sprintf("drain-%02d", i), Provider: "acme", Task: "ping", Request: job.Request{Path: "/ping"}}
		data, _ := json.Marshal(j)
		m := &nats.Msg{Subject: job.Subject("acme", job.LaneLive, "ping"), Data: data, Header: nats.Header{jetstream.MsgIDHeader: {j.ID}}}
		if _, err := d.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		d.ids = append(d.ids, j.ID)
	}
	cfg := filepath.Join(t.TempDir(), "worker.yaml")
	yaml := fmt.Sprintf(`log: {format: json}
worker: {shutdown_grace: %s, fetch_max_wait: 300ms}
providers:
  acme: {base_url: %s, allow_private_network: true, concurrency: %d, timeout: 10s}
`, grace, api.URL, drainConcurrency)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	d.logs = &bytes.Buffer{}
	d.cmd = exec.Command(bin, "--config", cfg, "--nats-url", d.srv.URL(), "--id", "proc", "--http-listen", "127.0.0.1:0")
	d.cmd.Stderr = d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("worker process log:\n%s", d.logs)
		}
	})
	return d
}

// term waits until every slot holds a call, sends SIGTERM, and returns
// the process's exit code and how long it took to exit.
func (d *drainSetup) term(t *testing.T) (int, time.Duration) {
	t.Helper()
	waitFor(t, func() bool { return d.mock.Stats().InFlight == drainConcurrency })
	sent := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return d.cmd.ProcessState.ExitCode(), time.Since(sent)
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not exit within 30s of SIGTERM")
	}
	return 0, 0
}

// results reads every result in RESULTS, by job id.
func (d *drainSetup) results(t *testing.T) map[string][]job.Result {
	t.Helper()
	ctx := context.Background()
	c, err := d.js.OrderedConsumer(ctx, streams.Results, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]job.Result{}
	for {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var r job.Result
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				t.Fatal(err)
			}
			out[r.JobID] = append(out[r.JobID], r)
		}
		if n == 0 {
			return out
		}
	}
}

// finishWithAnotherWorker runs an in-process worker, calling the API at
// url, until every job has succeeded, and returns how long that took. A
// job the stopped process still held would wait out AckWait (30s) first.
func (d *drainSetup) finishWithAnotherWorker(t *testing.T, url string) (map[string][]job.Result, time.Duration) {
	t.Helper()
	ps, err := provider.NewAll(map[string]provider.Config{"acme": {BaseURL: url, AllowPrivateNetwork: true, Concurrency: 50, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(d.js, worker.Config{ID: "other", FetchMaxWait: 300 * time.Millisecond}, ps, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	var res map[string][]job.Result
	waitFor(t, func() bool {
		res = d.results(t)
		for _, id := range d.ids {
			if !succeeded(res[id]) {
				return false
			}
		}
		return true
	})
	return res, time.Since(began)
}

func succeeded(rs []job.Result) bool {
	for _, r := range rs {
		if r.Status == job.StatusSucceeded {
			return true
		}
	}
	return false
}

// ackWait is the work consumer's AckWait for the 10s call timeout: what a
// job held by a dead worker would wait before redelivery.
const ackWait = 2*10*time.Second + 10*time.Second

// TestSIGTERMDrainsARealProcess runs the worker command as its own process
// with every slot busy on a slow call and a backlog behind, and sends it
// SIGTERM: it exits 0 once the calls in flight finished and their results
// are stored; it holds no job, so another worker takes the backlog at once
// rather than after AckWait; every job ends succeeded, called once.
func TestSIGTERMDrainsARealProcess(t *testing.T) {
	d := startDrain(t, time.Second, 20*time.Second, 12)
	code, took := d.term(t)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	st := d.mock.Stats()
	if st.Canceled != 0 || st.ByStatus[200] != drainConcurrency {
		t.Fatalf("after the drain: %d calls answered 200, %d cancelled; want the %d in flight finished", st.ByStatus[200], st.Canceled, drainConcurrency)
	}
	byProc := 0
	for _, rs := range d.results(t) {
		for _, r := range rs {
			if r.WorkerID == "proc" && r.Status == job.StatusSucceeded {
				byProc++
			}
		}
	}
	if byProc != drainConcurrency {
		t.Fatalf("%d results stored by the stopped worker, want the %d calls it had in flight", byProc, drainConcurrency)
	}
	t.Logf("exited 0 %s after SIGTERM with %d calls of 1s in flight", took.Round(time.Millisecond), drainConcurrency)
	// The backlog was never delivered to it: nothing to wait for.

	res, rest := d.finishWithAnotherWorker(t, d.url)
	if rest > ackWait/4 {
		t.Fatalf("the other worker took %s to finish the backlog; want it at once, far from AckWait %s", rest, ackWait)
	}
	for _, id := range d.ids {
		if n := d.mock.Calls(id); n != 1 {
			t.Errorf("job %s called %d times, want once", id, n)
		}
		if len(res[id]) != 1 {
			t.Errorf("job %s has %d results, want one", id, len(res[id]))
		}
	}
}

// TestSIGTERMWithAShortGraceHandsTheCallsBack: calls longer than the
// grace period are cancelled at its end and their jobs naked, so the
// process still exits 0, promptly, and another worker runs them at once;
// nothing is lost.
func TestSIGTERMWithAShortGraceHandsTheCallsBack(t *testing.T) {
	d := startDrain(t, 5*time.Second, 300*time.Millisecond, 8)
	code, took := d.term(t)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if took > 3*time.Second {
		t.Fatalf("exited %s after SIGTERM; want about the grace (300ms) plus a pull's end (fetch_max_wait 300ms)", took)
	}
	if st := d.mock.Stats(); st.ByStatus[200] != 0 {
		t.Fatalf("%d calls answered; want none of the 5s calls finished", st.ByStatus[200])
	}
	// The cancellations reach the mock as the connections close.
	waitFor(t, func() bool { return d.mock.Stats().Canceled == drainConcurrency })
	for id, rs := range d.results(t) {
		t.Errorf("job %s has results %+v from the stopped worker; a cancelled call has no outcome", id, rs)
	}
	t.Logf("exited 0 %s after SIGTERM with a 300ms grace and %d calls of 5s in flight", took.Round(time.Millisecond), drainConcurrency)

	// The other worker calls a fast API: the naked jobs are done at once
	// unless they wait out AckWait.
	fast := httptest.NewServer(mockapi.New(mockapi.Config{}))
	t.Cleanup(fast.Close)
	res, rest := d.finishWithAnotherWorker(t, fast.URL)
	if rest > ackWait/6 {
		t.Fatalf("the other worker took %s to finish; want the naked jobs at once, far from AckWait %s", rest, ackWait)
	}
	t.Logf("the other worker finished all %d jobs, the %d naked ones included, %s after it started", len(d.ids), drainConcurrency, rest.Round(time.Millisecond))
	for _, id := range d.ids {
		if len(res[id]) != 1 || res[id][0].WorkerID != "other" {
			t.Errorf("job %s: results %+v, want one from the other worker", id, res[id])
		}
	}
}
